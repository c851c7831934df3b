"""Simulated RL experiments on one pair, for calibrating the verdict statistics (tests, scripts/power.py).

Layer 0: numpy and harness.stats; randomness from an explicit ``numpy.random.Generator``.
A problem's base pass@1 is ``p ~ Beta(a, b)``; the base model and every run are evaluated with
``samples`` binomial draws per problem. A run of a group with true gain ``g`` and run sd ``sd``
draws its own change ``g + N(0, sd^2)`` and solves for the logit shift ``theta`` that gives exactly
that change in mean pass@1 over the problem population; a problem's pass@1 after the run is
``sigmoid(logit p + theta + zeta_p + eps_p)`` with ``zeta_p ~ N(0, problem_sd^2)`` per group (shared
by its runs: which problems this variant helps) and ``eps_p ~ N(0, noise_sd^2)`` per run.
The group's true gain over the problem population is therefore exactly ``g`` (but for a run's draw
beyond what pass@1 can reach, clipped: more than about 4.5 sd out at run sd 0.10).

``holds_rates`` judges a claim on such pairs in the harness's design (harness.results, verdicts):
8 standard-RL calibration runs per pair, which are both the reference of every comparison (no
prior, never extended) and the source of the variant's prior; only the variant gets more runs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.stats import (
    CALIBRATION_RUNS,
    Group,
    Prior,
    Verdict,
    gain_above,
    not_worse,
    recovers,
    run_gains,
    sequential,
)

_STEP = 0.02  # grid step of the logit integrals (the integrands vary on a scale of 1)
_THETA = 8.0  # logit shifts considered: |theta| <= _THETA
ALPHA = 0.05  # every verdict at 95%: one-sided 2.5% each way


@dataclass(frozen=True)
class World:
    """Settings of the simulated pair: problems, samples per problem, base accuracies, per-problem spread."""

    problems: int = 256
    samples: int = 64
    beta: tuple[float, float] = (0.8, 0.8)  # a, b of the base pass@1 distribution (mean a / (a + b))
    problem_sd: float = 0.5  # sd (logits) of a group's per-problem change, shared by its runs
    noise_sd: float = 0.3  # sd (logits) of a run's per-problem change

    @property
    def base_mean(self) -> float:
        a, b = self.beta
        return a / (a + b)


@functools.cache
def _population_curve(beta: tuple[float, float], sd: float) -> tuple[np.ndarray, np.ndarray]:
    """(theta grid, mean pass@1 over the population after a logit shift theta): both ``(T,)``, increasing."""
    a, b = beta
    x = np.arange(-45.0, 45.0 + _STEP / 2, _STEP)  # logit p
    log_density = a * x - (a + b) * np.logaddexp(0.0, x) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    weight = np.exp(log_density) * _STEP  # Beta(a, b) in logit space, trapezoid weights
    nodes, node_weights = np.polynomial.hermite_e.hermegauss(60)  # E over N(0, sd^2)
    shifts = np.round(np.arange(-_THETA, _THETA + _STEP / 2, _STEP) / _STEP).astype(int)
    y = np.arange(x[0] + shifts[0] * _STEP, x[-1] + shifts[-1] * _STEP + _STEP / 2, _STEP)
    smoothed = (1 / (1 + np.exp(-(y[:, None] + sd * nodes)))) @ node_weights / math.sqrt(2 * math.pi)
    offset = np.arange(len(x))
    curve = np.array([weight @ smoothed[offset + k - shifts[0]] for k in shifts])
    return shifts * _STEP, curve / weight.sum()


def _shifts(world: World, changes: np.ndarray, gain: float) -> np.ndarray:
    """Logit shifts giving each true change in mean pass@1 over the problem population: any shape -> same.

    ``gain`` (the group's) must be reachable; a run's change beyond what pass@1 allows (its normal
    draw more than about 4.5 sd out where run sd is 0.10) is clipped to the reachable range.
    """
    theta, curve = _population_curve(world.beta, math.hypot(world.problem_sd, world.noise_sd))
    if not curve[0] < world.base_mean + gain < curve[-1]:
        raise ValueError(f"a change in pass@1 of {gain:.3g} is out of reach from a base of {world.base_mean:.3g}")
    return np.interp(np.clip(world.base_mean + changes, curve[0], curve[-1]), curve, theta)


def simulate(
    world: World, groups: Sequence[tuple[float, int, float]], rng: np.random.Generator, experiments: int = 1
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Base scores ``(E, P)`` and, per group ``(true gain, runs, run sd)``, run scores ``(E, runs, P)``.

    The run sd is that of a run's true change in mean pass@1 around its group's gain.
    """
    shape = (experiments, world.problems)
    a, b = world.beta
    p = np.clip(rng.beta(a, b, size=shape), 1e-12, 1 - 1e-12)
    logit = np.log(p) - np.log1p(-p)
    before = rng.binomial(world.samples, p) / world.samples
    after = []
    for gain, runs, run_sd in groups:
        theta = _shifts(world, gain + run_sd * rng.standard_normal((experiments, runs)), gain)
        zeta = world.problem_sd * rng.standard_normal(shape)
        eps = world.noise_sd * rng.standard_normal((experiments, runs, world.problems))
        q = 1 / (1 + np.exp(-(logit[:, None, :] + theta[:, :, None] + zeta[:, None, :] + eps)))
        after.append(rng.binomial(world.samples, q) / world.samples)
    return before, after


STANDARD_GAIN = 0.05  # true pass@1 gain of standard RL (the calibration runs) where a claim does not set it


@dataclass(frozen=True)
class Claim:
    """A claim on simulated groups: their true gains and its verdict ``(before, groups, alpha) -> Verdict``.

    ``gains``: the variant's, then (for a comparison) the reference's, which is standard RL: the
    calibration runs. ``standard``: a claim on standard RL itself, whose one group is the calibration
    runs (``gains``: theirs).
    """

    name: str
    gains: tuple[float, ...]
    verdict: Callable[[np.ndarray, list[Group], float], Verdict]
    standard: bool = False


def boundary_claims(reference_gain: float = STANDARD_GAIN, eps: float = 0.02) -> tuple[Claim, ...]:
    """Claims whose true effect sits exactly on their threshold: every "holds" is a false one."""
    def recovery(f: float) -> Claim:
        return Claim(f"recovers {f:g}", (f * reference_gain, reference_gain),
                     lambda b, g, a: recovers(b, g[0], g[1], fraction=f, alpha=a))

    return (Claim("gain above 0", (0.0,), lambda b, g, a: gain_above(b, g[0], alpha=a)),
            recovery(0.5), recovery(0.9),
            Claim(f"not worse by {eps:g}", (reference_gain - eps, reference_gain),
                  lambda b, g, a: not_worse(b, g[0], g[1], eps=eps, alpha=a)),
            Claim("standard RL gain above 0", (0.0,), lambda b, g, a: gain_above(b, g[0], alpha=a), standard=True))


@dataclass(frozen=True)
class Rates:
    """Shares of "holds" over simulated experiments at each fixed seed count and under ``--seeds auto``.

    ``p_holds`` / ``p_fails``: per experiment, auto's one-sided p-values at the look it stopped at,
    scaled to ``min(1, p * ALPHA / level)`` with ``level`` that look's alpha (``spending_alphas``):
    what a family-wise adjustment is given (the union bound over the looks keeps it valid).
    """

    seeds: tuple[int, ...]
    looks: tuple[int, ...]
    fixed: np.ndarray  # (len(seeds),): "holds" with that many variant runs, one look at ALPHA
    sequential: float  # "holds" under auto (the looks)
    runs: float  # mean variant runs auto used
    p_holds: np.ndarray  # (E,)
    p_fails: np.ndarray  # (E,)

    @classmethod
    def merge(cls, parts: Sequence[Rates]) -> Rates:
        """Rates over the experiments of all ``parts`` (same seeds and looks), weighted by their counts."""
        n = np.array([len(p.p_holds) for p in parts], dtype=float)
        w = n / n.sum()
        return cls(parts[0].seeds, parts[0].looks, sum(wi * p.fixed for wi, p in zip(w, parts, strict=True)),
                   float(w @ [p.sequential for p in parts]), float(w @ [p.runs for p in parts]),
                   np.concatenate([p.p_holds for p in parts]), np.concatenate([p.p_fails for p in parts]))


def _scaled(p: float, level: float) -> float:
    return min(1.0, p * ALPHA / level)


def holds_rates(claim: Claim, *, world: World, run_sd: float, seeds: tuple[int, ...], looks: tuple[int, ...],
                experiments: int, rng: np.random.Generator, spread: float = 1.0) -> Rates:
    """Simulate ``experiments`` pairs and judge ``claim`` as the harness does (harness.verdicts, results).

    Every pair has ``CALIBRATION_RUNS`` standard-RL runs (run sd ``run_sd``; true gain the
    reference's, else ``STANDARD_GAIN``). They are the reference of a comparison, judged with no
    prior (their own variance) and never extended; the variant's prior is computed from the same
    runs (``Prior.from_gains``). Only the variant (run sd ``spread * run_sd``) gets more runs: a
    fixed number (``seeds``, one look at ``ALPHA``) or the looks ``looks`` (``stats.sequential``).
    A claim on standard RL itself is judged on the calibration runs, one look, whatever the seeds.
    """
    standard_gain = claim.gains[-1] if claim.standard or len(claim.gains) > 1 else STANDARD_GAIN
    specs = [] if claim.standard else [(claim.gains[0], max(*seeds, looks[-1]), spread * run_sd)]
    before, (*variant, calibration) = simulate(world, [*specs, (standard_gain, CALIBRATION_RUNS, run_sd)], rng,
                                               experiments)
    fixed, holds, runs = np.zeros(len(seeds)), 0.0, 0.0
    p_holds, p_fails = np.ones(experiments), np.ones(experiments)
    for e in range(experiments):
        reference = Group(calibration[e])  # the calibration runs themselves: no prior
        if claim.standard:
            verdict = claim.verdict(before[e], [reference], ALPHA)
            fixed += verdict.outcome == "holds"
            holds, runs = holds + (verdict.outcome == "holds"), runs + CALIBRATION_RUNS
            p_holds[e], p_fails[e] = verdict.p_holds, verdict.p_fails
            continue
        prior = Prior.from_gains(run_gains(before[e], calibration[e]))
        level = [ALPHA]

        def verdict_at(s: int, alpha: float, e: int = e, prior: Prior = prior, level: list[float] = level,
                       reference: Group = reference) -> Verdict:
            level[0] = alpha
            groups = [Group(variant[0][e, :s], prior), reference]
            return claim.verdict(before[e], groups[: len(claim.gains)], alpha)

        fixed += [verdict_at(s, ALPHA).outcome == "holds" for s in seeds]
        verdict, _ = (verdict_at(looks[0], ALPHA), "") if len(looks) == 1 else sequential(verdict_at, looks, ALPHA)
        holds, runs = holds + (verdict.outcome == "holds"), runs + verdict.runs[0]
        p_holds[e], p_fails[e] = _scaled(verdict.p_holds, level[0]), _scaled(verdict.p_fails, level[0])
    return Rates(seeds, looks, fixed / experiments, holds / experiments, runs / experiments, p_holds, p_fails)
