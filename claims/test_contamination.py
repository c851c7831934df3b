"""Contamination is not needed: an aligned, uncontaminated pair shows the same effects (arXiv 2508.21188).

For each pair whose fixture names a clean ``control`` (same task, matched pass@1, no eval problems
in pretraining): where a spurious reward recovers at least half of the standard gain (FRACTION) on
the contaminated pair, the clean control must show it too, with a recovered fraction within MARGIN
of the contaminated pair's (an equivalence test). Where the effect is absent on the contaminated
pair there is nothing to reproduce, and the claim is inconclusive, never "holds".
"""

import pytest

from harness.plugin import pairs_of

FRACTION = 0.5
MARGIN = 0.25  # recovered fractions this close count as the same effect

pytestmark = pytest.mark.claim("contamination", source="Wu et al. 2025, arXiv 2508.21188, contribution 3")


def pytest_generate_tests(metafunc):
    pairs = pairs_of(metafunc.config)
    by_id = {p.id: p for p in pairs}
    twins = [pytest.param(p, by_id[p.control], id=p.id) for p in pairs if p.control in by_id]
    metafunc.parametrize(("contaminated", "clean"), twins)


@pytest.mark.parametrize("reward", ["random", "incorrect"])
def test_clean_pair_shows_the_same_effect(contaminated, clean, rl, claim, reward):
    """A clean pair of matched alignment shows the contaminated pair's spurious-reward effect, of the same size."""
    claim.same_effect((rl(contaminated, reward=reward), rl(contaminated)), (rl(clean, reward=reward), rl(clean)),
                      fraction=FRACTION, margin=MARGIN, mechanism="clipping" if reward == "random" else None)
