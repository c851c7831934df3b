"""GRPO arithmetic as TRL 1.16's GRPOTrainer computes it, for R runs at once (leading run dimension).

Group-relative advantages (``_generate_and_score_completions``) and the clipped token loss with its
aggregation and clip fractions (``_compute_loss``), with ``beta`` = 0, token-level importance sampling,
one process and no gradient accumulation, as ``harness.rl.runner.grpo_config`` configures TRL.
tests/test_batched.py feeds a real TRL rollout batch through both and compares.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

LOSS_TYPES = ("dapo", "grpo", "bnpo", "dr_grpo")


def nanstd(x: Tensor, dim: int) -> Tensor:
    """TRL's ``nanstd``: Bessel-corrected standard deviation ignoring NaNs."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    variance = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = torch.sum(~torch.isnan(x), dim=dim, keepdim=True)
    correction = torch.where(count > 1, count / (count - 1), torch.full_like(variance, float("nan")))
    return torch.sqrt(variance * correction).squeeze(dim)


def group_advantages(rewards: Tensor, num_generations: int, scale_rewards: str) -> tuple[Tensor, Tensor]:
    """(advantages, zero-std flags), both (R, N), of rewards (R, N) whose groups are consecutive runs of
    ``num_generations`` completions: r minus its group mean, divided by (std + 1e-4) unless
    ``scale_rewards`` is "none" (the std is the group's for "group" and "none", the run's batch's for "batch").
    """
    runs, n = rewards.shape
    grouped = rewards.view(runs, -1, num_generations)
    mean = torch.nanmean(grouped, dim=2).repeat_interleave(num_generations, dim=1)
    if scale_rewards in ("group", "none"):
        std = nanstd(grouped, dim=2).repeat_interleave(num_generations, dim=1)
    elif scale_rewards == "batch":
        std = nanstd(rewards, dim=1)[:, None].expand(runs, n)
    else:
        raise ValueError(f"scale_rewards must be group, batch or none; got {scale_rewards!r}")
    advantages = rewards - mean
    if scale_rewards != "none":
        advantages = advantages / (std + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0), torch.isclose(std, torch.zeros_like(std))


@dataclass(frozen=True)
class LossTerms:
    """One optimizer step's loss per run (R,) and its token masks (R, N, T) of clipped ratios."""

    loss: Tensor
    low_clipped: Tensor
    high_clipped: Tensor

    def fractions(self, mask: Tensor) -> dict[str, Tensor]:
        """TRL's logged clip fractions per run (R,): clipped tokens over completion tokens of the mini-batch."""
        count = mask.sum(dim=(1, 2)).clamp(min=1.0)

        def mean(x: Tensor) -> Tensor:
            return (x.float() * mask).sum(dim=(1, 2)) / count

        return {"clip_ratio/low_mean": mean(self.low_clipped), "clip_ratio/high_mean": mean(self.high_clipped),
                "clip_ratio/region_mean": mean(self.low_clipped | self.high_clipped)}


def policy_loss(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, *, loss_type: str,
                epsilon_low: float, epsilon_high: float, normalizer: Tensor, max_completion_length: int) -> LossTerms:
    """The clipped surrogate loss of each run's mini-batch.

    logps, old_logps, mask: (R, N, T) token log-probabilities now and at rollout time, completion mask;
    advantages (R, N). ``normalizer`` (R,) is dapo's: the run's completion tokens in its whole rollout
    batch (at least 1) divided by steps_per_generation, so each optimizer step averages over the tokens
    of the rollout batch as TRL does.
    """
    advantages = advantages.unsqueeze(-1)
    coef_1 = torch.exp(logps - old_logps)
    coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
    per_token = -torch.min(coef_1 * advantages, coef_2 * advantages)
    masked = per_token * mask
    if loss_type == "dapo":
        loss = masked.sum(dim=(1, 2)) / normalizer
    elif loss_type == "grpo":
        loss = (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean(-1)
    elif loss_type == "bnpo":
        loss = masked.sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = masked.sum(dim=(1, 2)) / (mask.shape[1] * max_completion_length)
    else:
        raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}; got {loss_type!r}")
    with torch.no_grad():
        low = (coef_1 < 1 - epsilon_low) & (advantages < 0)
        high = (coef_1 > 1 + epsilon_high) & (advantages > 0)
    return LossTerms(loss=loss, low_clipped=low, high_clipped=high)
