"""Claim judgement: RL outcomes -> holds / fails / inconclusive / vacuous, with a message that reads as a finding."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness import stats
from harness.results import RLOutcome

OUTCOMES = ("holds", "fails", "inconclusive", "vacuous")
N_BOOT = 2000
ALPHA = 0.05


@dataclass(frozen=True)
class Finding:
    """A claim's verdict on one pair."""

    outcome: str
    message: str
    estimate: float
    low: float
    high: float
    threshold: float
    alignment: dict[str, float]  # base pass@1 and pass@K of the pair
    effect: float | None = None  # the effect plotted against alignment
    measure: str = "gain"  # what effect is: "gain" (pass@k), "fraction" (of the reference's gain), "difference"
    evaluations: tuple[dict[str, Any], ...] = ()  # eval specs behind it, for the report's pass@k curves

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluations_of(*outcomes: RLOutcome) -> tuple[dict[str, Any], ...]:
    first = outcomes[0]
    base = {"pair": first.pair.id, "label": "base", "spec": first.before.spec.to_dict()}
    return (base, *({"pair": o.pair.id, "label": o.label, "spec": o.after[0].spec.to_dict()} for o in outcomes))


def alignment_of(outcome: RLOutcome) -> dict[str, float]:
    k = outcome.pair.alignment_k
    return {"pass@1": outcome.before.pass_at_k(1), f"pass@{k}": outcome.before.pass_at_k(k)}


def _where(outcome: RLOutcome) -> str:
    k = outcome.pair.alignment_k
    return f"pair {outcome.pair.id}, alignment pass@{k} = {outcome.before.pass_at_k(k):.2f}"


def _rng(*outcomes: RLOutcome) -> np.random.Generator:
    """A bootstrap generator seeded from the runs judged, so the same runs give the same interval."""
    seed = int(outcomes[0].specs[0].key[:8], 16) ^ int(outcomes[-1].specs[0].key[:8], 16)
    return np.random.default_rng(seed)


def _vacuous(outcomes: tuple[RLOutcome, ...], alignment: dict[str, float]) -> Finding | None:
    for o in outcomes:
        if o.vacuous:
            message = (f"{o.label} is vacuous: no group ever had reward variance, so it learned nothing "
                       f"by construction; {_where(o)}")
            return Finding("vacuous", message, float("nan"), float("nan"), float("nan"), float("nan"), alignment)
    return None


def _pct(x: float) -> str:
    return "n/a" if np.isnan(x) else f"{100 * x:.0f}%"


def _gain_claim(outcome: RLOutcome, k: int, threshold: float, *, rises: bool) -> Finding:
    alignment = alignment_of(outcome)
    if (vacuous := _vacuous((outcome,), alignment)) is not None:
        return vacuous
    test = stats.gain_above if rises else stats.gain_below
    v = test(outcome.base_scores(k), outcome.scores(k), threshold=threshold, rng=_rng(outcome), n_boot=N_BOOT,
             alpha=ALPHA)
    message = (f"{outcome.label} changed pass@{k} by {v.estimate:+.3f} (95% CI {v.low:+.3f} to {v.high:+.3f}); "
               f"the claim needs {'>' if rises else '<'} {threshold:+.3f}; {_where(outcome)}")
    return Finding(v.outcome, message, v.estimate, v.low, v.high, threshold, alignment, effect=v.estimate,
                   evaluations=evaluations_of(outcome))


def improves(outcome: RLOutcome, *, k: int = 1, threshold: float = 0.0) -> Finding:
    """Claim: the variant raises pass@k by more than ``threshold``."""
    return _gain_claim(outcome, k, threshold, rises=True)


def lowers(outcome: RLOutcome, *, k: int, threshold: float = 0.0) -> Finding:
    """Claim: the variant lowers pass@k below ``threshold`` (e.g. PSR at large k, RL at large k)."""
    return _gain_claim(outcome, k, threshold, rises=False)


def recovers(variant: RLOutcome, reference: RLOutcome, *, fraction: float, k: int = 1) -> Finding:
    """Claim: the variant recovers at least ``fraction`` of the reference's pass@k gain."""
    alignment = alignment_of(variant)
    if (vacuous := _vacuous((variant,), alignment)) is not None:
        return vacuous
    v = stats.recovers(variant.base_scores(k), variant.scores(k), reference.scores(k), fraction=fraction,
                       rng=_rng(variant, reference), n_boot=N_BOOT, alpha=ALPHA)
    message = (f"{variant.label} recovered {_pct(v.estimate)} (95% CI {_pct(v.low)} to {_pct(v.high)}) of the "
               f"{reference.label} gain in pass@{k} ({variant.gain(k):+.3f} vs {reference.gain(k):+.3f}); "
               f"the claim needs >= {_pct(fraction)}; {_where(variant)}")
    if v.reason:
        message += f"; inconclusive because the {v.reason}"
    return Finding(v.outcome, message, v.estimate, v.low, v.high, fraction, alignment, effect=v.estimate,
                   measure="fraction",
                   evaluations=evaluations_of(variant, reference))


def matches(variant: RLOutcome, reference: RLOutcome, *, eps: float, k: int = 1) -> Finding:
    """Claim: the variant's pass@k gain is within ``eps`` of the reference's."""
    alignment = alignment_of(variant)
    if (vacuous := _vacuous((variant,), alignment)) is not None:
        return vacuous
    v = stats.within(variant.base_scores(k), variant.scores(k), reference.scores(k), eps=eps,
                     rng=_rng(variant, reference), n_boot=N_BOOT, alpha=ALPHA)
    message = (f"{variant.label} gain in pass@{k} differs from {reference.label} by {v.estimate:+.3f} "
               f"(95% CI {v.low:+.3f} to {v.high:+.3f}); the claim needs within ±{eps:.3f}; {_where(variant)}")
    return Finding(v.outcome, message, v.estimate, v.low, v.high, eps, alignment, effect=v.estimate,
                   measure="difference",
                   evaluations=evaluations_of(variant, reference))
