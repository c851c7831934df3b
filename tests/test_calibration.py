"""Calibration of the verdict statistics on simulated RL runs, in the harness's design.

The design (harness.simulate.holds_rates, as harness.results and harness.verdicts run it): every
pair has 8 standard-RL runs, which are the reference of every comparison (judged on their own
variance, never extended) and the source of the variant's prior; only the variant gets runs, a
fixed 1, 2, 4 or 8 (``--seeds N``) or the looks 2, 4, 8 (``--seeds auto``; the smoke budget's one
look at 1 run is the fixed 1). At a claim's boundary (true effect exactly on the threshold) every
"holds" is false: its rate must stay at or below the nominal one-sided 2.5% plus two Monte-Carlo
standard errors, at every seed count and under auto, and auto's scaled p-values
``min(1, p * ALPHA / level)`` (what the family-wise adjustment is given) must be super-uniform.
A variant whose runs vary 5x as much as standard RL's is held to the bound from 4 runs and under
auto; with 1 or 2 fixed runs nothing in the data can tell it apart (measured: 28-31% and 5-6%
false "holds", docs/statistics.md). scripts/power.py prints the same tables from more experiments.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from harness.results import AUTO_LOOKS
from harness.simulate import Claim, Rates, World, boundary_claims, holds_rates, simulate
from harness.stats import gain_above, run_gains

WORLDS = (World(beta=(0.6, 1.8)), World(beta=(0.8, 0.8)), World(beta=(1.4, 0.6)))  # base pass@1 0.25, 0.5, 0.7
SEEDS, LOOKS = (1, 2, 4, 8), AUTO_LOOKS["standard"]
EXPERIMENTS = 600  # per claim and run sd, split over the worlds
NOMINAL = 0.025
LEVELS = (0.005, 0.0125, 0.025)  # where auto's scaled p-values are checked: P(p <= u) <= u


def bound(u: float, n: int = EXPERIMENTS) -> float:
    """``u`` plus two Monte-Carlo standard errors of a rate ``u`` over ``n`` experiments (2.5%: 3.8% at 600)."""
    return u + 2 * math.sqrt(u * (1 - u) / n)


def rates(claim: Claim, run_sd: float, worlds: tuple[World, ...] = WORLDS, spread: float = 1.0) -> Rates:
    rng = np.random.default_rng(zlib.crc32(f"{claim.name} {run_sd} {spread}".encode()))
    return Rates.merge([holds_rates(claim, world=w, run_sd=run_sd, seeds=SEEDS, looks=LOOKS,
                                    experiments=EXPERIMENTS // len(worlds), rng=rng, spread=spread) for w in worlds])


def shown(r: Rates) -> str:
    return (f"holds at {SEEDS} runs: {r.fixed.round(3).tolist()}; auto {r.sequential:.3f} ({r.runs:.1f} runs); "
            f"auto p_holds <= {LEVELS}: {[float(np.mean(r.p_holds <= u)) for u in LEVELS]}")


def assert_scaled_p_super_uniform(r: Rates) -> None:
    for p in (r.p_holds, r.p_fails):
        assert np.all((p >= 0) & (p <= 1))
        for u in LEVELS:
            assert np.mean(p <= u) <= bound(u, len(p)), shown(r)


def test_the_simulation_runs_the_harness_design() -> None:
    assert AUTO_LOOKS["smoke"] == (SEEDS[0],) and LOOKS[-1] == SEEDS[-1]


@pytest.mark.parametrize("run_sd", [0.02, 0.04])
@pytest.mark.parametrize("claim", boundary_claims(), ids=lambda c: c.name)
def test_false_holds_at_the_boundary_stay_nominal(claim: Claim, run_sd: float) -> None:
    r = rates(claim, run_sd)
    assert np.all(r.fixed <= bound(NOMINAL)), shown(r)
    assert r.sequential <= bound(NOMINAL), shown(r)
    assert LOOKS[0] <= r.runs <= LOOKS[-1]
    assert_scaled_p_super_uniform(r)


@pytest.mark.parametrize("claim", [c for c in boundary_claims() if not c.standard], ids=lambda c: c.name)
def test_a_variant_five_times_as_spread_is_caught_from_four_runs(claim: Claim) -> None:
    r = rates(claim, 0.02, worlds=(WORLDS[1],), spread=5.0)  # run sd 0.10 against a prior from runs of sd 0.02
    assert np.all(r.fixed[np.array(SEEDS) >= 4] <= bound(NOMINAL)), shown(r)
    assert r.sequential <= bound(NOMINAL), shown(r)
    assert_scaled_p_super_uniform(r)


def test_standard_rl_sized_gains_are_detected() -> None:
    """Power, so the calibration above cannot pass by never deciding: +0.08 pass@1, run sd 0.02, 4 runs."""
    claim = Claim("gain above 0", (0.08,), lambda b, g, a: gain_above(b, g[0], alpha=a))
    rate = holds_rates(claim, world=WORLDS[1], run_sd=0.02, seeds=(4,), looks=LOOKS, experiments=60,
                       rng=np.random.default_rng(5))
    assert rate.fixed[0] >= 0.8 and rate.sequential >= 0.8


def test_simulated_runs_have_the_true_gain_and_spread() -> None:
    """A group's true gain is exact over the problem population; its runs differ by the run sd."""
    rng = np.random.default_rng(11)
    for world in WORLDS:
        before, (after,) = simulate(world, [(0.05, 8, 0.02)], rng, experiments=100)
        gains = np.stack([run_gains(b, a) for b, a in zip(before, after, strict=True)])  # (E, runs)
        per_experiment = gains.mean(axis=1)
        assert abs(per_experiment.mean() - 0.05) < 3 * per_experiment.std(ddof=1) / 10
        assert 0.018 < np.sqrt(gains.var(axis=1, ddof=1).mean()) < 0.024  # 0.02 plus evaluation noise
