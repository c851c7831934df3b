"""Contamination is not needed: an aligned, uncontaminated pair shows the same effects (arXiv 2508.21188).

For each pair whose fixture names a clean ``control`` (same task, matched pass@1, no eval problems
in pretraining), the spurious-reward verdict (random reward recovers at least half of the gain)
on the clean control must equal the verdict on the contaminated pair.
"""

import pytest

from harness import verdicts
from harness.plugin import pairs_of

FRACTION = 0.5

pytestmark = pytest.mark.claim("contamination", source="Wu et al. 2025, arXiv 2508.21188, contribution 3")


def pytest_generate_tests(metafunc):
    pairs = pairs_of(metafunc.config)
    by_id = {p.id: p for p in pairs}
    twins = [pytest.param(p, by_id[p.control], id=p.id) for p in pairs if p.control in by_id]
    metafunc.parametrize(("contaminated", "clean"), twins)


@pytest.mark.parametrize("reward", ["random", "incorrect"])
def test_clean_pair_shows_the_same_effect(contaminated, clean, rl, claim, reward):
    """A clean pair of matched alignment reaches the contaminated pair's spurious-reward verdict."""
    dirty = verdicts.recovers(rl(contaminated, reward=reward), rl(contaminated), fraction=FRACTION)
    control = verdicts.recovers(rl(clean, reward=reward), rl(clean), fraction=FRACTION)
    claim.agrees(control, dirty, pair=contaminated)
