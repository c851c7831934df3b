"""The job cache: one computation per key across processes, crash safety, integrity, manifests, no pickles,
and bitwise-reproducible organism jobs (fresh runs and continued ones)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import finish, python, sha256, tiny_eval, tiny_organism, tree_digest

from harness.cache import ENV_VAR, MANIFEST, Cache, CacheWarning
from harness.evaluate import GENERATIONS
from harness.jobs import evaluate, materialize
from harness.specs import TaskSpec, from_dict, library_versions

SPEC = TaskSpec(family="cache-test", params={"payload": 1})  # any spec names a key; nothing computes tasks here

RACE = """
import hashlib, json, sys, time
from pathlib import Path
from harness.cache import Cache
from harness.specs import TaskSpec
root, counter, go, name = sys.argv[1:5]
spec = TaskSpec(family="race", params={"payload": 1})

def compute(out):
    time.sleep(1.0)
    with open(counter, "a") as f:
        f.write(name + "\\n")
    (out / "result.json").write_text(json.dumps({"by": name}))
    (out / "nested").mkdir()
    (out / "nested" / "data.txt").write_text(name * 1000)
    return {"computed_by": name}

print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.002)
cache = Cache(root)
entry = cache.get_or_compute(spec, compute)
files = {str(p.relative_to(entry)): hashlib.sha256(p.read_bytes()).hexdigest()
         for p in sorted(entry.rglob("*")) if p.is_file()}
print(json.dumps({"entry": str(entry), "key": spec.key, "computed": cache.stats.computed,
                  "loaded": cache.stats.loaded, "files": files}))
"""

KILLED = """
import sys, time
from harness.cache import Cache
from harness.specs import TaskSpec
spec = TaskSpec(family="cache-test", params={"payload": 1})

def compute(out):
    (out / "partial.json").write_text('{"half": ')
    time.sleep(300)

Cache(sys.argv[1]).get_or_compute(spec, compute)
"""

WAITER = """
import sys
from harness.cache import Cache
from harness.specs import TaskSpec
spec = TaskSpec(family="cache-test", params={"payload": 1})
print("start", flush=True)
cache = Cache(sys.argv[1])
entry = cache.get_or_compute(spec, lambda out: (out / "result.json").write_text('"recomputed"') and None)
print(entry, cache.stats.computed == [spec.key], flush=True)
"""

ORGANISM_JOBS = """
import json, sys
sys.path.insert(0, "tests")
from helpers import tiny_eval, tiny_organism
from harness.cache import Cache
from harness.jobs import materialize
cache = Cache(sys.argv[1])
organism = tiny_organism(steps=10)
print(json.dumps({"model": str(materialize(organism, cache)), "eval": str(materialize(tiny_eval(organism), cache))}))
"""


def writer(counter: Path | None = None, text: str = "result", sleep: float = 0.0) -> Callable[[Path], dict]:
    """A compute function: files at two depths, a call counted in ``counter``."""

    def compute(out: Path) -> dict:
        time.sleep(sleep)
        if counter is not None:
            with counter.open("a") as f:
                f.write("computed\n")
        (out / "result.json").write_text(json.dumps({"text": text}))
        (out / "nested").mkdir()
        (out / "nested" / "data.txt").write_text(text * 500)
        return {"note": text}

    return compute


def never(out: Path) -> dict:
    raise AssertionError("a cached entry was computed again")


def calls(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def lock_is_free(cache: Cache, key: str) -> bool:
    """Whether another process holds the key's lock (non-blocking probe)."""
    with cache._lock_path(key).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# ---------------------------------------------------------------- concurrency and crashes


@pytest.mark.parametrize("processes", [2, 3])
def test_racing_processes_compute_once_and_share_the_entry(tmp_path: Path, processes: int) -> None:
    root, counter, go = tmp_path / "cache", tmp_path / "counter", tmp_path / "go"
    workers = [python(RACE, root, counter, go, f"w{i}") for i in range(processes)]
    for w in workers:
        assert w.stdout.readline().strip() == "ready"
    go.touch()  # all start get_or_compute within milliseconds; compute takes a second
    results = [json.loads(finish(w).splitlines()[-1]) for w in workers]

    assert len(counter.read_text().splitlines()) == 1, "compute ran more than once"
    winner = counter.read_text().strip()
    assert {r["entry"] for r in results} == {str(Cache(root).path(results[0]["key"]))}
    assert all(r["files"] == results[0]["files"] for r in results), "processes read different contents"
    assert sum(len(r["computed"]) for r in results) == 1
    assert sum(len(r["loaded"]) for r in results) == processes - 1
    entry = Path(results[0]["entry"])
    assert json.loads((entry / "result.json").read_text()) == {"by": winner}
    assert json.loads((entry / MANIFEST).read_text())["computed_by"] == winner
    assert list((root / "tmp").iterdir()) == []


def test_killed_computation_leaves_no_entry_and_releases_the_lock(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    victim = python(KILLED, root)
    wait_for(lambda: any((root / "tmp").glob("*/partial.json")) or victim.poll() is not None, 60,
             "the helper to start computing")
    assert victim.poll() is None, victim.communicate()[1]
    cache = Cache(root)
    assert not lock_is_free(cache, SPEC.key), "the computing process should hold the key's lock"
    assert not cache.contains(SPEC)

    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    fresh = Cache(root)
    assert not fresh.contains(SPEC)
    assert not fresh.path(SPEC.key).exists()
    assert fresh.entry(SPEC.key) is None
    assert lock_is_free(fresh, SPEC.key), "the kernel releases a killed process's lock"
    started = time.monotonic()
    entry = fresh.get_or_compute(SPEC, writer(text="after the crash"))
    assert time.monotonic() - started < 5
    assert fresh.stats.computed == [SPEC.key]
    assert sorted(tree_digest(entry)) == [MANIFEST, "nested/data.txt", "result.json"]  # nothing of the partial run
    assert json.loads((entry / "result.json").read_text()) == {"text": "after the crash"}


def test_failed_computation_publishes_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")

    def fails(out: Path) -> dict:
        (out / "half.json").write_text("{")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        cache.get_or_compute(SPEC, fails)
    assert not cache.contains(SPEC) and cache.stats.computed == []
    assert list((cache.root / "tmp").iterdir()) == []
    assert lock_is_free(cache, SPEC.key)
    cache.get_or_compute(SPEC, writer())
    assert cache.stats.computed == [SPEC.key]


# ---------------------------------------------------------------- integrity


def truncate(entry: Path) -> None:
    data = (entry / "result.json").read_bytes()
    (entry / "result.json").write_bytes(data[: len(data) // 2])


def edit_same_length(entry: Path) -> None:
    path = entry / "nested" / "data.txt"
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))


def delete_manifest(entry: Path) -> None:
    (entry / MANIFEST).unlink()


def garbage_manifest(entry: Path) -> None:
    (entry / MANIFEST).write_text('{"files": ')


def null_manifest(entry: Path) -> None:
    (entry / MANIFEST).write_text("null")


def extra_file(entry: Path) -> None:
    (entry / "nested" / "stray.json").write_text("{}")


def missing_file(entry: Path) -> None:
    (entry / "nested" / "data.txt").unlink()


def edit_manifest_checksum(entry: Path) -> None:
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest["files"]["result.json"] = "0" * 64
    (entry / MANIFEST).write_text(json.dumps(manifest))


CORRUPTIONS = [truncate, edit_same_length, delete_manifest, garbage_manifest, null_manifest, extra_file,
               missing_file, edit_manifest_checksum]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=[c.__name__ for c in CORRUPTIONS])
def test_corrupt_entry_is_set_aside_with_a_warning_and_recomputed(tmp_path: Path,
                                                                  corrupt: Callable[[Path], None]) -> None:
    root, counter = tmp_path / "cache", tmp_path / "counter"
    entry = Cache(root).get_or_compute(SPEC, writer(counter, text="first"))
    corrupt(entry)
    corrupted = tree_digest(entry)

    cache = Cache(root)  # a new process: entries are verified once per process
    with pytest.warns(CacheWarning, match=SPEC.key[:12]):
        again = cache.get_or_compute(SPEC, writer(counter, text="second"))
    assert again == entry
    assert calls(counter) == 2 and cache.stats.computed == [SPEC.key] and cache.stats.loaded == []
    assert json.loads((again / "result.json").read_text()) == {"text": "second"}
    graveyard = list((root / "corrupt").iterdir())
    assert len(graveyard) == 1 and graveyard[0].name.startswith(SPEC.key + ".")
    assert tree_digest(graveyard[0]) == corrupted, "the corrupt entry is kept as it was found"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recomputed entry is intact: no warning
        later = Cache(root)
        assert later.get_or_compute(SPEC, never) == entry and later.stats.loaded == [SPEC.key]


def test_contains_detects_corruption_too(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    entry = Cache(root).get_or_compute(SPEC, writer())
    truncate(entry)
    with pytest.warns(CacheWarning, match="checksum mismatch in result.json"):
        assert not Cache(root).contains(SPEC)
    assert not entry.exists()


def test_a_lock_taken_without_waiting_says_whether_it_was_free(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    with cache.lock("job") as held:
        assert held
        with cache.lock("job", wait=False) as taken:  # flock: a second open file conflicts, even in one process
            assert not taken
        with cache.lock("another", wait=False) as taken:
            assert taken
    with cache.lock("job", wait=False) as taken:
        assert taken


def test_entry_found_corrupt_after_waiting_for_the_lock_is_recomputed(tmp_path: Path) -> None:
    """A process waiting on the lock sees a corrupt entry appear (another writer's, e.g. on shared storage
    after a crash): it sets it aside and computes, instead of waiting forever for its own lock."""
    root = tmp_path / "cache"
    holder = Cache(root)
    entry = holder.get_or_compute(SPEC, writer(text="original"))
    aside = tmp_path / "aside"
    os.rename(entry, aside)
    truncate(aside)
    with holder.lock(SPEC.key):
        waiter = python(WAITER, root)
        assert waiter.stdout.readline().strip() == "start"
        time.sleep(1.0)  # the waiter found no entry and blocks on the lock
        os.rename(aside, entry)
    out = finish(waiter, timeout=30)
    assert out.split() == [str(entry), "True"]
    assert json.loads((entry / "result.json").read_text()) == "recomputed"
    assert len(list((root / "corrupt").iterdir())) == 1


# ---------------------------------------------------------------- entries, manifests, stats, location


def test_entries_are_immutable_directories_with_a_full_manifest(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    entry = cache.get_or_compute(SPEC, writer(text="x", sleep=0.2))
    assert entry == cache.root / SPEC.key[:2] / SPEC.key and entry.is_dir()
    manifest = json.loads((entry / MANIFEST).read_text())
    assert manifest["key"] == SPEC.key
    assert manifest["spec"] == SPEC.to_dict() and from_dict(manifest["spec"]) == SPEC
    assert manifest["libraries"] == library_versions() and set(manifest["libraries"]) == {"torch", "transformers",
                                                                                          "trl"}
    assert 0.2 <= manifest["seconds"] < 60
    assert manifest["note"] == "x"  # what compute returns joins the manifest
    assert manifest["files"] == tree_digest(entry, exclude=(MANIFEST,))
    assert set(manifest["files"]) == {"result.json", "nested/data.txt"}
    assert list((cache.root / "tmp").iterdir()) == []

    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in entry.rglob("*")}
    for reader in (cache, Cache(cache.root)):
        assert reader.get_or_compute(SPEC, never) == entry
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in entry.rglob("*")} == before


def test_stats_count_computed_and_loaded_keys(tmp_path: Path) -> None:
    other = TaskSpec(family="cache-test", params={"payload": 2})
    cache = Cache(tmp_path / "cache")
    cache.get_or_compute(SPEC, writer())
    cache.get_or_compute(other, writer())
    cache.get_or_compute(SPEC, never)
    cache.get_or_compute(SPEC, never)
    assert cache.stats.computed == [SPEC.key, other.key]
    assert cache.stats.loaded == [SPEC.key, SPEC.key]
    fresh = Cache(cache.root)
    fresh.get_or_compute(other, never)
    assert fresh.stats.computed == [] and fresh.stats.loaded == [other.key]
    assert fresh.contains(SPEC) and fresh.stats.loaded == [other.key]  # contains() is not a load


def test_root_from_environment_option_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "from-env"))
    cache = Cache()
    assert cache.root == tmp_path / "from-env"
    assert cache.get_or_compute(SPEC, writer()).is_relative_to(tmp_path / "from-env")
    assert Cache(tmp_path / "explicit").root == tmp_path / "explicit"  # an explicit root wins
    assert Cache("relative").root == tmp_path / "relative"  # made absolute against the working directory
    monkeypatch.delenv(ENV_VAR)
    assert Cache().root == tmp_path / ".cache" / "claims"
    monkeypatch.setenv(ENV_VAR, "")
    assert Cache().root == tmp_path / ".cache" / "claims"


# ---------------------------------------------------------------- real jobs: no pickles, reproducible


PICKLE_SUFFIXES = {".pkl", ".pickle", ".pt", ".pth", ".bin", ".joblib", ".npy", ".npz"}


def assert_safetensors(path: Path) -> None:
    from safetensors import safe_open

    data = path.read_bytes()
    header = int.from_bytes(data[:8], "little")
    assert json.loads(data[8:8 + header]), path
    with safe_open(str(path), framework="pt") as f:
        assert list(f.keys()), path


def test_a_populated_cache_holds_no_pickles(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    organism = tiny_organism(steps=5)
    evaluate(tiny_eval(organism), cache)
    materialize(tiny_organism(steps=8), cache)  # a continued run too
    files = [p for p in cache.root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files) and any(p.name == GENERATIONS for p in files)
    for path in files:
        data = path.read_bytes()
        assert path.suffix not in PICKLE_SUFFIXES, path
        if path.suffix == ".safetensors":
            assert_safetensors(path)
            continue
        assert not (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")), f"pickle: {path}"
        assert not data.startswith(b"PK\x03\x04"), f"zip (torch.save format): {path}"
        if path.suffix == ".json":
            json.loads(data)
        elif path.parent.name == "locks":
            assert path.suffix == ".lock" and data == b""
        elif path.parent.parent.name == "index":  # lineage markers of pretraining runs
            assert path.name.isdigit() and len(data.decode().strip()) == 64
        else:
            raise AssertionError(f"unexpected kind of file in the cache: {path}")


def test_organism_jobs_are_bitwise_reproducible_across_processes(tmp_path: Path) -> None:
    runs = [python(ORGANISM_JOBS, tmp_path / f"cache{i}") for i in range(2)]
    outputs = [json.loads(finish(r, timeout=120).splitlines()[-1]) for r in runs]
    models = [Path(o["model"]) for o in outputs]
    evals = [Path(o["eval"]) for o in outputs]
    assert models[0] != models[1] and models[0].name == models[1].name  # separate caches, one key
    assert sha256(models[0] / "model.safetensors") == sha256(models[1] / "model.safetensors")
    assert tree_digest(models[0], exclude=(MANIFEST,)) == tree_digest(models[1], exclude=(MANIFEST,))
    assert (evals[0] / GENERATIONS).read_bytes() == (evals[1] / GENERATIONS).read_bytes()
    for directory in (*models, *evals):
        assert json.loads((directory / MANIFEST).read_text())["files"] == tree_digest(directory, exclude=(MANIFEST,))


def test_longer_pretraining_continues_from_the_cached_prefix_bitwise(tmp_path: Path) -> None:
    continued = Cache(tmp_path / "continued")
    materialize(tiny_organism(steps=10), continued)
    entry = materialize(tiny_organism(steps=30), continued)
    assert json.loads((entry / MANIFEST).read_text())["continued_from_step"] == 10
    assert continued.stats.computed == [tiny_organism(steps=10).key, tiny_organism(steps=30).key]

    direct = Cache(tmp_path / "direct")
    reference = materialize(tiny_organism(steps=30), direct)
    assert json.loads((reference / MANIFEST).read_text())["continued_from_step"] == 0
    for name in ("model.safetensors", "train_state.safetensors"):
        assert sha256(entry / name) == sha256(reference / name), name

    other_seed = materialize(tiny_organism(steps=30, seed=1), continued)  # another lineage: from scratch
    assert json.loads((other_seed / MANIFEST).read_text())["continued_from_step"] == 0
