"""Standard RL with the true reward improves the model on every pair.

The control of every paper tested here (and of arXiv 2508.21188): it should hold at high and
low alignment alike. Threshold: the pass@1 gain's 95% CI lies above 0.
"""

import pytest

pytestmark = pytest.mark.claim(
    "standard", source="control in all papers; arXiv 2508.21188", pattern="everywhere",
    published=[{"text": "Qwen2.5-Math-7B, MATH500 absolute gain +28.8", "source": "Shao et al. 2025, arXiv 2506.10947"},
               {"text": "Qwen2.5-7B MATH500: base 40.8, ground truth 71.0 "
                         "(secondary summary, to be checked against the PDF)",
                "source": "Wu et al. 2025, arXiv 2508.21188"}])


def test_standard_rl_improves_pass_at_1(pair, rl, claim):
    """Standard RL with the true reward raises pass@1."""
    claim.improves(rl(pair), k=1)
