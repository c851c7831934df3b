"""Where jobs run: local worker processes (default) or Ray tasks; either way results land in the shared cache.

A unit of work is one job, or a group of jobs that run side by side (``harness.jobs.group_key``), with
the cache entries of their dependencies, as plain JSON. ``run_unit`` computes it into the cache under
the cache's locks, so two sessions or machines sharing a cache compute each job once, and reports
what happened; a failing job is reported, never raised. Workers import the user's plugins first.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any, Protocol

import harness
from harness import jobs
from harness.cache import Cache
from harness.progress import ENV_VAR as PROGRESS_ENV
from harness.registry import load_plugins
from harness.specs import OrganismSpec, RLSpec, Spec, from_dict

LOCAL_OBJECT_STORE = 256 * 1024**2  # bytes, for a local Ray instance the harness starts


def one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def payload(specs: list[Spec], cache: Cache, entries: dict[str, Path], plugins: list[str]) -> dict[str, Any]:
    """A unit of work as JSON: the jobs, the cache, their dependencies' entries and the plugins to import."""
    return {"specs": [s.to_dict() for s in specs], "cache": str(cache.root),
            "entries": {key: str(path) for key, path in entries.items()}, "plugins": plugins}


def run_unit(unit: dict[str, Any]) -> dict[str, Any]:
    """Compute a unit of work into the cache (in a worker process or a Ray task).

    Returns ``error`` (one line, or None), the keys ``computed`` here (the rest were published by another
    process meanwhile), the wall clock ``started`` / ``ended`` and the process's peak RSS so far
    (``peak_rss_mb``); the traceback goes to stderr.
    """
    started = time.time()
    cache = Cache(unit["cache"])
    error = None
    try:
        load_plugins(unit["plugins"])
        specs = [from_dict(d) for d in unit["specs"]]
        inputs = jobs.Inputs(cache, {key: Path(path) for key, path in unit["entries"].items()})
        if len(specs) == 1:
            jobs.compute(specs[0], inputs)
        else:
            jobs.compute_group(specs, inputs)
    except Exception as exc:
        traceback.print_exc()
        error = one_line(exc)
    return {"error": error, "computed": cache.stats.computed, "started": started, "ended": time.time(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux reports KiB


def resources(spec: Spec) -> dict[str, float]:
    """What a job asks of the cluster: one CPU, and one GPU for jobs on pretrained models when GPUs exist."""
    model = getattr(spec, "model", spec)
    while isinstance(model, RLSpec):
        model = model.model
    wants_gpu = not isinstance(model, OrganismSpec) and os.environ.get("CLAIMS_RAY_GPUS", "0") != "0"
    return {"num_cpus": 1, "num_gpus": 1 if wants_gpu else 0}


class Backend(Protocol):
    """Runs units of work: ``submit`` does not wait; ``wait`` returns the units finished so far (or within
    ``timeout`` seconds) as (unit id, ``run_unit``'s answer)."""

    capacity: int | None  # units at once; None: as many as are ready
    slots: int  # jobs that run at once (for the ETA)

    def submit(self, unit_id: int, unit: dict[str, Any], resources: dict[str, float]) -> None: ...

    def wait(self, timeout: float) -> list[tuple[int, dict[str, Any]]]: ...

    def close(self) -> None: ...


def worker_env() -> dict[str, str]:
    """A job worker's environment: this harness importable, one thread, per-job progress lines off unless asked."""
    env = dict(os.environ)
    root = str(Path(harness.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    for name in ("CLAIMS_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")
    env.setdefault(PROGRESS_ENV, "0")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


class _Worker:
    def __init__(self, log: Path) -> None:
        self.log = log
        detail = os.environ.get(PROGRESS_ENV) == "1"  # the jobs' own progress lines asked for: to the terminal
        with log.open("a") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "harness.worker"], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=None if detail else err, env=worker_env(),
                                            text=True, bufsize=1)
        self.stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
        self.stdout: IO[str] = self.process.stdout  # type: ignore[assignment]

    def close(self) -> None:
        try:
            self.stdin.close()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


class LocalWorkers:
    """``workers`` worker processes of this machine (``python -m harness.worker``), started on first use and
    fed one unit at a time; their stderr goes to ``log_dir/worker-N.log`` (to the terminal with
    CLAIMS_PROGRESS=1). A worker that dies fails its unit and is replaced."""

    def __init__(self, workers: int, log_dir: Path) -> None:
        self.capacity = self.slots = workers
        self.log_dir = log_dir
        self._idle: list[_Worker] = []
        self._busy: dict[_Worker, int] = {}
        self._started = 0
        self._selector = selectors.DefaultSelector()

    def submit(self, unit_id: int, unit: dict[str, Any], resources: dict[str, float]) -> None:
        if self._idle:
            worker = self._idle.pop()
        else:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            worker = _Worker(self.log_dir / f"worker-{self._started}.log")
            self._started += 1
        worker.stdin.write(json.dumps(unit) + "\n")
        worker.stdin.flush()
        self._busy[worker] = unit_id
        self._selector.register(worker.stdout, selectors.EVENT_READ, worker)

    def wait(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        done = []
        for key, _ in self._selector.select(timeout if self._busy else 0):
            worker: _Worker = key.data
            self._selector.unregister(worker.stdout)
            unit_id = self._busy.pop(worker)
            line = worker.stdout.readline()
            if line:
                done.append((unit_id, json.loads(line)))
                self._idle.append(worker)
                continue
            code = worker.process.wait()
            done.append((unit_id, {"error": f"worker process died (exit code {code}); see {worker.log}",
                                   "computed": [], "started": None, "ended": time.time()}))
        return done

    def close(self) -> None:
        for worker in [*self._idle, *self._busy]:
            worker.close()
        self._idle, self._busy = [], {}
        self._selector.close()


class RayWorkers:
    """Each unit a Ray task with the resources its jobs ask for, all submitted at once; Ray queues them.

    Joins the cluster at ``address`` (or $RAY_ADDRESS), else starts a local instance of ``workers`` CPUs
    (units travel as small JSON: a small object store; its files under $RAY_TMPDIR, default /tmp/ray);
    an instance already started in this process is used as it is.
    """

    capacity = None

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        import ray

        self._ray = ray
        self._owns = not ray.is_initialized()
        address = address or os.environ.get("RAY_ADDRESS")
        if self._owns and address:
            ray.init(address=address)
        elif self._owns:
            ray.init(num_cpus=workers, object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False,
                     log_to_driver=False)
        self._task = ray.remote(run_unit)
        self._refs: dict[Any, int] = {}
        self.slots = max(int(ray.cluster_resources().get("CPU", 1)), 1)

    def submit(self, unit_id: int, unit: dict[str, Any], resources: dict[str, float]) -> None:
        self._refs[self._task.options(**resources).remote(unit)] = unit_id

    def wait(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        if not self._refs:
            return []
        ready, rest = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = self._ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        done = []
        for ref in ready:
            unit_id = self._refs.pop(ref)
            try:
                done.append((unit_id, self._ray.get(ref)))
            except self._ray.exceptions.RayError as exc:  # the task's worker died, or the task was lost
                done.append((unit_id, {"error": one_line(exc), "computed": [], "started": None,
                                       "ended": time.time()}))
        return done

    def close(self) -> None:
        if self._owns:
            self._ray.shutdown()
