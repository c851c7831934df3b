"""Sample-polarity variants: which completions carry the learning signal.

``standard`` keeps TRL's group-relative advantage. The paper (arXiv 2508.21188) masks that
advantage: ``psr`` keeps samples with r > 0, ``nsr`` samples with r < 1. Zhu et al. 2025
(arXiv 2506.01347) use fixed advantages with no baseline: ``psr_pm1`` gives +1 to right samples,
``nsr_pm1`` gives -1 to wrong samples, and ``w_reinforce`` gives +lam to right and -1 to wrong.
A sample is right when r > 0 and wrong when r < 1 (binary rewards: r = 1 and r = 0).

Each variant is ``fn(spec, rewards, standard) -> advantages`` registered by name with
``harness.registry.register_polarity``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.registry import get_polarity, register_polarity
from harness.specs import PolaritySpec

if TYPE_CHECKING:
    import torch


def polarity_advantages(spec: PolaritySpec, rewards: torch.Tensor, standard: torch.Tensor) -> torch.Tensor:
    """Advantages of one batch, shape (B,), from its rewards (B,) and TRL's group-relative advantages (B,).

    >>> import torch
    >>> r = torch.tensor([1.0, 0.0, 0.0, 1.0]); a = torch.tensor([1.0, -1.0, -1.0, 1.0])
    >>> polarity_advantages(PolaritySpec(name="nsr"), r, a).tolist()
    [0.0, -1.0, -1.0, 0.0]
    >>> polarity_advantages(PolaritySpec(name="w_reinforce", lam=0.1), r, a).tolist()
    [0.10000000149011612, -1.0, -1.0, 0.10000000149011612]
    """
    return get_polarity(spec.name)(spec, rewards, standard)


def _right(rewards: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return (rewards > 0).to(like.dtype)


def _wrong(rewards: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return (rewards < 1).to(like.dtype)


def standard(spec: PolaritySpec, rewards: torch.Tensor, grpo: torch.Tensor) -> torch.Tensor:
    return grpo


def psr(spec: PolaritySpec, rewards: torch.Tensor, grpo: torch.Tensor) -> torch.Tensor:
    return grpo * _right(rewards, grpo)


def nsr(spec: PolaritySpec, rewards: torch.Tensor, grpo: torch.Tensor) -> torch.Tensor:
    return grpo * _wrong(rewards, grpo)


def psr_pm1(spec: PolaritySpec, rewards: torch.Tensor, grpo: torch.Tensor) -> torch.Tensor:
    return _right(rewards, grpo)


def nsr_pm1(spec: PolaritySpec, rewards: torch.Tensor, grpo: torch.Tensor) -> torch.Tensor:
    return -_wrong(rewards, grpo)


def w_reinforce(spec: PolaritySpec, rewards: torch.Tensor, grpo: torch.Tensor) -> torch.Tensor:
    return spec.lam * _right(rewards, grpo) - _wrong(rewards, grpo)


for _fn in (standard, psr, nsr, psr_pm1, nsr_pm1, w_reinforce):
    register_polarity(_fn.__name__, _fn)
