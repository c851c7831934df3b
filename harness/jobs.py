"""Jobs: one ``run(spec, out_dir, cache)`` per spec kind, and ``materialize`` to get a cached entry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.cache import Cache
from harness.specs import Spec


def _pretrain(spec: Any, out: Path, cache: Cache) -> dict:
    from harness.models.organism import pretrain

    return pretrain(spec, out, cache)


def _convert(spec: Any, out: Path, cache: Cache) -> dict:
    from harness.models.pretrained import convert_gguf

    return convert_gguf(spec, out)


def _evaluate(spec: Any, out: Path, cache: Cache) -> dict:
    from harness.evaluate import sample

    return sample(spec, out, cache)


def _rl(spec: Any, out: Path, cache: Cache) -> dict:
    from harness.rl.runner import train

    return train(spec, out, cache)


JOBS: dict[str, Callable[[Any, Path, Cache], dict]] = {
    "organism": _pretrain,
    "pretrained": _convert,
    "eval": _evaluate,
    "rl": _rl,
}


def materialize(spec: Spec, cache: Cache) -> Path:
    """The cache entry of ``spec``, computed in this process (once, under the key's lock) if missing."""
    job = JOBS[spec.kind]
    return cache.get_or_compute(spec, lambda out: job(spec, out, cache))
