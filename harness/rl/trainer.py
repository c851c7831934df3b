"""The GRPO trainer: TRL's ``GRPOTrainer`` with sample-polarity advantages and policy-scored rewards.

TRL centres rewards within each group even with ``scale_rewards="none"``, so NSR/PSR and the
fixed-advantage variants replace the advantages after TRL computes them. This overrides two
private methods of TRL 1.16 (pinned in pyproject.toml; tests/test_rl.py checks them value by value).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer

from harness.progress import Progress
from harness.rl.advantages import polarity_advantages
from harness.rl.runner import LOGGED
from harness.specs import PolaritySpec


class PolarityGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages follow a PolaritySpec."""

    def __init__(self, *args: Any, polarity: PolaritySpec, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.polarity = polarity
        self._rewards_per_func: torch.Tensor | None = None

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
