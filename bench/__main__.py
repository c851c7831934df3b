"""Benchmarks: the harness against baselines measured in the same run, printed as ratios and written as JSON.

python -m bench [--out bench/results/latest.json] [--suite-cold [--suite-k EXPR]] [--scheduler [--slice EXPR]]

1. evaluation throughput: the harness's evaluation job vs a plain ``model.generate`` loop (same organism,
   problems, n, seed); 2. RL step time: the harness runner vs a stock TRL GRPOTrainer with identical
   settings; 3. the claims suite warm (all cached), and cold with 1 and 2 workers when --suite-cold is
   given (hours; --suite-k selects part of it); 4. loading a cached RL result vs computing it, and a
   cached evaluation from its stored scores vs re-scoring its generations; 5. peak RSS of the bench
   process and of the suite's workers (the largest, from the run the claims plugin records);
6. the organism RL step's compute floor (bench/floor.py) and, as multiples of it, the TRL path and the
   batched engine with 1 and 8 runs; per-run throughput of 8 batched runs vs TRL; peak RSS of a batched
   process of 8 runs vs 1; on CUDA, steps per second for 1, 8, 64 and 256 batched runs.
7. with
   --scheduler, a cold slice of the suite (--slice, --slice-budget) run by the scheduler on 2 local
   workers, on a local 2-CPU Ray instance and on 1 worker, how many jobs ran at once (from the
   manifests' start and end), and ``--plan``'s estimate of the slice's core-seconds against the measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.cache import Cache
from harness.jobs import materialize
from harness.loading import load_recipe
from harness.specs import EvalSpec, MixComponent, OrganismSpec, RLSpec, TaskSpec

TASK = TaskSpec(family="arithmetic", params={"digits": [1, 2]})
ORGANISM = OrganismSpec(mix=(MixComponent(task=TASK),), steps=300)
RL_STEPS = 50  # two resume checkpoints, as a standard run writes one per 25 steps
CUDA_RUNS = (1, 8, 64, 256)
STANDARD_FINDINGS = "fixtures/findings/organisms-standard.yaml"  # `make claims`'s: its budget, seeds and cap
CUDA_STEPS = 10

# The scheduler's slice: 24 tests, 68 jobs, none of them among the runs the built-in cost model was fitted to
SLICE = "(transfer-low or arith-contam) and (polarity or one_shot)"


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def eval_throughput(cache: Cache) -> dict[str, float]:
    """Completions per second: the harness job vs a plain generate loop over the same prompts."""
    import torch

    from harness.determinism import seed_everything
    from harness.evaluate import eval_problems
    from harness.models import load_model

    spec = EvalSpec(model=ORGANISM, task=TASK, num_problems=256, n=64, max_new_tokens=6, seed=7)
    materialize(dataclasses.replace(spec, seed=8), cache)  # warm-up: the first generate in a process is slow
    harness_s, _ = timed(lambda: materialize(spec, cache))
    seed_everything(7)
    model, tokenizer = load_model(ORGANISM, materialize(ORGANISM, cache))
    prompts = [p.question for p in eval_problems(spec)]

    def plain() -> None:
        with torch.inference_mode():
            for start in range(0, len(prompts), 64):
                enc = tokenizer(prompts[start:start + 64], return_tensors="pt", padding=True)
                model.generate(**enc, do_sample=True, top_k=0, num_return_sequences=64, max_new_tokens=6,
                               pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)

    plain_s, _ = timed(plain)
    completions = spec.num_problems * spec.n
    # the harness job also decodes greedily once per problem and writes the generations
    return {"harness_completions_per_s": completions / harness_s, "plain_completions_per_s": completions / plain_s,
            "ratio": plain_s / harness_s}


def rl_step_time(cache: Cache) -> dict[str, float]:
    """Seconds per optimizer step of ``trainer.train()``: the harness runner vs stock TRL GRPOTrainer, same config.

    A short harness run first pays the imports and lazy initialisation that would otherwise fall on
    whichever side runs first. Both sides are timed from the start of training to the last step's log
    (the harness's train_log wall clock); the harness also writes its logs and resume checkpoints.
    """
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from harness.determinism import seed_everything
    from harness.models import load_model
    from harness.rl.rewards import ground_truth

    class TrainingClock(TrainerCallback):
        """Seconds from the start of training to the last step's log, as the harness's train_log records them."""

        def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[override]
            self.started = time.time()

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[override]
            self.last_log = time.time() - self.started
    from harness.rl.runner import grpo_config, training_pool
    from harness.tasks import get_task

    recipe = dataclasses.replace(load_recipe("organism-v1")[0], engine="trl")  # the TRL path against stock TRL
    materialize(RLSpec(model=ORGANISM, task=TASK, recipe=recipe, steps=2, seed=2), cache)  # warm-up
    spec = RLSpec(model=ORGANISM, task=TASK, recipe=recipe, steps=RL_STEPS)
    harness_s, entry = timed(lambda: materialize(spec, cache))
    log = json.loads((Path(entry) / "train_log.json").read_text())
    harness_train_s = log[-1]["wall"]

    seed_everything(0)
    task = get_task(TASK)
    model, tokenizer = load_model(ORGANISM, materialize(ORGANISM, cache), training=True)
    rows = [{"prompt": p.question, "question": p.question, "answer": p.answer, "uid": p.uid}
            for p in training_pool(spec)]
    reward = ground_truth(task)
    reward.__name__ = "ground_truth"
    with tempfile.TemporaryDirectory() as work:
        config = grpo_config(spec, Path(work))
        config.save_strategy = "no"  # stock TRL keeps no resume checkpoints; the harness does
        clock = TrainingClock()
        trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=[reward], args=config,
                              train_dataset=Dataset.from_list(rows), callbacks=[clock])
        trainer.train()
    stock_train_s = clock.last_log
    lengths = [row["completions/mean_length"] for row in log if "completions/mean_length" in row]
    return {"harness_s_per_step": harness_train_s / RL_STEPS, "stock_trl_s_per_step": stock_train_s / RL_STEPS,
            "overhead": harness_train_s / stock_train_s - 1, "harness_job_s_incl_setup_and_saving": harness_s,
            "mean_completion_length": sum(lengths) / len(lengths)}


def rl_floor(cache: Cache, trl: dict[str, float]) -> dict[str, object]:
    """The organism RL step's FLOP floor, today's TRL path and the batched engine (1 and 8 runs, each in a fresh
    process) as multiples of it, and on CUDA the batched engine's steps per second for 1 to 256 runs."""
    import torch

    from bench import floor
    from harness.models.stacked import Architecture

    # the TRL row's recipe on the batched engine: the two rows compare like with like
    recipe = dataclasses.replace(load_recipe("organism-v1")[0], engine="batched")
    spec = RLSpec(model=ORGANISM, task=TASK, recipe=recipe, steps=RL_STEPS)
    arch = Architecture.read(materialize(ORGANISM, cache))
    batched_1, batched_8 = floor.measure(spec, 1, cache.root), floor.measure(spec, 8, cache.root)
    prompt = floor.prompt_tokens(spec)
    completion = batched_8["mean_completion_length"]  # the floor of the steps timed: their own lengths
    flops = floor.step_flops(arch, recipe, prompt, completion)
    tokens = round(recipe.prompts_per_step * recipe.num_generations * (prompt + completion))
    throughput = floor.matmul_throughput(arch, tokens)
    out: dict[str, object] = {"prompt_tokens": prompt, "completion_tokens": completion, "step_gflop": flops / 1e9,
                              **throughput, "floor_s": flops / (throughput["gflops_wall"] * 1e9),
                              "floor_cpu_s": flops / (throughput["gflops_cpu"] * 1e9),
                              "trl_completion_tokens": trl["mean_completion_length"]}
    out["batched_1"], out["batched_8"] = batched_1, batched_8
    if torch.cuda.is_available():
        short = dataclasses.replace(spec, steps=CUDA_STEPS)
        out["cuda"] = {str(runs): floor.measure(short, runs, cache.root, device="cuda") for runs in CUDA_RUNS}
    return out


def cache_load(cache: Cache) -> dict[str, float]:
    """Loading a cached RL result (a fresh Cache, so checksums are verified) vs computing it."""
    recipe, _ = load_recipe("organism")
    spec = RLSpec(model=ORGANISM, task=TASK, recipe=recipe, steps=RL_STEPS, seed=1)
    compute_s, _ = timed(lambda: materialize(spec, cache))
    load_s, _ = timed(lambda: materialize(spec, Cache(cache.root)))
    return {"compute_s": compute_s, "load_s": load_s, "ratio": compute_s / load_s}


def eval_load(cache: Cache) -> dict[str, float]:
    """Loading a cached evaluation from its stored scores vs re-scoring its generations (the warm path)."""
    from harness.evaluate import GENERATIONS, _load, score

    spec = EvalSpec(model=ORGANISM, task=TASK, num_problems=256, n=64, max_new_tokens=6, seed=7)
    entry = materialize(spec, cache)
    stored_s, _ = timed(lambda: _load(spec, entry))
    rescored_s, _ = timed(lambda: score(spec, json.loads((entry / GENERATIONS).read_text())))
    return {"stored_scores_s": stored_s, "rescoring_s": rescored_s, "ratio": rescored_s / stored_s}


def recorded_run(cache_root: Path) -> dict:
    """The latest run the claims plugin recorded in a cache (verdicts, jobs, peak RSS per worker)."""
    from harness.report import latest_path, load_run

    return load_run(latest_path(cache_root))


def warn_if_suite_cold(budget: str) -> None:
    """The warm row runs the suite on the default cache: if no run of this budget is recorded there, say first
    that it will compute the suite cold, with the planner's estimate of how long."""
    runs = Cache().root / "runs"
    recorded = [json.loads(p.read_text()).get("budget") for p in runs.glob("run-*.json")] if runs.is_dir() else []
    if budget in recorded:
        return
    recorded = [f"--findings={STANDARD_FINDINGS}"] if budget == "standard" else []
    shown = subprocess.run([sys.executable, "-m", "pytest", "claims/", "-q", "-p", "no:cacheprovider", "--budget",
                            budget, *recorded, "--plan"], capture_output=True, text=True)
    estimate = next((line.strip() for line in shown.stdout.splitlines() if "on 2 workers" in line),
                    f"no estimate: pytest --plan exited {shown.returncode}")
    print(f"WARNING: no claims run with --budget {budget} is recorded in {Cache().root}: the 'suite warm' row "
          f"will first compute the whole {budget} suite cold (the planner: {estimate}). "
          "Interrupt now to skip it, or run the suite once beforehand.", file=sys.stderr, flush=True)


def suite(args: argparse.Namespace) -> dict[str, float]:
    """Wall time of the claims suite warm (everything cached), and cold with 1 and 2 workers if asked."""
    out: dict[str, float] = {}
    base = [sys.executable, "-m", "pytest", "claims/", "-q", "-p", "no:cacheprovider", "--budget", args.budget]
    env = {**os.environ, "CLAIMS_PROGRESS": "0"}
    if args.suite_cold:
        select = ["-k", args.suite_k] if args.suite_k else []
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as cold:
                out[f"cold_{workers}_workers_s"], _ = timed(lambda c=cold, w=workers: subprocess.run(
                    [*base, *select, "-n", str(w), "--workers", str(w), "--claims-cache", c], env=env,
                    capture_output=True))
                out[f"cold_{workers}_workers_peak_rss_mb"] = max(recorded_run(Path(cold))["peak_rss_mb"].values())
        out["speedup_2_workers"] = out["cold_1_workers_s"] / out["cold_2_workers_s"]
    # as `make claims` runs it: the recorded findings fix the seed looks, so a warm cache stays warm
    recorded = [f"--findings={STANDARD_FINDINGS}"] if args.budget == "standard" else []
    out["warm_2_workers_s"], _ = timed(lambda: subprocess.run([*base, "-n", "2", *recorded], env=env,
                                                              capture_output=True))
    out["warm_2_workers_peak_rss_mb"] = max(recorded_run(Cache().root)["peak_rss_mb"].values())
    return out


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def windows(cache_root: Path) -> list[tuple[float, float]]:
    """(start, end) of every unit of work computed into a cache, from the manifests: a job, or a group of jobs
    computed together (its members' manifests nest within one window; counted once, the outermost)."""
    from harness.jobs import group_key
    from harness.specs import from_dict

    found: dict[tuple, tuple[float, float]] = {}
    for path in cache_root.glob("??/*/manifest.json"):
        manifest = json.loads(path.read_text())
        start, end = manifest["started"], manifest["started"] + manifest["seconds"]
        if manifest.get("group_size", 1) > 1:
            unit = (group_key(from_dict(manifest["spec"])), round(end))  # the members end together
            earliest = found.get(unit, (start, end))
            found[unit] = (min(start, earliest[0]), max(end, earliest[1]))
        else:
            found[(path,)] = (start, end)
    return list(found.values())


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of jobs computing at the same moment."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def planned_core_seconds(base: list[str], cache: Path, env: dict[str, str]) -> float:
    """The CPU core-seconds ``--plan`` estimates for the jobs still to run (its total row)."""
    shown = subprocess.run([*base, "--plan", "--claims-cache", str(cache)], env=env, capture_output=True, text=True)
    total = next(line for line in shown.stdout.splitlines() if line.strip().startswith("total"))
    return float(total.split()[4].replace(",", ""))


def scheduler(args: argparse.Namespace) -> dict[str, float]:
    """A cold slice run by the scheduler: 2 local workers, a local 2-CPU Ray instance and 1 worker."""
    out: dict[str, float] = {}
    base = [sys.executable, "-m", "pytest", "claims/", "-q", "-p", "no:cacheprovider", "--budget", args.slice_budget,
            "-k", args.slice]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "CLAIMS_PROGRESS": "0", "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(root)}
        out["plan_core_s"] = planned_core_seconds(base, root / "plan", env)
        runs = {"2_workers": ["--workers", "2"], "ray_2_cpus": ["--executor", "ray", "--workers", "2"],
                "1_worker": ["--workers", "1"]}
        for label, options in runs.items():
            cache = root / label
            out[f"cold_{label}_s"], _ = timed(lambda c=cache, o=options: subprocess.run(
                [*base, *o, "--claims-cache", str(c)], env=env, capture_output=True))
            spans = windows(cache)
            out[f"{label}_jobs"] = len(spans)
            out[f"{label}_most_at_once"] = most_at_once(spans)
            out[f"{label}_job_core_s"] = sum(end - start for start, end in spans)
    out["speedup_2_workers"] = out["cold_1_worker_s"] / out["cold_2_workers_s"]
    out["speedup_ray"] = out["cold_1_worker_s"] / out["cold_ray_2_cpus_s"]
    out["plan_error"] = out["plan_core_s"] / out["1_worker_job_core_s"] - 1
    return out


def table(results: dict) -> str:
    """The measurements as a Markdown table: harness, baseline, ratio, and the issue's target met or missed."""
    ev, rl, load, scores, run = (results[k] for k in ("eval_throughput", "rl_step", "cache_load", "eval_load", "suite"))
    rows = [
        ("evaluation, completions/s", f"{ev['harness_completions_per_s']:,.0f}",
         f"{ev['plain_completions_per_s']:,.0f}", f"{ev['ratio']:.2f}x",
         ">= plain generate: " + verdict(ev["ratio"] >= 1)),
        (f"RL, s/step ({RL_STEPS} steps)", f"{rl['harness_s_per_step']:.3f}", f"{rl['stock_trl_s_per_step']:.3f}",
         f"{rl['overhead']:+.1%}", "overhead <= 10%: " + verdict(rl["overhead"] <= 0.10)),
        ("cached RL result, load vs compute (s)", f"{load['load_s']:.4f}", f"{load['compute_s']:.2f}",
         f"{load['ratio']:,.0f}x", ""),
        ("cached evaluation, stored scores vs re-scoring (s)", f"{scores['stored_scores_s']:.4f}",
         f"{scores['rescoring_s']:.3f}", f"{scores['ratio']:.1f}x", ""),
        ("suite warm, 2 workers (s)", f"{run['warm_2_workers_s']:.1f}", "", "", "<= 30 s: " +
         verdict(run["warm_2_workers_s"] <= 30)),
    ]
    if "cold_2_workers_s" in run:
        part = f" -k {results['cold_suite_k']}" if results["cold_suite_k"] else ""
        target = "" if part else "<= 15 min: " + verdict(run["cold_2_workers_s"] <= 15 * 60) + "; "
        rows.append((f"suite{part} cold, 2 workers vs 1 (s)", f"{run['cold_2_workers_s']:.0f}",
                     f"{run['cold_1_workers_s']:.0f}", f"{run['speedup_2_workers']:.2f}x",
                     target + "speedup >= 1.6x: " + verdict(run["speedup_2_workers"] >= 1.6)))
        rows.append(("peak RSS per worker, cold 2 workers (MB)", f"{run['cold_2_workers_peak_rss_mb']:.0f}",
                     "", "", ""))
    rows.append(("peak RSS per worker, warm 2 workers (MB)", f"{run['warm_2_workers_peak_rss_mb']:.0f}", "", "", ""))
    if "scheduler" in results:
        sched, part = results["scheduler"], f"-k {results['slice']} at {results['slice_budget']}"
        rows.append((f"cold {part}, 2 local workers vs 1 (s)", f"{sched['cold_2_workers_s']:.0f}",
                     f"{sched['cold_1_worker_s']:.0f}", f"{sched['speedup_2_workers']:.2f}x",
                     "speedup >= 1.85x: " + verdict(sched["speedup_2_workers"] >= 1.85)))
        rows.append((f"cold {part}, local 2-CPU Ray vs 1 local worker (s)", f"{sched['cold_ray_2_cpus_s']:.0f}",
                     f"{sched['cold_1_worker_s']:.0f}", f"{sched['speedup_ray']:.2f}x",
                     f"jobs at once {sched['ray_2_cpus_most_at_once']} (>= 2: "
                     + verdict(sched["ray_2_cpus_most_at_once"] >= 2) + ")"))
        rows.append((f"--plan estimate vs measured job core-s, {part}", f"{sched['plan_core_s']:.0f}",
                     f"{sched['1_worker_job_core_s']:.0f}", f"{sched['plan_error']:+.0%}",
                     "within 30%: " + verdict(abs(sched["plan_error"]) <= 0.30)))
    rows.append(("peak RSS of this process (MB)", f"{results['peak_rss_mb']:.0f}", "", "", ""))
    rows += floor_rows(results["rl_floor"], rl)
    lines = ["| measure | harness | baseline | ratio | target |", "|---|---|---|---|---|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def floor_rows(fl: dict, rl: dict) -> list[tuple[str, ...]]:
    """Rows of the RL floor: step costs as multiples of the floor, batched vs TRL throughput, RSS, CUDA.

    Multiples are by wall clock and, for the batched engine, by CPU time against the floor at the CPU-time
    matmul speed too; the target is judged on CPU time, which other processes on a shared machine disturb less.
    """
    floor_s, floor_cpu, one, eight = fl["floor_s"], fl["floor_cpu_s"], fl["batched_1"], fl["batched_8"]
    per_run_8, per_run_8_cpu = eight["s_per_step"] / 8, eight["cpu_s_per_step"] / 8
    rows = [
        (f"RL step floor (ms): {fl['step_gflop']:.2f} GFLOP ({fl['prompt_tokens']:.1f}+{fl['completion_tokens']:.1f} "
         f"tokens/sequence) at {fl['gflops_wall']:.0f} GFLOP/s wall, {fl['gflops_cpu']:.0f} by CPU time",
         f"{floor_s * 1000:.1f}", f"{floor_cpu * 1000:.1f} (CPU)", "", ""),
        ("RL step vs floor: TRL path, s/step", f"{rl['harness_s_per_step']:.3f}", "",
         f"{rl['harness_s_per_step'] / floor_s:.1f}x floor", ""),
        ("RL step vs floor: batched, 1 run, s/step", f"{one['s_per_step']:.3f}", f"{one['cpu_s_per_step']:.3f} (CPU)",
         f"{one['s_per_step'] / floor_s:.2f}x floor, {one['cpu_s_per_step'] / floor_cpu:.2f}x by CPU", ""),
        ("RL step vs floor: batched, 8 runs, s/run-step", f"{per_run_8:.3f}", f"{per_run_8_cpu:.3f} (CPU)",
         f"{per_run_8 / floor_s:.2f}x floor, {per_run_8_cpu / floor_cpu:.2f}x by CPU",
         "<= 1.5x floor (CPU): " + verdict(per_run_8_cpu <= 1.5 * floor_cpu)),
        ("RL per-run throughput, batched 8 vs TRL (run-steps/s)", f"{1 / per_run_8:.1f}",
         f"{1 / rl['harness_s_per_step']:.1f}", f"{rl['harness_s_per_step'] / per_run_8:.2f}x",
         ">= 2x: " + verdict(rl["harness_s_per_step"] / per_run_8 >= 2)),
        ("peak RSS, batched process of 8 runs vs 1 (MB)", f"{eight['peak_rss_mb']:.0f}", f"{one['peak_rss_mb']:.0f}",
         f"{eight['peak_rss_mb'] / one['peak_rss_mb']:.2f}x",
         "<= 2x: " + verdict(eight["peak_rss_mb"] <= 2 * one["peak_rss_mb"])),
    ]
    if "cuda" not in fl:
        rows.append(("RL batched on CUDA", "no CUDA device", "", "", ""))
        return rows
    for runs, m in fl["cuda"].items():
        per_run = int(runs) / m["s_per_step"]
        ratio = per_run * per_run_8
        target = ">= 50x CPU per run: " + verdict(ratio >= 50) if int(runs) >= 64 else ""
        rows.append((f"RL batched on CUDA, {runs} runs: steps/s (run-steps/s) vs CPU batched 8 run-steps/s",
                     f"{1 / m['s_per_step']:.1f} ({per_run:.0f})", f"{1 / per_run_8:.1f}", f"{ratio:.1f}x", target))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--out", default="bench/results/latest.json")
    parser.add_argument("--budget", default="standard")
    parser.add_argument("--suite-cold", action="store_true", help="also time the suite cold (long)")
    parser.add_argument("--suite-k", default="", help="pytest -k expression selecting the cold suite's tests")
    parser.add_argument("--scheduler", action="store_true",
                        help="also time a cold slice on the scheduler's 1 and 2 local workers and a local Ray instance")
    parser.add_argument("--slice", default=SLICE,
                        help=f"pytest -k expression of the scheduler's slice (default: {SLICE})")
    parser.add_argument("--slice-budget", default="standard",
                        help="budget of the scheduler's slice (default: standard)")
    args = parser.parse_args()
    os.environ.setdefault("CLAIMS_PROGRESS", "0")
    results: dict[str, object] = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                                  "time": time.strftime("%Y-%m-%d %H:%M:%S"), "cold_suite_k": args.suite_k,
                                  "slice": args.slice, "slice_budget": args.slice_budget}
    warn_if_suite_cold(args.budget)
    with tempfile.TemporaryDirectory() as root:
        cache = Cache(root)
        results["eval_throughput"] = eval_throughput(cache)
        results["rl_step"] = rl_step_time(cache)
        results["cache_load"] = cache_load(cache)
        results["eval_load"] = eval_load(cache)
        results["rl_floor"] = rl_floor(cache, results["rl_step"])
    results["suite"] = suite(args)
    if args.scheduler:
        results["scheduler"] = scheduler(args)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"{results['machine']}, {results['time']}")
    print(table(results))


if __name__ == "__main__":
    main()
