"""The fault suite (issue 15): real faults on real processes and a real filesystem, each ending in one clear
line and leaving nothing that blocks the next run; a rerun after a kill equals a run never interrupted.

A case's class is the first word of its name after ``test_``: kill (SIGKILL at seeded random points),
full (a small full filesystem: a tmpfs of a few hundred KB, or a file-size limit), readonly (a read-only
bind mount, or an unprivileged user), race (two processes on one key), torn (logs and checkpoints cut by
a kill), truncated (weights cut short), bad (fixtures, recipe and findings inputs), lock (hung lock
holders), sweep (temporary directories of killed jobs), pickle (no pickle written or read).
docs/reliability.md holds the table of cases with the results of a run.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch  # imported before any pytester session below: torch cannot be imported twice
import yaml
from helpers import RECIPE, REPO, finish, python, subprocess_env, tiny_eval, tiny_organism, tree_digest

from harness.cache import MANIFEST, Cache, CacheWarning, JobError
from harness.evaluate import GENERATIONS
from harness.jobs import materialize
from harness.loading import FixtureError, load_fixtures, load_recipe
from harness.models.pretrained import ModelSourceError
from harness.rl.runner import TRAIN_LOG, _jsonl
from harness.specs import (
    DataSpec,
    EvalSpec,
    MixComponent,
    OrganismSpec,
    PolaritySpec,
    RewardSpec,
    RLSpec,
    SpecError,
    TaskSpec,
    from_dict,
)

pytest_plugins = ["pytester"]

TASK = TaskSpec(family="arithmetic", params={"digits": 1})
TWO_DIGITS = TaskSpec(family="arithmetic", params={"digits": 2})
TINY = OrganismSpec(mix=(MixComponent(task=TASK),), steps=150)  # the organism of tests/test_rl.py
RL_RECIPE = dataclasses.replace(load_recipe("organism-v1")[0], engine="trl", prompts_per_step=4, num_generations=4,
                                max_completion_length=4, checkpoint_every=2)
RL = RLSpec(model=TINY, task=TASK, recipe=RL_RECIPE, steps=8)  # checkpoints at 2, 4, 6 and 8
PRETRAIN = tiny_organism(steps=80)
EVAL = EvalSpec(model=tiny_organism(steps=5), task=TWO_DIGITS, num_problems=96, n=32, max_new_tokens=6)
ENOSPC_TEXT = "no space left under"

JOB = """
import json, sys
from harness.cache import Cache
from harness.jobs import materialize
from harness.specs import from_dict
print(materialize(from_dict(json.loads(sys.argv[1])), Cache(sys.argv[2])), flush=True)
"""

# A job as a user meets it: one line on stderr and exit status 2 for a JobError or SpecError.
CLI_JOB = """
import json, sys
from harness.cache import Cache, JobError
from harness.jobs import materialize
from harness.specs import SpecError, from_dict
try:
    print(materialize(from_dict(json.loads(sys.argv[1])), Cache(sys.argv[2])), flush=True)
except (JobError, SpecError) as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
"""


# ---------------------------------------------------------------- helpers


def job(spec, root: Path, code: str = JOB, **popen) -> subprocess.Popen:
    return python(code, json.dumps(spec.to_dict()), root, **popen)


def one_line(text: str) -> str:
    """The single line of ``text`` (a failure shown to a user), asserting there is exactly one."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    assert "Traceback" not in lines[0]
    return lines[0]


def fails_in_one_line(call: Callable[[], object], error: type[Exception] = JobError) -> str:
    with pytest.raises(error) as caught:
        call()
    return one_line(str(caught.value))


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


def content(entry: Path) -> dict[str, str]:
    """An entry's files and digests, less the manifest (its timings differ from run to run)."""
    return tree_digest(entry, exclude=(MANIFEST,))


def copy_entry(spec, source: Cache, target: Cache) -> None:
    shutil.copytree(source.path(spec.key), target.path(spec.key))


def in_use(root: Path) -> list[str]:
    """What a failed job left that could block a later run: temporary entries, held locks."""
    left = [str(p) for p in (root / "tmp").iterdir()] if (root / "tmp").is_dir() else []
    for lock in (root / "locks").glob("*.lock") if (root / "locks").is_dir() else ():
        with lock.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
            except BlockingIOError:
                left.append(f"held: {lock}")
    return left


# ---------------------------------------------------------------- filesystems


def run_quiet(*argv: str) -> bool:
    return subprocess.run(argv, capture_output=True).returncode == 0


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_fs(kb)``: a fresh tmpfs of that size (mounting needs root), unmounted at teardown."""
    mounted: list[Path] = []

    def mount(size_kb: int) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        if os.geteuid() != 0 or not run_quiet("mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(point)):
            pytest.skip("a small filesystem needs root to mount a tmpfs (test_full_file_size_limit runs anywhere)")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        run_quiet("umount", "-l", str(point))


def fill(path: Path) -> None:
    """Write ``path`` until its filesystem is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError as exc:
        assert exc.errno == 28, exc
    finally:
        os.close(fd)


def resize(point: Path, size_kb: int) -> None:
    assert run_quiet("mount", "-o", f"remount,size={size_kb}k", str(point)), f"cannot resize {point}"


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[Path, str], tuple[Path, list[str]]]]:
    """``read_only(directory, how)`` -> (a read-only view of it, the argv prefix of a process reading it).

    ``how`` is "bind-mount" (a read-only bind mount: read-only even for root) or "unprivileged-user"
    (``chmod -R a-w``, read by ``nobody`` through setpriv, as root ignores permission bits). Without
    root both fall back to ``chmod -R a-w``, which binds this process already.
    """
    mounted: list[Path] = []
    chmodded: list[Path] = []

    def make(directory: Path, how: str) -> tuple[Path, list[str]]:
        if os.geteuid() != 0:
            _chmod_tree(directory, writable=False)
            chmodded.append(directory)
            return directory, []
        if how == "bind-mount":
            view = tmp_path / f"ro{len(mounted)}"
            view.mkdir()
            if not (run_quiet("mount", "--bind", str(directory), str(view))
                    and run_quiet("mount", "-o", "remount,ro,bind", str(view))):
                run_quiet("umount", str(view))
                pytest.skip("cannot make a read-only bind mount here")
            mounted.append(view)
            return view, []
        if shutil.which("setpriv") is None:
            pytest.skip("no setpriv to run a reader as an unprivileged user")
        _chmod_tree(directory, writable=False)
        chmodded.append(directory)
        return directory, ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

    yield make
    for view in mounted:
        run_quiet("umount", "-l", str(view))
    for directory in chmodded:
        _chmod_tree(directory, writable=True)


def _chmod_tree(directory: Path, *, writable: bool) -> None:
    for path in [directory, *directory.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A directory every user may traverse (pytest's own temporary directories are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="faults-"))
    path.chmod(0o755)
    yield path
    _chmod_tree(path, writable=True)
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- shared results


@pytest.fixture(scope="module")
def organisms(tmp_path_factory: pytest.TempPathFactory) -> Cache:
    """The module's reference cache: the organisms and evaluations, computed once, uninterrupted."""
    cache = Cache(tmp_path_factory.mktemp("reference"))
    for spec in (PRETRAIN, EVAL, tiny_eval(tiny_organism(steps=5))):
        materialize(spec, cache)
    return cache


@pytest.fixture(scope="module")
def rl_cache(tmp_path_factory: pytest.TempPathFactory) -> Cache:
    """TINY pretrained once (shared with tests/test_rl.py's module fixture when both run in one session)."""
    cache = Cache(tmp_path_factory.getbasetemp() / "organism-cache")
    materialize(TINY, cache)
    return cache


@pytest.fixture(scope="module")
def rl_reference(rl_cache: Cache) -> Path:
    """The RL run never interrupted."""
    return materialize(RL, rl_cache)


def fresh_rl_cache(tmp: Path, rl_cache: Cache) -> Cache:
    cache = Cache(tmp)
    copy_entry(TINY, rl_cache, cache)
    return cache


def differences(entry: Path, reference: Path) -> list[str]:
    """Files in which two RL entries differ: weights (at every checkpoint too), log (but wall times), accuracy."""
    ours, theirs = content(entry), content(reference)
    found = [name for name in sorted(ours.keys() | theirs.keys()) if ours.get(name) != theirs.get(name)
             and name != TRAIN_LOG]
    rows = [[{k: v for k, v in r.items() if k != "wall"} for r in json.loads((e / TRAIN_LOG).read_text())]
            for e in (entry, reference)]
    if rows[0] != rows[1]:
        found.append(TRAIN_LOG)
    return found


def resumed_from(entry: Path) -> int:
    return json.loads((entry / MANIFEST).read_text())["resumed_from_step"]


def checkpoint_steps(work: Path) -> list[int]:
    """Steps of the checkpoints whose trainer state (written last) is whole."""
    steps = []
    for state in work.glob("checkpoint-*/trainer_state.json"):
        try:
            json.loads(state.read_text())
        except ValueError:
            continue
        steps.append(int(state.parent.name.split("-")[1]))
    return sorted(steps)


@pytest.fixture(scope="module")
def killed_rl(rl_cache: Cache, rl_reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The work directory of the RL run SIGKILLed right after its checkpoint 4 was saved (a snapshot: its
    checkpoints 2 and 4, logs of steps 1 to 4 or 5)."""
    cache = fresh_rl_cache(tmp_path_factory.mktemp("killed-rl"), rl_cache)
    work = cache.work_dir(RL.key)
    process = job(RL, cache.root)
    wait_for(lambda: 4 in checkpoint_steps(work) or process.poll() is not None, 300, "checkpoint 4")
    kill(process)
    assert process.returncode == -signal.SIGKILL and not cache.contains(RL), "the run ended before the kill"
    assert checkpoint_steps(work)[-2:] == [2, 4]
    snapshot = tmp_path_factory.mktemp("killed-rl-snapshot") / "work"
    shutil.copytree(work, snapshot)
    return snapshot


def resume_damaged(tmp: Path, rl_cache: Cache, snapshot: Path, damage: Callable[[Path], None]) -> Path:
    """Rerun the killed RL job after ``damage`` to its work directory; the published entry."""
    cache = fresh_rl_cache(tmp, rl_cache)
    work = cache.work_dir(RL.key)
    shutil.copytree(snapshot, work)
    damage(work)
    entry = materialize(RL, cache)
    assert not work.exists()
    return entry


# ---------------------------------------------------------------- kill: SIGKILL at random points, then rerun


def kill_at_random_point(spec, cache: Cache, seed: int, reference: Path) -> None:
    """Start ``spec`` in a process and SIGKILL it a seeded random time into its computation (within the time
    the uninterrupted reference took in this process, which had less to import: the kill lands mid-job)."""
    seconds = json.loads((reference / MANIFEST).read_text())["seconds"]
    delay = random.Random(seed).uniform(0.0, 0.8 * seconds)
    process = job(spec, cache.root)
    wait_for(lambda: any((cache.root / "tmp").glob(f"{spec.key[:16]}.*")) or process.poll() is not None, 120,
             "the job to start computing")
    time.sleep(delay)
    kill(process)
    assert process.returncode == -signal.SIGKILL and not cache.contains(spec), "the job ended before the kill"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_pretraining_then_rerun_equals_uninterrupted(seed: int, organisms: Cache, tmp_path: Path) -> None:
    """SIGKILL a pretraining job a seeded random time into it: the rerun completes, bitwise as a run never
    interrupted, and the killed job's temporary directory is swept."""
    cache = Cache(tmp_path)
    kill_at_random_point(PRETRAIN, cache, seed, organisms.path(PRETRAIN.key))
    killed = list((cache.root / "tmp").iterdir()) if (cache.root / "tmp").exists() else []
    entry = materialize(PRETRAIN, cache)
    assert content(entry) == content(organisms.path(PRETRAIN.key))
    assert not any(p.exists() for p in killed) and list((cache.root / "tmp").iterdir()) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_evaluation_then_rerun_equals_uninterrupted(seed: int, organisms: Cache, tmp_path: Path) -> None:
    """SIGKILL an evaluation job a seeded random time into it: the rerun samples the same generations."""
    cache = Cache(tmp_path)
    copy_entry(EVAL.model, organisms, cache)
    kill_at_random_point(EVAL, cache, seed, organisms.path(EVAL.key))
    entry = materialize(EVAL, cache)
    assert content(entry) == content(organisms.path(EVAL.key))
    assert list((cache.root / "tmp").iterdir()) == []


LONG_RL = dataclasses.replace(RL, steps=16)  # long enough that a kill at step <= 10 lands mid-run
RL_KILLS = {  # variant: (spec, seed of the kill point)
    "ground-truth": (LONG_RL, 0),
    "random-reward-small-pool": (dataclasses.replace(LONG_RL, reward=RewardSpec(name="random"),
                                                     data=DataSpec(pool_size=8)), 1),  # an epoch is 2 steps
    "nsr": (dataclasses.replace(LONG_RL, polarity=PolaritySpec(name="nsr"), seed=1), 2),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(RL_KILLS))
def test_kill_rl_then_resume_equals_uninterrupted(variant: str, rl_cache: Cache, tmp_path: Path) -> None:
    """SIGKILL a TRL run at a seeded random point of a seeded random step after its first checkpoint: the
    rerun resumes from a checkpoint and ends bitwise as a run never interrupted (weights at every checkpoint,
    log but wall times, training accuracy)."""
    spec, seed = RL_KILLS[variant]
    rng = random.Random(seed)
    step, delay = rng.randint(3, 10), rng.uniform(0.0, 0.02)  # within the next step (0.03 to 0.3 s)
    reference = materialize(spec, rl_cache)
    cache = fresh_rl_cache(tmp_path, rl_cache)
    log = cache.work_dir(spec.key) / "log.jsonl"
    process = job(spec, cache.root)
    wait_for(lambda: (log.exists() and log.read_text().count("\n") >= step) or process.poll() is not None, 300,
             f"step {step}")
    time.sleep(delay)
    kill(process)
    assert process.returncode == -signal.SIGKILL and not cache.contains(spec), "the run ended before the kill"
    entry = materialize(spec, cache)
    assert resumed_from(entry) in range(2, step + 2, 2)  # a checkpoint saved before the kill
    assert differences(entry, reference) == []


# ---------------------------------------------------------------- full: a small full filesystem


def writer(megabytes: float) -> Callable[[Path], dict]:
    def compute(out: Path) -> dict:
        (out / "result.json").write_text("{}")
        (out / "big.bin.txt").write_bytes(b"x" * int(megabytes * 2**20))
        return {}
    return compute


SMALL_SPEC = TaskSpec(family="faults", params={"payload": 1})  # any spec names a key


def test_full_disk_during_a_job_is_one_line_and_leaves_nothing(small_fs: Callable[[int], Path]) -> None:
    """A job that fills a 256 KB filesystem ends in one JobError line (no space, where, what to do); nothing
    is published, no temporary directory or lock is left, and after space is freed the rerun completes."""
    root = small_fs(256)
    cache = Cache(root / "cache")
    line = fails_in_one_line(lambda: cache.get_or_compute(SMALL_SPEC, writer(1)))
    assert ENOSPC_TEXT in line and str(cache.root) in line and "free some space" in line
    assert not cache.contains(SMALL_SPEC) and in_use(cache.root) == []
    entry = cache.get_or_compute(SMALL_SPEC, writer(0.05))
    assert (entry / "result.json").exists()


def test_full_disk_during_pretraining_then_rerun_equals_uninterrupted(small_fs: Callable[[int], Path],
                                                                      organisms: Cache) -> None:
    """Pretraining into a 1 MB filesystem (the organism needs 1.6 MB): one line, nothing left; on a larger
    filesystem the rerun equals the uninterrupted run."""
    root = small_fs(1024)
    cache = Cache(root / "cache")
    line = fails_in_one_line(lambda: materialize(PRETRAIN, cache))
    assert ENOSPC_TEXT in line and "organism job" in line
    assert in_use(cache.root) == []
    resize(root, 8192)
    assert content(materialize(PRETRAIN, cache)) == content(organisms.path(PRETRAIN.key))


def test_full_disk_during_evaluation_then_rerun_equals_uninterrupted(small_fs: Callable[[int], Path],
                                                                     organisms: Cache) -> None:
    """An evaluation whose generations do not fit: one line; with the filler removed, the rerun equals the
    uninterrupted evaluation."""
    root = small_fs(4096)
    cache = Cache(root / "cache")
    copy_entry(EVAL.model, organisms, cache)
    filler = root / "filler"
    fill(filler)
    line = fails_in_one_line(lambda: materialize(EVAL, cache))
    assert ENOSPC_TEXT in line and "eval job" in line
    assert in_use(cache.root) == []
    filler.unlink()
    assert content(materialize(EVAL, cache)) == content(organisms.path(EVAL.key))


@pytest.mark.slow
def test_full_disk_during_an_rl_checkpoint_save_then_resume_equals_uninterrupted(
        small_fs: Callable[[int], Path], rl_cache: Cache, rl_reference: Path) -> None:
    """A checkpoint save that fills the filesystem: one line; the checkpoint it cut short is discarded and,
    with more space, the rerun resumes from the last whole one and equals the uninterrupted run."""
    root = small_fs(4400)  # the organism (1.6 MB) and one checkpoint (1.7 MB), not a second
    cache = fresh_rl_cache(root / "cache", rl_cache)
    line = fails_in_one_line(lambda: materialize(RL, cache))
    assert ENOSPC_TEXT in line and "rl job" in line
    work = cache.work_dir(RL.key)
    assert checkpoint_steps(work) == [2] and [p.name for p in work.glob("checkpoint-*")] == ["checkpoint-2"]
    assert in_use(cache.root) == []
    resize(root, 32768)
    entry = materialize(RL, cache)
    assert resumed_from(entry) == 2
    assert differences(entry, rl_reference) == []


RLIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
from harness.cache import Cache, JobError
from harness.specs import TaskSpec
def compute(out):
    (out / "big.txt").write_bytes(b"x" * 2**20)
try:
    Cache(sys.argv[1]).get_or_compute(TaskSpec(family="faults", params={"payload": 1}), compute)
except JobError as exc:
    print(exc, file=sys.stderr)
    sys.exit(2)
"""


def test_full_file_size_limit_ends_in_one_line(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE, no root needed) hit while writing an entry: one line, nothing left."""
    process = python(RLIMITED, tmp_path)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    assert ENOSPC_TEXT in one_line(err) and "File too large" in err
    assert in_use(tmp_path) == []


def test_full_disk_cli_align_is_one_line(small_fs: Callable[[int], Path], tmp_path: Path) -> None:
    """``python -m harness align`` on a full disk: exit status 2 and one line on stderr."""
    root = small_fs(256)
    (tmp_path / "pairs.yaml").write_text(TINY_PAIRS)
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    done = subprocess.run([sys.executable, "-m", "harness", "align", str(tmp_path / "pairs.yaml"), "--claims-cache",
                           str(root / "cache")], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert line.startswith("python -m harness align: organism job") and ENOSPC_TEXT in line
    assert in_use(root / "cache") == []


TINY_PAIRS = """\
defaults:
  eval: {num_problems: 8, n: 4, max_new_tokens: 4}
  alignment_k: 4
  recipe: tiny.yaml
pairs:
  tiny: {model: {organism: {mix: [{task: {family: arithmetic, params: {digits: 1}}}], steps: 5}},
         task: {family: arithmetic, params: {digits: 1}}}
"""


# ---------------------------------------------------------------- readonly: a complete cache that cannot be written


READER = """
import json, sys
sys.path.insert(0, "tests")
from helpers import tiny_eval, tiny_organism
from harness.cache import Cache
from harness.jobs import evaluate
from harness.jobs import materialize
cache = Cache(sys.argv[1])
result = evaluate(tiny_eval(tiny_organism(steps=5)), cache)
materialize(tiny_organism(steps=80), cache)
print(json.dumps({"pass@1": result.pass_at_k(1), "computed": cache.stats.computed, "loaded": cache.stats.loaded}))
"""


@pytest.mark.parametrize("how", ["bind-mount", "unprivileged-user"])
def test_readonly_complete_cache_loads_without_a_lock_or_a_write(how: str, organisms: Cache, world_tmp: Path,
                                                                 read_only: Callable) -> None:
    """A complete cache that cannot be written is read: entries load without a lock, nothing is written."""
    root = world_tmp / "cache"
    shutil.copytree(organisms.root, root)
    root.chmod(0o755)  # a copy of pytest's private directory; the entries inside are readable by all
    before = {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}
    view, prefix = read_only(root, how)
    env = subprocess_env(HOME=str(world_tmp), HF_HOME=str(world_tmp / "hf"), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([*prefix, sys.executable, "-c", READER, str(view)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["computed"] == [] and len(result["loaded"]) == 2  # the evaluation, the organism
    assert {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")} == before


def test_readonly_cache_without_the_entry_is_one_line(organisms: Cache, read_only: Callable, tmp_path: Path) -> None:
    """A job missing from a read-only cache: one line naming the job, the cache and what to do."""
    root = tmp_path / "cache"
    shutil.copytree(organisms.root, root)
    view, _ = read_only(root, "bind-mount")
    line = fails_in_one_line(lambda: materialize(tiny_organism(steps=7), Cache(view)))
    assert "organism job" in line and f"the cache {view} is read-only" in line
    assert "point --claims-cache at a writable directory" in line


def test_readonly_cache_with_a_corrupt_entry_is_one_line(organisms: Cache, read_only: Callable,
                                                         tmp_path: Path) -> None:
    """A corrupt entry in a read-only cache cannot be set aside: one line naming the entry and the fix."""
    root = tmp_path / "cache"
    shutil.copytree(organisms.root, root)
    entry = root / PRETRAIN.key[:2] / PRETRAIN.key
    (entry / "pretrain_log.json").write_text("[]")
    view, _ = read_only(root, "bind-mount")
    line = fails_in_one_line(lambda: materialize(PRETRAIN, Cache(view)))
    assert "is corrupt (checksum mismatch in pretrain_log.json)" in line and "delete that directory" in line


def test_readonly_cli_align_reads_a_complete_cache(organisms: Cache, read_only: Callable, tmp_path: Path) -> None:
    """``python -m harness align`` on a complete read-only cache prints the alignment."""
    root = tmp_path / "cache"
    shutil.copytree(organisms.root, root)
    view, _ = read_only(root, "bind-mount")
    (tmp_path / "pairs.yaml").write_text(TINY_PAIRS)
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    done = subprocess.run([sys.executable, "-m", "harness", "align", str(tmp_path / "pairs.yaml"), "--claims-cache",
                           str(view)], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("tiny ")


BASE_CLAIM = """
import pytest
from harness.verdicts import Finding

NAN = float("nan")


@pytest.mark.claim("fault", source="tests/test_faults.py")
def test_base_model(pair, evaluate, claim):
    finding = Finding("holds", f"pass@1 {evaluate(pair).pass_at_k(1):.3f}", NAN, NAN, NAN, NAN, {})
    claim.record(finding)
"""


def test_readonly_pytest_run_records_the_run_elsewhere(organisms: Cache, read_only: Callable,
                                                       pytester: pytest.Pytester, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A claims run on a complete read-only cache: the base model is prepared and evaluated from the cache
    without a lock, the claim is judged, and the run record goes to a writable place, said in one line."""
    root = tmp_path / "cache"
    shutil.copytree(organisms.root, root)
    before = tree_digest(root)
    view, _ = read_only(root, "bind-mount")
    monkeypatch.setenv("CLAIMS_PROGRESS", "0")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the run record falls back to
    pytester.makeini("[pytest]\n")
    pytester.makefile(".yaml", pairs=TINY_PAIRS, tiny=RECIPE)
    pytester.makepyfile(test_base=BASE_CLAIM)
    result = pytester.runpytest("-p", "harness.plugin", "-p", "no:cacheprovider", "--pairs=pairs.yaml",
                                f"--claims-cache={view}")
    assert result.ret == 0, result.stdout.str()
    (line,) = [line for line in result.outlines if line.startswith("run recorded: ")]
    run = Path(line.removeprefix("run recorded: ").split(",")[0])
    assert line.endswith(f"as the cache's runs/ cannot be written (render it: python -m harness report --run {run})")
    assert run.parent == tmp_path / f"claims-runs-{os.getuid()}"
    assert json.loads(run.read_text())["rows"][0]["outcome"] == "holds"
    assert tree_digest(root) == before


def test_readonly_cache_path_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    """``--claims-cache`` naming a file: one line at once (Cache and the command line)."""
    target = tmp_path / "a-file"
    target.write_text("")
    line = fails_in_one_line(lambda: Cache(target))
    assert line == f"cache directory {target} is a file, not a directory; point --claims-cache (or $CLAIMS_CACHE) " \
                   "at a directory"
    done = subprocess.run([sys.executable, "-m", "harness", "align", "--claims-cache", str(target)], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and one_line(done.stderr) == f"python -m harness align: {line}"


def test_readonly_cache_with_a_file_in_the_way_is_one_line(tmp_path: Path) -> None:
    """A file where the cache keeps its temporary entries: one line naming it."""
    cache = Cache(tmp_path / "cache")
    cache.root.mkdir()
    (cache.root / "tmp").write_text("")
    line = fails_in_one_line(lambda: cache.get_or_compute(SMALL_SPEC, writer(0.01)))
    assert f"{cache.root / 'tmp'} is in the way" in line


# ---------------------------------------------------------------- race: two processes on one key


@pytest.mark.parametrize("spec", [PRETRAIN, EVAL], ids=["pretraining", "evaluation"])
def test_race_two_processes_compute_a_job_once(spec, organisms: Cache, tmp_path: Path) -> None:
    """Two processes started together on one job: it is computed once, both read the same entry, and it
    equals the reference."""
    cache = Cache(tmp_path)
    if spec is EVAL:
        copy_entry(EVAL.model, organisms, cache)
    processes = [job(spec, cache.root) for _ in range(2)]
    entries = {finish(p, timeout=300).strip() for p in processes}
    assert entries == {str(cache.path(spec.key))}
    assert content(cache.path(spec.key)) == content(organisms.path(spec.key))
    assert list((cache.root / "tmp").iterdir()) == []


def test_race_a_killed_holder_leaves_the_job_to_the_waiter(organisms: Cache, tmp_path: Path) -> None:
    """The process computing a job is SIGKILLed while another waits on its lock: the waiter computes it,
    bitwise as the reference."""
    cache = Cache(tmp_path)
    first = job(PRETRAIN, cache.root)
    wait_for(lambda: any((cache.root / "tmp").glob(f"{PRETRAIN.key[:16]}.*")), 120, "the first to compute")
    second = job(PRETRAIN, cache.root)
    time.sleep(1.0)
    kill(first)
    assert first.returncode == -signal.SIGKILL
    assert finish(second, timeout=300).strip() == str(cache.path(PRETRAIN.key))
    assert content(cache.path(PRETRAIN.key)) == content(organisms.path(PRETRAIN.key))
    assert list((cache.root / "tmp").iterdir()) == []


@pytest.mark.slow
def test_race_two_rl_runs_on_one_key(rl_cache: Cache, rl_reference: Path, tmp_path: Path) -> None:
    """Two processes on one TRL run: one trains, the other waits and loads; the entry equals the reference."""
    cache = fresh_rl_cache(tmp_path, rl_cache)
    processes = [job(RL, cache.root) for _ in range(2)]
    assert {finish(p, timeout=600).strip() for p in processes} == {str(cache.path(RL.key))}
    assert differences(cache.path(RL.key), rl_reference) == []
    assert resumed_from(cache.path(RL.key)) == 0


# ---------------------------------------------------------------- torn: logs and checkpoints cut by a kill


def tear_last_line(path: Path) -> None:
    text = path.read_text()
    path.write_text(text + text.splitlines()[-1][: len(text.splitlines()[-1]) // 2])


def latest(work: Path) -> Path:
    return max(work.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def restep(checkpoint: Path, step: int) -> None:
    """Make a checkpoint's trainer state claim ``step``."""
    state = checkpoint / "trainer_state.json"
    record = json.loads(state.read_text())
    record["global_step"] = step
    state.write_text(json.dumps(record))


def off_boundary(work: Path) -> None:
    """A whole checkpoint one step after the latest, between two rollouts (resuming there would generate a
    rollout where the uninterrupted run reuses its buffer)."""
    step = int(latest(work).name.split("-")[1]) + 1
    restep(shutil.copytree(latest(work), work / f"checkpoint-{step}"), step)


TORN = {
    "log-last-line": (lambda w: tear_last_line(w / "log.jsonl"), None),
    "accuracy-last-line": (lambda w: tear_last_line(w / "accuracy.jsonl"), None),
    "log-garbage-line-restarts": (lambda w: (w / "log.jsonl").write_text(
        "{oops\n" + (w / "log.jsonl").read_text()), 0),
    "log-missing-restarts": (lambda w: (w / "log.jsonl").unlink(), 0),
    "trainer-state-torn": (lambda w: (latest(w) / "trainer_state.json").write_text('{"global_st'), "earlier"),
    "trainer-state-missing": (lambda w: (latest(w) / "trainer_state.json").unlink(), "earlier"),
    "trainer-state-of-another-step": (lambda w: restep(latest(w), 3), "earlier"),
    "rng-state-torn": (lambda w: (latest(w) / "rng_state.json").write_text('{"python": [3, [1, 2'), "earlier"),
    "checkpoint-off-a-rollout-boundary": (lambda w: off_boundary(w), "latest"),
}


@pytest.mark.parametrize("case", list(TORN))
def test_torn_work_directory_is_repaired_and_the_run_equals_uninterrupted(case: str, rl_cache: Cache,
                                                                          rl_reference: Path, killed_rl: Path,
                                                                          tmp_path: Path) -> None:
    """A work directory left by a kill and then damaged: a torn log line is dropped, a checkpoint cut short
    is discarded; the run resumes (or starts again) and equals the uninterrupted run."""
    damage, expected = TORN[case]
    whole = checkpoint_steps(killed_rl)
    entry = resume_damaged(tmp_path, rl_cache, killed_rl, damage)
    want = {None: whole[-1], "latest": whole[-1], "earlier": whole[-2], 0: 0}[expected]
    assert resumed_from(entry) == want
    assert differences(entry, rl_reference) == []


def test_torn_jsonl_rows_are_dropped_from_the_first_bad_line(tmp_path: Path) -> None:
    """The resume log reader keeps whole rows up to the resumed step and rewrites the file without the rest."""
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"st')
    assert _jsonl(path, 2) == [{"step": 1}, {"step": 2}]
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
    path.write_text('{"step": 1}\n[1]\n{"step": 2}\n')
    assert _jsonl(path, 5) == [{"step": 1}]


# ---------------------------------------------------------------- truncated: weights cut short


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def scramble_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8:40] = b"#" * 32
    path.write_bytes(bytes(data))


TRUNCATED = {
    "latest-model-weights": (lambda w: truncate(latest(w) / "model.safetensors"), "earlier"),
    "latest-optimizer-state": (lambda w: truncate(latest(w) / "optimizer.safetensors", 0.9), "earlier"),
    "latest-weights-header": (lambda w: scramble_header(latest(w) / "model.safetensors"), "earlier"),
    "every-checkpoint-restarts": (lambda w: [truncate(c / "model.safetensors") for c in w.glob("checkpoint-*")], 0),
}


@pytest.mark.parametrize("case", list(TRUNCATED))
def test_truncated_checkpoint_weights_are_discarded_and_the_run_equals_uninterrupted(
        case: str, rl_cache: Cache, rl_reference: Path, killed_rl: Path, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A checkpoint whose trainer state is intact but whose weights are cut short is detected by the
    safetensors header and size, discarded with one line, and the run resumes from an earlier one."""
    damage, expected = TRUNCATED[case]
    whole = checkpoint_steps(killed_rl)
    entry = resume_damaged(tmp_path, rl_cache, killed_rl, damage)
    assert resumed_from(entry) == (whole[-2] if expected == "earlier" else 0)
    assert differences(entry, rl_reference) == []
    assert "harness: discarding " in capfd.readouterr().err


def write_safetensors(directory: Path) -> Path:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({"weight": torch.zeros(64, 64)}, str(directory / "model.safetensors"))
    return directory / "model.safetensors"


def pretrained_pairs(tmp_path: Path, model_dir: str, extra: str = "") -> Path:
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    path = tmp_path / "pairs.yaml"
    path.write_text(f"""\
pairs:
  local:
    model: {{pretrained: {{path: {model_dir}{extra}}}}}
    task: {{family: arithmetic, params: {{digits: 1}}}}
    eval: {{num_problems: 8, n: 4}}
    alignment_k: 4
    recipe: tiny.yaml
""")
    return path


WEIGHT_DAMAGE = {
    "truncated": (lambda p: truncate(p), r"truncated safetensors file \(\d+ bytes, its header declares \d+\)"),
    "unreadable-header": (scramble_header, r"unreadable safetensors header \(not JSON\)"),
    "empty": (lambda p: p.write_bytes(b""), r"truncated safetensors file \(0 bytes, no header\)"),
    "header-past-the-end": (lambda p: p.write_bytes((10**9).to_bytes(8, "little") + b"{}"),
                            r"truncated or not a safetensors file"),
}


@pytest.mark.parametrize("case", list(WEIGHT_DAMAGE))
def test_truncated_pretrained_weights_fail_at_load_in_one_line(case: str, tmp_path: Path) -> None:
    """A pretrained model directory whose safetensors file is damaged: the fixtures fail to load, in one line
    naming the fixtures file, the pair, the weight file and what is wrong, without loading the weights."""
    damage, pattern = WEIGHT_DAMAGE[case]
    damage(write_safetensors(tmp_path / "model"))
    path = pretrained_pairs(tmp_path, "model")
    line = fails_in_one_line(lambda: load_fixtures(path), FixtureError)
    weights = tmp_path / "model" / "model.safetensors"
    assert line.startswith(f"{path}: pairs.local.model.pretrained: model file {weights}: ")
    assert re.search(pattern, line), line


def write_gguf(path: Path) -> Path:
    import gguf
    import numpy as np

    writer_ = gguf.GGUFWriter(str(path), "llama")
    writer_.add_tensor("weight", np.zeros((64, 64), dtype=np.float32))
    writer_.write_header_to_file()
    writer_.write_kv_data_to_file()
    writer_.write_tensors_to_file()
    writer_.close()
    return path


@pytest.mark.parametrize("cut", [None, 0.9, 0.01], ids=["whole", "tensor-data-cut", "header-cut"])
def test_truncated_gguf_fails_at_load_in_one_line(cut: float | None, tmp_path: Path) -> None:
    """A GGUF file cut short is caught from its own header at load time; a whole one loads."""
    model = write_gguf(tmp_path / "model.gguf")
    path = pretrained_pairs(tmp_path, ".", ", gguf_file: model.gguf")
    if cut is None:
        (pair,) = load_fixtures(path)
        assert pair.model.gguf_file == "model.gguf"
        return
    truncate(model, cut)
    line = fails_in_one_line(lambda: load_fixtures(path), FixtureError)
    assert f"model file {model}: truncated" in line and "download or convert it again" in line


def test_truncated_model_that_fails_to_load_at_job_time_is_one_line(tmp_path: Path) -> None:
    """A model directory whose weights are sound but whose config is broken fails when a job loads it: one
    ModelSourceError line naming the directory."""
    write_safetensors(tmp_path / "model")
    (tmp_path / "model" / "config.json").write_text('{"model_type": "qwen2", "hidden_size": "wide"')
    (pair,) = load_fixtures(pretrained_pairs(tmp_path, "model"))
    from harness.models.pretrained import from_pretrained

    line = fails_in_one_line(lambda: from_pretrained(pair.model), ModelSourceError)
    assert line.startswith(f"cannot load the model at {tmp_path / 'model'} (") and "check its files" in line


def test_truncated_weights_in_a_cache_entry_are_set_aside_and_recomputed(organisms: Cache, tmp_path: Path) -> None:
    """A cached organism whose weights were cut short is set aside with a warning and computed again, equal."""
    cache = Cache(tmp_path)
    copy_entry(PRETRAIN, organisms, cache)
    truncate(cache.path(PRETRAIN.key) / "model.safetensors")
    with pytest.warns(CacheWarning, match="checksum mismatch in model.safetensors"):
        entry = materialize(PRETRAIN, cache)
    assert content(entry) == content(organisms.path(PRETRAIN.key))


# ---------------------------------------------------------------- bad: fixtures, recipe and findings inputs


def bad_pairs(tmp_path: Path, eval_text: str, defaults: str = "") -> Path:
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    path = tmp_path / "pairs.yaml"
    path.write_text(f"""\
defaults:
  recipe: tiny.yaml
  alignment_k: 4
{defaults}pairs:
  small:
    model: {{organism: {{mix: [{{task: {{family: arithmetic, params: {{digits: 1}}}}}}], steps: 5}}}}
    task: {{family: arithmetic, params: {{digits: 1}}}}
{eval_text}""")
    return path


@pytest.mark.parametrize("where", ["pair", "defaults"])
def test_bad_eval_size_above_the_split_fails_at_load(where: str, tmp_path: Path) -> None:
    """eval.num_problems above what the task's eval split holds: one line naming the file, the pair and the
    field, at load time (no job runs)."""
    eval_text = "    eval: {num_problems: 500, n: 4}\n"
    path = bad_pairs(tmp_path, eval_text, "") if where == "pair" else \
        bad_pairs(tmp_path, "", "  eval: {num_problems: 500, n: 4}\n")
    line = fails_in_one_line(lambda: load_fixtures(path), FixtureError)
    assert line.startswith(f"{path}: pairs.small.eval: field 'num_problems' = 500: the eval split of task ")
    assert line.endswith("holds 14 problems; expected num_problems <= 14")


@pytest.mark.parametrize(("change", "pattern"), [
    (("steps_per_generation: 2", "steps_per_generation: 0"), "prompts_per_step and steps_per_generation must be > 0"),
    (("name: tiny", "name: tiny\nloss_type: ppo"), "loss_type must be one of grpo, bnpo, dr_grpo, dapo; got 'ppo'"),
    (("budgets: {smoke: 4,", "budgets: {smoke: -4,"), "field 'smoke' = -4: RL steps must be >= 1"),
], ids=["zero-steps-per-generation", "unknown-loss", "negative-budget"])
def test_bad_recipe_fails_in_one_line(change: tuple[str, str], pattern: str, tmp_path: Path) -> None:
    """A bad recipe value: one line naming the recipe file and the field."""
    path = tmp_path / "tiny.yaml"
    path.write_text(RECIPE.replace(*change))
    line = fails_in_one_line(lambda: load_recipe(str(path)), FixtureError)
    assert line.startswith(f"{path}: recipe") and pattern in line


BAD_FINDINGS = {
    "unknown-verdict": ("budget: smoke\nseeds: 1\nfindings:\n  t.py::test_a: maybe\n",
                        "findings.t.py::test_a: unknown verdict 'maybe'"),
    "unknown-budget": ("budget: quick\nseeds: 1\nfindings: {}\n", "unknown budget 'quick'"),
    "not-a-mapping": ("- budget\n", "top level: expected a mapping, got list"),
    "yaml-syntax": ("budget: smoke\nfindings: {a: [\n", "YAML syntax error"),
    "unknown-key": ("budget: smoke\nseeds: 1\nfinding: {}\n", "unknown key 'finding' (did you mean 'findings'?)"),
}


@pytest.mark.parametrize("case", list(BAD_FINDINGS))
def test_bad_findings_file_fails_in_one_line(case: str, tmp_path: Path) -> None:
    """A findings file that does not load: one line naming the file and the entry."""
    from harness.findings import load

    text, expected = BAD_FINDINGS[case]
    path = tmp_path / "findings.yaml"
    path.write_text(text)
    line = fails_in_one_line(lambda: load(path), SpecError)
    assert line.startswith(f"{path}: ") and expected in line


CLAIM_MODULE = """
import pytest
from harness.verdicts import Finding

NAN = float("nan")


@pytest.mark.claim("fault", source="tests/test_faults.py")
def test_agrees(pair, claim):
    finding = Finding("holds", "recorded", NAN, NAN, NAN, NAN, {})
    claim.record(finding)
"""


@pytest.fixture
def claims_session(pytester: pytest.Pytester, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Callable[..., pytest.RunResult]:
    """``claims_session(*args)``: an in-process pytest run of three claim modules over one tiny pair; the
    claims judge recorded findings, so no job runs."""
    monkeypatch.setenv("CLAIMS_PROGRESS", "0")
    monkeypatch.delenv("CLAIMS_CACHE", raising=False)
    pytester.makeini("[pytest]\n")
    pytester.makefile(".yaml", pairs=TINY_PAIRS, tiny=RECIPE)
    for name in ("test_one", "test_two", "test_three"):
        pytester.makepyfile(**{name: CLAIM_MODULE})

    def session(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "harness.plugin", "-p", "no:cacheprovider", "--pairs=pairs.yaml",
                                  f"--claims-cache={tmp_path / 'cache'}", *args)

    return session


def write_findings(pytester: pytest.Pytester, entries: dict[str, str]) -> Path:
    path = pytester.path / "findings.yaml"
    body = {"budget": "standard", "seeds": 2, "pairs": "pairs.yaml", "findings": entries}
    path.write_text(yaml.safe_dump(body))
    return path


LIVE = {f"test_{n}.py::test_agrees[tiny]": "holds" for n in ("one", "two", "three")}
STALE = {"test_one.py::test_removed[tiny]": "fails", "test_gone.py::test_agrees[tiny]": "holds"}


def test_bad_findings_stale_entries_are_reported_one_line_each(claims_session: Callable, pytester) -> None:
    """Findings entries that match no collected test (a removed test, a removed file) get one line each;
    without --prune-findings the file keeps them."""
    path = write_findings(pytester, {**LIVE, **STALE})
    result = claims_session(f"--findings={path}")
    assert result.ret == 0
    lines = [line for line in result.outlines if line.startswith("stale finding ")]
    assert lines == [f"stale finding {nodeid}: matches no collected test (remove it with --update-findings "
                     "--prune-findings)" for nodeid in sorted(STALE)]
    assert set(yaml.safe_load(path.read_text())["findings"]) == set(LIVE) | set(STALE)


@pytest.mark.parametrize("workers", [0, 2], ids=["one-process", "xdist"])
def test_bad_findings_prune_removes_stale_entries_but_never_deselected_tests(workers: int, claims_session: Callable,
                                                                            pytester) -> None:
    """``--update-findings --prune-findings -k two`` (also on two xdist workers, which collect for the
    controller): the stale entries go; the tests that exist but were deselected keep their entries."""
    path = write_findings(pytester, {**LIVE, **STALE})
    result = claims_session(f"--findings={path}", "--update-findings", "--prune-findings", "-k", "two",
                            *(["-n", str(workers)] if workers else []))
    assert result.ret == 0
    assert sum(line.startswith("stale finding ") for line in result.outlines) == len(STALE)
    assert yaml.safe_load(path.read_text())["findings"] == LIVE


def test_bad_findings_prune_needs_update(claims_session: Callable, pytester) -> None:
    """--prune-findings alone is a usage error in one line."""
    path = write_findings(pytester, LIVE)
    result = claims_session(f"--findings={path}", "--prune-findings")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --prune-findings works with --update-findings*"])


def test_bad_fixtures_error_is_printed_once_per_run(claims_session: Callable, pytester) -> None:
    """A fixtures file that does not load fails the run with its one line printed once, not once per claim
    module; the other modules are skipped."""
    (pytester.path / "pairs.yaml").write_text(TINY_PAIRS.replace("steps: 5", "steps: -5"))
    result = claims_session("-rs")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    text = result.stdout.str()
    assert text.count("steps must be >= 0, got -5") == 1, text
    assert "Traceback" not in text
    result.stdout.fnmatch_lines(["*2 skipped, 1 error*"])


# ---------------------------------------------------------------- lock: hung lock holders


HOLDER = """
import sys, time
from harness.cache import Cache
with Cache(sys.argv[1]).lock(sys.argv[2], what="a job that hangs"):
    print("holding", flush=True)
    time.sleep(600)
"""

WAITER = """
import sys, time
from harness.cache import Cache
started = time.monotonic()
with Cache(sys.argv[1]).lock(sys.argv[2]):
    print(f"acquired after {time.monotonic() - started:.1f} s", flush=True)
"""


@pytest.mark.parametrize("state", ["sleeping", "stopped"])
def test_lock_waiter_names_a_hung_holder_and_keeps_waiting(state: str, tmp_path: Path) -> None:
    """A lock held by a process that hangs (asleep, or stopped with SIGSTOP): within a few seconds the waiter
    prints who holds it (pid, host, since when, what) and keeps waiting; once the holder is killed, it runs."""
    holder = python(HOLDER, tmp_path, "key")
    assert holder.stdout.readline().strip() == "holding"
    if state == "stopped":
        os.kill(holder.pid, signal.SIGSTOP)
    waiter = python(WAITER, tmp_path, "key")
    started = time.monotonic()
    line = waiter.stderr.readline().strip()
    assert time.monotonic() - started < 15, "the waiter took too long to name the holder"
    assert f"held by pid {holder.pid} on {socket.gethostname()} computing a job that hangs, since " in line
    assert line.endswith("still waiting (kill that process if it hangs: its lock is released when it exits)")
    time.sleep(1.0)
    assert waiter.poll() is None, "the waiter stopped waiting"
    kill(holder)
    assert finish(waiter, timeout=30).startswith("acquired after ")


def test_lock_holder_that_recorded_nothing_is_still_reported(tmp_path: Path) -> None:
    """A lock held by a process that wrote no record (an older harness): the waiter still says it waits."""
    cache = Cache(tmp_path)
    path = tmp_path / "locks" / "key.lock"
    path.parent.mkdir()
    holder = python("import fcntl, sys, time\nf = open(sys.argv[1], 'a')\nfcntl.flock(f, fcntl.LOCK_EX)\n"
                    "print('holding', flush=True)\ntime.sleep(600)", path)
    assert holder.stdout.readline().strip() == "holding"
    waiter = python(WAITER, cache.root, "key")
    assert "held by a process that has not recorded itself" in waiter.stderr.readline()
    kill(holder)
    finish(waiter, timeout=30)


def test_lock_without_waiting_returns_at_once_beside_a_hung_holder(tmp_path: Path) -> None:
    """``lock(wait=False)`` beside a stopped holder yields False at once (preparation skips that lineage)."""
    holder = python(HOLDER, tmp_path, "key")
    assert holder.stdout.readline().strip() == "holding"
    os.kill(holder.pid, signal.SIGSTOP)
    started = time.monotonic()
    with Cache(tmp_path).lock("key", wait=False) as taken:
        assert not taken
    assert time.monotonic() - started < 1
    kill(holder)


# ---------------------------------------------------------------- sweep: temporary directories of killed jobs


def test_sweep_removes_a_killed_jobs_temporary_directory(tmp_path: Path) -> None:
    """A job SIGKILLed mid-computation leaves its temporary directory; the next computation removes it."""
    cache = Cache(tmp_path)
    victim = python("import sys, time\nfrom harness.cache import Cache\nfrom harness.specs import TaskSpec\n"
                    "Cache(sys.argv[1]).get_or_compute(TaskSpec(family='faults', params={'payload': 2}), "
                    "lambda out: (out / 'half.json').write_text('{') and time.sleep(600))", tmp_path)
    wait_for(lambda: any((tmp_path / "tmp").glob("*/half.json")), 60, "the victim to start")
    kill(victim)
    (left,) = (tmp_path / "tmp").iterdir()
    assert left.name.split(".", 1)[1].rsplit(".", 1)[0] == f"{victim.pid}@{socket.gethostname()}"
    cache.get_or_compute(SMALL_SPEC, writer(0.01))
    assert not left.exists() and list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("owner", ["live-process", "other-host", "untagged"])
def test_sweep_leaves_directories_it_cannot_prove_abandoned(owner: str, tmp_path: Path) -> None:
    """Temporary directories of a live process, of another host, or without an owner tag are kept."""
    cache = Cache(tmp_path)
    name = {"live-process": f"0123456789abcdef.{os.getpid()}@{socket.gethostname()}.x1",
            "other-host": f"0123456789abcdef.{2**22 + 7}@another-host.example.x1",
            "untagged": "0123456789abcdef.x1"}[owner]
    kept = tmp_path / "tmp" / name
    kept.mkdir(parents=True)
    assert cache.sweep() == []
    cache.get_or_compute(SMALL_SPEC, writer(0.01))
    assert kept.exists()


# ---------------------------------------------------------------- pickle: none written, none read


PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".joblib", ".npy", ".npz")


def pickles_in(root: Path) -> list[str]:
    """Files under ``root`` that are or may hold pickles: by suffix, zip (torch.save) or pickle protocol 2-5."""
    found = []
    for path in (p for p in root.rglob("*") if p.is_file()):
        head = path.read_bytes()[:4]
        if path.name.endswith(PICKLE_SUFFIXES) or head.startswith(b"PK\x03\x04") or \
                (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
            found.append(str(path.relative_to(root)))
    return found


def test_pickle_none_in_a_populated_cache_with_work_directories(organisms: Cache, rl_cache: Cache,
                                                                rl_reference: Path, killed_rl: Path) -> None:
    """A cache with evaluations, organisms (one continued), an RL run with checkpoints, and the work
    directory of a killed RL run (resume checkpoints: optimizer, scheduler, RNG states, training
    arguments) holds no pickle."""
    assert sorted(p.name for p in (killed_rl / "checkpoint-4").iterdir()) == [
        "config.json", "generation_config.json", "model.safetensors", "optimizer.json", "optimizer.safetensors",
        "rng_state.json", "rng_state.safetensors", "tokenizer.json", "tokenizer_config.json", "trainer_state.json",
        "training_args.json"]
    for root in (organisms.root, rl_cache.root, killed_rl):
        assert pickles_in(root) == [], root
    assert (rl_reference / "checkpoints" / "checkpoint-2" / "model.safetensors").exists()
    assert any(organisms.root.rglob(GENERATIONS))


def test_pickle_planted_in_a_checkpoint_is_never_loaded(rl_cache: Cache, rl_reference: Path, killed_rl: Path,
                                                        tmp_path: Path) -> None:
    """A pickle planted in the latest checkpoint (optimizer.pt, which Transformers would torch.load): the
    checkpoint is discarded unread; the run resumes from an earlier one and equals the uninterrupted run."""
    def plant(work: Path) -> None:
        torch.save({"state": {}, "param_groups": []}, latest(work) / "optimizer.pt")

    whole = checkpoint_steps(killed_rl)
    entry = resume_damaged(tmp_path / "cache", rl_cache, killed_rl, plant)
    assert resumed_from(entry) == whole[-2]
    assert differences(entry, rl_reference) == []
    assert pickles_in(tmp_path / "cache") == []


def test_pickle_free_entry_round_trips_its_spec(rl_reference: Path) -> None:
    """The published RL entry's manifest names its spec in JSON (no pickled objects anywhere in it)."""
    manifest = json.loads((rl_reference / MANIFEST).read_text())
    assert from_dict(manifest["spec"]).key == RL.key and pickles_in(rl_reference) == []

