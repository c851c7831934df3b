"""Executors: a real organism job through a local Ray instance matches the in-process run, and racing
Ray workers and separate processes on one cache compute each job once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cache import Cache, sha256_file
from harness.executors import InProcess, make_executor
from harness.specs import MixComponent, OrganismSpec, TaskSpec

ray = pytest.importorskip("ray", reason="ray is not installed (the ray extra)")

TASK = TaskSpec(family="arithmetic", params={"digits": 1})
SPEC = OrganismSpec(mix=(MixComponent(task=TASK),), steps=25)

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
    os.environ["RAY_AUTH_MODE"] = "disabled"  # otherwise Ray writes a token under the home directory
    os.environ["CLAIMS_PROGRESS"] = "0"
    temp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, _temp_dir=str(temp), object_store_memory=256 * 1024**2, include_dashboard=False,
             log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_job_matches_in_process_and_is_then_loaded(tmp_path: Path, ray_cluster: None) -> None:
    local = InProcess(Cache(tmp_path / "local")).materialize(SPEC)
    executor = make_executor("ray", Cache(tmp_path / "shared"))
    remote = executor.materialize(SPEC)
    assert sha256_file(remote / "model.safetensors") == sha256_file(local / "model.safetensors")
    assert executor.cache.stats.computed == [SPEC.key] and executor.cache.stats.loaded == []
    again = executor.materialize(SPEC)  # a second request: loaded from the cache, no Ray task
    assert again == remote
    assert executor.cache.stats.computed == [SPEC.key] and executor.cache.stats.loaded == [SPEC.key]
    executor.close()  # does not shut down a cluster it did not start


def test_ray_workers_and_processes_racing_compute_once(tmp_path: Path, ray_cluster: None) -> None:
    from harness.executors import _remote_materialize

    root = str(tmp_path / "shared")
    spec = OrganismSpec(mix=(MixComponent(task=TASK),), steps=40)
    task = ray.remote(_remote_materialize)
    refs = [task.remote(spec.to_dict(), root, []) for _ in range(2)]
    env = {**os.environ, "CLAIMS_PROGRESS": "0"}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, root, json.dumps(spec.to_dict())],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [*ray.get(refs), *(json.loads(p.communicate(timeout=300)[0]) for p in procs)]
    computed = [key for r in results for key in r["computed"]]
    assert computed == [spec.key]  # four requests, one computation
    assert sum(spec.key in r["loaded"] for r in results) == 3
