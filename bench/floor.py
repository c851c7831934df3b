"""The compute floor of an organism GRPO step and the batched engine's cost against it.

The floor is the step's arithmetic at this machine's matrix-multiply speed: the FLOPs of sampling, of
TRL's rollout-time log-probability pass and of the training forward and backward (2x the forward) over
the tokens the step really holds (prompts plus the mean completion length measured by the run, no padding),
divided by the measured fp32 one-thread throughput of the organism's matrix shapes (forward and backward).

``python -m bench.floor --runs R --steps S --cache DIR --spec JSON [--device cuda]`` trains R organism runs
side by side with the batched engine in a fresh process (after a 2-step warm-up) and prints, as one JSON
line, seconds per step by wall clock (from the runs' logs) and by CPU time (the whole call, setup included:
on a shared machine CPU time is the steadier figure), the mean completion length and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PASSES = 5  # forward-pass equivalents per step: sampling 1, rollout-time log-probabilities 1, training 3


def forward_flops_per_token(arch: Any, context: float) -> float:
    """FLOPs of one token through the organism's forward pass: the matrix products (q/k/v, o, gate/up, down,
    tied head) and the attention over ``context`` keys."""
    h, i = arch.hidden, arch.intermediate
    per_layer = 2 * (h * 3 * h + h * h + h * 2 * i + i * h) + 2 * 2 * h * context
    return arch.layers * per_layer + 2 * h * arch.vocab


def step_flops(arch: Any, recipe: Any, prompt_tokens: float, completion_tokens: float) -> float:
    """FLOPs of one optimizer step: ``prompts_per_step x num_generations`` sequences of the given mean lengths."""
    tokens = prompt_tokens + completion_tokens
    sequences = recipe.prompts_per_step * recipe.num_generations
    return PASSES * sequences * tokens * forward_flops_per_token(arch, (tokens + 1) / 2)


def matmul_throughput(arch: Any, tokens: int, repeats: int = 5) -> dict[str, float]:
    """fp32 one-thread GFLOP/s of the organism's matrix products over ``tokens`` rows, forward (x @ W) and
    backward (dY @ W^T, X^T @ dY), by wall and by CPU time (best of ``repeats``)."""
    import torch

    torch.set_num_threads(1)
    h, i, v = arch.hidden, arch.intermediate, arch.vocab
    shapes = []
    for k, n in ((h, 3 * h), (h, h), (h, 2 * i), (i, h), (h, v)):
        shapes += [(tokens, k, n), (tokens, n, k), (k, tokens, n)]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    pairs = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        for a, b in pairs:
            torch.mm(a, b)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {"gflops_wall": flops / min(wall) / 1e9, "gflops_cpu": flops / min(cpu) / 1e9}


def prompt_tokens(spec: Any) -> float:
    """Mean prompt length in tokens over the task's training pool."""
    from harness.models.organism import alphabet, build_tokenizer
    from harness.rl.runner import training_pool
    from harness.tasks import get_task

    task = get_task(spec.task)
    tokenizer = build_tokenizer(alphabet(spec.model))
    prompts = [task.prompt(p) for p in training_pool(spec)]
    return sum(len(ids) for ids in tokenizer(text=prompts)["input_ids"]) / len(prompts)


def measure(spec: Any, runs: int, cache_root: Path, device: str = "cpu", timeout: float = 3600) -> dict[str, float]:
    """Train ``runs`` seeds of ``spec`` side by side in a fresh process (see ``main``); its figures."""
    command = [sys.executable, "-m", "bench.floor", "--runs", str(runs), "--steps", str(spec.steps),
               "--cache", str(cache_root), "--device", device, "--spec", json.dumps(spec.to_dict())]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"bench.floor with {runs} runs failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    import dataclasses

    from harness.cache import Cache
    from harness.jobs import inputs_for, materialize
    from harness.rl import batched
    from harness.rl.runner import select_problems
    from harness.specs import from_dict

    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--spec", required=True, help="the RLSpec (JSON) whose seeds 0..runs-1 are trained")
    args = parser.parse_args()
    cache = Cache(args.cache)
    spec = from_dict(json.loads(args.spec))
    specs = [dataclasses.replace(spec, seed=seed, steps=args.steps) for seed in range(args.runs)]
    base = materialize(spec.model, cache)
    problems = [select_problems(s, inputs_for(s, cache)) for s in specs]

    def train(group: list, name: str) -> tuple[float, list[list[dict]]]:
        """CPU seconds of train_group and the runs' logs."""
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            outs = [root / f"{name}-out-{r}" for r in range(len(group))]
            started = time.process_time()
            batched.train_group(group, base, outs, [root / f"{name}-work-{r}" for r in range(len(group))],
                                problems=problems[:len(group)], device=args.device)
            return time.process_time() - started, [json.loads((o / "train_log.json").read_text()) for o in outs]

    train([dataclasses.replace(s, steps=2) for s in specs], "warm-up")  # lazy imports and first-call costs
    cpu, logs = train(specs, "timed")
    lengths = [row["completions/mean_length"] for log in logs for row in log if "completions/mean_length" in row]
    steps = len(logs[0])
    print(json.dumps({"runs": args.runs, "steps": steps, "s_per_step": logs[0][-1]["wall"] / steps,
                      "cpu_s_per_step": cpu / steps, "mean_completion_length": sum(lengths) / len(lengths),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
