"""False-"holds" rates and power of the verdict statistics on simulated RL runs, as Markdown tables.

The harness's design (harness.simulate.holds_rates): 8 standard-RL runs per pair are the reference
(no prior, never extended) and the variant's prior; only the variant gets 1, 2, 4 or 8 runs, or
the looks of ``--seeds auto`` (2, 4, 8 by default).

Usage: python scripts/power.py [--experiments N] [--seed S] [--looks 2,4,8]   (docs/statistics.md shows its output;
--looks 2,4 is ``--max-seeds 4``)
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from harness.simulate import CALIBRATION_RUNS, Claim, Rates, World, boundary_claims, holds_rates
from harness.stats import gain_above, not_worse, recovers

WORLDS = (World(beta=(0.6, 1.8)), World(beta=(0.8, 0.8)), World(beta=(1.4, 0.6)))
SEEDS, LOOKS, RUN_SDS = (1, 2, 4, 8), (2, 4, 8), (0.02, 0.04)
LEVELS = (0.005, 0.0125, 0.025)  # where the scaled p-values of auto are checked against P(p <= u) <= u


def rates(claim: Claim, worlds: tuple[World, ...], run_sd: float, experiments: int, rng: np.random.Generator,
          spread: float = 1.0, looks: tuple[int, ...] = LOOKS) -> Rates:
    """``holds_rates`` with the experiments split evenly over ``worlds``, merged."""
    each = experiments // len(worlds)
    return Rates.merge([holds_rates(claim, world=w, run_sd=run_sd, seeds=SEEDS, looks=looks, experiments=each,
                                    rng=rng, spread=spread) for w in worlds])


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def table(title: str, rows: list[tuple[str, Claim, Rates]]) -> str:
    """Rows (label, claim, rates) -> a Markdown table of "holds" in %; a claim on standard RL shows its 8 runs."""
    head = [f"| {title} | " + " | ".join(f"{s} run{'s' * (s > 1)}" for s in SEEDS) + " | auto (runs used) |",
            "|---|" + "---:|" * (len(SEEDS) + 1)]
    lines = []
    for label, claim, r in rows:
        cells = [pct(x) if not claim.standard or s == CALIBRATION_RUNS else "–" for s, x in zip(SEEDS, r.fixed,
                                                                                              strict=True)]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {pct(r.sequential)} ({r.runs:.1f}) |")
    return "\n".join(head + lines)


def p_table(rows: list[tuple[str, Claim, Rates]]) -> str:
    """Auto's scaled p-values at the boundary: ``P(p <= u)`` in % for each direction and level ``u``."""
    levels = " | ".join(f"{100 * u:g}%" for u in LEVELS)
    head = [f"| claim | p_holds <= {levels} | p_fails <= {levels} |", "|---|" + "---:|" * (2 * len(LEVELS))]
    return "\n".join(head + [f"| {label} | " + " | ".join(pct(np.mean(p <= u)) for p in (r.p_holds, r.p_fails)
                                                         for u in LEVELS) + " |" for label, _, r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=3000, help="simulated pairs per table cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--looks", default=",".join(map(str, LOOKS)),
                        help="runs at each look of auto, e.g. 2,4 for --max-seeds 4 (default 2,4,8)")
    args = parser.parse_args()
    try:
        looks = tuple(int(n) for n in args.looks.split(","))
    except ValueError:
        parser.error(f"--looks: expected whole numbers separated by commas, e.g. 2,4,8; got {args.looks!r}")
    if list(looks) != sorted(set(looks)) or looks[0] < 1:
        parser.error(f"--looks: expected increasing whole numbers >= 1; got {args.looks!r}")
    if args.experiments < len(WORLDS):
        parser.error(f"--experiments must be at least {len(WORLDS)}; got {args.experiments}")
    rng, start = np.random.default_rng(args.seed), time.perf_counter()
    n = args.experiments // len(WORLDS) * len(WORLDS)
    se = 100 * math.sqrt(0.025 * 0.975 / n)
    print(f"Simulated pairs: {n} per cell, split over base pass@1 Beta(0.6, 1.8), Beta(0.8, 0.8), Beta(1.4, 0.6) "
          f"(means 0.25, 0.5, 0.7); {WORLDS[0].problems} problems, n = {WORLDS[0].samples} samples each (binomial "
          f"noise for the base and every run); per-problem change sd {WORLDS[0].problem_sd} (logits, per variant) "
          f"and {WORLDS[0].noise_sd} (per run); a run's true change in pass@1 has sd `run sd` around its variant's. "
          f"The harness's design: {CALIBRATION_RUNS} standard-RL runs per pair (true gain 0.05 unless the claim sets "
          f"the reference's) are the reference, judged on their own variance and never extended, and the variant's "
          f"prior; the variant has 1, 2, 4 or 8 runs (one look at 95%) or auto: looks at "
          f"{', '.join(map(str, looks))} runs with O'Brien–Fleming alpha spending and the futility stop. "
          f"Monte-Carlo standard error at 2.5%: {se:.2f} points (the 5x rows: "
          f"{100 * math.sqrt(0.025 * 0.975 / args.experiments):.2f}).\n")
    claims = boundary_claims()
    rows = [(f"{c.name}, run sd {sd}", c, rates(c, WORLDS, sd, n, rng, looks=looks)) for sd in RUN_SDS for c in claims]
    middle = (WORLDS[1],)
    spread = [(f"{c.name}, variant run sd 0.10 vs 0.02", c, rates(c, middle, 0.02, args.experiments, rng, 5.0, looks))
              for c in claims if not c.standard]
    print("False \"holds\" (%) with the true effect exactly on the threshold (nominal 2.5); a claim on standard RL "
          "is judged on its 8 runs whatever the seeds; the last rows: a variant whose runs vary 5x as much as "
          "standard RL's (base Beta(0.8, 0.8) only):\n")
    print(table("claim", rows + spread) + "\n")
    print("Scaled p-values of auto, `min(1, p * 0.05 / level)` at the look it stopped at, at the boundary: "
          "P(p <= u) in % (valid: at most u):\n")
    print(p_table(rows + spread) + "\n")
    power_claims = [Claim(f"gain above 0, true gain {g:+.2f}", (g,), lambda b, gs, a: gain_above(b, gs[0], alpha=a))
                    for g in (0.03, 0.05, 0.08)]
    power_claims += [Claim(f"recovers {f:g}, true fraction 1.0 of +0.05", (0.05, 0.05),
                           lambda b, gs, a, f=f: recovers(b, gs[0], gs[1], fraction=f, alpha=a)) for f in (0.5, 0.9)]
    power_claims.append(Claim("not worse by 0.02, same gain +0.05", (0.05, 0.05),
                              lambda b, gs, a: not_worse(b, gs[0], gs[1], eps=0.02, alpha=a)))
    rows = [(f"{c.name}, run sd {sd}", c, rates(c, WORLDS, sd, n, rng, looks=looks))
            for sd in RUN_SDS for c in power_claims]
    print("Power: \"holds\" (%):\n")
    print(table("claim", rows) + "\n")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
