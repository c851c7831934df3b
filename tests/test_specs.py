"""Job specs: canonical JSON, keys (what enters them and what stays out), round trips and validation."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from typing import Any

import pytest
from helpers import REPO, subprocess_env, tiny_organism

from harness import specs
from harness.specs import (
    SPEC_TYPES,
    DataSpec,
    EvalSpec,
    MixComponent,
    OrganismSpec,
    PolaritySpec,
    PretrainedSpec,
    RecipeSpec,
    RewardSpec,
    RLSpec,
    Spec,
    SpecError,
    TaskSpec,
    from_dict,
)

TASK = TaskSpec(family="arithmetic", params={"digits": 1})
OTHER_TASK = TaskSpec(family="operator", params={"digits": [1, 2]}, format="chat")
MIX = MixComponent(task=TASK)
ORGANISM = tiny_organism(steps=5)
PRETRAINED = PretrainedSpec(source="/models/smollm2", gguf_file="smollm2.gguf", fingerprint="f" * 64)
RECIPE = RecipeSpec(learning_rate=3e-4, prompts_per_step=4, num_generations=4)
RL = RLSpec(model=ORGANISM, task=TASK, recipe=RECIPE, steps=10)
RL_ON_RL = RLSpec(model=RL, task=OTHER_TASK, recipe=RECIPE, steps=5,
                  reward=RewardSpec(name="random", params={"p": 0.5}),
                  data=DataSpec(selection="one_shot", method="index", index=3), polarity=PolaritySpec(name="nsr"))
EVAL = EvalSpec(model=RL_ON_RL, task=TASK, num_problems=8, n=4)

BASES: dict[type[Spec], Spec] = {
    TaskSpec: TASK,
    MixComponent: MIX,
    OrganismSpec: ORGANISM,
    PretrainedSpec: PRETRAINED,
    EvalSpec: EVAL,
    RecipeSpec: RECIPE,
    RewardSpec: RewardSpec(),
    DataSpec: DataSpec(),
    PolaritySpec: PolaritySpec(),
    RLSpec: RL_ON_RL,
}

# One other valid value for every field of every spec kind.
ALTERNATIVES: dict[type[Spec], dict[str, Any]] = {
    TaskSpec: {"family": "truth_table", "params": {"digits": 2}, "format": "chat"},
    MixComponent: {"task": OTHER_TASK, "weight": 0.5},
    OrganismSpec: {"mix": (MIX, MixComponent(task=OTHER_TASK, weight=0.02)), "steps": 6, "hidden_size": 32,
                   "num_layers": 3, "num_heads": 2, "learning_rate": 1e-3, "batch_size": 64, "seed": 1,
                   "contaminate": TASK, "contamination_weight": 0.2},
    PretrainedSpec: {"source": "/elsewhere/smollm2", "gguf_file": "other.gguf", "fingerprint": "e" * 64,
                     "trust_remote_code": True, "chat_template": False},
    EvalSpec: {"model": ORGANISM, "task": OTHER_TASK, "split": "train", "num_problems": 16, "n": 8,
               "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 16, "seed": 1, "backend": "vllm",
               "batch_size": 1024},
    RecipeSpec: {"name": "paper", "learning_rate": 1e-6, "prompts_per_step": 8, "num_generations": 8,
                 "steps_per_generation": 1, "epsilon": 0.1, "epsilon_high": 0.2, "beta": 0.01, "loss_type": "grpo",
                 "scale_rewards": "none", "temperature": 0.7, "top_p": 0.9, "max_completion_length": 16,
                 "max_grad_norm": 0.5, "weight_decay": 0.1, "lora_r": 8, "checkpoint_every": 10,
                 "use_vllm": True, "engine": "batched"},
    RewardSpec: {"name": "format", "params": {"p": 0.3}},
    DataSpec: {"selection": "few_shot", "method": "index", "count": 2, "index": 3, "pool_size": 512},
    PolaritySpec: {"name": "w_reinforce", "lam": 0.2},
    RLSpec: {"model": PRETRAINED, "task": TASK, "recipe": dataclasses.replace(RECIPE, learning_rate=1e-3),
             "steps": 11, "reward": RewardSpec(), "data": DataSpec(), "polarity": PolaritySpec(), "seed": 1},
}

# Fields that say where things lie or what they are called, not what is computed.
EXPECTED_KEYLESS = {("pretrained", "source"), ("pretrained", "gguf_file"), ("recipe", "name"),
                    ("recipe", "checkpoint_every")}

FIELD_CASES = [pytest.param(cls, name, value, id=f"{cls.kind}.{name}")
               for cls, fields in ALTERNATIVES.items() for name, value in fields.items()]


def keyless(cls: type[Spec], name: str) -> bool:
    return not next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get("key", True)


# ---------------------------------------------------------------- canonical JSON


def test_every_spec_kind_and_field_is_covered() -> None:
    assert set(BASES) == set(ALTERNATIVES) == set(SPEC_TYPES.values())
    for cls, fields in ALTERNATIVES.items():
        assert set(fields) == {f.name for f in dataclasses.fields(cls)}, f"add the new fields of {cls.__name__}"
    found = {(cls.kind, f.name) for cls in SPEC_TYPES.values() for f in dataclasses.fields(cls) if keyless(cls, f.name)}
    assert found == EXPECTED_KEYLESS


def test_canonical_json_is_pinned_and_compact() -> None:
    # A change here changes every cache key: bump SCHEMA_VERSION with it.
    assert TASK.canonical_json() == '{"family":"arithmetic","format":"bare","kind":"task","params":{"digits":1}}'
    assert MIX.canonical_json() == ('{"kind":"mix","task":{"family":"arithmetic","format":"bare","kind":"task",'
                                    '"params":{"digits":1}},"weight":1.0}')


@pytest.mark.parametrize("spec", BASES.values(), ids=[cls.kind for cls in BASES])
def test_key_is_sha256_of_canonical_form_and_repeatable(spec: Spec) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", spec.key)
    assert spec.key == spec.key == from_dict(json.loads(json.dumps(spec.to_dict()))).key
    assert json.loads(spec.canonical_json()) == spec.to_dict(keyed=True)
    assert spec.short == f"{spec.kind}:{spec.key[:10]}"


def test_key_is_stable_across_processes_and_hash_seeds() -> None:
    code = ("import sys; sys.path.insert(0, 'tests'); from test_specs import BASES; "
            "print(' '.join(s.key for s in BASES.values()))")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(PYTHONHASHSEED=seed),
                             capture_output=True, text=True, timeout=60, check=True).stdout
        assert out.split() == [s.key for s in BASES.values()]


def test_key_does_not_depend_on_dict_order() -> None:
    a = TaskSpec(family="arithmetic", params={"digits": [1, 2], "op": "-", "operands": 3})
    b = TaskSpec(family="arithmetic", params={"operands": 3, "op": "-", "digits": [1, 2]})
    assert a.canonical_json() == b.canonical_json() and a.key == b.key
    nested_a = RewardSpec(name="x", params={"b": 1, "a": {"y": [1, {"q": 1, "p": 2}], "x": 2}})
    nested_b = RewardSpec(name="x", params={"a": {"x": 2, "y": [1, {"p": 2, "q": 1}]}, "b": 1})
    assert nested_a.canonical_json() == nested_b.canonical_json() and nested_a.key == nested_b.key
    assert nested_a.key != RewardSpec(name="x", params={"b": 1, "a": {"y": [{"q": 1, "p": 2}, 1], "x": 2}}).key


@pytest.mark.parametrize(("cls", "name", "value"), FIELD_CASES)
def test_keyed_fields_change_the_key_and_keyless_ones_do_not(cls: type[Spec], name: str, value: Any) -> None:
    base = BASES[cls]
    assert getattr(base, name) != value, "the alternative must differ from the base value"
    changed = dataclasses.replace(base, **{name: value})
    assert changed.to_dict() != base.to_dict()
    if (cls.kind, name) in EXPECTED_KEYLESS:
        assert changed.canonical_json() == base.canonical_json()
        assert changed.key == base.key
    else:
        assert changed.key != base.key


def test_nested_changes_reach_the_outer_key() -> None:
    deep_organism = dataclasses.replace(ORGANISM, steps=6)
    deep_rl = dataclasses.replace(RL_ON_RL, model=dataclasses.replace(RL, model=deep_organism))
    deeper = dataclasses.replace(EVAL, model=deep_rl)
    assert deeper.key != EVAL.key
    renamed = dataclasses.replace(RL, recipe=dataclasses.replace(RECIPE, name="paper", checkpoint_every=5))
    assert renamed.key == RL.key
    moved = dataclasses.replace(EVAL, model=dataclasses.replace(PRETRAINED, source="/mnt/shared/smollm2"))
    assert moved.key == dataclasses.replace(EVAL, model=PRETRAINED).key
    assert "source" not in moved.canonical_json() and "/mnt/shared" in json.dumps(moved.to_dict())


def test_schema_and_library_versions_change_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = {cls: spec.key for cls, spec in BASES.items()}
    monkeypatch.setattr(specs, "SCHEMA_VERSION", specs.SCHEMA_VERSION + 1)
    after_schema = {cls: spec.key for cls, spec in BASES.items()}
    assert all(after_schema[cls] != before[cls] for cls in BASES)
    monkeypatch.undo()
    assert {cls: spec.key for cls, spec in BASES.items()} == before
    versions = dict(specs.library_versions())
    assert set(versions) == {"torch", "transformers", "trl"}
    monkeypatch.setattr(specs, "library_versions", lambda: {**versions, "torch": "0.0.1"})
    assert all(spec.key != before[cls] for cls, spec in BASES.items())


@pytest.mark.parametrize("cls", list(BASES), ids=[cls.kind for cls in BASES])
def test_job_version_changes_its_key_and_every_key_built_on_it(cls: type[Spec],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    before = {c: spec.key for c, spec in BASES.items()}
    monkeypatch.setattr(cls, "version", cls.version + 1)
    after = {c: spec.key for c, spec in BASES.items()}
    contains = {c for c, spec in BASES.items() if c is cls or f'"kind":"{cls.kind}"' in spec.canonical_json()}
    assert cls in contains and len(contains) >= 1
    for c in BASES:
        assert (after[c] != before[c]) == (c in contains), f"{c.kind} key with {cls.kind} version bumped"


# ---------------------------------------------------------------- round trip


@pytest.mark.parametrize("spec", [*BASES.values(), *(dataclasses.replace(BASES[cls], **alts) for cls, alts in
                                                     ALTERNATIVES.items())],
                         ids=[*(f"{cls.kind}" for cls in BASES), *(f"{cls.kind}-alt" for cls in ALTERNATIVES)])
def test_to_dict_from_dict_round_trip(spec: Spec) -> None:
    data = json.loads(json.dumps(spec.to_dict()))  # through JSON text, as stored in manifests
    back = from_dict(data)
    assert type(back) is type(spec)
    assert back == spec
    assert back.to_dict() == spec.to_dict()
    assert back.key == spec.key


def test_nested_rl_round_trip_keeps_every_level() -> None:
    back = from_dict(json.loads(json.dumps(EVAL.to_dict())))
    assert isinstance(back.model, RLSpec) and isinstance(back.model.model, RLSpec)
    assert isinstance(back.model.model.model, OrganismSpec)
    assert back.model.model.model.mix == (MIX,)
    assert back.model.polarity.name == "nsr" and back.model.data.index == 3
    keyed = EVAL.to_dict(keyed=True)
    assert "name" not in keyed["model"]["model"]["recipe"]
    assert EVAL.to_dict()["model"]["recipe"]["name"] == "custom"


def test_specs_are_frozen_and_keyword_only() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ORGANISM.steps = 7  # type: ignore[misc]
    with pytest.raises(TypeError):
        TaskSpec("arithmetic")  # type: ignore[misc]


# ---------------------------------------------------------------- validation


INVALID = [
    pytest.param(lambda: dataclasses.replace(EVAL, n=0), ["n ", "0"], id="eval-n-0"),
    pytest.param(lambda: dataclasses.replace(EVAL, top_p=0.0), ["top_p", "0"], id="eval-top_p-0"),
    pytest.param(lambda: dataclasses.replace(EVAL, top_p=1.5), ["top_p", "1.5"], id="eval-top_p-above-1"),
    pytest.param(lambda: dataclasses.replace(EVAL, backend="sglang"), ["backend", "sglang"], id="eval-backend"),
    pytest.param(lambda: dataclasses.replace(EVAL, num_problems=0), ["num_problems"], id="eval-num_problems"),
    pytest.param(lambda: dataclasses.replace(EVAL, temperature=-0.5), ["temperature", "-0.5"], id="eval-temperature"),
    pytest.param(lambda: dataclasses.replace(EVAL, split="test"), ["split", "test"], id="eval-split"),
    pytest.param(lambda: dataclasses.replace(EVAL, max_new_tokens=0), ["max_new_tokens"], id="eval-max_new_tokens"),
    pytest.param(lambda: dataclasses.replace(RECIPE, num_generations=1), ["num_generations", "1"],
                 id="recipe-num_generations-1"),
    pytest.param(lambda: dataclasses.replace(RECIPE, loss_type="ppo"), ["loss_type", "ppo"], id="recipe-loss_type"),
    pytest.param(lambda: dataclasses.replace(RECIPE, scale_rewards="std"), ["scale_rewards", "std"],
                 id="recipe-scale_rewards"),
    pytest.param(lambda: dataclasses.replace(RECIPE, learning_rate=0.0), ["learning_rate"], id="recipe-lr"),
    pytest.param(lambda: DataSpec(selection="two_shot"), ["selection", "two_shot"], id="data-selection"),
    pytest.param(lambda: DataSpec(method="best"), ["method", "best"], id="data-method"),
    pytest.param(lambda: DataSpec(index=4, pool_size=4), ["index", "4"], id="data-index-outside-pool"),
    pytest.param(lambda: DataSpec(index=-1), ["index", "-1"], id="data-index-negative"),
    pytest.param(lambda: tiny_organism(hidden_size=30, num_heads=4), ["hidden_size", "30", "num_heads", "4"],
                 id="organism-heads"),
    pytest.param(lambda: OrganismSpec(mix=(), steps=5), ["mix"], id="organism-empty-mix"),
    pytest.param(lambda: tiny_organism(steps=-1), ["steps", "-1"], id="organism-steps"),
    pytest.param(lambda: MixComponent(task=TASK, weight=0.0), ["weight"], id="mix-weight"),
    pytest.param(lambda: dataclasses.replace(RL, steps=0), ["steps", "0"], id="rl-steps"),
]


@pytest.mark.parametrize(("build", "words"), INVALID)
def test_invalid_values_raise_one_line_spec_errors_naming_the_field(build: Any, words: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        build()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"
    assert isinstance(info.value, ValueError)


def test_boundary_values_are_valid() -> None:
    dataclasses.replace(EVAL, n=1, top_p=1.0, temperature=0.0, backend="vllm")
    dataclasses.replace(RECIPE, num_generations=2)
    DataSpec(index=3, pool_size=4)
    tiny_organism(steps=0, hidden_size=30, num_heads=5)


def test_a_field_keyed_if_set_leaves_old_keys_alone_at_its_default() -> None:
    recipe = BASES[RecipeSpec]
    assert "use_vllm" not in recipe.canonical_json()  # entries made before the field existed stay valid
    assert dataclasses.replace(recipe, use_vllm=True).key != recipe.key
