"""The GRPO trainer: TRL's ``GRPOTrainer`` with sample-polarity advantages, policy-scored rewards and
resume checkpoints without pickles.

TRL centres rewards within each group even with ``scale_rewards="none"``, so NSR/PSR and the
fixed-advantage variants replace the advantages after TRL computes them. This overrides two
private methods of TRL 1.16 (pinned in pyproject.toml; tests/test_rl.py checks them value by value).

Checkpoints: Transformers' Trainer writes the optimizer, scheduler, RNG states and training arguments
with ``torch.save`` (pickle) and reads them back on resume. The trainer here writes them as
safetensors and JSON instead (Transformers 5.24's ``_save``, ``_save_optimizer_and_scheduler``,
``_save_scaler``, ``_save_rng_state`` and their ``_load_*`` counterparts), with the states of the
reward's own generators, and never unpickles a file. With the sampler's epochs replayed
(``EpochSampler``), a resumed run equals one never interrupted (tests/test_faults.py).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from harness.progress import Progress
from harness.rl.advantages import polarity_advantages
from harness.rl.runner import LOGGED
from harness.specs import PolaritySpec

OPTIMIZER_TENSORS = "optimizer.safetensors"  # optimizer state tensors, "<param index>.<name>"
OPTIMIZER_STATE = "optimizer.json"  # param groups, the optimizer's non-tensor state, the scheduler
RNG_TENSORS = "rng_state.safetensors"  # torch CPU (and CUDA) generator states
RNG_STATE = "rng_state.json"  # Python's and numpy's global generators, the reward's own generators
SCALER_STATE = "scaler.json"  # the gradient scaler, where one is used
TRAINING_ARGS = "training_args.json"
TRAINER_STATE = "trainer_state.json"  # Transformers writes it last: its presence marks a finished save
CHECKPOINT_FILES = (OPTIMIZER_TENSORS, OPTIMIZER_STATE, RNG_TENSORS, RNG_STATE, TRAINER_STATE)
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle")


class EpochSampler(RepeatSampler):
    """TRL's RepeatSampler whose permutation for epoch e is the (e+1)-th of its seeded generator however
    many epochs this process ran: a run resumed in a later epoch draws the order an uninterrupted one does."""

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle:
            self.generator.manual_seed(self.seed)
            for _ in range(epoch):
                torch.randperm(self.num_samples, generator=self.generator)


class PolarityGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages follow a PolaritySpec, checkpointing ``generators`` (the reward's own) too."""

    def __init__(self, *args: Any, polarity: PolaritySpec, generators: dict[str, np.random.Generator] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.polarity = polarity
        self.generators = generators or {}
        self._rewards_per_func: torch.Tensor | None = None

    def _get_train_sampler(self, dataset: Any = None) -> EpochSampler:
        dataset = self.train_dataset if dataset is None else dataset
        return EpochSampler(data_source=dataset, mini_repeat_count=self.num_generations,
                            batch_size=self.args.generation_batch_size // self.num_generations,
                            repeat_count=self.num_iterations * self.args.steps_per_generation,
                            shuffle=self.shuffle_dataset, seed=self.args.seed)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # type: ignore[override]
        self._rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._rewards_per_func

    def _generate_and_score_completions(self, inputs):  # type: ignore[override]
        output = super()._generate_and_score_completions(inputs)
        if self.polarity.name != "standard":
            weights = self.reward_weights.to(self._rewards_per_func.device)
            rewards = (self._rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
            local = output["advantages"].shape[0]
            start = self.accelerator.process_index * local
            output["advantages"] = polarity_advantages(self.polarity, rewards[start:start + local],
                                                       output["advantages"])
        return output

    # ---------------------------------------------------------------- checkpoints without pickles

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        self.accelerator.unwrap_model(self.model, keep_torch_compile=False).save_pretrained(
            output_dir, state_dict=state_dict)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        Path(output_dir, TRAINING_ARGS).write_text(self.args.to_json_string())

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        state = self.optimizer.state_dict()
        tensors, scalars = {}, {}
        for index, values in state["state"].items():
            for name, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{index}.{name}"] = value
        save_file(tensors, os.path.join(output_dir, OPTIMIZER_TENSORS))
        record = {"param_groups": state["param_groups"], "scalars": scalars,
                  "scheduler": self.lr_scheduler.state_dict()}
        Path(output_dir, OPTIMIZER_STATE).write_text(json.dumps(record))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        record = json.loads(Path(checkpoint, OPTIMIZER_STATE).read_text())
        state: dict[int, dict[str, Any]] = {}
        for key, value in [*load_file(os.path.join(checkpoint, OPTIMIZER_TENSORS)).items(),
                           *record["scalars"].items()]:
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        current = self.optimizer.state_dict()["param_groups"]
        groups = [{k: tuple(v) if isinstance(now.get(k), tuple) else v for k, v in saved.items()}
                  for saved, now in zip(record["param_groups"], current, strict=True)]  # JSON made tuples lists
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        self.lr_scheduler.load_state_dict(record["scheduler"])

    def _save_scaler(self, output_dir: str) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None:
            Path(output_dir, SCALER_STATE).write_text(json.dumps(scaler.state_dict()))

    def _load_scaler(self, checkpoint: str | None) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if checkpoint is not None and scaler is not None and Path(checkpoint, SCALER_STATE).exists():
            scaler.load_state_dict(json.loads(Path(checkpoint, SCALER_STATE).read_text()))

    def _save_rng_state(self, output_dir: str) -> None:
        if self.args.world_size > 1:  # no RNG state: the checkpoint is not resumed from, the run starts again
            return
        os.makedirs(output_dir, exist_ok=True)
        tensors = {"cpu": torch.random.get_rng_state()}
        if torch.cuda.is_available():
            tensors["cuda"] = torch.cuda.random.get_rng_state()
        save_file(tensors, os.path.join(output_dir, RNG_TENSORS))
        version, internal, gauss = random.getstate()
        name, keys, position, has_gauss, cached = np.random.get_state()
        record = {"python": [version, list(internal), gauss],
                  "numpy": [name, keys.tolist(), position, has_gauss, cached],
                  "generators": {key: g.bit_generator.state for key, g in self.generators.items()}}
        Path(output_dir, RNG_STATE).write_text(json.dumps(record))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        tensors = load_file(os.path.join(checkpoint, RNG_TENSORS))
        record = json.loads(Path(checkpoint, RNG_STATE).read_text())
        version, internal, gauss = record["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, position, has_gauss, cached = record["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
        torch.random.set_rng_state(tensors["cpu"])
        if torch.cuda.is_available() and "cuda" in tensors:
            torch.cuda.random.set_rng_state(tensors["cuda"])
        for key, generator in self.generators.items():
            generator.bit_generator.state = record["generators"][key]

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        pickles = [p.name for p in Path(resume_from_checkpoint).iterdir() if p.name.endswith(PICKLE_SUFFIXES)]
        if pickles:  # Transformers would torch.load them; the harness never writes them
            raise ValueError(f"checkpoint {resume_from_checkpoint} holds pickle files {pickles}: refusing to load it")
        super()._load_from_checkpoint(resume_from_checkpoint, model)


class PolicyScorer:
    """The policy being trained, for rewards that need it: log-probabilities of its own completions
    (harness.rl.rewards.Policy)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.model: torch.nn.Module | None = None  # set once the trainer has wrapped the model

    def _prompt_ids(self, prompt: Any) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenizer(text=prompt)["input_ids"]
        return self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"]

    @torch.no_grad()
    def log_probs(self, prompts: list[Any], completion_ids: list[list[int]]) -> list[torch.Tensor]:
        """Per completion, log-probabilities over the vocabulary at each of its tokens (T, V); (0, 0) when empty."""
        assert self.model is not None, "PolicyScorer.model is set by the runner before training"
        device = next(self.model.parameters()).device
        rows = []
        for prompt, completion in zip(prompts, completion_ids, strict=True):
            if len(completion) == 0:
                rows.append(torch.empty(0, 0))
                continue
            ids = torch.tensor([self._prompt_ids(prompt) + list(completion)], device=device)
            logits = self.model(input_ids=ids).logits[0, -len(completion) - 1:-1].float()
            rows.append(torch.log_softmax(logits, dim=-1))
        return rows


class LogCallback(TrainerCallback):
    """Appends one JSON line per step (with wall time) to ``path`` and shows one progress line.

    Rollout metrics (reward, zero-variance groups) appear on the steps that generate; with
    ``steps_per_generation`` > 1 the other steps log the update metrics (grad norm, clip ratio) only.
    """

    def __init__(self, path: Path, total_steps: int, desc: str, wall: float = 0.0) -> None:
        self.path = path
        self.wall = wall  # a resumed run continues the wall clock of the rows it keeps
        self.progress = Progress(total=total_steps, desc=desc)

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[override]
        self.started = time.time() - self.wall  # wall time counts training, not building the trainer

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[override]
        if logs and "train_runtime" not in logs:
            row = {"step": state.global_step, "wall": round(time.time() - self.started, 3)}
            row.update({k: float(logs[k]) for k in LOGGED if k in logs})
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            if "reward" in row:
                self.progress.update(state.global_step, reward=row["reward"])
            else:
                self.progress.update(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):  # type: ignore[override]
        self.progress.__exit__(None, None, None)
