"""Where clipping starts to act: a recipe's clipped-token fraction and pass@1 change at multiples of its lr.

Shao et al. (arXiv 2506.10947) trace the random reward's gain to PPO clipping, so a random-reward run in
which clipping did not act is "not exercised". This is the positive control for that reading: the same
recipe and pair at larger updates (``--lr-scale``, as ``rl(pair, lr_scale=...)``), for the rewards named,
shows whether and where the harness sees clipping act, and what the reward does to pass@1 there. It runs
nothing a claim uses and tunes nothing: the recipes stay as they are.

Usage: python scripts/clipping.py fixtures/organisms.yaml arith-high --recipe organism-shao \
           --lr-scale 1 10 30 --rewards ground_truth random --seeds 2
Prints one row per reward and lr multiple: pass@1 change per seed, the clipped-token fraction (mean over
training steps), the share of informative groups and, on strategy organisms, the worked style's share of
samples after RL per seed (the analogue of Shao et al.'s code-reasoning frequency).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import numpy as np

from harness.cache import Cache
from harness.jobs import evaluate, materialize
from harness.loading import load_fixtures, load_recipe
from harness.readouts import strategy_readout
from harness.rl.runner import TRAIN_LOG
from harness.specs import RewardSpec, RLSpec
from harness.verdicts import log_readouts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs")
    parser.add_argument("pair")
    parser.add_argument("--recipe", default=None, help="recipe preset (default: the pair's)")
    parser.add_argument("--lr-scale", type=float, nargs="+", default=[1.0, 10.0, 30.0])
    parser.add_argument("--rewards", nargs="+", default=["ground_truth", "random"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--budget", default="standard")
    args = parser.parse_args()

    pair = next((p for p in load_fixtures(args.pairs) if p.id == args.pair), None)
    if pair is None:
        parser.error(f"{args.pairs}: no pair {args.pair!r}")
    recipe, budgets = load_recipe(args.recipe) if args.recipe else (pair.recipe, pair.budgets)
    steps = budgets[args.budget]
    cache = Cache()
    styles = pair.task.family == "strategy"  # strategy organisms: the worked style's share, before and after
    base_result = evaluate(pair.eval, cache)
    base = base_result.pass_at_k(1)
    print(f"{pair.id} under {recipe.name}: lr {recipe.learning_rate:g}, {steps} steps, "
          f"clip {recipe.epsilon}/{recipe.epsilon_high}; base pass@1 {base:.3f}"
          + (f", worked share {strategy_readout(base_result).share('worked'):.3f}" if styles else ""), flush=True)
    for reward in args.rewards:
        for scale in args.lr_scale:
            rows = []
            for seed in range(args.seeds):
                scaled = dataclasses.replace(recipe, learning_rate=recipe.learning_rate * scale)  # as lr_scale
                spec = RLSpec(model=pair.model, task=pair.rl_task, recipe=scaled, steps=steps, seed=seed,
                              reward=RewardSpec(name=reward))
                log = json.loads((materialize(spec, cache) / TRAIN_LOG).read_text())
                result = evaluate(dataclasses.replace(pair.eval, model=spec), cache)
                read = log_readouts(log)
                rows.append((result.pass_at_k(1) - base, read["clipped_fraction"], read["informative_share"],
                             strategy_readout(result).share("worked") if styles else math.nan))
            print(f"{reward:>14} lr x{scale:<5g}: pass@1 change {' '.join(f'{r[0]:+.3f}' for r in rows)}; "
                  f"clipped {np.mean([r[1] for r in rows]):.4%}; "
                  f"informative groups {np.mean([r[2] for r in rows]):.1%}"
                  + (f"; worked share {' '.join(f'{r[3]:.3f}' for r in rows)}" if styles else ""), flush=True)


if __name__ == "__main__":
    main()
