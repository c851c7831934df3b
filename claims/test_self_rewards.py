"""Self-rewards without labels recover most of the true-reward gain.

Majority vote (TTRL, Zuo et al. 2025, arXiv 2504.16084): the label is the group's most common
answer. Entropy minimisation (arXiv 2505.15134: reward = mean token log-probability) and
self-certainty (Intuitor, arXiv 2505.19590: KL(uniform || policy)). Threshold: at least half of
standard RL's pass@1 gain (FRACTION), the same reading of "most" as the spurious-reward claims.
"""

import pytest

FRACTION = 0.5


@pytest.mark.claim(
    "self-reward", source="Zuo et al. 2025, arXiv 2504.16084", pattern="high-alignment",
    published=[{"text": "Qwen2.5-Math-7B, MATH500 absolute gain: ground truth +28.8, majority vote +26.5",
                 "source": "Shao et al. 2025, arXiv 2506.10947"},
               {"text": "Qwen2.5-7B MATH500: base 40.8, ground truth 71.0, majority vote 62.1 "
                         "(secondary summary, to be checked against the PDF)",
                "source": "Wu et al. 2025, arXiv 2508.21188"}])
def test_majority_vote_recovers_most_of_the_gain(pair, rl, claim):
    """Majority-vote labels (TTRL) recover at least half of the true-reward pass@1 gain."""
    claim.recovers(rl(pair, reward="majority_vote"), rl(pair), fraction=FRACTION, k=1)


@pytest.mark.claim("self-reward", source="arXiv 2505.15134 (entropy); arXiv 2505.19590 (self-certainty)",
                   pattern="high-alignment")
@pytest.mark.parametrize("reward", ["entropy", "self_certainty"])
def test_confidence_reward_recovers_most_of_the_gain(pair, rl, claim, reward):
    """A confidence reward (entropy minimisation, self-certainty) recovers at least half of the true-reward gain."""
    claim.recovers(rl(pair, reward=reward), rl(pair), fraction=FRACTION, k=1)
