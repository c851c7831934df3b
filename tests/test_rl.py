"""The RL job (harness/rl/runner.py) end to end with real TRL on a tiny organism: every variant trains,
runs are bitwise reproducible across processes, a killed run resumes, vacuous runs are flagged, the GRPO
config follows the recipe, and (slow) standard RL raises pass@1."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from harness import stats
from harness.cache import Cache
from harness.jobs import Inputs, evaluate, inputs_for, materialize
from harness.loading import load_recipe
from harness.rl.runner import (
    TRAIN_ACCURACY,
    TRAIN_LOG,
    _last_checkpoint,
    grpo_config,
    is_vacuous,
    select_problems,
    training_pool,
)
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

ROOT = Path(__file__).resolve().parents[1]
TASK = TaskSpec(family="arithmetic", params={"digits": 1})
TINY = OrganismSpec(mix=(MixComponent(task=TASK),), steps=150)  # pass@1 ~0.5 on 1-digit addition
RECIPE = dataclasses.replace(load_recipe("organism-v1")[0], engine="trl", prompts_per_step=4, num_generations=4,
                             max_completion_length=4)
STEPS = 4
BASE = RLSpec(model=TINY, task=TASK, recipe=RECIPE, steps=STEPS)
SMALL_POOL = 8  # the data variants: the full-set run draws each of 8 problems once per generation
ENV = {**{k: v for k, v in os.environ.items() if k != "CLAIMS_CACHE"},
       "CLAIMS_PROGRESS": "0", "CLAIMS_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
JOB = """
import json, sys
from harness.cache import Cache
from harness.jobs import materialize
from harness.specs import from_dict
print(materialize(from_dict(json.loads(sys.argv[1])), Cache(sys.argv[2])))
"""

VARIANTS = {
    "ground_truth": {},
    "random": {"reward": RewardSpec(name="random")},
    "format_only": {"reward": RewardSpec(name="format_only")},
    "incorrect": {"reward": RewardSpec(name="incorrect")},
    "majority_vote": {"reward": RewardSpec(name="majority_vote")},
    "entropy": {"reward": RewardSpec(name="entropy")},
    "self_certainty": {"reward": RewardSpec(name="self_certainty")},
    "psr": {"polarity": PolaritySpec(name="psr")},
    "nsr": {"polarity": PolaritySpec(name="nsr")},
    "psr_pm1": {"polarity": PolaritySpec(name="psr_pm1")},
    "nsr_pm1": {"polarity": PolaritySpec(name="nsr_pm1")},
    "w_reinforce": {"polarity": PolaritySpec(name="w_reinforce", lam=0.1)},
    "one_shot_historical_variance": {"data": DataSpec(selection="one_shot", method="historical_variance",
                                                      pool_size=SMALL_POOL)},
    "one_shot_random": {"data": DataSpec(selection="one_shot", method="random", pool_size=SMALL_POOL)},
    "one_shot_index": {"data": DataSpec(selection="one_shot", method="index", index=3, pool_size=SMALL_POOL)},
    "few_shot": {"data": DataSpec(selection="few_shot", method="random", count=2, pool_size=SMALL_POOL)},
}


@pytest.fixture(scope="module")
def organism_cache(tmp_path_factory) -> Cache:
    """The tiny organism, pretrained once per session (shared with the other RL test files)."""
    cache = Cache(tmp_path_factory.getbasetemp() / "organism-cache")
    materialize(TINY, cache)
    return cache


@pytest.fixture(scope="module")
def cache(organism_cache, tmp_path_factory) -> Cache:
    """This module's cache of RL runs, holding a copy of the organism."""
    return seeded(Cache(tmp_path_factory.mktemp("rl-cache")), organism_cache)


def seeded(cache: Cache, source: Cache) -> Cache:
    """``cache`` with a copy of the organism's entry from ``source`` (no pretraining again)."""
    shutil.copytree(source.path(TINY.key), cache.path(TINY.key))
    assert cache.contains(TINY)
    return cache


def weights(entry: Path) -> dict[str, torch.Tensor]:
    return load_file(str(entry / "model.safetensors"))


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    assert before.keys() == after.keys()
    return [k for k in before if not torch.equal(before[k], after[k])]


def manifest(entry: Path) -> dict:
    return json.loads((entry / "manifest.json").read_text())


def check_log(rows: list[dict], steps: int, steps_per_generation: int, resumed: int = 0) -> None:
    """One row per optimizer step; rollout metrics on the steps that generate (a resumed run generates
    afresh on its first step)."""
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    walls = [r["wall"] for r in rows]
    for row in rows:
        for key in ("entropy", "grad_norm", "clip_ratio/region_mean", "wall"):
            assert key in row and np.isfinite(row[key]), (key, row)
        start = 0 if row["step"] <= resumed else resumed
        if (row["step"] - 1 - start) % steps_per_generation == 0:  # a rollout step
            assert np.isfinite(row["reward"]) and 0 <= row["frac_reward_zero_std"] <= 1, row
    assert walls == sorted(walls)


# ---------------------------------------------------------------- (1) every variant trains


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_trains(cache, variant):
    spec = dataclasses.replace(BASE, **VARIANTS[variant])
    entry = materialize(spec, cache)
    moved = changed(weights(cache.path(TINY.key)), weights(entry))
    assert moved, f"{variant}: no weight changed"
    rows = json.loads((entry / TRAIN_LOG).read_text())
    check_log(rows, STEPS, RECIPE.steps_per_generation)
    info = manifest(entry)
    assert info["resumed_from_step"] == 0 and info["vacuous"] is False
    assert not (cache.root / "work" / spec.key).exists()  # the work directory goes once published
    history = json.loads((entry / TRAIN_ACCURACY).read_text())
    drawn = {uid for uid in history}
    chosen = {p.uid for p in select_problems(spec, inputs_for(spec, cache))}
    assert drawn <= chosen
    if spec.data.selection != "full":
        assert len(chosen) == spec.data.examples
        assert drawn == chosen
        assert all(0 <= a <= 1 for accs in history.values() for a in accs)
    rewards = [r["reward"] for r in rows if "reward" in r]
    if variant == "entropy":
        assert all(r < 0 for r in rewards)  # mean log-probabilities
    elif variant == "self_certainty":
        assert all(r > 0 for r in rewards)  # KL from the uniform distribution
    else:
        assert all(0 <= r <= 1 for r in rewards)


def test_historical_variance_reuses_the_full_set_run(organism_cache, tmp_path):
    """The full-set run that ranks the examples is the standard ground-truth run itself (one job, not two)."""
    fresh = seeded(Cache(tmp_path), organism_cache)
    data = DataSpec(selection="one_shot", method="historical_variance", pool_size=SMALL_POOL)
    one_shot = dataclasses.replace(BASE, data=data)
    materialize(one_shot, fresh)
    full = dataclasses.replace(BASE, data=DataSpec(pool_size=SMALL_POOL))
    assert fresh.contains(full)
    assert sorted(fresh.stats.computed) == sorted([one_shot.key, full.key])
    history = json.loads((fresh.path(full.key) / TRAIN_ACCURACY).read_text())
    assert all(len(accs) == 2 for accs in history.values())  # 4 steps = 2 generations of all 8 problems
    variances = {uid: np.var(accs) for uid, accs in history.items()}
    best = max(variances.values())
    chosen = select_problems(one_shot, inputs_for(one_shot, fresh))
    assert len({p.uid for p in chosen}) == 1 and variances[chosen[0].uid] == best
    assert len(chosen) == SMALL_POOL  # the one example fills the pool


def test_data_selection(organism_cache):
    pool = training_pool(BASE)
    assert BASE.data.pool_size > 86 and len(pool) == 86  # 1-digit addition has 86 train problems: pool capped
    index = dataclasses.replace(BASE, data=DataSpec(selection="few_shot", method="index", index=5, count=3))
    assert [p.uid for p in select_problems(index, Inputs(organism_cache))] == \
        [pool[5 + i % 3].uid for i in range(index.data.pool_size)]
    random_a = dataclasses.replace(BASE, data=DataSpec(selection="one_shot", method="random"))
    random_b = dataclasses.replace(random_a, seed=1)
    assert select_problems(random_a, Inputs(organism_cache)) == select_problems(random_a, Inputs(organism_cache))
    assert {p.uid for p in select_problems(random_a, Inputs(organism_cache))} != \
        {p.uid for p in select_problems(random_b, Inputs(organism_cache))}
    beyond = dataclasses.replace(BASE, data=DataSpec(selection="one_shot", method="index", index=90))
    with pytest.raises(SpecError, match="needs more than the 86 training problems"):
        select_problems(beyond, Inputs(organism_cache))


# ---------------------------------------------------------------- (2) bitwise reproducible across processes


def run_job(spec: RLSpec, root: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", JOB, json.dumps(spec.to_dict()), str(root)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_same_spec_and_seed_give_identical_models_in_separate_processes(cache, organism_cache, tmp_path):
    spec = dataclasses.replace(BASE, reward=RewardSpec(name="random"), seed=3)
    assert from_dict(json.loads(json.dumps(spec.to_dict()))).key == spec.key
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        seeded(Cache(root), organism_cache)
    jobs = [run_job(spec, root) for root in roots]  # concurrently, each with its own cache
    entries = []
    for job in jobs:
        out, err = job.communicate(timeout=300)
        assert job.returncode == 0, err[-3000:]
        entries.append(Path(out.strip().splitlines()[-1]))
    assert entries[0] != entries[1]
    first, second = ((e / "model.safetensors").read_bytes() for e in entries)
    assert first == second
    assert (entries[0] / TRAIN_ACCURACY).read_text() == (entries[1] / TRAIN_ACCURACY).read_text()
    strip = [[{k: v for k, v in r.items() if k != "wall"} for r in json.loads((e / TRAIN_LOG).read_text())]
             for e in entries]
    assert strip[0] == strip[1]
    # and the same as in this process
    assert (materialize(spec, cache) / "model.safetensors").read_bytes() == first
    # another seed is another run
    other = materialize(dataclasses.replace(spec, seed=4), cache)
    assert (other / "model.safetensors").read_bytes() != first


# ---------------------------------------------------------------- (3) resume after SIGKILL


def complete_checkpoints(work: Path) -> list[int]:
    """Steps of the checkpoints whose trainer state (written last) is on disk."""
    return sorted(int(p.parent.name.split("-")[1]) for p in work.glob("checkpoint-*/trainer_state.json"))


def test_killed_run_resumes_from_its_checkpoint(organism_cache, tmp_path):
    steps = 6
    recipe = dataclasses.replace(RECIPE, checkpoint_every=1)
    spec = dataclasses.replace(BASE, recipe=recipe, steps=steps)
    assert spec.key == dataclasses.replace(BASE, steps=steps).key  # checkpointing does not change the job
    cache = seeded(Cache(tmp_path), organism_cache)
    work = cache.root / "work" / spec.key
    job = run_job(spec, cache.root)
    deadline = time.time() + 240
    while not complete_checkpoints(work) and job.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL, "the job ended before its first checkpoint was seen"
    assert not cache.contains(spec)
    done = complete_checkpoints(work)
    assert done and done[-1] < steps
    # a kill during a save leaves a checkpoint without its trainer state: it must not be resumed from
    partial = work / f"checkpoint-{done[-1] + 1}"
    partial.mkdir(exist_ok=True)
    shutil.copy(work / f"checkpoint-{done[-1]}" / "model.safetensors", partial / "model.safetensors")
    (partial / "trainer_state.json").unlink(missing_ok=True)

    entry = materialize(spec, cache)
    info = manifest(entry)
    boundary = done[-1] - done[-1] % RECIPE.steps_per_generation  # resumed only at a rollout boundary
    assert info["resumed_from_step"] == boundary
    rows = json.loads((entry / TRAIN_LOG).read_text())
    check_log(rows, steps, RECIPE.steps_per_generation, resumed=boundary)
    assert sorted(p.name for p in (entry / "checkpoints").iterdir()) == \
        sorted(f"checkpoint-{s}" for s in range(1, steps + 1))
    assert all((p / "model.safetensors").exists() for p in (entry / "checkpoints").iterdir())
    assert not work.exists()
    assert changed(weights(organism_cache.path(TINY.key)), weights(entry))


def test_partial_checkpoints_are_not_resumed_from(tmp_path):
    """Checkpoints without a whole trainer state are removed (tests/test_faults.py damages real ones)."""
    for step, state in ((1, "{}"), (2, '{"global_step": 2}'), (3, '{"global_st'), (4, None)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if state is not None:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert _last_checkpoint(tmp_path) is None  # checkpoint-2 lacks its weights and states
    assert list(tmp_path.iterdir()) == []
    assert _last_checkpoint(tmp_path / "nothing-here") is None


# ---------------------------------------------------------------- (4) vacuous runs


def test_is_vacuous_on_constructed_logs():
    rollout = {"step": 1, "reward": 0.0, "frac_reward_zero_std": 1.0}
    update = {"step": 2, "grad_norm": 0.0}  # steps that only update log no rollout metrics
    assert is_vacuous([rollout, update, {**rollout, "step": 3}, {**update, "step": 4}])
    assert not is_vacuous([rollout, update, {**rollout, "step": 3, "frac_reward_zero_std": 0.75}])
    assert not is_vacuous([])
    assert not is_vacuous([update, {**update, "step": 4}])  # no rollout seen: nothing to judge
    assert is_vacuous([{**rollout, "reward": 1.0}])  # always right is as vacuous as always wrong


def test_run_where_reward_is_always_zero_is_vacuous(tmp_path):
    """A random-initialised model never writes a correct 3-digit sum: every group is all zeros."""
    task = TaskSpec(family="arithmetic", params={"digits": 3})
    blank = OrganismSpec(mix=(MixComponent(task=task),), steps=0)
    spec = RLSpec(model=blank, task=task, recipe=RECIPE, steps=STEPS)
    cache = Cache(tmp_path)
    entry = materialize(spec, cache)
    rows = json.loads((entry / TRAIN_LOG).read_text())
    assert all(r["reward"] == 0 and r["frac_reward_zero_std"] == 1 for r in rows if "reward" in r)
    assert manifest(entry)["vacuous"] is True
    assert not changed(weights(cache.path(blank.key)), weights(entry))  # zero advantages: no update at all


# ---------------------------------------------------------------- (5) the GRPO config


def test_grpo_config_follows_the_recipe(tmp_path):
    recipe = dataclasses.replace(RECIPE, epsilon=0.15, epsilon_high=0.3, beta=0.01, loss_type="grpo",
                                 scale_rewards="none", learning_rate=2e-4, temperature=0.9, max_grad_norm=0.5)
    config = grpo_config(dataclasses.replace(BASE, recipe=recipe, seed=7), tmp_path)
    assert (config.epsilon, config.epsilon_high, config.beta) == (0.15, 0.3, 0.01)
    assert (config.loss_type, config.scale_rewards) == ("grpo", "none")
    assert (config.learning_rate, config.lr_scheduler_type, config.max_grad_norm) == (2e-4, "constant", 0.5)
    assert config.temperature == 0.9 and config.max_completion_length == 4
    assert config.use_cpu is True and config.bf16 is False and config.fp16 is False
    assert config.num_generations == 4 and config.num_iterations == 1
    assert config.steps_per_generation == 2
    assert config.per_device_train_batch_size == 16  # prompts_per_step x num_generations completions
    assert config.generation_batch_size == 32  # two optimizer steps per rollout batch
    assert config.max_steps == STEPS and config.seed == 7
    assert config.report_to in ([], "none", ["none"])
    paper = grpo_config(dataclasses.replace(BASE, recipe=load_recipe("paper")[0]), tmp_path)
    assert (paper.epsilon, paper.epsilon_high, paper.beta, paper.loss_type) == (0.2, 0.28, 0.0, "dapo")
    assert (paper.learning_rate, paper.steps_per_generation) == (1e-6, 2)


def test_clipping_acts_only_off_policy(cache):
    """With two optimizer steps per rollout batch the second step is off-policy and can clip; the first
    (on-policy, ratio 1) never does, and with one step per batch nothing ever clips. (A learning rate of
    1e-3 moves the tiny policy enough to clip on every second step; 3e-4 clips on fewer.)"""
    recipe = dataclasses.replace(RECIPE, learning_rate=1e-3)
    rows = json.loads((materialize(dataclasses.replace(BASE, recipe=recipe), cache) / TRAIN_LOG).read_text())
    assert all(r["clip_ratio/region_mean"] == 0 for r in rows if r["step"] % 2 == 1)
    assert max(r["clip_ratio/region_mean"] for r in rows if r["step"] % 2 == 0) > 0
    on_policy = dataclasses.replace(BASE, recipe=dataclasses.replace(recipe, steps_per_generation=1))
    rows = json.loads((materialize(on_policy, cache) / TRAIN_LOG).read_text())
    check_log(rows, STEPS, 1)
    assert all("reward" in r for r in rows)  # every step generates
    assert all(r["clip_ratio/region_mean"] == 0 for r in rows)


def test_seconds_per_step(cache, capsys):
    """Measured speed of the tiny organism (reported, loosely bounded)."""
    rows = json.loads((materialize(BASE, cache) / TRAIN_LOG).read_text())
    per_step = (rows[-1]["wall"] - rows[0]["wall"]) / (len(rows) - 1)
    with capsys.disabled():
        print(f"\ntiny organism: {per_step:.3f} s per RL step "
              f"({RECIPE.prompts_per_step}x{RECIPE.num_generations} completions of <= 4 tokens)")
    assert per_step < 5


# ---------------------------------------------------------------- slow: standard RL improves pass@1


@pytest.mark.slow
def test_standard_rl_raises_pass_at_1(tmp_path, capsys):
    """A mid-alignment organism (1-2 digit addition, base pass@1 ~0.2): 100 GRPO steps with the organism
    recipe raise pass@1 with an interval above zero over two seeds."""
    task = TaskSpec(family="arithmetic", params={"digits": [1, 2]})
    organism = OrganismSpec(mix=(MixComponent(task=task),), steps=320)
    recipe = dataclasses.replace(load_recipe("organism-v1")[0], engine="trl", max_completion_length=6)
    cache = Cache(tmp_path)

    def evaluation(model) -> EvalSpec:
        return EvalSpec(model=model, task=task, num_problems=256, n=32, max_new_tokens=6)

    base = evaluate(evaluation(organism), cache)
    after = [evaluate(evaluation(RLSpec(model=organism, task=task, recipe=recipe, steps=100, seed=seed)), cache)
             for seed in (0, 1)]
    # Two runs alone give a t interval with 1 df; the harness adds the between-run prior its calibration
    # runs measure (run gains' sd about 0.02 on organisms, 8 runs), and so does this test.
    runs = stats.Group(np.stack([a.per_problem(1) for a in after]), stats.Prior(0.02**2, 7))
    verdict = stats.gain_above(base.per_problem(1), runs)
    with capsys.disabled():
        print(f"\npass@1 base {base.pass_at_k(1):.3f} -> {[round(a.pass_at_k(1), 3) for a in after]}; "
              f"gain {verdict.describe()}")
    assert 0.1 < base.pass_at_k(1) < 0.5
    assert verdict.outcome == "holds", verdict.describe()


def test_lora_run_trains_adapters_and_saves_merged_weights(cache) -> None:
    pytest.importorskip("peft", reason="peft is not installed (the peft extra)")
    spec = RLSpec(model=TINY, task=TASK, recipe=dataclasses.replace(RECIPE, lora_r=4), steps=4)
    entry = materialize(spec, cache)
    trained = weights(entry)
    base = weights(cache.path(TINY.key))
    assert set(trained) == set(base)  # merged back into the plain model layout: no adapter tensors
    assert changed(base, trained)
    assert not any("lora" in name for name in trained)
