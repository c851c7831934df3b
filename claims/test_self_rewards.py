"""Self-rewards without labels recover most of the true-reward gain.

Majority vote (TTRL, Zuo et al. 2025, arXiv 2504.16084): the label is the group's most common
answer. Entropy minimisation (arXiv 2505.15134: reward = mean token log-probability) and
self-certainty (Intuitor, arXiv 2505.19590: KL(uniform || policy)). Threshold: at least half of
standard RL's pass@1 gain (FRACTION), the same reading of "most" as the spurious-reward claims.
"""

import pytest

FRACTION = 0.5


@pytest.mark.claim("self-reward", source="Zuo et al. 2025, arXiv 2504.16084")
def test_majority_vote_recovers_most_of_the_gain(pair, rl, claim):
    claim.recovers(rl(pair, reward="majority_vote"), rl(pair), fraction=FRACTION, k=1)


@pytest.mark.claim("self-reward", source="arXiv 2505.15134 (entropy); arXiv 2505.19590 (self-certainty)")
@pytest.mark.parametrize("reward", ["entropy", "self_certainty"])
def test_confidence_reward_recovers_most_of_the_gain(pair, rl, claim, reward):
    claim.recovers(rl(pair, reward=reward), rl(pair), fraction=FRACTION, k=1)
