"""Sample-polarity variants: which completions carry the learning signal.

``standard`` keeps TRL's group-relative advantage. The paper (arXiv 2508.21188) masks that
advantage: ``psr`` keeps samples with r > 0, ``nsr`` samples with r < 1. Zhu et al. 2025
(arXiv 2506.01347) use fixed advantages with no baseline: ``psr_pm1`` gives +1 to right samples,
``nsr_pm1`` gives -1 to wrong samples, and ``w_reinforce`` gives +lam to right and -1 to wrong.
A sample is right when r > 0 and wrong when r < 1 (binary rewards: r = 1 and r = 0).
"""

from __future__ import annotations

import torch

from harness.specs import PolaritySpec


def polarity_advantages(spec: PolaritySpec, rewards: torch.Tensor, standard: torch.Tensor) -> torch.Tensor:
    """Advantages of one batch, shape (B,), from its rewards (B,) and TRL's group-relative advantages (B,).

    >>> r = torch.tensor([1.0, 0.0, 0.0, 1.0]); a = torch.tensor([1.0, -1.0, -1.0, 1.0])
    >>> polarity_advantages(PolaritySpec(name="nsr"), r, a).tolist()
    [0.0, -1.0, -1.0, 0.0]
    >>> polarity_advantages(PolaritySpec(name="w_reinforce", lam=0.1), r, a).tolist()
    [0.10000000149011612, -1.0, -1.0, 0.10000000149011612]
    """
    right = (rewards > 0).to(standard.dtype)
    wrong = (rewards < 1).to(standard.dtype)
    if spec.name == "standard":
        return standard
    if spec.name == "psr":
        return standard * right
    if spec.name == "nsr":
        return standard * wrong
    if spec.name == "psr_pm1":
        return right
    if spec.name == "nsr_pm1":
        return -wrong
    if spec.name == "w_reinforce":
        return spec.lam * right - wrong
    raise ValueError(f"unknown polarity {spec.name!r}")
