"""Standard RL with the true reward improves the model on every pair.

The control of every paper tested here (and of arXiv 2508.21188): it should hold at high and
low alignment alike. Threshold: the pass@1 gain's 95% CI lies above 0.
"""

import pytest

pytestmark = pytest.mark.claim("standard", source="control in all papers; arXiv 2508.21188")


def test_standard_rl_improves_pass_at_1(pair, rl, claim):
    claim.improves(rl(pair), k=1)
