"""Calibrate an RL recipe with the standard-RL control alone on one pair (DESIGN §4).

Runs standard GRPO at each learning rate on the calibration pair at the standard budget and prints
the pass@1 and pass@K gains; the chosen rate is then frozen for every variant and pair.
Usage: python scripts/calibrate.py fixtures/organisms.yaml arith-low 1e-4 3e-4 1e-3
"""

import dataclasses
import sys

from harness.cache import Cache
from harness.jobs import evaluate
from harness.loading import load_fixtures
from harness.results import Harness


def main(path: str, pair_id: str, *rates: str) -> None:
    pair = next(p for p in load_fixtures(path) if p.id == pair_id)
    harness = Harness(cache=Cache(), budget="standard", seeds=1)
    base = evaluate(pair.eval, harness.cache)
    k = pair.alignment_k
    print(f"{pair_id}: base pass@1 {base.pass_at_k(1):.3f} pass@{k} {base.pass_at_k(k):.3f}", flush=True)
    for rate in map(float, rates):
        scaled = dataclasses.replace(pair, recipe=dataclasses.replace(pair.recipe, learning_rate=rate))
        outcome = harness.rl(scaled)
        after = outcome.after[0]
        print(f"lr {rate:g}: pass@1 {after.pass_at_k(1):.3f} ({outcome.gain(1):+.3f}), pass@{k} "
              f"{after.pass_at_k(k):.3f} ({outcome.gain(k):+.3f}), reward at end "
              f"{[r['reward'] for r in outcome.logs[0] if 'reward' in r][-1]:.3f}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
