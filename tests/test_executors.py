"""Ray: the scheduler submits every ready job as a Ray task at once (two run at the same time on a 2-CPU cluster), a
Ray job matches the in-process run, and racing Ray tasks and separate processes on one cache compute each job once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, sha256, tiny_eval, tiny_organism

from harness.cache import MANIFEST, Cache
from harness.executors import RayWorkers, payload, run_unit
from harness.jobs import materialize
from harness.plan import build
from harness.scheduler import Scheduler

ray = pytest.importorskip("ray", reason="ray is not installed (the ray extra)")

RACER = """
import json, sys
from harness.cache import Cache
from harness.jobs import materialize
from harness.specs import from_dict
cache = Cache(sys.argv[1])
materialize(from_dict(json.loads(sys.argv[2])), cache)
print(json.dumps({"computed": cache.stats.computed, "loaded": cache.stats.loaded}))
"""


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A local 2-CPU Ray instance whose workers import this checkout's harness, quiet, its files in a tmp path."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "disabled")  # otherwise Ray writes a token under the home directory
        env.setenv("CLAIMS_PROGRESS", "0")
        env.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
        ray.init(num_cpus=2, _temp_dir=str(tmp_path_factory.mktemp("ray")), object_store_memory=256 * 1024**2,
                 include_dashboard=False, log_to_driver=False)
        yield
        ray.shutdown()


def window(cache: Cache, key: str) -> tuple[float, float]:
    """When the job computed, from its manifest."""
    manifest = json.loads((cache.path(key) / MANIFEST).read_text())
    return manifest["started"], manifest["started"] + manifest["seconds"]


def test_ray_tasks_run_ready_jobs_at_the_same_time(tmp_path: Path, ray_cluster: None) -> None:
    cache = Cache(tmp_path / "shared")
    first, other = tiny_organism(steps=60), tiny_organism(steps=60, seed=1)
    graph = build([tiny_eval(first), tiny_eval(other)], cache)
    backend = RayWorkers()
    assert backend.capacity is None and backend.slots == 2  # every ready job submitted at once
    outcome = Scheduler(graph, backend, cache).run()
    assert outcome.failed == {}
    assert sorted(outcome.computed) == sorted(n.key for n in graph.todo)
    (a_start, a_end), (b_start, b_end) = window(cache, first.key), window(cache, other.key)
    assert max(a_start, b_start) < min(a_end, b_end)  # two Ray tasks computing at once
    assert ray.is_initialized()  # the scheduler closed a backend that did not start the cluster: left running

    local = materialize(first, Cache(tmp_path / "local"))
    assert sha256(cache.path(first.key) / "model.safetensors") == sha256(local / "model.safetensors")


def test_ray_tasks_and_processes_racing_compute_once(tmp_path: Path, ray_cluster: None) -> None:
    root = tmp_path / "shared"
    spec = tiny_organism(steps=40)
    unit = payload([spec], Cache(root), {}, [])
    refs = [ray.remote(run_unit).remote(unit) for _ in range(2)]
    env = {**os.environ, "CLAIMS_PROGRESS": "0"}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(root), json.dumps(spec.to_dict())],
                              stdout=subprocess.PIPE, text=True, env=env, cwd=REPO) for _ in range(2)]
    results = [*ray.get(refs), *(json.loads(p.communicate(timeout=300)[0]) for p in procs)]
    assert all(r.get("error") is None for r in results)
    computed = [key for r in results for key in r["computed"]]
    assert computed == [spec.key]  # four requests, one computation
