"""False-"holds" rates and power of the verdict statistics on simulated RL runs, as Markdown tables.

Usage: python scripts/power.py [--experiments N] [--seed S]   (docs/statistics.md shows its output)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from harness.simulate import CALIBRATION_RUNS, Claim, Rates, World, boundary_claims, holds_rates
from harness.stats import gain_above, recovers

WORLDS = (World(beta=(0.6, 1.8)), World(beta=(0.8, 0.8)), World(beta=(1.4, 0.6)))
SEEDS, LOOKS, RUN_SDS = (1, 2, 3, 4, 8), (2, 4, 8), (0.02, 0.04)


def rates(claim: Claim, worlds: tuple[World, ...], run_sd: float, experiments: int, rng: np.random.Generator,
          seeds: tuple[int, ...] = SEEDS, spread: float = 1.0) -> Rates:
    """``holds_rates`` with the experiments split evenly over ``worlds``, averaged."""
    each = experiments // len(worlds)
    parts = [holds_rates(claim, world=w, run_sd=run_sd, seeds=seeds, looks=LOOKS, experiments=each, rng=rng,
                         spread=spread) for w in worlds]
    return Rates(seeds, LOOKS, *(np.mean([getattr(p, f) for p in parts], axis=0)
                                 for f in ("fixed", "sequential", "runs")))


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def table(title: str, rows: list[tuple[str, Rates, int]], seeds: tuple[int, ...]) -> str:
    """Rows (label, rates, which row of them: 0 no prior, 1 calibrated prior) -> a Markdown table in %."""
    head = [f"| {title} | " + " | ".join(f"{s} run{'s' * (s > 1)}" for s in seeds) + " | auto (runs used) |",
            "|---|" + "---:|" * (len(seeds) + 1)]
    return "\n".join(head + [f"| {label} | " + " | ".join(pct(x) for x in r.fixed[row]) +
                             f" | {pct(r.sequential[row])} ({r.runs[row]:.1f}) |" for label, r, row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=3000, help="simulated pairs per table cell")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.experiments < len(WORLDS):
        parser.error(f"--experiments must be at least {len(WORLDS)}; got {args.experiments}")
    rng, start = np.random.default_rng(args.seed), time.perf_counter()
    n, se = args.experiments, 100 * np.sqrt(0.025 * 0.975 / args.experiments)
    print(f"Simulated pairs: {n // len(WORLDS) * len(WORLDS)} per cell, split over base pass@1 Beta(0.6, 1.8), "
          f"Beta(0.8, 0.8), Beta(1.4, 0.6) (means 0.25, 0.5, 0.7); {WORLDS[0].problems} problems, "
          f"n = {WORLDS[0].samples} samples each (binomial noise for the base and every run); per-problem change "
          f"sd {WORLDS[0].problem_sd} (logits, per variant) and {WORLDS[0].noise_sd} (per run); a run's true "
          f"change in pass@1 has sd `run sd` around its variant's. Prior: the variance of {CALIBRATION_RUNS} "
          f"standard-RL runs' gains (true gain 0.05). auto: looks at {', '.join(map(str, LOOKS))} runs with "
          f"O'Brien–Fleming alpha spending and the futility stop. Monte-Carlo standard error at 2.5%: "
          f"{se:.2f} points.\n")
    claims = boundary_claims()
    rows = [(f"{c.name}, run sd {sd}, {'calibrated prior' if row else 'no prior'}", r, row)
            for sd in RUN_SDS for c in claims for r in [rates(c, WORLDS, sd, n, rng)] for row in (0, 1)]
    print("False \"holds\" (%) with the true effect exactly on the threshold (nominal 2.5):\n")
    print(table("claim", rows, SEEDS) + "\n")
    power_claims = [Claim(f"gain above 0, true gain {g:+.2f}", (g,), lambda b, gs, a: gain_above(b, gs[0], alpha=a))
                    for g in (0.03, 0.05, 0.08)]
    power_claims.append(Claim("recovers 0.5, true fraction 1.0 of +0.05", (0.05, 0.05),
                              lambda b, gs, a: recovers(b, gs[0], gs[1], fraction=0.5, alpha=a)))
    power_seeds = (2, 4, 8)
    rows = [(f"{c.name}, run sd {sd}", rates(c, WORLDS, sd, n, rng, seeds=power_seeds), 1)
            for sd in RUN_SDS for c in power_claims]
    print("Power: \"holds\" (%) with a calibrated prior:\n")
    print(table("claim", rows, power_seeds) + "\n")
    middle = (WORLDS[1],)
    rows = [(f"{c.name}, variant run sd 0.10", rates(c, middle, 0.02, n, rng, spread=5.0), 1) for c in claims]
    print("False \"holds\" (%) when the variant's runs vary 5x as much as standard RL's (run sd 0.10 vs a prior "
          "from runs of sd 0.02; base Beta(0.8, 0.8) only):\n")
    print(table("claim", rows, SEEDS) + "\n")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
