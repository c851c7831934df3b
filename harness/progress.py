"""One progress line per running job (step, metrics, ETA); quiet under pytest-xdist workers."""

from __future__ import annotations

import os
import sys
from types import TracebackType

ENV_VAR = "CLAIMS_PROGRESS"  # "1" forces progress lines on, "0" off


def enabled() -> bool:
    setting = os.environ.get(ENV_VAR)
    if setting is not None:
        return setting == "1"
    return "PYTEST_XDIST_WORKER" not in os.environ


class Progress:
    """A tqdm bar on stderr; ``update(done, **metrics)`` sets the position and the shown metrics."""

    def __init__(self, total: int, desc: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled(),
                         mininterval=1.0, leave=False, dynamic_ncols=True)

    def update(self, done: int, **metrics: float) -> None:
        if metrics:
            self._bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()}, refresh=False)
        self._bar.update(done - self._bar.n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.close()
