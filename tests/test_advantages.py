"""Sample-polarity advantages (harness/rl/advantages.py), value by value, and inside the real TRL trainer:
PolarityGRPOTrainer must replace the advantages TRL computes (it overrides private TRL methods)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from trl import GRPOTrainer

from harness.cache import Cache
from harness.jobs import materialize
from harness.loading import load_recipe
from harness.models import load_model
from harness.rl.advantages import polarity_advantages
from harness.rl.rewards import make_reward
from harness.rl.runner import _dataset, grpo_config, training_pool
from harness.rl.trainer import PolarityGRPOTrainer
from harness.specs import MixComponent, OrganismSpec, PolaritySpec, RewardSpec, RLSpec, TaskSpec
from harness.tasks import get_task

TASK = TaskSpec(family="arithmetic", params={"digits": 1})
TINY = OrganismSpec(mix=(MixComponent(task=TASK),), steps=150)
RECIPE = dataclasses.replace(load_recipe("organism-v1")[0], engine="trl", prompts_per_step=4, num_generations=4,
                             max_completion_length=4)
POLARITIES = ["standard", "psr", "nsr", "psr_pm1", "nsr_pm1", "w_reinforce"]


def trl_advantages(rewards: torch.Tensor, group: int) -> torch.Tensor:
    """TRL's group-relative advantage with scale_rewards="group": (r - mean) / (unbiased std + 1e-4)."""
    grouped = rewards.view(-1, group)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True)  # Bessel-corrected, as TRL's nanstd
    return ((grouped - mean) / (std + 1e-4)).view(-1)


# ---------------------------------------------------------------- value by value

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0])  # two groups of 4, each half right
STANDARD = trl_advantages(REWARDS, 4)


def test_constructed_batch_has_trl_advantages():
    half = 0.5 / (torch.tensor([1.0, 0.0, 0.0, 1.0]).std().item() + 1e-4)  # 0.5 / (0.57735 + 1e-4)
    assert STANDARD.tolist() == pytest.approx([half, -half, -half, half, half, half, -half, -half], abs=1e-6)
    assert half == pytest.approx(0.86588, abs=1e-4)


@pytest.mark.parametrize(("name", "lam", "expected"), [
    ("standard", 0.1, STANDARD.tolist()),
    ("psr", 0.1, [STANDARD[0], 0, 0, STANDARD[3], STANDARD[4], STANDARD[5], 0, 0]),
    ("nsr", 0.1, [0, STANDARD[1], STANDARD[2], 0, 0, 0, STANDARD[6], STANDARD[7]]),
    ("psr_pm1", 0.1, [1, 0, 0, 1, 1, 1, 0, 0]),
    ("nsr_pm1", 0.1, [0, -1, -1, 0, 0, 0, -1, -1]),
    ("w_reinforce", 0.1, [0.1, -1, -1, 0.1, 0.1, 0.1, -1, -1]),
    ("w_reinforce", 0.5, [0.5, -1, -1, 0.5, 0.5, 0.5, -1, -1]),
    ("w_reinforce", 1.0, [1, -1, -1, 1, 1, 1, -1, -1]),  # lam = 1: plain REINFORCE with +-1
    ("w_reinforce", 0.0, [0, -1, -1, 0, 0, 0, -1, -1]),  # lam = 0: equals nsr_pm1
])
def test_polarity_value_by_value(name, lam, expected):
    out = polarity_advantages(PolaritySpec(name=name, lam=lam), REWARDS, STANDARD)
    assert out.shape == REWARDS.shape and out.dtype == STANDARD.dtype
    assert out.tolist() == pytest.approx([float(e) for e in expected], abs=1e-7)


def test_masked_variants_keep_trl_values_exactly():
    psr = polarity_advantages(PolaritySpec(name="psr"), REWARDS, STANDARD)
    nsr = polarity_advantages(PolaritySpec(name="nsr"), REWARDS, STANDARD)
    right = REWARDS > 0
    assert torch.equal(psr[right], STANDARD[right]) and torch.equal(nsr[~right], STANDARD[~right])
    assert (psr[~right] == 0).all() and (nsr[right] == 0).all()
    assert torch.equal(psr + nsr, STANDARD)  # binary rewards: the two masks partition the batch


def test_uniform_groups_carry_no_masked_signal():
    rewards = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # one all-right, one all-wrong group
    standard = trl_advantages(rewards, 4)
    assert (standard == 0).all()
    for name in ("standard", "psr", "nsr"):
        assert (polarity_advantages(PolaritySpec(name=name), rewards, standard) == 0).all()
    # the fixed-advantage variants have no baseline: they still push
    assert polarity_advantages(PolaritySpec(name="psr_pm1"), rewards, standard).tolist() == [1] * 4 + [0] * 4
    assert polarity_advantages(PolaritySpec(name="nsr_pm1"), rewards, standard).tolist() == [0] * 4 + [-1] * 4


def test_fractional_rewards_are_both_right_and_wrong():
    # r in (0, 1) counts as right (r > 0) and wrong (r < 1): documented for non-binary rewards
    rewards, standard = torch.tensor([0.5, 1.0, 0.0]), torch.tensor([0.3, 0.9, -1.2])
    assert polarity_advantages(PolaritySpec(name="w_reinforce", lam=0.1), rewards, standard).tolist() == \
        pytest.approx([0.1 - 1, 0.1, -1])
    assert polarity_advantages(PolaritySpec(name="psr"), rewards, standard).tolist() == pytest.approx([0.3, 0.9, 0])


def test_unknown_polarity_is_refused():
    from harness.specs import SpecError

    with pytest.raises(SpecError, match="unknown polarity 'nsr2'; did you mean 'nsr'"):
        polarity_advantages(PolaritySpec(name="nsr2"), REWARDS, STANDARD)


# ---------------------------------------------------------------- inside the real TRL trainer

@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The tiny organism, pretrained once per session (shared with the other RL test files)."""
    cache = Cache(tmp_path_factory.getbasetemp() / "organism-cache")
    materialize(TINY, cache)
    return cache


def build_trainer(cache: Cache, output_dir, polarity: str, *, steps: int = 2,
                  cls: type[PolarityGRPOTrainer] = PolarityGRPOTrainer) -> PolarityGRPOTrainer:
    """A PolarityGRPOTrainer assembled as harness.rl.runner.train does, with the ground-truth reward."""
    spec = RLSpec(model=TINY, task=TASK, recipe=RECIPE, steps=steps, polarity=PolaritySpec(name=polarity))
    task = get_task(TASK)
    torch.manual_seed(0)
    model, tokenizer = load_model(TINY, cache.path(TINY.key))
    model.train()
    return cls(model=model, processing_class=tokenizer, reward_funcs=[make_reward(RewardSpec(), task, seed=0)],
               args=grpo_config(spec, output_dir), train_dataset=_dataset(task, training_pool(spec)),
               polarity=spec.polarity)


@pytest.fixture(scope="module")
def trainer(cache, tmp_path_factory):
    return build_trainer(cache, tmp_path_factory.mktemp("trainer"), "standard")


@pytest.fixture(scope="module")
def batch(trainer):
    """One generation batch from TRL's own dataloader: 8 prompts, each repeated num_generations times."""
    batch = next(iter(trainer.get_train_dataloader()))
    assert len(batch) == RECIPE.prompts_per_step * RECIPE.num_generations * RECIPE.steps_per_generation
    return batch


def generate_and_score(trainer, batch, polarity: str, seed: int):
    """(rewards, TRL's advantages, the advantages our override hands on) for one real generation."""
    trainer.polarity = PolaritySpec(name=polarity)
    torch.manual_seed(seed)
    output = trainer._generate_and_score_completions(batch)
    rewards = trainer._rewards_per_func[:, 0]
    trl = torch.tensor(list(trainer._logs["advantages"])[-len(batch):])  # TRL logs its advantages before we swap
    return rewards, trl, output["advantages"]


@pytest.mark.parametrize("polarity", POLARITIES)
def test_trainer_replaces_trl_advantages(trainer, batch, polarity):
    rewards, trl, advantages = generate_and_score(trainer, batch, polarity, seed=1)
    group = RECIPE.num_generations
    right, wrong = rewards == 1, rewards == 0
    assert set(rewards.tolist()) <= {0.0, 1.0}
    assert right.any() and wrong.any(), "the batch needs right and wrong samples"
    mixed = (rewards.view(-1, group).std(dim=1) > 0).repeat_interleave(group)
    assert mixed.any(), "the batch needs a group with reward variance"
    # TRL's own advantage is the group-relative one we think it is
    assert trl.tolist() == pytest.approx(trl_advantages(rewards, group).tolist(), abs=1e-5)
    assert torch.equal(advantages, polarity_advantages(PolaritySpec(name=polarity), rewards, trl))
    if polarity == "standard":
        assert torch.equal(advantages, trl)
    elif polarity == "nsr":
        assert (advantages[right] == 0).all()  # exactly 0, not TRL's positive advantage
        assert torch.equal(advantages[wrong], trl[wrong])  # TRL's negative advantage, untouched
        assert (advantages[wrong & mixed] < 0).all()
    elif polarity == "psr":
        assert (advantages[wrong] == 0).all() and torch.equal(advantages[right], trl[right])
        assert (advantages[right & mixed] > 0).all()
    elif polarity == "nsr_pm1":
        assert (advantages[wrong] == -1).all() and (advantages[right] == 0).all()
    elif polarity == "psr_pm1":
        assert (advantages[right] == 1).all() and (advantages[wrong] == 0).all()
    else:
        assert (advantages[right] == torch.tensor(0.1)).all() and (advantages[wrong] == -1).all()


def test_trl_still_computes_what_we_override():
    """The private TRL methods the subclass overrides exist with the signatures it calls."""
    import inspect

    assert list(inspect.signature(GRPOTrainer._calculate_rewards).parameters) == [
        "self", "inputs", "prompts", "completions", "completion_ids_list"]
    assert list(inspect.signature(GRPOTrainer._generate_and_score_completions).parameters) == ["self", "inputs"]


class Capturing(PolarityGRPOTrainer):
    """Records the advantages that reach the loss (after TRL's buffering, shuffling and splitting)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[torch.Tensor] = []

    def compute_loss(self, model, inputs, *args, **kwargs):
        self.seen.append(inputs["advantages"].detach().clone())
        return super().compute_loss(model, inputs, *args, **kwargs)


@pytest.mark.parametrize("polarity", ["nsr", "nsr_pm1"])
def test_replaced_advantages_reach_the_loss(cache, tmp_path, polarity):
    trainer = build_trainer(cache, tmp_path, polarity, steps=2, cls=Capturing)
    trainer.train()
    seen = torch.cat(trainer.seen)
    assert len(trainer.seen) == 2  # two optimizer steps from one generation batch
    assert len(seen) == RECIPE.prompts_per_step * RECIPE.num_generations * RECIPE.steps_per_generation
    assert (seen <= 0).all() and (seen < 0).any()  # no positive advantage survives
    if polarity == "nsr_pm1":
        assert set(seen.tolist()) == {-1.0, 0.0}
    else:
        assert (seen == 0).any() and set(seen.tolist()) != {-1.0, 0.0}
