"""Calibrate an organism recipe by the update-size rule, on the standard-RL control alone (DESIGN §4).

The rule transfers the paper's update size, not its fastest learning: Adam moves every weight by
about ``lr`` per step, so an update's size relative to the model is ``lr / rms(W)``. The paper's
runs take lr 1e-6 on Qwen2.5-7B, whose weights are taken to have the scale of its initialiser
(``initializer_range`` 0.02 in its config; an assumption: no 7B weights are reachable here), so

    lr_organism = lr_paper * rms(W_organism) / 0.02

with rms over every weight matrix of the calibration pair's base organism. The step budget is then
the smallest of ``--steps`` at which standard RL's mean pass@1 gain reaches 90% of the gain at the
largest budget (the gain has levelled off). Nothing here looks at any other variant.

Usage: python scripts/calibrate.py fixtures/organisms.yaml arith-clean --recipe organism \
           --paper-lr 1e-6 --steps 100 200 400 800 --seeds 2
Prints the rule's numbers (and the --lr that overrides it) and one row per budget (pass@1 and pass@K gains
per seed, the clipped-token fraction, the share of informative groups); pass the lr it prints to the recipe
file by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from harness.cache import Cache
from harness.jobs import evaluate, materialize
from harness.loading import load_fixtures, load_recipe
from harness.models import load_model
from harness.rl.runner import TRAIN_LOG
from harness.specs import RLSpec
from harness.verdicts import log_readouts

REFERENCE_RMS = 0.02  # Qwen2.5-7B's initializer_range: the assumed scale of the paper's weights
LEVELLED = 0.9  # a budget has levelled off when its gain reaches this share of the largest budget's


def weight_rms(model) -> float:
    """Root mean square over every weight matrix (embeddings included; norms and biases left out)."""
    values = np.concatenate([p.detach().float().flatten().numpy() for p in model.parameters() if p.ndim == 2])
    return float(np.sqrt(np.mean(values ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs")
    parser.add_argument("pair")
    parser.add_argument("--recipe", default=None, help="recipe preset to scale (default: the pair's)")
    parser.add_argument("--paper-lr", type=float, default=1e-6, help="the source recipe's learning rate")
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 200, 400, 800])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--lr", type=float, default=None, help="skip the rule and use this learning rate")
    args = parser.parse_args()

    pair = next((p for p in load_fixtures(args.pairs) if p.id == args.pair), None)
    if pair is None:
        parser.error(f"{args.pairs}: no pair {args.pair!r}")
    recipe = load_recipe(args.recipe)[0] if args.recipe else pair.recipe
    cache = Cache()
    model, _ = load_model(pair.model, materialize(pair.model, cache))
    rms = weight_rms(model)
    rule = float(f"{args.paper_lr * rms / REFERENCE_RMS:.2g}")
    lr = args.lr or rule
    print(f"{pair.id}: weight rms {rms:.4f}; rule lr = {args.paper_lr:g} x {rms:.4f} / {REFERENCE_RMS} = {rule:g}"
          + (f"; running at --lr {lr:g}" if args.lr else ""), flush=True)
    recipe = dataclasses.replace(recipe, learning_rate=lr)
    base = evaluate(pair.eval, cache)
    k = pair.alignment_k
    print(f"base pass@1 {base.pass_at_k(1):.3f} pass@{k} {base.pass_at_k(k):.3f}", flush=True)
    gains: dict[int, float] = {}
    for steps in args.steps:
        rows = []
        for seed in range(args.seeds):
            spec = RLSpec(model=pair.model, task=pair.rl_task, recipe=recipe, steps=steps, seed=seed)
            log = json.loads((materialize(spec, cache) / TRAIN_LOG).read_text())
            after = evaluate(dataclasses.replace(pair.eval, model=spec), cache)
            read = log_readouts(log)
            rows.append((after.pass_at_k(1) - base.pass_at_k(1), after.pass_at_k(k) - base.pass_at_k(k),
                         read["clipped_fraction"], read["informative_share"]))
        gains[steps] = float(np.mean([r[0] for r in rows]))
        print(f"steps {steps:5d}: pass@1 gain {' '.join(f'{r[0]:+.3f}' for r in rows)} (mean {gains[steps]:+.3f}); "
              f"pass@{k} {' '.join(f'{r[1]:+.3f}' for r in rows)}; clipped {np.mean([r[2] for r in rows]):.4%}; "
              f"informative groups {np.mean([r[3] for r in rows]):.1%}", flush=True)
    top = gains[max(gains)]
    levelled = min((s for s, g in gains.items() if top > 0 and g >= LEVELLED * top), default=max(gains))
    print(f"levelled off at {levelled} steps (the first budget with >= {LEVELLED:.0%} of the gain at "
          f"{max(gains)} steps)")


if __name__ == "__main__":
    main()
