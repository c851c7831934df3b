"""The RL job: GRPO through TRL from a base model on a task's train split.

Writes the trained model (Hugging Face layout), ``train_log.json`` (one row per step: reward,
fraction of zero-variance groups, entropy, grad norm, clip ratio, wall time) and
``train_accuracy.json`` (per problem, its group accuracy each time it was drawn, for one-shot
selection by historical variance). A killed run resumes from its last checkpoint, kept in
``<cache>/work/<key>/`` until the entry is published.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from harness.cache import Cache
from harness.specs import DataSpec, PolaritySpec, RewardSpec, RLSpec, SpecError
from harness.tasks import get_task
from harness.tasks.base import Problem, Task, seeded_rng

TRAIN_LOG = "train_log.json"
TRAIN_ACCURACY = "train_accuracy.json"
PROBLEM_SEED = 0  # the training pool is the same for every run on a task
RESUME_EVERY = 25  # fewest steps between resume checkpoints: a shorter run just starts again
# the metrics of a train_log.json row besides step and wall (both engines)
LOGGED = ("reward", "reward_std", "frac_reward_zero_std", "entropy", "grad_norm", "loss",
          "clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean", "completions/mean_length")


def training_pool(spec: RLSpec) -> list[Problem]:
    """``pool_size`` train problems, or the whole train split where it holds fewer (1-digit arithmetic: 86)."""
    task = get_task(spec.task)
    return task.problems("train", min(spec.data.pool_size, task.available("train")), seed=PROBLEM_SEED)


def historical_variance(spec: RLSpec, cache: Cache) -> list[str]:
    """Problem uids by decreasing variance of their training accuracy in the full-set ground-truth run.

    Wang et al. take the variance of a problem's accuracy across the epochs of that run. A short run
    (the smoke budget) may draw no problem twice; the variance is then that of the correctness of
    each problem's sampled completions in its one draw, a(1 - a) for group accuracy a.
    """
    from harness.jobs import materialize

    # exactly the standard full-set run (DataSpec defaults but the pool), so the two share one cache entry
    full = dataclasses.replace(spec, data=DataSpec(pool_size=spec.data.pool_size),
                               reward=RewardSpec(), polarity=PolaritySpec())
    history = json.loads((materialize(full, cache) / TRAIN_ACCURACY).read_text())
    variances = {uid: float(np.var(accs)) for uid, accs in history.items() if len(accs) >= 2}
    if not variances:
        variances = {uid: accs[0] * (1 - accs[0]) for uid, accs in history.items()}
    return sorted(variances, key=lambda uid: (-variances[uid], uid))


def select_problems(spec: RLSpec, cache: Cache) -> list[Problem]:
    """The problems RL trains on, repeated to the pool size when fewer (the one example fills the batch)."""
    pool = training_pool(spec)
    data: DataSpec = spec.data
    if data.selection == "full":
        return pool
    count = data.examples
    if count > len(pool) or (data.method == "index" and data.index + count > len(pool)):
        raise SpecError(f"data {data.selection} ({data.method}, index {data.index}, {count} examples) needs more "
                        f"than the {len(pool)} training problems of {spec.task.name}")
    if data.method == "index":
        chosen = pool[data.index:data.index + count]
    elif data.method == "random":
        chosen = seeded_rng("select", spec.seed).sample(pool, count)
    else:
        by_uid = {p.uid: p for p in pool}
        chosen = [by_uid[uid] for uid in historical_variance(spec, cache)[:count]]
    return [chosen[i % len(chosen)] for i in range(data.pool_size)]


def grpo_config(spec: RLSpec, output_dir: Path) -> Any:
    """TRL's GRPOConfig from the recipe, with CPU-safe settings made explicit."""
    import torch
    from trl import GRPOConfig

    r = spec.recipe
    cuda = torch.cuda.is_available()
    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=spec.steps,
        learning_rate=r.learning_rate,
        lr_scheduler_type="constant",
        weight_decay=r.weight_decay,
        max_grad_norm=r.max_grad_norm,
        per_device_train_batch_size=r.prompts_per_step * r.num_generations,
        steps_per_generation=r.steps_per_generation,
        num_generations=r.num_generations,
        num_iterations=1,
        epsilon=r.epsilon,
        epsilon_high=r.epsilon_high,
        beta=r.beta,
        loss_type=r.loss_type,
        scale_rewards=r.scale_rewards,
        temperature=r.temperature,
        top_p=r.top_p,
        max_completion_length=r.max_completion_length,
        seed=spec.seed,
        data_seed=spec.seed,
        use_cpu=not cuda,
        bf16=cuda,
        activation_checkpointing=False,  # "gradient_checkpointing" is its deprecated alias in transformers 5
        report_to="none",
        logging_steps=1,
        save_strategy="steps",
        save_steps=r.checkpoint_every or max(spec.steps // 4, RESUME_EVERY),
        save_total_limit=None if r.checkpoint_every else 1,
        save_only_model=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        use_vllm=r.use_vllm,
        vllm_mode="colocate",
    )


def _dataset(task: Task, problems: list[Problem]) -> Any:
    from datasets import Dataset

    return Dataset.from_list([{"prompt": task.prompt(p), "question": p.question, "answer": p.answer,
                               "uid": p.uid} for p in problems])


def _last_checkpoint(directory: Path) -> Path | None:
    """The latest complete checkpoint; incomplete ones (a kill during a save) are removed.

    Transformers writes a checkpoint in place and its ``trainer_state.json`` last, so a checkpoint
    without a readable one is partial: resuming from it would fail on every retry.
    """
    def complete(checkpoint: Path) -> bool:
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
        except (OSError, ValueError):  # missing, or cut off mid-write
            return False
        return True

    checkpoints = sorted(directory.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for partial in [c for c in checkpoints if not complete(c)]:
        shutil.rmtree(partial)
        checkpoints.remove(partial)
    return checkpoints[-1] if checkpoints else None


def _jsonl(path: Path, upto: int) -> list[dict]:
    """Rows of a JSON-lines log written before a kill, keeping those up to the resumed step."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["step"] <= upto]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def train(spec: RLSpec, out: Path, cache: Cache) -> dict:
    """The RL job (see the module docstring); recipes with engine "batched" go to harness.rl.batched."""
    if spec.recipe.engine == "batched":
        from harness.rl import batched

        return batched.train(spec, out, cache)
    from transformers import PrinterCallback

    from harness.determinism import seed_everything
    from harness.models import load_model
    from harness.registry import check
    from harness.rl.rewards import make_reward
    from harness.rl.trainer import LogCallback, PolarityGRPOTrainer, PolicyScorer

    check(spec)
    seed_everything(spec.seed)
    task = get_task(spec.task)
    problems = select_problems(spec, cache)
    model, tokenizer = load_model(spec.model, cache, training=True)
    model.train()
    if spec.recipe.lora_r:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=spec.recipe.lora_r, lora_alpha=2 * spec.recipe.lora_r,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))

    work = cache.root / "work" / spec.key
    work.mkdir(parents=True, exist_ok=True)
    resume = _last_checkpoint(work)
    resumed_step = int(resume.name.split("-")[1]) if resume else 0
    log_path, accuracy_path = work / "log.jsonl", work / "accuracy.jsonl"
    logged = _jsonl(log_path, resumed_step)
    _jsonl(accuracy_path, resumed_step)

    policy = PolicyScorer(tokenizer)
    reward = make_reward(spec.reward, task, seed=spec.seed, policy=policy)
    truth = make_reward(RewardSpec(), task, seed=spec.seed)

    def recorded(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        """The variant's reward, recording each group's true accuracy on the side."""
        correct = truth(prompts, completions, **columns)
        step = columns["trainer_state"].global_step + 1
        groups: dict[str, list[float]] = {}
        for uid, c in zip(columns["uid"], correct, strict=True):
            groups.setdefault(uid, []).append(c)
        with accuracy_path.open("a") as f:
            for uid, values in groups.items():
                f.write(json.dumps({"step": step, "uid": uid, "accuracy": sum(values) / len(values)}) + "\n")
        return reward(prompts, completions, **columns)

    recorded.__name__ = spec.reward.name
    callback = LogCallback(log_path, total_steps=spec.steps, wall=logged[-1]["wall"] if logged else 0.0,
                           desc=f"rl {spec.reward.name}/{spec.polarity.name} {spec.short}")
    trainer = PolarityGRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=[recorded],
                                  args=grpo_config(spec, work), train_dataset=_dataset(task, problems),
                                  callbacks=[callback], polarity=spec.polarity)
    trainer.remove_callback(PrinterCallback)  # our LogCallback shows one progress line instead
    policy.model = trainer.model
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    trained = trainer.model.merge_and_unload() if spec.recipe.lora_r else trainer.model
    trained.save_pretrained(out)
    tokenizer.save_pretrained(out)
    rows = _jsonl(log_path, spec.steps)
    (out / TRAIN_LOG).write_text(json.dumps(rows))
    history: dict[str, list[float]] = {}
    for row in _jsonl(accuracy_path, spec.steps):
        history.setdefault(row["uid"], []).append(row["accuracy"])
    (out / TRAIN_ACCURACY).write_text(json.dumps(history, sort_keys=True))
    if spec.recipe.checkpoint_every:
        for checkpoint in work.glob("checkpoint-*"):
            trained_dir = out / "checkpoints" / checkpoint.name
            trained_dir.mkdir(parents=True)
            for name in ("model.safetensors", "config.json", "adapter_model.safetensors", "adapter_config.json"):
                if (checkpoint / name).exists():
                    shutil.copy(checkpoint / name, trained_dir / name)
    shutil.rmtree(work, ignore_errors=True)
    return {"resumed_from_step": resumed_step, "vacuous": is_vacuous(rows)}


def is_vacuous(rows: list[dict]) -> bool:
    """A run in which no group ever had reward variance learned nothing by construction."""
    rollouts = [r for r in rows if "frac_reward_zero_std" in r]
    return bool(rollouts) and all(r["frac_reward_zero_std"] >= 1.0 for r in rollouts)
