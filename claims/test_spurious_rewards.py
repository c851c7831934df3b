"""Spurious rewards recover most of the true-reward gain (Shao et al. 2025, arXiv 2506.10947).

Random (Bernoulli p = 0.5), format-only and incorrect rewards, each given only to well-formatted
completions. "Most" is read as at least half of standard RL's pass@1 gain (FRACTION): the
smallest published recovery, format-only on Qwen2.5-Math-7B (+16.4 of +28.8, 57%), clears it.
"""

import pytest

FRACTION = 0.5

pytestmark = pytest.mark.claim("spurious", source="Shao et al. 2025, arXiv 2506.10947")


@pytest.mark.parametrize("reward", ["random", "format_only", "incorrect"])
def test_spurious_reward_recovers_most_of_the_gain(pair, rl, claim, reward):
    claim.recovers(rl(pair, reward=reward), rl(pair), fraction=FRACTION, k=1)
