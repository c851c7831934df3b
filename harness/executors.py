"""Where jobs run: in this process (default) or as Ray tasks; either way results land in the shared cache.

Locks in the cache guarantee one computation per job across processes and machines that share
the cache directory, whichever executor asked for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from harness.cache import Cache
from harness.jobs import materialize
from harness.registry import load_plugins, plugin_sources
from harness.specs import Spec, from_dict


class Executor(Protocol):
    cache: Cache

    def materialize(self, spec: Spec) -> Path: ...

    def close(self) -> None: ...


class InProcess:
    """Computes missing jobs in this process."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def materialize(self, spec: Spec) -> Path:
        return materialize(spec, self.cache)

    def close(self) -> None:
        pass


def _remote_materialize(spec_json: dict, cache_root: str, plugins: list[str]) -> dict:
    """Body of the Ray task: the job by its spec, into the shared cache; returns the keys it computed.

    ``plugins`` (``harness.registry.plugin_sources()`` of the caller) are imported first, so the worker knows the
    task families, rewards, polarities and formats the caller registered.
    """
    load_plugins(plugins)
    cache = Cache(cache_root)
    entry = materialize(from_dict(spec_json), cache)
    return {"entry": str(entry), "computed": cache.stats.computed, "loaded": cache.stats.loaded}


def resources(spec: Spec) -> dict[str, float]:
    """What a job asks of the cluster: one CPU, and one GPU for jobs on pretrained models when GPUs exist."""
    from harness.specs import OrganismSpec, RLSpec

    model = getattr(spec, "model", spec)
    while isinstance(model, RLSpec):
        model = model.model
    wants_gpu = not isinstance(model, OrganismSpec) and os.environ.get("CLAIMS_RAY_GPUS", "0") != "0"
    return {"num_cpus": 1, "num_gpus": 1 if wants_gpu else 0}


class RayExecutor:
    """Runs each missing job as a Ray task with the resources its spec asks for."""

    def __init__(self, cache: Cache, address: str | None = None, **init: Any) -> None:
        import ray

        self.cache = cache
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(address=address or os.environ.get("RAY_ADDRESS"), **init)
        self._task = ray.remote(_remote_materialize)

    def materialize(self, spec: Spec) -> Path:
        if self.cache.contains(spec):
            self.cache.stats.loaded.append(spec.key)
            return self.cache.path(spec.key)
        ref = self._task.options(**resources(spec)).remote(spec.to_dict(), str(self.cache.root), plugin_sources())
        result = self._ray.get(ref)
        self.cache.stats.computed.extend(result["computed"])
        self.cache.stats.loaded.extend(result["loaded"])
        return Path(result["entry"])

    def close(self) -> None:
        if self._owns:
            self._ray.shutdown()


def make_executor(name: str, cache: Cache, address: str | None = None, **init: Any) -> Executor:
    if name == "inprocess":
        return InProcess(cache)
    if name == "ray":
        return RayExecutor(cache, address, **init)
    raise ValueError(f"unknown executor {name!r}; known: inprocess, ray")
