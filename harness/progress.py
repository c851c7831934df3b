"""Progress on stderr: one display for a job graph's run, and per-job detail lines (off under the scheduler).

``CLAIMS_PROGRESS``: "1" forces both on, "0" off. By default the graph display is on (a bar on a
terminal; otherwise a line at most every ``GraphProgress.every`` seconds, and one per failure), and a
job's own detail line is on only in a process that runs jobs itself outside pytest-xdist workers (the
scheduler's workers run with it off).
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import TextIO

ENV_VAR = "CLAIMS_PROGRESS"  # "1" forces progress lines on, "0" off


def enabled() -> bool:
    setting = os.environ.get(ENV_VAR)
    if setting is not None:
        return setting == "1"
    return "PYTEST_XDIST_WORKER" not in os.environ


class Progress:
    """A job's detail line: a tqdm bar on stderr; ``update(done, **metrics)`` sets the position and metrics."""

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


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class GraphProgress:
    """Jobs done / total, failed, running now and the ETA of a graph's run."""

    every = 30.0  # seconds between lines when stderr is not a terminal

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.on = os.environ.get(ENV_VAR) != "0" and total > 0
        self.started = time.time()
        self._last_line = self.started
        self._bar = None
        if self.on and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="jobs", file=self.stream, dynamic_ncols=True, leave=False,
                             bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {postfix}")

    @staticmethod
    def _state(done: int, failed: int, running: list[str], eta: float | None) -> str:
        shown = ", ".join(running[:3]) + (f" +{len(running) - 3}" if len(running) > 3 else "")
        parts = [f"{len(running)} running" + (f" ({shown})" if running else "")]
        if failed:
            parts.append(f"{failed} failed")
        if eta is not None:
            parts.append(f"ETA {duration(eta)}")
        return ", ".join(parts)

    def update(self, done: int, failed: int, running: list[str], eta: float | None) -> None:
        if not self.on:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(self._state(done, failed, running, eta), refresh=False)
            self._bar.update(done + failed - self._bar.n)
        elif time.time() - self._last_line >= self.every:
            self._last_line = time.time()
            self._write(f"jobs: {done + failed}/{self.total} done, {self._state(done, failed, running, eta)}")

    def failure(self, job: str, reason: str) -> None:
        if self.on:
            self._write(f"job {job} FAILED: {reason}")

    def close(self, done: int, failed: int) -> None:
        if not self.on:
            return
        if self._bar is not None:
            self._bar.close()
        note = f", {failed} failed" if failed else ""
        self._write(f"jobs: {done} of {self.total} done in {duration(time.time() - self.started)}{note}")

    def _write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
