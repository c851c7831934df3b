"""Claim judgement (harness/verdicts.py) on constructed outcomes: claims as their sources state them, runs that
could not exercise a claim, and sequential looks that add runs only while they could decide a cell.

Outcomes are built from per-problem correct counts (n = 64 samples on 128 problems) drawn from a seeded
generator: each run's pass@1 is the base's plus a known gain, with binomial sampling noise.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import tiny_organism

from harness import verdicts
from harness.cache import Cache
from harness.evaluate import EvalResult
from harness.executors import one_line
from harness.loading import Pair
from harness.results import Harness, RLOutcome, describe_variant
from harness.specs import EvalSpec, NothingToTrain, PolaritySpec, RecipeSpec, RewardSpec, RLSpec, TaskSpec
from harness.tasks.base import Problem

TASK = TaskSpec(family="arithmetic", params={"digits": [1, 2]})
N, PROBLEMS = 64, 128
RECIPE_SPEC = RecipeSpec(name="tiny", learning_rate=1e-4, prompts_per_step=4, num_generations=4)


def pair(pair_id: str, seed: int = 0) -> Pair:
    model = tiny_organism(steps=5, seed=seed)
    return Pair(id=pair_id, model=model, task=TASK, eval=EvalSpec(model=model, task=TASK, num_problems=PROBLEMS, n=N),
                recipe=RECIPE_SPEC, budgets={"smoke": 4, "standard": 8, "paper": 16})


def result(spec: EvalSpec, accuracy: np.ndarray, rng: np.random.Generator) -> EvalResult:
    correct = rng.binomial(N, np.clip(accuracy, 0, 1))
    return EvalResult(spec=spec, problems=[Problem(question=f"q{i}", answer="0", uid=f"u{i}") for i in range(PROBLEMS)],
                      samples=[[""] * N] * PROBLEMS, greedy=[""] * PROBLEMS, answers=[[None] * N] * PROBLEMS,
                      correct=correct, formatted=np.full(PROBLEMS, N), greedy_correct=np.zeros(PROBLEMS, bool))


class Runs:
    """RL runs of variants on one pair, made on demand: ``rl(reward=..., seeds=n)`` as ``Harness.rl`` answers,
    each run's accuracy the base's plus the variant's gain and a per-run shift of sd ``spread``."""

    def __init__(self, the_pair: Pair, gains: dict[str, float], *, spread: float = 0.005, looks=(2, 4, 8),
                 log: dict[str, float] | None = None, seed: int = 0) -> None:
        self.pair, self.gains, self.spread, self.looks = the_pair, gains, spread, looks
        self.log = log or {"frac_reward_zero_std": 0.3, "clip_ratio/region_mean": 0.01, "entropy": 0.5}
        rng = np.random.default_rng(seed)
        self.accuracy = rng.beta(1.0, 1.5, PROBLEMS)
        self.base = result(the_pair.eval, self.accuracy, rng)
        self.seed = seed

    def rl(self, the_pair: Pair | None = None, *, label: str | None = None, seeds: int | None = None,
           reward: str = "ground_truth", polarity: str = "standard") -> RLOutcome:
        control = reward == "ground_truth" and polarity == "standard"
        runs = 8 if control else (seeds or self.looks[0])
        specs = tuple(RLSpec(model=self.pair.model, task=TASK, recipe=RECIPE_SPEC, steps=8, seed=s,
                             reward=RewardSpec(name=reward), polarity=PolaritySpec(name=polarity))
                      for s in range(runs))
        after = []
        for spec in specs:  # each run draws from its own generator: more runs keep the first ones
            rng = np.random.default_rng([self.seed, zlib.crc32(f"{reward}/{polarity}".encode()), spec.seed])
            shift = self.gains[reward if polarity == "standard" else polarity] + rng.normal(0, self.spread)
            after.append(result(dataclasses.replace(self.pair.eval, model=spec), self.accuracy + shift, rng))
        logs = tuple([{"step": 1, **self.log}] for _ in specs)
        return RLOutcome(pair=self.pair, label=label or describe_variant(specs[0]), specs=specs, before=self.base,
                         after=tuple(after), logs=logs, looks=(runs,) if control else self.looks,
                         calibration=None if control else self.rl(), variant={"reward": reward, "polarity": polarity},
                         harness=self)  # type: ignore[arg-type]


# ---------------------------------------------------------------- contamination


def contamination(dirty_gains: dict[str, float], clean_gains: dict[str, float]) -> Any:
    dirty, clean = Runs(pair("dirty"), dirty_gains, seed=1), Runs(pair("clean", seed=1), clean_gains, seed=2)
    return verdicts.same_effect((dirty.rl(reward="random"), dirty.rl()), (clean.rl(reward="random"), clean.rl()),
                                fraction=0.5, margin=0.25)


def test_the_contamination_claim_is_not_holds_when_the_effect_is_absent_on_both_pairs() -> None:
    """Both pairs fail the spurious-reward claim (the variant recovers none of the gain): agreeing that there is
    no effect is not "the clean pair shows the same effect"."""
    finding = contamination({"ground_truth": 0.10, "random": 0.0}, {"ground_truth": 0.10, "random": 0.0})
    assert finding.outcome == "inconclusive", finding.message
    assert "nothing to reproduce" in finding.message


def test_the_contamination_claim_holds_when_the_clean_pair_shows_the_same_effect() -> None:
    finding = contamination({"ground_truth": 0.10, "random": 0.09}, {"ground_truth": 0.10, "random": 0.09})
    assert finding.outcome == "holds", finding.message


def test_the_contamination_claim_fails_when_only_the_contaminated_pair_shows_it() -> None:
    finding = contamination({"ground_truth": 0.10, "random": 0.09}, {"ground_truth": 0.10, "random": -0.02})
    assert finding.outcome == "fails", finding.message


# ---------------------------------------------------------------- NSR at large k, exercise, looks


def test_nsr_keeps_pass_at_k_holds_and_narrowing_fails() -> None:
    keeps = Runs(pair("p"), {"ground_truth": 0.05, "nsr": 0.05})
    finding = verdicts.preserves(keeps.rl(polarity="nsr"), keeps.rl(), k=8, eps=0.02)
    assert finding.outcome == "holds", finding.message
    narrows = Runs(pair("p"), {"ground_truth": 0.05, "nsr": -0.15})
    finding = verdicts.preserves(narrows.rl(polarity="nsr"), narrows.rl(), k=8, eps=0.02)
    assert finding.outcome == "fails", finding.message


def test_a_run_whose_groups_carry_no_reward_variance_is_not_exercised() -> None:
    runs = Runs(pair("p"), {"ground_truth": 0.05, "format_only": -0.05}, log={"frac_reward_zero_std": 0.98})
    finding = verdicts.recovers(runs.rl(reward="format_only"), runs.rl(), fraction=0.5)
    assert finding.outcome == "not_exercised" and "2.0% of its groups" in finding.message
    assert finding.readouts["format_only reward"]["informative_share"] == pytest.approx(0.02)


def test_a_variant_left_nothing_to_train_on_is_not_exercised(tmp_path: Path) -> None:
    """The incorrect reward on a model whose majority answer is right on every problem: its job fails with
    NothingToTrain in the graph (as the scheduler records it), and the claim reads not_exercised, not an error."""
    the_pair = pair("p")
    harness = Harness(cache=Cache(tmp_path), budget="smoke")
    spec = harness.rl_spec(the_pair, seed=0, reward="incorrect")
    reason = "reward: incorrect trains on the problems whose majority label is wrong, and none is"
    harness.failed[spec.key] = one_line(NothingToTrain(reason))
    variant = harness.rl(the_pair, reward="incorrect")
    assert variant.unexercisable == reason and variant.after == () and variant.calibration is None
    finding = verdicts.recovers(variant, Runs(the_pair, {"ground_truth": 0.05}).rl(), fraction=0.5)
    assert finding.outcome == "not_exercised", finding.message
    assert finding.message.startswith(f"incorrect reward was not exercised: {reason}; pair p")
    assert finding.readouts["incorrect reward"] == {} and finding.runs["incorrect reward"] == 1


def test_a_claim_on_clipping_is_not_exercised_where_clipping_did_not_act() -> None:
    runs = Runs(pair("p"), {"ground_truth": 0.05, "random": -0.05},
                log={"frac_reward_zero_std": 0.3, "clip_ratio/region_mean": 0.0})
    assert verdicts.recovers(runs.rl(reward="random"), runs.rl(), fraction=0.5, mechanism="clipping").outcome \
        == "not_exercised"
    assert verdicts.recovers(runs.rl(reward="random"), runs.rl(), fraction=0.5).outcome == "fails"  # no mechanism


def test_sequential_looks_stop_at_the_first_decisive_look() -> None:
    """A large effect is decided early (the first look, at 2 runs, spends almost no alpha: it decides only when
    the two runs agree with the calibrated spread), and never takes the cap's 8 runs."""
    runs = Runs(pair("p"), {"ground_truth": 0.05, "random": -0.20})
    finding = verdicts.recovers(runs.rl(reward="random"), runs.rl(), fraction=0.5)
    used = finding.runs["random reward"]
    assert finding.outcome == "fails" and used in (2, 4) and finding.stopped == f"decided at {used} runs"
    assert finding.runs["standard RL"] == 8


def test_sequential_looks_add_runs_while_they_could_decide() -> None:
    """A real but modest gain: 2 runs cannot show it at the first look's small alpha, more runs can."""
    runs = Runs(pair("p"), {"ground_truth": 0.05, "psr": 0.03}, spread=0.01, seed=3)
    finding = verdicts.improves(runs.rl(polarity="psr"), k=1)
    assert finding.outcome == "holds", finding.message
    assert finding.runs["psr"] > 2 and finding.stopped == f"decided at {finding.runs['psr']} runs"


def test_a_single_look_is_an_ordinary_test() -> None:
    runs = Runs(pair("p"), {"ground_truth": 0.05, "psr": 0.03}, looks=(3,))
    finding = verdicts.improves(runs.rl(polarity="psr"), k=1)
    assert finding.stopped == "a single look" and finding.runs == {"psr": 3}


@pytest.mark.parametrize(("call", "message"), [
    (lambda r: verdicts.improves(r.rl(polarity="psr"), k=65), "k = 65; pass@k needs 1 <= k <= the evaluation's n"),
    (lambda r: verdicts.recovers(r.rl(polarity="psr"), r.rl(), fraction=0.0), "fraction = 0.0"),
    (lambda r: verdicts.matches(r.rl(polarity="psr"), r.rl(), eps=-0.1), "eps = -0.1; a margin must be > 0"),
], ids=["k-above-n", "fraction-zero", "eps-negative"])
def test_impossible_claim_settings_are_one_line(call: Any, message: str) -> None:
    from harness.specs import SpecError

    with pytest.raises(SpecError, match=message):
        call(Runs(pair("p"), {"ground_truth": 0.05, "psr": 0.03}))


def test_the_contaminated_and_clean_runs_keep_their_own_labels() -> None:
    dirty = Runs(pair("dirty"), {"ground_truth": 0.1, "random": 0.0})
    clean = Runs(pair("clean", seed=1), {"ground_truth": 0.1, "random": 0.0})
    finding = verdicts.same_effect((dirty.rl(reward="random"), dirty.rl()), (clean.rl(reward="random"), clean.rl()),
                                   fraction=0.5, margin=0.25)
    assert set(finding.runs) == {"random reward on dirty", "standard RL on dirty", "random reward on clean",
                                 "standard RL on clean"}
    # the effect fails on the contaminated pair early: no more runs are asked for, though the claim stays undecided
    assert finding.outcome == "inconclusive" and finding.runs["random reward on dirty"] < 8
