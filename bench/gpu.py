"""The GPU path end to end on CUDA: organism pretraining, evaluation and a short GRPO run, with timings; then
the batched engine's throughput with 1, 8, 64 and 256 runs side by side on the GPU against 8 on one CPU core
(issue 14's target: >= 50x the CPU per-run throughput at >= 64 runs).

python -m bench.gpu --out FILE.json   (run by scripts/gpu-check.sh on a GPU machine)
"""

from __future__ import annotations

import argparse
import json
import time

from harness.cache import Cache
from harness.jobs import evaluate, materialize
from harness.loading import load_recipe
from harness.specs import EvalSpec, MixComponent, OrganismSpec, RLSpec, TaskSpec


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "no CUDA device"
    cache = Cache()
    task = TaskSpec(family="arithmetic", params={"digits": [1, 2]})
    organism = OrganismSpec(mix=(MixComponent(task=task),), steps=600)
    recipe, _ = load_recipe("organism")
    rl = RLSpec(model=organism, task=task, recipe=recipe, steps=20)
    figures: dict[str, float | str] = {"device": torch.cuda.get_device_name(0)}
    for name, spec in (("pretrain_600_steps", organism),
                       ("eval_base_256x64", EvalSpec(model=organism, task=task)),
                       ("rl_20_steps", rl),
                       ("eval_rl_256x64", EvalSpec(model=rl, task=task))):
        started = time.time()
        entry = materialize(spec, cache)
        figures[f"{name}_s"] = round(time.time() - started, 2)
        print(f"{name}: {figures[f'{name}_s']} s -> {entry.name[:12]}", flush=True)
    before = evaluate(EvalSpec(model=organism, task=task), cache)
    after = evaluate(EvalSpec(model=rl, task=task), cache)
    figures.update({"base_pass@1": before.pass_at_k(1), "rl_pass@1": after.pass_at_k(1),
                    "base_pass@64": before.pass_at_k(64), "rl_pass@64": after.pass_at_k(64)})
    figures.update(engine_throughput(rl))
    print(json.dumps(figures, indent=1))
    with open(args.out, "w") as f:
        json.dump(figures, f, indent=1)


GPU_RUNS = (1, 8, 64, 256)
STEPS = 10


def engine_throughput(rl: RLSpec) -> dict[str, float]:
    """Run-steps per second of the batched engine: ``GPU_RUNS`` runs on CUDA and 8 on one CPU core."""
    import dataclasses

    from bench import floor

    spec = dataclasses.replace(rl, recipe=dataclasses.replace(rl.recipe, engine="batched"), steps=STEPS)
    out: dict[str, float] = {}
    cpu = floor.measure(spec, 8, Cache().root)
    out["cpu_8_run_steps_per_s"] = 8 / cpu["s_per_step"]
    for runs in GPU_RUNS:
        found = floor.measure(spec, runs, Cache().root, device="cuda")
        out[f"cuda_{runs}_run_steps_per_s"] = runs / found["s_per_step"]
        out[f"cuda_{runs}_vs_cpu_per_run"] = out[f"cuda_{runs}_run_steps_per_s"] / out["cpu_8_run_steps_per_s"]
        print(f"batched engine, {runs} runs on CUDA: {out[f'cuda_{runs}_run_steps_per_s']:.1f} run-steps/s, "
              f"{out[f'cuda_{runs}_vs_cpu_per_run']:.1f}x one CPU core's", flush=True)
    return out


if __name__ == "__main__":
    main()
