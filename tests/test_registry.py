"""harness.registry: task families, rewards, polarities and formats registered by name, lookups that suggest the
closest name, plugins replayed in fresh processes, the organism alphabet checked at load time; and, end to end, a
family with a new symbol, a reward and a published number added from a scratch directory's conftest.py and used by
pytest, ``python -m harness`` and the Ray executor without a change under harness/."""

from __future__ import annotations

import doctest
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from helpers import RECIPE, REPO, sha256, subprocess_env, tiny_organism

import harness.models.organism
import harness.tasks
from harness import registry
from harness.__main__ import main as harness_main
from harness.loading import FixtureError, load_fixtures
from harness.models.organism import alphabet, build_tokenizer, load_tokenizer
from harness.registry import (
    get_family,
    get_format,
    get_polarity,
    get_reward,
    load_plugins,
    plugin_sources,
    register_family,
    register_format,
    register_polarity,
    register_reward,
)
from harness.report import latest_path, load_run
from harness.rl.advantages import polarity_advantages
from harness.rl.rewards import make_reward
from harness.specs import PolaritySpec, RewardSpec, RLSpec, SpecError, TaskSpec
from harness.tasks import ORGANISM_ALPHABET, get_task
from harness.tasks.arithmetic import IntegerOperationTask

# A scratch directory's plugin: a family whose questions use a symbol outside the shared alphabet, and a reward.
CONFTEST = '''\
"""A task family with a new symbol and a reward, registered from a conftest.py."""
from typing import Any, ClassVar

from harness.registry import register_family, register_reward
from harness.rl.rewards import batch_problems
from harness.tasks.arithmetic import IntegerOperationTask

pytest_plugins = ["harness.plugin"]


@register_family
class LargerTask(IntegerOperationTask):
    """``3@7=`` -> ``7``: the larger operand."""

    family = "larger"
    alphabet = "@"
    symbol = "@"
    operands = 2
    params_schema: ClassVar[dict[str, Any]] = {"digits": (int, list)}
    defaults: ClassVar[dict[str, Any]] = {"digits": [1, 2]}

    def combine(self, values):
        return max(values)

    def describe(self, question):
        return f"a@b is the larger of a and b. Compute {question.removesuffix('=')}."


def exact(task, *, bonus=1.0):
    """``bonus`` for a correct answer, whatever its format."""
    def reward(prompts, completions, **columns):
        return [bonus * task.is_correct(c, p) for c, p in zip(completions, batch_problems(columns), strict=True)]
    return reward


register_reward("exact", exact)
'''

CLAIM = '''\
import pytest

pytestmark = pytest.mark.claim("scratch", source="tests/test_registry.py",
                               published=["MATH500 74.8 with two examples vs 73.6 with 1.2k"])


def test_rl_with_the_exact_reward_keeps_pass_at_1_above_minus_one(pair, rl, claim):
    """RL with the exact reward keeps pass@1 above -1 (always holds)."""
    claim.improves(rl(pair, reward="exact", reward_params={"bonus": 1.0}), k=1, threshold=-1.0)
'''

PAIRS = """\
defaults:
  eval: {num_problems: 16, n: 4, max_new_tokens: 4}
  alignment_k: 4
  recipe: tiny.yaml

pairs:
  larger-tiny:
    model:
      organism: {mix: [{task: {family: larger}}], steps: 120}
    task: {family: larger}
"""


def scratch(directory: Path, conftest: str = CONFTEST) -> Path:
    """A scratch directory with the plugin, the claim, a tiny recipe and the pairs file; returns the conftest."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "conftest.py").write_text(conftest)
    (directory / "test_scratch_claim.py").write_text(CLAIM)
    (directory / "tiny.yaml").write_text(RECIPE)
    (directory / "pairs.yaml").write_text(PAIRS)
    return directory / "conftest.py"


# ---------------------------------------------------------------- the registry


def test_builtins_register_through_the_same_api_and_are_not_plugins() -> None:
    assert {"arithmetic", "truth_table", "operator", "math500"} <= set(registry.names("family"))
    assert registry.names("reward")[:7] == ["ground_truth", "random", "format_only", "incorrect", "majority_vote",
                                           "entropy", "self_certainty"]
    assert registry.names("polarity") == ["standard", "psr", "nsr", "psr_pm1", "nsr_pm1", "w_reinforce"]
    assert registry.names("format") == ["bare", "chat", "boxed"]
    assert registry._sources[("reward", "random")] == "harness.rl.rewards"
    assert get_reward("entropy").needs_policy and not get_reward("random").needs_policy
    assert harness.tasks.FAMILIES["arithmetic"] is get_family("arithmetic")
    assert not any(source.startswith("harness") for source in plugin_sources())


@pytest.mark.parametrize(("lookup", "name", "message"), [
    (get_reward, "randm", "unknown reward 'randm'; did you mean 'random'? known: ground_truth, random, format_only"),
    (get_polarity, "nsrr", "unknown polarity 'nsrr'; did you mean 'nsr'? known: standard, psr, nsr"),
    (get_format, "chatt", "unknown format 'chatt'; did you mean 'chat'? known: bare, chat, boxed"),
    (get_family, "arithmetc", "unknown task family 'arithmetc'; did you mean 'arithmetic'? known: aime24, amc23"),
    (get_reward, "zzz", "unknown reward 'zzz'; known: ground_truth"),
])
def test_lookups_fail_in_one_line_with_the_closest_name(lookup, name: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        lookup(name)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.usefixtures("scratch_registry")
def test_a_name_taken_by_another_source_is_refused_and_the_same_source_replaces() -> None:
    with pytest.raises(SpecError, match=r"reward 'random' is already registered by harness\.rl\.rewards; registered "
                                        r"again by test_registry: choose another name"):
        register_reward("random", lambda task: None)
    first, second = (lambda task: None), (lambda task: None)
    register_reward("twice", first)
    register_reward("twice", second)  # a re-import of the same module
    assert get_reward("twice").factory is second


@pytest.mark.usefixtures("scratch_registry")
def test_register_family_refuses_what_is_not_a_usable_family() -> None:
    class Abstract(IntegerOperationTask):
        family = "abstract"

    class Nameless(IntegerOperationTask):
        symbol, operands = "+", 2

        def combine(self, values):
            return sum(values)

        def describe(self, question):
            return question

    with pytest.raises(SpecError, match=r"is not a subclass of harness\.tasks\.Task"):
        register_family(dict)
    with pytest.raises(SpecError, match=r"Abstract \('abstract'\) does not define combine, describe, operands, symbol"):
        register_family(Abstract)
    with pytest.raises(SpecError, match="Nameless has no 'family' name"):
        register_family(Nameless)
    with pytest.raises(SpecError, match="name must be a non-empty str"):
        register_polarity(" padded", lambda spec, rewards, grpo: grpo)


def test_polarity_names_are_checked_by_the_registry_when_planned_not_by_the_spec() -> None:
    task = TaskSpec(family="arithmetic", params={"digits": 1})
    unknown = PolaritySpec(name="negative")  # a spec is data: any name builds
    rl = RLSpec(model=tiny_organism(), task=task, recipe=_recipe(), steps=2, polarity=unknown)
    with pytest.raises(SpecError, match="unknown polarity 'negative'; known: standard, psr, nsr"):
        registry.check(rl)
    with pytest.raises(SpecError, match=r"reward 'random' does not take parameters \['q'\]"):
        registry.check(RLSpec(model=tiny_organism(), task=task, recipe=_recipe(), steps=2,
                              reward=RewardSpec(name="random", params={"q": 1})))
    registry.check(RLSpec(model=tiny_organism(), task=task, recipe=_recipe(), steps=2,
                          reward=RewardSpec(name="random", params={"p": 0.2}), polarity=PolaritySpec(name="nsr")))


def _recipe():
    from harness.specs import RecipeSpec

    return RecipeSpec(learning_rate=1e-3, prompts_per_step=2, num_generations=2)


@pytest.mark.usefixtures("scratch_registry")
def test_user_polarity_reward_and_format_reach_the_harness() -> None:
    register_polarity("flip", lambda spec, rewards, grpo: -grpo * spec.lam)
    rewards, grpo = torch.tensor([1.0, 0.0]), torch.tensor([0.5, -0.5])
    assert polarity_advantages(PolaritySpec(name="flip", lam=2.0), rewards, grpo).tolist() == [-1.0, 1.0]

    seen = {}

    def seeded(task, *, seed):
        seen["seed"] = seed
        return lambda prompts, completions, **columns: [float(seed)] * len(completions)

    def confident(task, *, policy):
        return lambda prompts, completions, **columns: [float(len(policy.log_probs(prompts, [[1]])))] * len(completions)

    register_reward("seeded", seeded)
    register_reward("confident", confident, needs_policy=True)
    task = get_task(TaskSpec(family="arithmetic", params={"digits": 1}))
    assert make_reward(RewardSpec(name="seeded"), task, seed=5)(["1+1="], ["2"]) == [5.0]  # the run's seed
    assert make_reward(RewardSpec(name="seeded", params={"seed": 9}), task, seed=5)(["1+1="], ["2"]) == [9.0]
    with pytest.raises(SpecError, match="needs the policy"):
        make_reward(RewardSpec(name="confident"), task, seed=0)

    class OneRow:
        def log_probs(self, prompts, completion_ids):
            return [torch.zeros(1, 3)]

    assert make_reward(RewardSpec(name="confident"), task, seed=0, policy=OneRow())(["1+1="], ["2"]) == [1.0]

    def tagged(shape, completion):
        return shape.canonical(completion.split("<a>")[-1].split("</a>")[0]) if "<a>" in completion else None

    register_format("xml", prompt=lambda text: [{"role": "user", "content": f"{text} Answer in <a></a>."}],
                    extract=tagged, format_ok=lambda shape, c: c.startswith("<a>") and c.endswith("</a>"))
    xml = get_task(TaskSpec(family="arithmetic", params={"digits": 1}, format="xml"))  # generated families take any
    problem = xml.problems("eval", 1)[0]
    assert xml.prompt(problem)[0]["content"].endswith("Answer in <a></a>.")
    assert xml.is_correct(f"<a>{problem.answer}</a>", problem) and xml.format_ok(f"<a>{problem.answer}</a>")
    assert not xml.format_ok(problem.answer)
    with pytest.raises(SpecError, match="unknown format 'xml'; known: chat, boxed"):
        get_task(TaskSpec(family="math500", format="xml"))  # a family that lists its formats keeps to them


@pytest.mark.usefixtures("scratch_registry")
def test_sources_are_module_names_or_file_paths_that_a_fresh_process_replays(tmp_path: Path) -> None:
    (tmp_path / "plugin_by_name.py").write_text(
        "from harness.registry import register_polarity\nregister_polarity('none', lambda spec, r, a: a * 0)\n")
    conftest = scratch(tmp_path / "scratch")
    sys.path.insert(0, str(tmp_path))
    try:
        load_plugins(["plugin_by_name", str(conftest)])
        load_plugins([str(conftest)])  # once per process
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("plugin_by_name", None)
    assert plugin_sources() == ["plugin_by_name", str(conftest.resolve())]
    assert get_family("larger").alphabet == "@" and get_reward("exact").factory.__doc__.startswith("``bonus``")
    with pytest.raises(SpecError, match="plugin 'no_such_plugin': no module of that name and no such file"):
        load_plugins(["no_such_plugin"])
    with pytest.raises(SpecError, match=r"plugin '.*missing\.py': no such file"):
        load_plugins([str(tmp_path / "missing.py")])
    # a fresh process that loads the recorded sources sees the same registrations
    code = ("import sys, json; from harness import registry; registry.load_plugins(sys.argv[1:]); "
            "print(json.dumps([registry.names('family')[-1], registry.names('polarity')[-1]]))")
    out = subprocess.run([sys.executable, "-c", code, *plugin_sources()], cwd=REPO, capture_output=True, text=True,
                         env={**subprocess_env(), "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["larger", "none"]


@pytest.mark.parametrize("module", [registry, harness.models.organism])
def test_doctests(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_an_installed_plugin_registers_without_being_named(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "claims_extra-0.1.dist-info").mkdir(parents=True)
    (site / "claims_extra-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: claims-extra\n"
                                                                  "Version: 0.1\n")
    (site / "claims_extra-0.1.dist-info" / "entry_points.txt").write_text(
        "[claims_harness.plugins]\nextra = claims_extra_plugin\n")
    (site / "claims_extra_plugin.py").write_text(
        "from harness.registry import register_polarity\nregister_polarity('halved', lambda spec, r, a: a / 2)\n")
    code = "from harness import registry; print(registry.names('polarity')[-1], registry.plugin_sources())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**subprocess_env(), "PYTHONPATH": f"{REPO}{os.pathsep}{site}"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["halved", "['claims_extra_plugin']"]


# ---------------------------------------------------------------- the organism alphabet


def test_the_organism_tokenizer_refuses_characters_it_lacks(tmp_path: Path) -> None:
    from tokenizers import models

    tokenizer = build_tokenizer()
    assert tokenizer("12+3=")["input_ids"] == [3, 4, 12, 5, 16]  # ids of the shared alphabet never move
    with pytest.raises(Exception, match="WordLevel error"):
        tokenizer("1@2=")
    # an entry written before: its tokenizer mapped unknown characters to PAD; loaded, it refuses them too
    old = build_tokenizer()
    old.backend_tokenizer.model = models.WordLevel(vocab=old.backend_tokenizer.get_vocab(with_added_tokens=False),
                                                   unk_token="<pad>")
    assert old("1@2=")["input_ids"][1] == old.pad_token_id
    old.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded("12+3=")["input_ids"] == [3, 4, 12, 5, 16]
    with pytest.raises(Exception, match="WordLevel error"):
        loaded("1@2=")


@pytest.mark.usefixtures("scratch_registry")
def test_characters_outside_the_alphabet_are_one_line_load_errors(tmp_path: Path) -> None:
    conftest = scratch(tmp_path, CONFTEST.replace('    alphabet = "@"\n', ""))
    load_plugins([str(conftest)])
    with pytest.raises(FixtureError) as info:
        load_fixtures(tmp_path / "pairs.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'pairs.yaml'}: pairs.larger-tiny: task larger()[bare] uses characters "
                               "'@' that the organism's tokenizer lacks; declare them in the family's alphabet "
                               "(LargerTask.alphabet = '@')")
    # the command line says the same in one line, from -p given after the command
    assert harness_main(["align", str(tmp_path / "pairs.yaml"), "-p", str(conftest)]) == 2


@pytest.mark.usefixtures("scratch_registry")
def test_declared_characters_extend_the_organism_alphabet(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    conftest = scratch(tmp_path)
    # -p before the command; an unknown --only id fails after the pairs loaded (nothing is computed)
    assert harness_main(["-p", str(conftest), "align", "--pairs", str(tmp_path / "pairs.yaml"), "--only", "x"]) == 2
    assert "unknown pair id(s) x; known: larger-tiny" in capsys.readouterr().err
    pair = load_fixtures(tmp_path / "pairs.yaml")[0]
    assert alphabet(pair.model) == ORGANISM_ALPHABET + "@"


# ---------------------------------------------------------------- done when: a scratch directory, no harness/ change


def harness_sources() -> dict[str, str]:
    """SHA-256 of every source and recipe file under harness/."""
    root = REPO / "harness"
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.suffix in (".py", ".yaml")}



def test_a_conftest_adds_a_family_a_reward_and_a_published_number_used_by_pytest_and_the_cli(tmp_path: Path) -> None:
    before = harness_sources()
    scratch(tmp_path)
    cache = tmp_path / "cache"
    env = subprocess_env()
    session = subprocess.run(
        [sys.executable, "-m", "pytest", "test_scratch_claim.py", "--pairs", "pairs.yaml", "--budget", "smoke",
         "--claims-cache", str(cache), "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    out = session.stdout + session.stderr
    assert session.returncode == 0, out[-3000:]
    assert "1 passed" in out.splitlines()[-1] and "larger-tiny (pass@4=" in out
    run = load_run(latest_path(cache))
    [row] = run["rows"]
    assert row["family"] == "scratch" and row["pair"] == "larger-tiny"
    assert row["claim_text"] == "RL with the exact reward keeps pass@1 above -1 (always holds)."
    assert row["published"] == [{"text": "MATH500 74.8 with two examples vs 73.6 with 1.2k",
                                 "source": "tests/test_registry.py"}]

    align = subprocess.run([sys.executable, "-m", "harness", "-p", "conftest.py", "align", "pairs.yaml",
                            "--claims-cache", str(cache)], cwd=tmp_path, capture_output=True, text=True, env=env,
                           timeout=300)
    assert align.returncode == 0, align.stderr[-3000:]
    [line] = [line for line in align.stdout.splitlines() if line.startswith("larger-tiny")]
    assert len(line.split()) == 8  # pass@1, pass@8, pass@K, greedy and the guessing baselines
    assert harness_sources() == before


RAY_JOB = """
import json, sys
import ray
from harness.cache import Cache
from harness.executors import RayWorkers
from harness.loading import load_fixtures
from harness.plan import build
from harness.registry import load_plugins
from harness.scheduler import Scheduler

conftest, pairs, cache, temp = sys.argv[1:]
load_plugins([conftest])  # what pytest does with a conftest.py, and python -m harness with -p
pair = load_fixtures(pairs)[0]
ray.init(num_cpus=1, _temp_dir=temp, object_store_memory=96 * 1024**2, include_dashboard=False, log_to_driver=False)
cache = Cache(cache)
# the base evaluation as Ray tasks: pretraining the organism on the new family, then sampling
outcome = Scheduler(build([pair.eval], cache), RayWorkers(), cache).run()
print(json.dumps({"computed": outcome.computed, "failed": outcome.failed, "jobs": [pair.model.key, pair.eval.key]}))
ray.shutdown()
"""


def test_the_ray_executor_computes_a_job_that_needs_the_plugin_family(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="ray is not installed (the ray extra)")
    conftest = scratch(tmp_path / "scratch")
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay short
    try:
        job = subprocess.run([sys.executable, "-c", RAY_JOB, str(conftest), str(conftest.parent / "pairs.yaml"),
                              str(tmp_path / "cache"), str(temp)], cwd=tmp_path, capture_output=True, text=True,
                             env=subprocess_env(RAY_AUTH_MODE="disabled"), timeout=600)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert job.returncode == 0, job.stderr[-3000:]
    result = json.loads(job.stdout.splitlines()[-1])
    assert sorted(result["computed"]) == sorted(result["jobs"])  # computed by the Ray task, which knew the family
