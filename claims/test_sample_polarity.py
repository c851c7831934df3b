"""Sample polarity (Zhu et al. 2025, arXiv 2506.01347).

NSR, training only on wrong samples, matches standard RL across pass@k: at least 90% of its gain
(FRACTION) at k = 1 and at the pair's alignment k. Both definitions: the paper's (GRPO advantage
masked to r < 1) and Zhu et al.'s (advantage -1 on wrong samples, no baseline). W-REINFORCE
(right samples weighted by lambda = 0.1) likewise. PSR, training only on right samples, raises
pass@1 but lowers pass@k at large k.
"""

import pytest

FRACTION = 0.9

pytestmark = pytest.mark.claim("polarity", source="Zhu et al. 2025, arXiv 2506.01347")


@pytest.mark.parametrize("polarity", ["nsr", "nsr_pm1", "w_reinforce"])
@pytest.mark.parametrize("at", ["pass@1", "pass@K"])
def test_negative_samples_match_standard_rl(pair, rl, claim, polarity, at):
    k = 1 if at == "pass@1" else pair.alignment_k
    claim.recovers(rl(pair, polarity=polarity), rl(pair), fraction=FRACTION, k=k)


@pytest.mark.parametrize("polarity", ["psr", "psr_pm1"])
def test_positive_samples_raise_pass_at_1(pair, rl, claim, polarity):
    claim.improves(rl(pair, polarity=polarity), k=1)


@pytest.mark.parametrize("polarity", ["psr", "psr_pm1"])
def test_positive_samples_lower_large_k(pair, rl, claim, polarity):
    claim.lowers(rl(pair, polarity=polarity), k=pair.alignment_k)
