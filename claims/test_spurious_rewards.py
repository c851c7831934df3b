"""Spurious rewards recover most of the true-reward gain (Shao et al. 2025, arXiv 2506.10947).

As Shao et al. define them: random (Bernoulli p = 0.5, independent of the response), format-only,
and incorrect (1 when the answer equals the base model's majority-vote label, on the training
problems whose majority label is wrong). "Most" is read as at least half of standard RL's pass@1
gain (FRACTION): the smallest published recovery, format-only on Qwen2.5-Math-7B (+16.4 of +28.8,
57%), clears it. Shao et al. trace the random reward's gain to PPO clipping, so a random-reward run
in which clipping did not act is reported as not exercised.
"""

import pytest

FRACTION = 0.5

pytestmark = pytest.mark.claim(
    "spurious", source="Shao et al. 2025, arXiv 2506.10947", pattern="high-alignment",
    published=["Qwen2.5-Math-7B, MATH500 absolute gain: ground truth +28.8, majority vote +26.5, incorrect +24.6, "
               "random +21.4, format +16.4; Llama3 and OLMo2 gain little or lose",
               {"text": "Qwen2.5-7B MATH500: base 40.8, ground truth 71.0, random 57.5, incorrect 57.0; "
                         "Llama-3.1-8B-Instruct: base 32.5, random 26.8 (secondary summary, to be checked against "
                         "the PDF)",
                "source": "Wu et al. 2025, arXiv 2508.21188"}])


@pytest.mark.parametrize("reward", ["random", "format_only", "incorrect"])
def test_spurious_reward_recovers_most_of_the_gain(pair, rl, claim, reward):
    """A spurious reward (random, format-only or incorrect) recovers at least half of standard RL's pass@1 gain."""
    claim.recovers(rl(pair, reward=reward), rl(pair), fraction=FRACTION, k=1,
                   mechanism="clipping" if reward == "random" else None)
