"""Sample polarity (Zhu et al. 2025, arXiv 2506.01347).

NSR, training only on wrong samples, matches standard RL at pass@1 (at least FRACTION of its
gain) and, at large k, keeps the model's reach: its pass@K changes by more than -EPS (it does not
narrow the model) and by more than standard RL's change minus EPS. Both definitions: the paper's
(GRPO advantage masked to r < 1) and Zhu et al.'s (advantage -1 on wrong samples, no baseline).
W-REINFORCE (right samples weighted by lambda = 0.1) likewise. PSR, training only on right
samples, raises pass@1 but lowers pass@k at large k.
"""

import pytest

FRACTION = 0.9
EPS = 0.02  # pass@K points: a change smaller than this is not narrowing

pytestmark = pytest.mark.claim(
    "polarity", source="Zhu et al. 2025, arXiv 2506.01347",
    published=["Qwen2.5-Math-7B and Qwen3-4B: NSR alone improves pass@k for k = 1..256, often matching PPO/GRPO; "
               "PSR raises pass@1 and lowers large-k pass@k",
               {"text": "Qwen2.5-7B MATH500: base 40.8, ground truth 71.0, NSR 68.7 "
                         "(secondary summary, to be checked against the PDF)",
                "source": "Wu et al. 2025, arXiv 2508.21188"}])


@pytest.mark.claim(pattern="high-alignment")
@pytest.mark.parametrize("polarity", ["nsr", "nsr_pm1", "w_reinforce"])
def test_negative_samples_match_standard_rl(pair, rl, claim, polarity):
    """Training only on wrong samples recovers at least 90% of standard RL's pass@1 gain."""
    claim.recovers(rl(pair, polarity=polarity), rl(pair), fraction=FRACTION, k=1)


@pytest.mark.claim(pattern="high-alignment")
@pytest.mark.parametrize("polarity", ["nsr", "nsr_pm1", "w_reinforce"])
def test_negative_samples_keep_pass_at_large_k(pair, rl, claim, polarity):
    """Training only on wrong samples does not narrow the model: pass@K stays, and is no worse than standard RL's."""
    claim.preserves(rl(pair, polarity=polarity), rl(pair), k=pair.alignment_k, eps=EPS)


@pytest.mark.parametrize("polarity", ["psr", "psr_pm1"])
def test_positive_samples_raise_pass_at_1(pair, rl, claim, polarity):
    """Training only on right samples raises pass@1."""
    claim.improves(rl(pair, polarity=polarity), k=1)


@pytest.mark.parametrize("polarity", ["psr", "psr_pm1"])
def test_positive_samples_lower_large_k(pair, rl, claim, polarity):
    """Training only on right samples lowers pass@k at large k."""
    claim.lowers(rl(pair, polarity=polarity), k=pair.alignment_k)
