"""Calibration of the verdict statistics on simulated RL runs that vary from run to run.

At a claim's boundary (true effect exactly on the threshold) every "holds" is false: its rate must
stay at or below the nominal one-sided 2.5% plus two Monte-Carlo standard errors, at every seed
count the tool allows, with and without a calibrated prior, and over sequential looks.
scripts/power.py prints the same tables from more experiments.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from harness.simulate import Claim, World, boundary_claims, holds_rates, simulate
from harness.stats import gain_above, run_gains

WORLDS = (World(beta=(0.6, 1.8)), World(beta=(0.8, 0.8)), World(beta=(1.4, 0.6)))  # base pass@1 0.25, 0.5, 0.7
SEEDS, LOOKS = (1, 2, 3, 4, 8), (2, 4, 8)
EXPERIMENTS = 300  # per claim and run sd, split over the worlds
NOMINAL = 0.025
TOLERANCE = 2 * math.sqrt(NOMINAL * (1 - NOMINAL) / EXPERIMENTS)  # two Monte-Carlo standard errors: 1.8 points


def rates(claim: Claim, run_sd: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(holds at each seed count, sequential holds, sequential runs used), rows: no prior, calibrated prior."""
    rng = np.random.default_rng(zlib.crc32(f"{claim.name} {run_sd}".encode()))
    parts = [holds_rates(claim, world=w, run_sd=run_sd, seeds=SEEDS, looks=LOOKS, experiments=EXPERIMENTS // 3,
                         rng=rng) for w in WORLDS]
    return tuple(np.mean([getattr(p, f) for p in parts], axis=0) for f in ("fixed", "sequential", "runs"))


@pytest.mark.parametrize("run_sd", [0.02, 0.04])
@pytest.mark.parametrize("claim", boundary_claims(), ids=lambda c: c.name)
def test_false_holds_at_the_boundary_stay_nominal(claim: Claim, run_sd: float) -> None:
    fixed, sequential, runs = rates(claim, run_sd)
    shown = f"holds at {SEEDS} runs, no prior / prior: {fixed.round(3).tolist()}; sequential {sequential.tolist()}"
    assert np.all(fixed <= NOMINAL + TOLERANCE), shown
    assert np.all(sequential <= NOMINAL + TOLERANCE), shown
    assert np.all((runs >= LOOKS[0]) & (runs <= LOOKS[-1]))


def test_standard_rl_sized_gains_are_detected_with_a_prior() -> None:
    """Power, so the calibration above cannot pass by never deciding: +0.08 pass@1, run sd 0.02, 4 runs."""
    claim = Claim("gain above 0", (0.08,), lambda b, g, a: gain_above(b, g[0], alpha=a))
    rate = holds_rates(claim, world=WORLDS[1], run_sd=0.02, seeds=(4,), looks=LOOKS, experiments=60,
                       rng=np.random.default_rng(5))
    assert rate.fixed[1, 0] >= 0.8 and rate.sequential[1] >= 0.8


def test_simulated_runs_have_the_true_gain_and_spread() -> None:
    """A group's true gain is exact over the problem population; its runs differ by the run sd."""
    rng = np.random.default_rng(11)
    for world in WORLDS:
        before, (after,) = simulate(world, [(0.05, 8, 0.02)], rng, experiments=100)
        gains = np.stack([run_gains(b, a) for b, a in zip(before, after, strict=True)])  # (E, runs)
        per_experiment = gains.mean(axis=1)
        assert abs(per_experiment.mean() - 0.05) < 3 * per_experiment.std(ddof=1) / 10
        assert 0.018 < np.sqrt(gains.var(axis=1, ddof=1).mean()) < 0.024  # 0.02 plus evaluation noise
