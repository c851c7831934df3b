"""RL sharpens but does not widen: the base model wins at large k (Yue et al. 2025, arXiv 2504.13837).

With test_standard_rl (pass@1 rises), a lower pass@k at the pair's alignment k means the pass@k
curves of base and RL model cross. Threshold: the pass@K gain's 95% CI lies below 0.
"""

import pytest

pytestmark = pytest.mark.claim("boundary", source="Yue et al. 2025, arXiv 2504.13837")


def test_base_model_wins_at_large_k(pair, rl, claim):
    """RL lowers pass@k at large k: the base model wins there."""
    claim.lowers(rl(pair), k=pair.alignment_k)
