"""The RL job: GRPO through TRL from a base model on a task's train split.

Writes the trained model (Hugging Face layout), ``train_log.json`` (one row per step: reward,
fraction of zero-variance groups, entropy, grad norm, clip ratio, wall time) and
``train_accuracy.json`` (per problem, its group accuracy each time it was drawn, for one-shot
selection by historical variance). A killed run resumes from its last whole checkpoint, kept in
``cache.work_dir(key)`` until the entry is published, and ends as if never interrupted: checkpoints
fall on rollout-batch boundaries and carry every generator's state (harness/rl/trainer.py). A torn
log line is dropped; a checkpoint cut short or with damaged weights is discarded, and the run
resumes from an earlier one or starts again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.cache import out_of_space
from harness.specs import DataSpec, EvalSpec, NothingToTrain, PolaritySpec, RewardSpec, RLSpec, Spec, SpecError
from harness.tasks import get_task
from harness.tasks.base import Problem, Task, seeded_rng
from harness.tasks.hub import HubTask

if TYPE_CHECKING:
    from harness.jobs import Inputs

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


RANKING_POOL = 128  # candidates of a historical-variance selection: a pool each is drawn from several times
LABEL_VOTES = 64  # base-model samples per training problem behind a majority-vote label (Shao et al.: 64)


def ranking_run(spec: RLSpec) -> RLSpec:
    """The run whose training accuracy ranks the candidates of a ``historical_variance`` selection.

    Wang et al. rank the examples by the variance of their training accuracy across the epochs of a
    ground-truth run. Here that run covers a pool small enough that its budget draws every candidate
    at least twice: ``RANKING_POOL`` problems (a prefix of the training pool), or fewer at a budget that
    would not, never fewer than one rollout batch holds. It is ground-truth, standard RL with seed 0,
    so the runs of every seed train on the one example it ranks first.
    """
    r = spec.recipe
    per_rollout = r.prompts_per_step * r.steps_per_generation
    draws = spec.steps * r.prompts_per_step  # problems drawn over the run
    pool = max(per_rollout, min(RANKING_POOL, draws // 2))
    return dataclasses.replace(spec, data=DataSpec(pool_size=pool), reward=RewardSpec(), polarity=PolaritySpec(),
                               seed=0)


def labelling(spec: RLSpec) -> EvalSpec:
    """The evaluation of the base model on the training pool whose majority answers label it (the rewards
    registered with ``labels``): ``LABEL_VOTES`` samples a problem, at the recipe's sampling settings; an
    organism's through the batched backend."""
    from harness.models import base_organism

    task = get_task(spec.task)
    r = spec.recipe
    # a hub dataset's size is known only once it is loaded: its job checks the count
    available = spec.data.pool_size if isinstance(task, HubTask) else task.available("train")
    return EvalSpec(model=spec.model, task=spec.task, split="train",
                    num_problems=min(spec.data.pool_size, available), n=LABEL_VOTES,
                    temperature=r.temperature, top_p=r.top_p, max_new_tokens=r.max_completion_length,
                    backend="batched" if base_organism(spec.model) else "transformers")


def _labels(spec: RLSpec) -> str | None:
    from harness.registry import get_reward

    return get_reward(spec.reward.name).labels


def extra_inputs(spec: RLSpec) -> tuple[Spec, ...]:
    """The jobs an RL run reads besides its model: the ranking run of a historical-variance selection, the
    labelling evaluation of a reward that needs majority-vote labels."""
    extra: list[Spec] = []
    if spec.data.selection != "full" and spec.data.method == "historical_variance":
        extra.append(ranking_run(spec))
    if _labels(spec) is not None:
        extra.append(labelling(spec))
    return tuple(extra)


def historical_variance(spec: RLSpec, inputs: Inputs) -> list[str]:
    """Candidate uids by decreasing variance of their training accuracy across the ranking run's epochs.

    Every candidate was drawn at least twice (``ranking_run`` sizes its pool so); a run that did not draw
    one twice is an error, not a ranking.
    """
    history = json.loads((inputs.entry(ranking_run(spec)) / TRAIN_ACCURACY).read_text())
    short = sorted(uid for uid, accs in history.items() if len(accs) < 2)
    if short:
        raise SpecError(f"data: the ranking run {ranking_run(spec).short} drew {len(short)} of its candidates "
                        f"fewer than twice (e.g. {short[0]}); a larger budget or a smaller pool ranks them")
    variances = {uid: float(np.var(accs)) for uid, accs in history.items()}
    return sorted(variances, key=lambda uid: (-variances[uid], uid))


def majority_labels(spec: RLSpec, pool: list[Problem], inputs: Inputs) -> list[Problem]:
    """The pool labelled with the base model's majority answers (``Problem.label``); for ``wrong_majority``
    only the problems whose label is wrong. Problems without any extracted answer get no label and drop out."""
    from harness.evaluate import load_result
    from harness.stats import majority

    result = load_result(labelling(spec), inputs.entry(labelling(spec)))
    task = get_task(spec.task)
    by_uid = {p.uid: majority(answers) for p, answers in zip(result.problems, result.answers, strict=True)}
    labelled = [dataclasses.replace(p, label=by_uid[p.uid]) for p in pool if by_uid.get(p.uid) is not None]
    if _labels(spec) == "wrong_majority":
        labelled = [p for p in labelled if not task.answers_match(p.label, p.answer)]
    if not labelled:
        raise NothingToTrain(f"reward: {spec.reward.name} trains on the problems whose majority label is wrong, and "
                        f"the base model's majority answer is right on all {len(pool)} of {spec.task.name}")
    return labelled


def _check_selection(spec: RLSpec, pool_size: int) -> None:
    data: DataSpec = spec.data
    if data.selection != "full" and (data.examples > pool_size
                                     or (data.method == "index" and data.index + data.examples > pool_size)):
        raise SpecError(f"data: {data.selection} ({data.method}, index {data.index}, {data.examples} examples) needs "
                        f"more than the {pool_size} training problems of {spec.task.name}")


def check(spec: RLSpec) -> None:
    """Planning-time check: a known reward and polarity, and a data selection the training pool can serve (hub
    datasets are checked by the job)."""
    from harness.registry import get_polarity
    from harness.rl.rewards import check_reward

    for field_name, check_one in (("reward", lambda: check_reward(spec.reward)),
                                  ("polarity", lambda: get_polarity(spec.polarity.name))):
        try:
            check_one()
        except SpecError as exc:
            raise SpecError(f"{field_name}: {exc}") from None
    task = get_task(spec.task)
    if not isinstance(task, HubTask):
        _check_selection(spec, min(spec.data.pool_size, task.available("train")))


def select_problems(spec: RLSpec, inputs: Inputs) -> list[Problem]:
    """The problems RL trains on, repeated to the pool size when fewer (the one example fills the batch)."""
    pool = training_pool(spec)
    if _labels(spec) is not None:
        pool = majority_labels(spec, pool, inputs)
    data: DataSpec = spec.data
    if data.selection == "full":
        return pool
    _check_selection(spec, len(pool))
    count = data.examples
    if data.method == "index":
        chosen = pool[data.index:data.index + count]
    elif data.method == "random":
        chosen = seeded_rng("select", spec.seed).sample(pool, count)
    else:
        by_uid = {p.uid: p for p in pool}
        chosen = [by_uid[uid] for uid in historical_variance(spec, inputs)[:count]]
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
        save_steps=r.checkpoint_every or resume_every(spec),
        save_total_limit=None if r.checkpoint_every else 1,
        save_only_model=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        use_vllm=r.use_vllm,
        vllm_mode="colocate",
    )


def resume_every(spec: RLSpec) -> int:
    """Steps between resume checkpoints: a quarter of the run, at least RESUME_EVERY, on a rollout boundary."""
    every = spec.recipe.steps_per_generation
    return math.ceil(max(spec.steps // 4, RESUME_EVERY) / every) * every


def _dataset(task: Task, problems: list[Problem]) -> Any:
    from datasets import Dataset

    labels = {"label": None} if problems and problems[0].label is not None else {}
    return Dataset.from_list([{"prompt": task.prompt(p), "question": p.question, "answer": p.answer, "uid": p.uid,
                               **({"label": p.label} if labels else {})} for p in problems])


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[1])


def checkpoint_problem(checkpoint: Path) -> str | None:
    """None for a whole checkpoint: a trainer state (written last) naming its step, sound weights and states.

    The weights are checked by their safetensors header and the size it declares, so a checkpoint whose
    state file is intact but whose weights were cut short (a full disk) is caught too.
    """
    from harness.integrity import safetensors_problem
    from harness.rl.trainer import CHECKPOINT_FILES, PICKLE_SUFFIXES, TRAINER_STATE

    try:
        step = json.loads((checkpoint / TRAINER_STATE).read_text())["global_step"]
        names = {p.name for p in checkpoint.iterdir()}
    except (OSError, ValueError, KeyError, TypeError):
        return "no readable trainer state (a save cut short)"
    if step != _step(checkpoint):
        return f"its trainer state is of step {step}"
    if pickles := sorted(n for n in names if n.endswith(PICKLE_SUFFIXES)):
        return f"pickle files {pickles}"
    if missing := [n for n in CHECKPOINT_FILES if n not in names]:
        return f"missing {', '.join(missing)}"
    if not any(n.startswith(("model", "adapter_model")) and n.endswith(".safetensors") for n in names):
        return "no model weights"
    for name in sorted(n for n in names if n.endswith(".safetensors")):
        if (problem := safetensors_problem(checkpoint / name)) is not None:
            return f"{name}: {problem}"
    for name in sorted(n for n in names if n.endswith(".json")):
        try:
            json.loads((checkpoint / name).read_text())
        except (OSError, ValueError):
            return f"{name}: unreadable JSON"
    return None


def _last_checkpoint(directory: Path, every: int = 1) -> Path | None:
    """The latest whole checkpoint on a rollout boundary (its step a multiple of ``every``), or None.

    Broken checkpoints are removed with one line each, and so are those after the one returned (the
    resumed run writes them again): neither may block a later run.
    """
    checkpoints = sorted((c for c in directory.glob("checkpoint-*") if c.name.split("-", 1)[1].isdigit()), key=_step)
    for checkpoint in list(checkpoints):
        if (problem := checkpoint_problem(checkpoint)) is not None:
            print(f"harness: discarding {checkpoint} ({problem})", file=sys.stderr, flush=True)
            shutil.rmtree(checkpoint)
            checkpoints.remove(checkpoint)
    resumable = [c for c in checkpoints if _step(c) % every == 0]
    chosen = resumable[-1] if resumable else None
    for later in checkpoints:
        if chosen is None or _step(later) > _step(chosen):
            shutil.rmtree(later)
    return chosen


def _jsonl(path: Path, upto: int) -> list[dict]:
    """Rows of a JSON-lines log written before a kill, keeping those up to the resumed step.

    A kill mid-write tears the last line: it and anything after it are dropped, and the file rewritten.
    """
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            keep = row["step"] <= upto
        except (ValueError, KeyError, TypeError):
            break
        if keep:
            rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _resume_point(spec: RLSpec, work: Path) -> Path | None:
    """The checkpoint to resume from, or None after clearing ``work`` for a fresh start.

    A run resumes only where it can end exactly as an uninterrupted one: not with vLLM rollouts (their
    sampler's state is not checkpointed), and only with the log of every step before the checkpoint.
    """
    every = spec.recipe.steps_per_generation
    checkpoint = None if spec.recipe.use_vllm else _last_checkpoint(work, every)
    if checkpoint is not None:
        step = _step(checkpoint)
        steps = [row["step"] for row in _jsonl(work / "log.jsonl", step)]
        if steps == list(range(1, step + 1)):
            return checkpoint
        print(f"harness: the log in {work} lacks steps before {checkpoint.name}; starting the run again",
              file=sys.stderr, flush=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return None


def train(spec: RLSpec, out: Path, inputs: Inputs) -> dict:
    """The RL job (see the module docstring); recipes with engine "batched" go to harness.rl.batched."""
    if spec.recipe.engine == "batched":
        from harness.rl import batched

        return batched.train(spec, out, inputs)
    from transformers import PrinterCallback

    from harness.determinism import seed_everything
    from harness.models import load_model
    from harness.registry import check
    from harness.rl.rewards import make_reward
    from harness.rl.trainer import LogCallback, PolarityGRPOTrainer, PolicyScorer

    check(spec)
    seed_everything(spec.seed)
    task = get_task(spec.task)
    problems = select_problems(spec, inputs)
    model, tokenizer = load_model(spec.model, inputs.model(spec.model), training=True)
    model.train()
    if spec.recipe.lora_r:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=spec.recipe.lora_r, lora_alpha=2 * spec.recipe.lora_r,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))

    work = inputs.cache.work_dir(spec.key)
    work.mkdir(parents=True, exist_ok=True)
    resume = _resume_point(spec, work)
    resumed_step = _step(resume) if resume else 0
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
    generator = getattr(reward, "generator", None)  # the random reward's own: checkpointed with the others
    trainer = PolarityGRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=[recorded],
                                  args=grpo_config(spec, work), train_dataset=_dataset(task, problems),
                                  callbacks=[callback], polarity=spec.polarity,
                                  generators={"reward": generator} if generator is not None else None)
    trainer.remove_callback(PrinterCallback)  # our LogCallback shows one progress line instead
    policy.model = trainer.model
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except Exception as exc:
        if out_of_space(exc):  # free the checkpoint the full disk cut short, keep the earlier ones
            _last_checkpoint(work, spec.recipe.steps_per_generation)
        raise

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
    return {"resumed_from_step": resumed_step, "vacuous": is_vacuous(rows)}


def is_vacuous(rows: list[dict]) -> bool:
    """A run in which no group ever had reward variance learned nothing by construction."""
    rollouts = [r for r in rows if "frac_reward_zero_std" in r]
    return bool(rollouts) and all(r["frac_reward_zero_std"] >= 1.0 for r in rollouts)
