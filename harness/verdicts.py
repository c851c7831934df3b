"""Claim judgement: RL outcomes -> holds / fails / inconclusive / not_exercised, with a message that reads as a finding.

The RL run is the unit of replication (harness.stats): every interval counts run-to-run variance,
with the pair's calibrated prior (the standard-RL runs of the pair, ``RLOutcome.calibration``)
where a variant has few runs. A claim is judged at sequential looks over its variant's runs
(``RLOutcome.looks``: e.g. 2, 4 and 8 runs under ``--seeds auto``), alpha spent over the looks and
the cell stopped early when it is decided or when more runs could not decide it
(``stats.sequential``); a single look is an ordinary test at ``ALPHA``.

A run that could not have shown the effect is ``not_exercised`` rather than judged: fewer than
``MIN_INFORMATIVE`` of its groups carried reward variance (group-relative polarities learn nothing
from a group whose rewards are all equal), or the clipping the claim's mechanism needs acted on
fewer than ``MIN_CLIPPED`` of the tokens. Every finding carries these readouts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness import stats
from harness.results import RLOutcome
from harness.specs import SpecError

OUTCOMES = ("holds", "fails", "inconclusive", "not_exercised")
ALPHA = 0.05
MIN_INFORMATIVE = 0.05  # share of groups with reward variance below which a run is not exercised
MIN_CLIPPED = 1e-3  # clipped-token fraction below which clipping did not act
GROUP_RELATIVE = ("standard", "psr", "nsr")  # polarities that learn only from groups with reward variance
NAN = math.nan


@dataclass(frozen=True)
class Finding:
    """A claim's verdict on one pair, with what it rests on."""

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
    p_value: float = NAN  # one-sided, of the decided direction: what a family-wise adjustment uses
    runs: dict[str, int] = field(default_factory=dict)  # RL runs per variant label
    stopped: str = ""  # why the sequential looks stopped
    reference: str = ""  # the reference run group it shares with other cells ("" if none)
    readouts: dict[str, dict[str, float]] = field(default_factory=dict)  # per variant label

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluations_of(*outcomes: RLOutcome) -> tuple[dict[str, Any], ...]:
    first = outcomes[0]
    base = {"pair": first.pair.id, "label": "base", "spec": first.before.spec.to_dict()}
    return (base, *({"pair": o.pair.id, "label": o.label, "spec": o.after[0].spec.to_dict()}
                     for o in outcomes if o.after))


def alignment_of(outcome: RLOutcome) -> dict[str, float]:
    k = outcome.pair.alignment_k
    return {"pass@1": outcome.before.pass_at_k(1), f"pass@{k}": outcome.before.pass_at_k(k)}


def _where(outcome: RLOutcome) -> str:
    k = outcome.pair.alignment_k
    return f"pair {outcome.pair.id}, alignment pass@{k} = {outcome.before.pass_at_k(k):.2f}"


# ---------------------------------------------------------------- readouts and exercise


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else NAN


def readouts(outcome: RLOutcome) -> dict[str, float]:
    """Mechanism readouts averaged over the runs: informative-group share, clipped-token fraction, entropy.

    From each run's training log: the share of groups whose rewards varied (rollout steps), the
    fraction of completion tokens whose PPO ratio was clipped (update steps), the policy entropy over
    the first and the last quarter of the logged steps; and, for tasks with answer strategies, each
    strategy's share of the base and trained models' samples (``harness.readouts``).
    """
    if outcome.unexercisable is not None:
        return {}
    runs = [log_readouts(log) for log in outcome.logs]
    out = {k: _mean([v for run in runs if not math.isnan(v := run[k])])
           for k in ("informative_share", "clipped_fraction", "entropy_start", "entropy_end")}
    out.update(strategy_readouts(outcome))
    return {k: v for k, v in out.items() if not (isinstance(v, float) and math.isnan(v))}


def log_readouts(log: list[dict[str, Any]]) -> dict[str, float]:
    """One run's training-log readouts (NaN where the log has none): the share of groups whose rewards varied
    (rollout steps), the fraction of completion tokens whose PPO ratio was clipped (update steps), and the
    policy entropy over the first and the last quarter of the logged steps."""
    zero = [r["frac_reward_zero_std"] for r in log if "frac_reward_zero_std" in r]
    clip = [r["clip_ratio/region_mean"] for r in log if "clip_ratio/region_mean" in r]
    entropy = [r["entropy"] for r in log if "entropy" in r]
    quarter = max(1, len(entropy) // 4)
    return {"informative_share": 1.0 - _mean(zero), "clipped_fraction": _mean(clip),
            "entropy_start": _mean(entropy[:quarter]), "entropy_end": _mean(entropy[-quarter:])}


def strategy_readouts(outcome: RLOutcome) -> dict[str, Any]:
    """Each answer style's share of the samples (and accuracy within it) before and after RL, for tasks with
    answer styles (strategy organisms: the analogue of Shao et al.'s code-reasoning frequency)."""
    from harness.tasks import get_task
    from harness.tasks.strategy import StrategyTask

    if not isinstance(get_task(outcome.pair.task), StrategyTask):
        return {}
    from harness.readouts import strategy_readout

    before = strategy_readout(outcome.before).as_row()
    after = [strategy_readout(r).as_row() for r in outcome.after]
    mean_after = {name: _mean([row[name] for row in after if row[name] is not None]) for name in before}
    return {"strategy_share_before": {k.removeprefix("share_"): v for k, v in before.items() if k.startswith("share_")},
            "strategy_share_after": {k.removeprefix("share_"): v for k, v in mean_after.items()
                                     if k.startswith("share_")},
            "strategy_accuracy_before": {k.removeprefix("accuracy_"): v for k, v in before.items()
                                         if k.startswith("accuracy_") and v is not None},
            "strategy_accuracy_after": {k.removeprefix("accuracy_"): v for k, v in mean_after.items()
                                        if k.startswith("accuracy_") and math.isfinite(v)}}


def _not_exercised(outcome: RLOutcome, mechanism: str | None) -> str | None:
    """Why the variant's runs could not have shown the effect, or None."""
    if outcome.unexercisable is not None:
        return f"{outcome.label} was not exercised: {outcome.unexercisable}"
    found = readouts(outcome)
    share = found.get("informative_share", 1.0)
    if outcome.specs[0].polarity.name in GROUP_RELATIVE and share < MIN_INFORMATIVE:
        return (f"{outcome.label} was not exercised: only {100 * share:.1f}% of its groups carried reward variance "
                f"(under {100 * MIN_INFORMATIVE:.0f}%), so its updates carried almost no signal")
    clipped = found.get("clipped_fraction", 0.0)
    if mechanism == "clipping" and clipped < MIN_CLIPPED:
        return (f"{outcome.label} was not exercised: clipping, which this claim's mechanism needs, acted on "
                f"{100 * clipped:.3f}% of the tokens (under {100 * MIN_CLIPPED:.1f}%); the recipe's updates per "
                f"rollout batch and clip range decide that")
    return None


# ---------------------------------------------------------------- sequential judgement


@dataclass
class _Looks:
    """The outcomes of a cell as the looks extend its variants, and the level of the deciding look."""

    outcomes: list[RLOutcome]
    extend: tuple[int, ...]  # indices of the outcomes that more runs extend (the variants)
    level: float = ALPHA

    def at(self, runs: int) -> list[RLOutcome]:
        self.outcomes = [o.with_seeds(runs) if i in self.extend else o for i, o in enumerate(self.outcomes)]
        return self.outcomes


def _judge(looks: _Looks, verdict_of: Callable[[list[RLOutcome], float], stats.Verdict]) -> tuple[stats.Verdict, str]:
    """The verdict after the cell's sequential looks (or its one look) and why it stopped."""
    schedule = looks.outcomes[looks.extend[0]].looks

    def at(runs: int, level: float) -> stats.Verdict:
        looks.level = level
        return verdict_of(looks.at(runs), level)

    if len(schedule) == 1:
        return at(schedule[0], ALPHA), "a single look"
    return stats.sequential(at, schedule, ALPHA)


def _group(outcome: RLOutcome, k: int) -> stats.Group:
    """An outcome's runs at pass@k, with the pair's calibrated prior unless they are the calibration runs."""
    calibration = outcome.calibration
    prior = None
    if calibration is not None:
        prior = stats.Prior.from_gains(stats.run_gains(calibration.base_scores(k), calibration.scores(k)))
    return stats.Group(outcome.scores(k), prior)


def _interval(verdict: stats.Verdict, level: float, scale: float = 1.0, unit: str = "+.3f") -> str:
    conf = f"{100 * (1 - level):.3g}%"
    if verdict.reason and not math.isfinite(verdict.low):
        return f"no interval: {verdict.reason}"
    return f"{conf} CI {scale * verdict.low:{unit}} to {scale * verdict.high:{unit}}"


def _name(outcome: RLOutcome, outcomes: Sequence[RLOutcome]) -> str:
    """The outcome's label, with its pair where the outcomes span several pairs."""
    return outcome.label if len({o.pair.id for o in outcomes}) == 1 else f"{outcome.label} on {outcome.pair.id}"


def _runs(*outcomes: RLOutcome) -> dict[str, int]:
    return {_name(o, outcomes): len(o.specs) for o in outcomes}


def _runs_text(runs: dict[str, int]) -> str:
    return ", ".join(f"{n} run{'s' * (n > 1)} of {label}" for label, n in runs.items())


def _finding(verdict: stats.Verdict, text: str, stopped: str, outcomes: list[RLOutcome], *, measure: str,
             level: float, reference: RLOutcome | None = None,
             evaluations: tuple[dict[str, Any], ...] = ()) -> Finding:
    """The finding of a judged verdict. Its p-value is scaled by ``ALPHA / level`` (the deciding look's alpha):
    after looks whose alphas sum to ALPHA it is then a valid p-value by the union bound, as a family-wise
    adjustment needs (a nominal p-value of the stopping look is not)."""
    variant = outcomes[0]
    runs = _runs(*outcomes)
    message = f"{text}; {_runs_text(runs)} ({stopped}); {_where(variant)}"
    if verdict.reason and verdict.outcome == "inconclusive" and verdict.reason not in message:
        message += f"; inconclusive because the {verdict.reason}"
    return Finding(verdict.outcome, message, verdict.estimate, verdict.low, verdict.high, verdict.threshold,
                   alignment_of(variant), effect=verdict.estimate, measure=measure,
                   evaluations=evaluations or evaluations_of(*outcomes),
                   p_value=min(1.0, verdict.p_value * ALPHA / level), runs=runs,
                   stopped=stopped, reference=_reference(reference),
                   readouts={_name(o, outcomes): readouts(o) for o in outcomes})


def _reference(outcome: RLOutcome | None) -> str:
    return "" if outcome is None else f"{outcome.label} on {outcome.pair.id} ({len(outcome.specs)} runs)"


def _unexercised(outcome: RLOutcome, reason: str, others: Sequence[RLOutcome] = ()) -> Finding:
    both = (outcome, *others)
    return Finding("not_exercised", f"{reason}; {_where(outcome)}", NAN, NAN, NAN, NAN, alignment_of(outcome),
                   runs=_runs(*both), readouts={_name(o, both): readouts(o) for o in both},
                   evaluations=evaluations_of(*both))


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.0f}%"


# ---------------------------------------------------------------- claims


def _check(outcome: RLOutcome, k: int, *, fraction: float | None = None, eps: float | None = None) -> None:
    """A claim's own settings: one line (SpecError) for a k the evaluation cannot give or an empty region."""
    if not 1 <= k <= outcome.before.n:
        raise SpecError(f"claim: k = {k}; pass@k needs 1 <= k <= the evaluation's n = {outcome.before.n} "
                        f"(pair {outcome.pair.id})")
    if fraction is not None and not fraction > 0:
        raise SpecError(f"claim: fraction = {fraction}; a share of the reference's gain must be > 0")
    if eps is not None and not eps > 0:
        raise SpecError(f"claim: eps = {eps}; a margin must be > 0")


def _gain_claim(outcome: RLOutcome, k: int, threshold: float, *, rises: bool, mechanism: str | None) -> Finding:
    _check(outcome, k)
    if (reason := _not_exercised(outcome, mechanism)) is not None:
        return _unexercised(outcome, reason)
    test = stats.gain_above if rises else stats.gain_below
    looks = _Looks([outcome], (0,))
    verdict, stopped = _judge(looks, lambda o, level: test(o[0].base_scores(k), _group(o[0], k),
                                                           threshold=threshold, alpha=level))
    text = (f"{looks.outcomes[0].label} changed pass@{k} by {verdict.estimate:+.3f} "
            f"({_interval(verdict, looks.level)}); the claim needs {'>' if rises else '<'} {threshold:+.3f}")
    return _finding(verdict, text, stopped, looks.outcomes, measure="gain", level=looks.level)


def improves(outcome: RLOutcome, *, k: int = 1, threshold: float = 0.0, mechanism: str | None = None) -> Finding:
    """Claim: the variant raises pass@k by more than ``threshold``."""
    return _gain_claim(outcome, k, threshold, rises=True, mechanism=mechanism)


def lowers(outcome: RLOutcome, *, k: int, threshold: float = 0.0) -> Finding:
    """Claim: the variant lowers pass@k below ``threshold`` (e.g. PSR at large k, RL at large k)."""
    return _gain_claim(outcome, k, threshold, rises=False, mechanism=None)


def recovers(variant: RLOutcome, reference: RLOutcome, *, fraction: float, k: int = 1,
             mechanism: str | None = None) -> Finding:
    """Claim: the variant recovers at least ``fraction`` of the reference's pass@k gain.

    ``mechanism="clipping"``: the effect is attributed to PPO clipping (random rewards, Shao et al.),
    so a run in which clipping did not act is not exercised.
    """
    _check(variant, k, fraction=fraction)
    if (reason := _not_exercised(variant, mechanism)) is not None:
        return _unexercised(variant, reason, [reference])
    looks = _Looks([variant, reference], (0,))
    verdict, stopped = _judge(looks, lambda o, level: stats.recovers(
        o[0].base_scores(k), _group(o[0], k), _group(o[1], k), fraction=fraction, alpha=level))
    v, r = looks.outcomes
    ratio = "" if verdict.reason and not math.isfinite(verdict.low) else (
        f" ({100 * (1 - looks.level):.3g}% CI {_pct(verdict.low)} to {_pct(verdict.high)})")
    text = (f"{v.label} recovered {_pct(verdict.estimate)}{ratio} of the {r.label} gain in pass@{k} "
            f"({v.gain(k):+.3f} vs {r.gain(k):+.3f}); the claim needs >= {_pct(fraction)}")
    return _finding(verdict, text, stopped, looks.outcomes, measure="fraction", level=looks.level, reference=r)


def matches(variant: RLOutcome, reference: RLOutcome, *, eps: float, k: int = 1) -> Finding:
    """Claim: the variant's pass@k gain is within ``eps`` of the reference's (TOST)."""
    _check(variant, k, eps=eps)
    looks = _Looks([variant, reference], (0,))
    verdict, stopped = _judge(looks, lambda o, level: stats.within(
        o[0].base_scores(k), _group(o[0], k), _group(o[1], k), eps=eps, alpha=level))
    v, r = looks.outcomes
    text = (f"{v.label} gain in pass@{k} differs from {r.label}'s by {verdict.estimate:+.3f} "
            f"({_interval(verdict, looks.level)}); the claim needs within ±{eps:.3f}")
    return _finding(verdict, text, stopped, looks.outcomes, measure="difference", level=looks.level, reference=r)


def preserves(variant: RLOutcome, reference: RLOutcome, *, k: int, eps: float) -> Finding:
    """Claim: the variant does not narrow the model at pass@k (Zhu et al.'s NSR at large k).

    Both must hold (an intersection-union test): the variant's pass@k change is above ``-eps``, and it
    is above the reference's change minus ``eps``.
    """
    _check(variant, k, eps=eps)
    if (reason := _not_exercised(variant, None)) is not None:
        return _unexercised(variant, reason, [reference])
    looks = _Looks([variant, reference], (0,))

    def verdict_of(o: list[RLOutcome], level: float) -> stats.Verdict:
        base = o[0].base_scores(k)
        return stats.all_of([stats.gain_above(base, _group(o[0], k), threshold=-eps, alpha=level),
                             stats.not_worse(base, _group(o[0], k), _group(o[1], k), eps=eps, alpha=level)],
                            alpha=level)

    verdict, stopped = _judge(looks, verdict_of)
    v, r = looks.outcomes
    text = (f"{v.label} changed pass@{k} by {v.gain(k):+.3f} and {r.label} by {r.gain(k):+.3f}; the binding "
            f"comparison is {verdict.estimate:+.3f} ({_interval(verdict, looks.level)}); the claim needs the change "
            f"> {-eps:+.3f} and > {r.label}'s {-eps:+.3f}")
    return _finding(verdict, text, stopped, looks.outcomes, measure="difference", level=looks.level, reference=r)


def _fraction_estimate(before: np.ndarray, variant: stats.Group, reference: stats.Group) -> stats.Estimate:
    """The recovered fraction ``gain_v / gain_r`` as an estimate, its variance by the delta method."""
    gain_v = stats.contrast(before, [variant], [1.0])
    gain_r = stats.contrast(before, [reference], [1.0])
    ratio = gain_v.value / gain_r.value
    # var(v - ratio * r) / r^2 carries the covariance through the shared problems and base
    linear = stats.contrast(before, [variant, reference], [1.0, -ratio])
    scale = gain_r.value ** 2
    return stats.Estimate(ratio, tuple(stats.Component(c.variance / scale, c.df, c.runs) for c in linear.components),
                          linear.runs)


def same_effect(dirty: tuple[RLOutcome, RLOutcome], clean: tuple[RLOutcome, RLOutcome], *, fraction: float,
                margin: float, k: int = 1, mechanism: str | None = None) -> Finding:
    """Claim: an aligned, uncontaminated pair shows the contaminated pair's effect (the paper's contribution 3).

    ``dirty`` and ``clean``: (variant, standard RL) on the contaminated pair and on its clean control.
    Holds only where the effect holds on the contaminated pair (the variant recovers at least
    ``fraction``), holds on the clean pair too, and the two recovered fractions are equivalent within
    ``margin`` (TOST on their difference): an intersection-union test. Where the effect is absent or
    undecided on the contaminated pair there is nothing to reproduce: inconclusive, never holds.
    ``mechanism`` as for ``recovers``: where a variant's runs could not exercise it, not exercised.
    """
    _check(dirty[0], k, fraction=fraction, eps=margin)
    for o in (dirty[0], clean[0]):
        if (reason := _not_exercised(o, mechanism)) is not None:
            return _unexercised(o, reason, [dirty[1], clean[1]])
    looks = _Looks([*dirty, *clean], (0, 2))

    def parts(o: list[RLOutcome], level: float) -> list[stats.Verdict]:
        groups = [_group(x, k) for x in o]
        d_base, c_base = o[0].base_scores(k), o[2].base_scores(k)
        on_dirty = stats.recovers(d_base, groups[0], groups[1], fraction=fraction, alpha=level)
        if on_dirty.outcome != "holds":
            return [on_dirty]
        on_clean = stats.recovers(c_base, groups[2], groups[3], fraction=fraction, alpha=level)
        if o[3].gain(k) == 0:  # no fraction of nothing to compare
            return [on_dirty, on_clean]
        gap = stats.difference(_fraction_estimate(d_base, groups[0], groups[1]),
                               _fraction_estimate(c_base, groups[2], groups[3]))
        same = stats.decide(gap, lower=-margin, upper=margin, threshold=margin, alpha=level)
        return [on_dirty, on_clean, same]

    def verdict_of(o: list[RLOutcome], level: float) -> stats.Verdict:
        found = parts(o, level)
        if len(found) == 1:  # the effect is not (yet) shown on the contaminated pair
            v = found[0]
            reason = f"the effect is {v.outcome} on the contaminated pair, so there is nothing to reproduce"
            checks = v.checks if v.outcome == "inconclusive" else ()  # a failed effect stays failed: no more runs
            return stats.Verdict("inconclusive", v.estimate, v.low, v.high, fraction, reason,
                                 p_holds=1.0, p_fails=1.0, se=v.se, df=v.df, runs=v.runs, checks=checks)
        return stats.all_of(found, alpha=level)

    verdict, stopped = _judge(looks, verdict_of)
    d, dr, c, cr = looks.outcomes
    text = (f"{d.label} recovered {_pct(d.gain(k) / dr.gain(k) if dr.gain(k) else NAN)} of the standard gain on "
            f"{d.pair.id} and {_pct(c.gain(k) / cr.gain(k) if cr.gain(k) else NAN)} on the clean {c.pair.id}; the "
            f"claim needs both >= {_pct(fraction)} and within ±{_pct(margin)} of each other (binding part "
            f"{verdict.estimate:.3g}, {_interval(verdict, looks.level, unit='.3g')})")
    return _finding(verdict, text, stopped, looks.outcomes, measure="fraction", level=looks.level, reference=dr,
                    evaluations=evaluations_of(d, dr))
