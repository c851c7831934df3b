"""RL on one training example matches RL on the full set (Wang et al. 2025, arXiv 2504.20571).

The example is chosen as in the paper, by the historical variance of its training accuracy
across the epochs of a ranking run (ground-truth RL over a small pool, each candidate seen several
times), or at random. "Matches" is read as recovering at least 90% of the full-set
pass@1 gain (FRACTION; published: 73.6 with one example vs 73.6 with 1.2k on MATH500).
"""

import pytest

from harness.specs import DataSpec

FRACTION = 0.9

pytestmark = pytest.mark.claim(
    "one-shot", source="Wang et al. 2025, arXiv 2504.20571", pattern="high-alignment",
    published=["Qwen2.5-Math-1.5B, MATH500 36.0 -> 73.6 with one example, 73.6 with 1.2k examples",
               {"text": "Qwen2.5-7B MATH500: base 40.8, ground truth 71.0, one-shot 65.2 "
                         "(secondary summary, to be checked against the PDF)",
                "source": "Wu et al. 2025, arXiv 2508.21188"}])


@pytest.mark.parametrize("method", ["historical_variance", "random"])
def test_one_example_matches_the_full_set(pair, rl, claim, method):
    """RL on one training example recovers at least 90% of the full-set pass@1 gain."""
    one_shot = rl(pair, data=DataSpec(selection="one_shot", method=method))
    claim.recovers(one_shot, rl(pair), fraction=FRACTION, k=1)
