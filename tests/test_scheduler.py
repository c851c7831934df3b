"""The scheduler: ready jobs side by side on local worker processes, lineage order, a failing job stopping only the
jobs that need it (in the graph and in a pytest session, with and without xdist), and groups of jobs handed to one
worker together, each member with its own cache entry."""

from __future__ import annotations

import dataclasses
import io
import json
import struct
from pathlib import Path

import pytest
import torch  # noqa: F401  (imported here: an in-process pytester run must not import it for the first time)
from helpers import RECIPE, TINY_TASK, tiny_eval, tiny_organism

from harness.cache import MANIFEST, Cache
from harness.executors import LocalWorkers
from harness.jobs import group_key, materialize
from harness.plan import build
from harness.progress import GraphProgress
from harness.registry import load_plugins
from harness.scheduler import Scheduler, groups
from harness.specs import DataSpec, PretrainedSpec, RecipeSpec, RewardSpec, RLSpec

pytest_plugins = ["pytester"]

TINY_RECIPE = RecipeSpec(name="tiny", learning_rate=3e-4, prompts_per_step=4, num_generations=4,
                         max_completion_length=6)
BATCHED = dataclasses.replace(TINY_RECIPE, engine="batched")
ORGANISM = tiny_organism(steps=5)


def broken_model(directory: Path) -> PretrainedSpec:
    """A GGUF model whose file is a sound GGUF table of nothing (no tensors, no architecture): it passes the
    load-time check of its header, and its conversion job fails."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + bytes(8))  # aligned to 32
    return PretrainedSpec(source=str(directory), gguf_file="model.gguf", fingerprint="sha256:broken")


def manifest(cache: Cache, key: str) -> dict:
    return json.loads((cache.path(key) / MANIFEST).read_text())


def test_ready_jobs_run_side_by_side_and_a_failure_stops_only_its_dependants(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    first, other = tiny_organism(steps=30), tiny_organism(steps=30, seed=1)  # independent: side by side
    longer = tiny_organism(steps=40)  # continues ``first``, so it waits for it
    broken = broken_model(tmp_path / "model")
    graph = build([tiny_eval(first), other, longer, tiny_eval(broken)], cache)
    outcome = Scheduler(graph, LocalWorkers(2, tmp_path / "logs"), cache).run()

    reason = outcome.failed[broken.key]
    assert set(outcome.failed) == {broken.key, tiny_eval(broken).key}
    assert "\n" not in reason and reason
    assert outcome.failed[tiny_eval(broken).key] == f"needs {broken.short}, which failed: {reason}"
    assert not cache.contains(broken) and not cache.contains(tiny_eval(broken))
    assert sorted(outcome.computed) == sorted([first.key, other.key, longer.key, tiny_eval(first).key])
    assert all(cache.contains(spec) for spec in (first, other, longer, tiny_eval(first)))
    assert any("Traceback" in log.read_text() for log in (tmp_path / "logs").glob("worker-*.log"))

    (a_start, a_end), (b_start, b_end) = outcome.timings[first.key], outcome.timings[other.key]
    assert max(a_start, b_start) < min(a_end, b_end)  # the two workers ran them at the same time
    assert outcome.timings[longer.key][0] >= a_end
    assert manifest(cache, longer.key)["continued_from_step"] == 30


def rl(**changes) -> RLSpec:
    return RLSpec(model=ORGANISM, task=TINY_TASK, recipe=BATCHED, **{"steps": 2, **changes})


def test_ready_jobs_of_one_group_go_to_one_worker_together(tmp_path: Path) -> None:
    members = [rl(seed=s) for s in range(4)] + [rl(reward=RewardSpec(name="random"))]  # same model, task, recipe
    longer = rl(steps=3)  # another group
    trl = dataclasses.replace(rl(seed=9), recipe=TINY_RECIPE)  # the TRL engine runs alone
    hub = PretrainedSpec(source="org/model", fingerprint="hub:org/model@main")
    on_pretrained = dataclasses.replace(rl(), model=hub)  # the batched engine is for organisms only
    assert len({group_key(s) for s in members}) == 1 and group_key(members[0]) is not None
    assert group_key(longer) not in (None, group_key(members[0]))
    assert group_key(trl) is None and group_key(on_pretrained) is None

    graph = build([*members, longer, trl], Cache(tmp_path))
    b0, b1, b2, b3, b4 = (m.key for m in members)
    ready = [b0, trl.key, b1, longer.key, b2, b3, b4]
    assert groups(ready, graph, cap=3) == [[b0, b1, b2], [trl.key], [longer.key], [b3, b4]]
    assert groups(ready, graph) == [[b0, b1, b2, b3, b4], [trl.key], [longer.key]]


def test_members_of_a_group_each_get_their_own_cache_entry(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    materialize(ORGANISM, cache)
    members = [rl(seed=0), rl(seed=1)]
    graph = build(members, cache)
    outcome = Scheduler(graph, LocalWorkers(2, tmp_path / "logs"), cache).run()
    assert outcome.failed == {} and sorted(outcome.computed) == sorted(m.key for m in members)
    assert outcome.timings[members[0].key] == outcome.timings[members[1].key]  # one unit on one worker
    for member in members:
        recorded = manifest(cache, member.key)
        assert recorded["spec"] == member.to_dict() and recorded["group_size"] == 2
        assert (cache.path(member.key) / "model.safetensors").exists()


def test_a_member_that_cannot_run_is_failed_before_it_joins_a_group(tmp_path: Path) -> None:
    """A member whose data selection cannot be served (the graph is run without the planning pass's checks) is
    found by the ready check when its dependencies are in: it fails with its reason, and the others still train
    as one group (one incorrect-label run with nothing to train on must not send its group's members one by one)."""
    cache = Cache(tmp_path / "cache")
    materialize(ORGANISM, cache)
    good = [rl(seed=s) for s in range(3)]
    bad = rl(seed=7, data=DataSpec(selection="few_shot", method="index", index=80, count=10))  # 86 problems
    assert len({group_key(s) for s in [*good, bad]}) == 1
    outcome = Scheduler(build([*good, bad], cache), LocalWorkers(2, tmp_path / "logs"), cache).run()
    assert set(outcome.failed) == {bad.key} and "needs more than the 86 training problems" in outcome.failed[bad.key]
    assert all(cache.contains(spec) for spec in good) and sorted(outcome.computed) == sorted(s.key for s in good)
    assert len({outcome.timings[spec.key] for spec in good}) == 1  # one unit
    assert all(manifest(cache, spec.key)["group_size"] == 3 for spec in good)


FRAGILE = """\
from harness.registry import register_reward
from harness.rl.rewards import batch_problems


def fragile(task, *, seed):
    \"\"\"1 for a correct answer; raises in the run with seed 7 (when it is first called, mid-training).\"\"\"
    def reward(prompts, completions, **columns):
        if seed == 7:
            raise RuntimeError("the fragile reward breaks under seed 7")
        return [float(task.is_correct(c, p)) for c, p in zip(completions, batch_problems(columns), strict=True)]
    return reward


register_reward("fragile", fragile)
"""


@pytest.mark.usefixtures("scratch_registry")
def test_a_group_that_fails_at_run_time_runs_its_members_again_one_by_one(tmp_path: Path) -> None:
    """One member breaking mid-training fails its group's run; each member is then run alone, so only the broken
    one fails, with its own error, and the others are published as runs of their own."""
    plugin = tmp_path / "fragile_reward.py"
    plugin.write_text(FRAGILE)
    load_plugins([str(plugin)])
    cache = Cache(tmp_path / "cache")
    materialize(ORGANISM, cache)
    good = [rl(seed=s, reward=RewardSpec(name="fragile")) for s in range(3)]
    bad = rl(seed=7, reward=RewardSpec(name="fragile"))
    assert len({group_key(s) for s in [*good, bad]}) == 1
    outcome = Scheduler(build([*good, bad], cache), LocalWorkers(2, tmp_path / "logs"), cache).run()
    assert set(outcome.failed) == {bad.key} and "the fragile reward breaks under seed 7" in outcome.failed[bad.key]
    assert all(cache.contains(spec) for spec in good) and sorted(outcome.computed) == sorted(s.key for s in good)
    assert len({outcome.timings[spec.key] for spec in good}) == 3  # three units, one each
    assert all("group_size" not in manifest(cache, spec.key) for spec in good)  # each a job of its own
    logs = "".join(log.read_text() for log in (tmp_path / "logs").glob("worker-*.log"))
    assert logs.count("RuntimeError: the fragile reward breaks under seed 7") == 2  # in the group, then alone


# ---------------------------------------------------------------- in a pytest session

PAIRS = """\
defaults:
  eval: {num_problems: 8, n: 4, max_new_tokens: 4}
  alignment_k: 4
  recipe: tiny.yaml
pairs:
  good:
    model: {organism: {mix: [{task: {family: arithmetic, params: {digits: 1}}}], steps: 5}}
    task: {family: arithmetic, params: {digits: 1}}
  broken:
    model: {pretrained: {path: model, gguf_file: model.gguf}}
    task: {family: arithmetic, params: {digits: 1}, format: chat}
"""

CLAIMS = """\
from harness.results import CALIBRATION_RUNS


def test_trained(pair, rl):
    assert len(rl(pair).after) == CALIBRATION_RUNS  # the standard control's runs


def test_base_model(pair, evaluate):
    assert evaluate(pair).n == 4
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_failed_job_fails_only_the_tests_that_need_it(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path_factory: pytest.TempPathFactory,
                                                         workers: list[str]) -> None:
    monkeypatch.setenv("CLAIMS_PROGRESS", "0")
    monkeypatch.delenv("CLAIMS_CACHE", raising=False)
    pytester.makeini("[pytest]\n")
    pytester.makefile(".yaml", pairs=PAIRS, tiny=RECIPE)
    broken_model(pytester.path / "model")
    pytester.makepyfile(test_claims=CLAIMS)
    cache = tmp_path_factory.getbasetemp() / "scheduler-session-cache"  # shared by both runs
    result = pytester.runpytest("-p", "harness.plugin", "-p", "no:cacheprovider", "-W", "ignore::FutureWarning",
                                f"--claims-cache={cache}", "--pairs=pairs.yaml", "--budget=smoke", "-rf", *workers)
    assert result.parseoutcomes() == {"passed": 2, "failed": 2}, result.stdout.str()  # the good pair's pass
    result.stdout.fnmatch_lines_random([
        "plan: * jobs for 4 tests: * cached, * to run",
        "FAILED test_claims.py::test_trained[[]broken[]] - rl:* failed: *",
        "FAILED test_claims.py::test_base_model[[]broken[]] - eval:* failed: *",
        "rl:* failed: needs pretrained:*, which failed: *",
    ])
    assert "Traceback" not in result.stdout.str()


def test_one_worker_starts_the_job_with_the_longest_path_first(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    short, long = tiny_organism(steps=4, seed=2), tiny_organism(steps=40, seed=3)
    graph = build([short, long], cache)
    assert graph.nodes[long.key].rank > graph.nodes[short.key].rank
    outcome = Scheduler(graph, LocalWorkers(1, tmp_path / "logs"), cache).run()
    assert outcome.timings[long.key][1] <= outcome.timings[short.key][0]


def test_the_progress_display_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAIMS_PROGRESS", raising=False)
    stream = io.StringIO()  # not a terminal: lines, at most one per ``every`` seconds
    progress = GraphProgress(3, stream)
    progress.update(1, 0, ["rl:0123456789", "eval:abcdef0123"], 75.0)  # within ``every`` of the start: quiet
    progress.every = 0.0
    progress.update(1, 0, ["rl:0123456789", "eval:abcdef0123"], 75.0)
    progress.failure("eval:abcdef0123", "ValueError: bad")
    progress.close(2, 1)
    assert stream.getvalue().splitlines()[0] == "jobs: 1/3 done, 2 running (rl:0123456789, eval:abcdef0123), ETA 75 s"
    assert stream.getvalue().splitlines()[1:] == ["job eval:abcdef0123 FAILED: ValueError: bad",
                                                  "jobs: 2 of 3 done in 0 s, 1 failed"]
    monkeypatch.setenv("CLAIMS_PROGRESS", "0")
    quiet = io.StringIO()
    off = GraphProgress(3, quiet)
    off.every = 0.0
    off.update(1, 0, [], None)
    off.close(3, 0)
    assert quiet.getvalue() == ""
