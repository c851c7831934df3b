"""Pure statistics: pass@k, mean@k, maj@k, and verdicts whose intervals count run-to-run variance.

Layer 0: numpy and the standard library only; Student's t comes from the regularized incomplete
beta function below. ``P`` problems, ``S`` runs (independent RL runs of one variant: the unit of
replication). Base scores are ``(P,)``, a group's scores after RL ``(S, P)``, on the same problems.

Method (docs/statistics.md has the derivation, the citations and the measured error rates).
A run's gain is ``mean_p(after[s, p] - before[p])``; a claim's estimate is a linear contrast
``sum_g c_g * mean_s gain[g, s]`` over groups. Its variance has independent components:
- between runs, one per group: ``c_g**2 * var_g / S_g``, ``var_g`` the variance of the group's run
  gains (it includes each run's own evaluation noise);
- problems, shared by all groups (same problems, same base evaluation): the variance over problems
  of ``sum_g c_g * (mean_s after_g[:, p] - before[p])``, over ``P``.
Run evaluation noise enters both, so the variance is slightly conservative. The interval is
``estimate ± t(df) * se`` with df the smallest of the components' (in practice the between-run
df): exact when the between-run part dominates, conservative otherwise (Hsu 1938; Mickey & Brown
1966). Welch–Satterthwaite's df was measured liberal here (its randomness runs with the variance
estimate's, and a shared prior makes components dependent): 5.9-7.0% false "holds" at 2 runs
where 2.5% is nominal (docs/statistics.md). A claim holds if the interval lies inside its region
and fails if it lies wholly outside (``judge``): at ``alpha`` each direction is a one-sided test at
``alpha / 2``, and ``Verdict.p_value`` is that test's p-value.

Few runs. A between-run variance calibrated once per pair (``Prior``: the variance of 8 standard-RL
run gains, df 7) is combined with a group's own runs (``between_run``): with one run the prior is
all there is; with more, the pooled variance ``((S-1) own + df0 prior) / (S-1 + df0)``, raised to
the group's own if that is larger, with df ``S-1 + df0``; but where an F-test finds the group's
own variance larger than the prior's (one-sided p < 0.25, a lenient test so that few runs can
show it), its own variance alone with df ``S-1``. Pooling is the exact t-test when a variant's
runs vary as standard RL's do and gives power from 1-2 runs; never going below the group's own
variance keeps it valid (conservative) then, and the F-guard falls back on the test that assumes
nothing where a variant's runs vary more (random reward at a high learning rate). Measured
(scripts/power.py, docs/statistics.md) in the harness's design, where the calibration runs are
also the reference of every comparison: at most 2.3% false "holds" where 2.5% is nominal, at 1,
2, 4, 8 runs and under sequential looks; with variant runs 5x as spread as standard RL's at or
below 2.5% from 4 runs on and under the looks, but 4.5-6.0% at 2 runs, and one run cannot tell
such a variant apart at all (29-32%). Switching to the own variance whenever it is the larger (no
F-test) cost 1-7 points of power and did not lower those rates at 3 or more runs. With one run
and no prior the variance is unknown and the verdict inconclusive. A group that is the calibration
runs themselves gets no prior (its variance would count twice); a variant compared with them then
has a prior that is the same estimate as the reference's own variance, and with the smallest df
(7) the test stays exact (one variant run: Student's t on the reference's variance) or conservative.

Ratios ("A recovers f of B's gain") are decided on the contrast ``gain_A - f gain_B`` and shown
with Fieller's interval (Fieller 1954) from the same components, the covariance of the two gains
through the shared problems included; with the contrast's t quantile the two agree exactly.
Sequential looks spend alpha by an O'Brien–Fleming-type function (Lan & DeMets 1983) and stop
for futility by conditional power (Lan, Simon & Halperin 1982); family-wise views adjust the
verdicts' p-values by Holm (1979) or Benjamini–Hochberg (1995).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Literal

import numpy as np

Outcome = Literal["holds", "fails", "inconclusive"]
OUTCOMES: tuple[Outcome, ...] = ("holds", "fails", "inconclusive")
INF = math.inf

# ---------------------------------------------------------------- pass@k, mean@k, maj@k


def _check_nck(n: int, c: int | np.ndarray, k: int) -> None:
    c_arr = np.asarray(c)
    if not 1 <= k <= n or (c_arr.size and (c_arr.min() < 0 or c_arr.max() > n)):
        raise ValueError(f"pass@k needs 1 <= k <= n and 0 <= c <= n; got n={n}, c={c}, k={k}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. 2021 from ``c`` correct of ``n`` samples.

    ``1 - C(n-c, k) / C(n, k)`` in the stable product form ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``.
    """
    _check_nck(n, c, k)
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_per_problem(n: int, correct: np.ndarray, k: int) -> np.ndarray:
    """pass@k for each problem: correct counts ``(P,)`` (any shape) -> ``(P,)`` floats, in O(n + P)."""
    c = np.asarray(correct, dtype=np.int64)
    _check_nck(n, c, k)
    tail = np.concatenate([[1.0], np.cumprod(1.0 - k / np.arange(n, 0, -1))])  # (n+1,): prod_{n-c<i<=n}
    return np.where(n - c < k, 1.0, 1.0 - tail[c])


def mean_at_k(n: int, correct: np.ndarray) -> np.ndarray:
    """mean@k, the expected accuracy of one of k samples, is ``c / n`` for every k: ``(P,) -> (P,)``."""
    c = np.asarray(correct, dtype=np.int64)
    _check_nck(n, c, 1)
    return c / n


def majority(chunk: Sequence[str | None]) -> str | None:
    """Most frequent non-None answer; ties go to the first seen; None if every answer is None."""
    counts = Counter(a for a in chunk if a is not None)  # insertion order = first occurrence
    return counts.most_common(1)[0][0] if counts else None


def _maj_one(answers: Sequence[str | None], gold: str, k: int) -> float:
    """Majority-vote accuracy over the ``len(answers) // k`` disjoint chunks of one problem."""
    chunks = range(0, len(answers) - k + 1, k)
    return float(np.mean([majority(answers[j : j + k]) == gold for j in chunks]))


def maj_at_k(answers: Sequence[Sequence[str | None]], gold: Sequence[str], k: int) -> np.ndarray:
    """maj@k per problem: answers ``P x n_p``, gold ``(P,)`` -> ``(P,)``.

    The accuracy of the majority vote, averaged over the ``n_p // k`` disjoint chunks of size
    k of each problem's answers (in order; a remainder is unused). None never wins a vote.
    """
    if len(answers) != len(gold):
        raise ValueError(f"maj@k needs one gold answer per problem; got {len(answers)} and {len(gold)}")
    shortest = min(map(len, answers), default=k)
    if not 1 <= k <= shortest:
        raise ValueError(f"maj@k needs 1 <= k <= n for every problem; got k={k}, smallest n={shortest}")
    return np.array([_maj_one(a, g, k) for a, g in zip(answers, gold, strict=True)], dtype=float)



# ---------------------------------------------------------------- Student's t

_NORMAL = NormalDist()
_NORMAL_DF = 1e7  # above this many degrees of freedom t is the normal to within 1e-6 relative


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function by Lentz's method (Numerical Recipes 6.4)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        for aa in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                   -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            return h
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def _beta_inc(a: float, b: float, x: float, y: float) -> float:
    """Regularized incomplete beta ``I_x(a, b)``; ``y = 1 - x`` is passed exactly."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log(y) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def t_sf(t: float, df: float) -> float:
    """``P(T > t)`` for Student's t with ``df > 0`` degrees of freedom (``inf``: the standard normal)."""
    if not df > 0:
        raise ValueError(f"Student's t needs df > 0; got {df}")
    if df > _NORMAL_DF:
        return _NORMAL.cdf(-t)
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    t2 = t * t
    tail = 0.5 * _beta_inc(df / 2, 0.5, df / (df + t2), t2 / (df + t2))
    return tail if t >= 0 else 1.0 - tail


def _t_log_pdf(t: float, df: float) -> float:
    return (math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
            - (df + 1) / 2 * math.log1p(t * t / df))


def t_isf(q: float, df: float) -> float:
    """The ``t`` with ``P(T > t) = q`` (Student's quantile ``1 - q``), for ``0 < q < 1``.

    Safeguarded Newton steps on ``log P(T > t)`` inside a bracket, from the normal quantile.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"a tail probability must lie in (0, 1); got {q}")
    if q > 0.5:
        return -t_isf(1.0 - q, df)
    z = -_NORMAL.inv_cdf(q)
    if not df > 0:
        raise ValueError(f"Student's t needs df > 0; got {df}")
    if df > _NORMAL_DF:
        return z
    lo, hi = 0.0, max(z, 1.0)
    while t_sf(hi, df) > q:
        lo, hi = hi, 2.0 * hi
    t = min(max(z, lo), hi)
    for _ in range(200):
        tail = t_sf(t, df)
        lo, hi = (t, hi) if tail > q else (lo, t)
        step = math.log(tail / q) * tail / math.exp(_t_log_pdf(t, df)) if tail > 0 else -INF
        new = t + step
        if not lo <= new <= hi:
            new = 0.5 * (lo + hi)
        if abs(new - t) <= 1e-14 * max(1.0, abs(new)):
            return new
        t = new
    return t


# ---------------------------------------------------------------- estimates of contrasts


@dataclass(frozen=True)
class Prior:
    """A between-run variance calibrated once per pair: the variance of run gains, with its df."""

    variance: float
    df: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.variance) and self.variance >= 0 and self.df > 0):
            raise ValueError(f"a prior needs a finite variance >= 0 and df > 0; got {self.variance}, {self.df}")

    @classmethod
    def from_gains(cls, gains: np.ndarray) -> Prior:
        """From calibration runs' gains ``(S,)``, ``S >= 2`` (``run_gains`` of standard RL on the pair)."""
        g = np.asarray(gains, dtype=float)
        if g.ndim != 1 or len(g) < 2:
            raise ValueError(f"a prior needs the gains of at least 2 runs; got shape {g.shape}")
        return cls(float(np.var(g, ddof=1)), len(g) - 1)


@dataclass(frozen=True, eq=False)
class Group:
    """The runs of one variant: scores after RL ``(S, P)`` (``(P,)`` for one run) and an optional prior."""

    after: np.ndarray
    prior: Prior | None = None


@dataclass(frozen=True)
class Component:
    """An independent part of an estimate's variance with its df.

    ``runs``: the runs behind a between-run part (its variance scales as ``1 / runs``); 0 for the
    problems part. An unknown between-run variance (one run, no prior) is NaN.
    """

    variance: float
    df: float
    runs: int


@dataclass(frozen=True)
class Estimate:
    """A contrast's value and the independent components of its variance."""

    value: float
    components: tuple[Component, ...]
    runs: tuple[int, ...]  # runs per group

    @property
    def known(self) -> bool:
        return all(math.isfinite(c.variance) for c in self.components)

    @property
    def se(self) -> float:
        return math.sqrt(sum(c.variance for c in self.components))

    @property
    def df(self) -> float:
        """The smallest df of the (nonzero) components; ``inf`` with no variance at all (module docstring)."""
        return min((c.df for c in self.components if c.variance > 0), default=INF)


def run_gains(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Each run's mean gain over the problems: before ``(P,)``, after ``(S, P)`` -> ``(S,)``."""
    return np.mean(np.atleast_2d(after) - before, axis=1)


def _f_sf(f: float, df1: float, df2: float) -> float:
    """``P(F > f)`` for Fisher's F with ``(df1, df2)`` degrees of freedom."""
    x = df2 / (df2 + df1 * f)
    return _beta_inc(df2 / 2, df1 / 2, x, df1 * f / (df2 + df1 * f))


# Runs of the standard-RL control on every pair: its between-run variance calibrates the intervals of
# variants with few runs (``Prior``), and it is the reference of every comparison.
CALIBRATION_RUNS = 8
GUARD = 0.25  # one-sided level of the F-test that lets a group's own, larger variance replace the pooled one


def between_run(gains: np.ndarray, prior: Prior | None) -> tuple[float, float]:
    """(variance, df) of one group's run gains ``(S,)``, combined with a calibrated prior as the module says.

    NaN variance and df 0 when it is unknown (one run, no prior).
    """
    runs = len(gains)
    own = float(np.var(gains, ddof=1)) if runs >= 2 else math.nan
    if prior is None:
        return own, runs - 1
    if runs == 1:
        return prior.variance, prior.df
    if prior.variance == 0 or _f_sf(own / prior.variance, runs - 1, prior.df) < GUARD:
        return own, runs - 1
    df = runs - 1 + prior.df
    return max(own, ((runs - 1) * own + prior.df * prior.variance) / df), df


def _scores(before: np.ndarray, groups: Sequence[Group]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Base ``(P,)`` and each group's ``(S, P)`` as floats, checked to share the P problems."""
    base = np.asarray(before, dtype=float)
    if base.ndim != 1 or len(base) < 2:
        raise ValueError(f"base scores must have shape (P,) with P >= 2; got {base.shape}")
    afters = [np.atleast_2d(np.asarray(g.after, dtype=float)) for g in groups]
    for i, a in enumerate(afters):
        if a.ndim != 2 or a.shape[1] != len(base) or len(a) < 1:
            raise ValueError(f"group {i} scores have shape {a.shape}; expected (S, {len(base)}) like the base")
    return base, afters


def contrast(before: np.ndarray, groups: Sequence[Group], weights: Sequence[float]) -> Estimate:
    """``sum_g weights[g] * mean gain of group g`` with its variance components (module docstring)."""
    if len(groups) != len(weights) or not groups:
        raise ValueError(f"a contrast needs one weight per group; got {len(weights)} for {len(groups)} groups")
    base, afters = _scores(before, groups)
    components = []
    for c, g, a in zip(weights, groups, afters, strict=True):
        if c != 0:
            variance, df = between_run(run_gains(base, a), g.prior)
            components.append(Component(c * c * variance / len(a), df, len(a)))
    problem = sum(c * (a.mean(axis=0) - base) for c, a in zip(weights, afters, strict=True))
    components.append(Component(float(np.var(problem, ddof=1)) / len(base), len(base) - 1, 0))
    return Estimate(float(np.mean(problem)), tuple(components), tuple(len(a) for a in afters))


def difference(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` for estimates from independent data (different pairs): their components add."""
    return Estimate(a.value - b.value, a.components + b.components, a.runs + b.runs)


# ---------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Check:
    """An estimate held to a region ``(lower, upper)``: what more runs could sharpen."""

    estimate: Estimate
    lower: float = -INF
    upper: float = INF


@dataclass(frozen=True)
class Verdict:
    """A claim's outcome with the estimate and interval it rests on and the threshold it was held to.

    ``p_holds`` / ``p_fails``: one-sided p-values of "the claim holds" / "it fails"; ``p_value`` is
    the decided direction's (the smaller one when inconclusive), the one a family-wise adjustment uses.
    ``se``, ``df``: of the contrast decided; ``runs``: runs per group; ``checks``: what more runs could settle.
    """

    outcome: Outcome
    estimate: float
    low: float
    high: float
    threshold: float
    reason: str = ""
    p_holds: float = 1.0
    p_fails: float = 1.0
    se: float = math.nan
    df: float = math.nan
    runs: tuple[int, ...] = ()
    checks: tuple[Check, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; known: {', '.join(OUTCOMES)}")

    @property
    def p_value(self) -> float:
        if self.outcome == "holds":
            return self.p_holds
        return self.p_fails if self.outcome == "fails" else min(self.p_holds, self.p_fails)

    def describe(self) -> str:
        text = f"{self.outcome}: {self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}] vs {self.threshold:g}"
        return f"{text} ({self.reason})" if self.reason else text


def judge(low: float, high: float, lower: float = -INF, upper: float = INF) -> Outcome:
    """Interval ``[low, high]`` vs the claim's region ``(lower, upper)``.

    holds if the interval lies inside the region, fails if it lies wholly outside, else inconclusive.
    """
    if lower < low and high < upper:
        return "holds"
    if high <= lower or low >= upper:
        return "fails"
    return "inconclusive"


UNKNOWN = "the between-run variance is unknown: a group has one run and no calibrated prior"


def _tail(e: Estimate, margin: float) -> float:
    """One-sided p-value ``P(T > margin / se)``: of the estimate sitting ``margin`` above a null value."""
    if e.se == 0:
        return 0.0 if margin > 0 else 1.0 if margin < 0 else 0.5
    return t_sf(margin / e.se, e.df)


def _interval(e: Estimate, alpha: float) -> tuple[float, float]:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}")
    half = t_isf(alpha / 2, e.df) * e.se if e.se > 0 else 0.0
    return e.value - half, e.value + half


def decide(e: Estimate, *, lower: float = -INF, upper: float = INF, threshold: float, alpha: float = 0.05) -> Verdict:
    """The claim "the true value lies in ``(lower, upper)``" judged on ``e``'s (1 - alpha) t-interval."""
    check = Check(e, lower, upper)
    if not e.known:
        return Verdict("inconclusive", e.value, -INF, INF, threshold, UNKNOWN, runs=e.runs, checks=(check,))
    low, high = _interval(e, alpha)
    p_holds = max(_tail(e, e.value - lower), _tail(e, upper - e.value))
    p_fails = min(_tail(e, lower - e.value), _tail(e, e.value - upper))
    return Verdict(judge(low, high, lower, upper), e.value, low, high, threshold, p_holds=p_holds, p_fails=p_fails,
                   se=e.se, df=e.df, runs=e.runs, checks=(check,))


PASS_AT_K_CHANGE = (-1.0, 1.0)  # what a change of a pass@k (or a difference of two changes) can take


def _pass_at_k_change(verdict: Verdict) -> Verdict:
    """The verdict with its interval cut to what a pass@k change can take (a two-run t interval can reach far
    beyond; the outcome and p-values are unchanged, as every threshold lies inside). An unknown interval
    (infinite: no variance to build it from) stays as it is."""
    if not (math.isfinite(verdict.low) and math.isfinite(verdict.high)):
        return verdict
    floor, ceiling = PASS_AT_K_CHANGE
    return replace(verdict, low=max(verdict.low, floor), high=min(verdict.high, ceiling))


def gain_above(before: np.ndarray, group: Group, *, threshold: float = 0.0, alpha: float = 0.05) -> Verdict:
    """Claim "the group's mean gain > threshold": before ``(P,)``, ``group.after`` ``(S, P)``."""
    return _pass_at_k_change(decide(contrast(before, [group], [1.0]), lower=threshold, threshold=threshold,
                                    alpha=alpha))


def gain_below(before: np.ndarray, group: Group, *, threshold: float = 0.0, alpha: float = 0.05) -> Verdict:
    """Claim "the group's mean gain < threshold" (e.g. PSR lowers large-k pass@k)."""
    return _pass_at_k_change(decide(contrast(before, [group], [1.0]), upper=threshold, threshold=threshold,
                                    alpha=alpha))


def within(before: np.ndarray, a: Group, b: Group, *, eps: float, alpha: float = 0.05) -> Verdict:
    """Claim "|gain_a - gain_b| < eps": TOST (Schuirmann 1987), each side one-sided at ``alpha / 2``."""
    return _pass_at_k_change(decide(contrast(before, [a, b], [1.0, -1.0]), lower=-eps, upper=eps, threshold=eps,
                                    alpha=alpha))


def not_worse(before: np.ndarray, a: Group, b: Group, *, eps: float, alpha: float = 0.05) -> Verdict:
    """Claim "gain_a > gain_b - eps" (non-inferiority); ``b`` may be the base itself via ``gain_above``."""
    return _pass_at_k_change(decide(contrast(before, [a, b], [1.0, -1.0]), lower=-eps, threshold=-eps,
                                    alpha=alpha))


def _fieller(a: float, b: float, var_a: float, var_b: float, cov: float, q: float) -> tuple[float, float]:
    """Fieller's interval for ``a / b``: the r with ``(a - r b)^2 <= q^2 var(a - r b)``; needs ``b^2 > q^2 var_b``."""
    lead, mid, last = b * b - q * q * var_b, a * b - q * q * cov, a * a - q * q * var_a
    root = math.sqrt(max(mid * mid - lead * last, 0.0))
    return (mid - root) / lead, (mid + root) / lead


def recovers(before: np.ndarray, variant: Group, reference: Group, *, fraction: float,
             alpha: float = 0.05) -> Verdict:
    """Claim "the variant recovers at least ``fraction`` of the reference's gain".

    Decided on ``gain_v - fraction * gain_r > 0``; shows ``gain_v / gain_r`` with Fieller's interval,
    whose bounds sit on the same side of ``fraction`` as the decision. Inconclusive, with a reason,
    unless the reference's gain is significantly above 0 (and Fieller's interval is bounded).
    """
    decided = contrast(before, [variant, reference], [1.0, -fraction])
    gain_v, gain_r = contrast(before, [variant], [1.0]), contrast(before, [reference], [1.0])
    ratio = gain_v.value / gain_r.value if gain_r.value != 0 else math.nan
    checks = (Check(decided, 0.0), Check(gain_r, 0.0))
    if not (decided.known and gain_r.known):
        return Verdict("inconclusive", ratio, -INF, INF, fraction, UNKNOWN, runs=decided.runs, checks=checks)
    verdict = decide(decided, lower=0.0, threshold=fraction, alpha=alpha)
    low_r, high_r = _interval(gain_r, alpha)
    q = t_isf(alpha / 2, decided.df)
    if low_r <= 0 or gain_r.value <= q * gain_r.se:
        reason = f"reference gained nothing measurable: its gain {gain_r.value:.3g} [{low_r:.3g}, {high_r:.3g}]"
        return Verdict("inconclusive", ratio, -INF, INF, fraction, reason, verdict.p_holds, verdict.p_fails,
                       verdict.se, verdict.df, decided.runs, () if high_r < 0 else checks)
    base, (after_v, after_r) = _scores(before, [variant, reference])
    problem_v, problem_r = after_v.mean(axis=0) - base, after_r.mean(axis=0) - base
    cov = float(np.cov(problem_v, problem_r)[0, 1]) / len(base)
    low, high = _fieller(gain_v.value, gain_r.value, gain_v.se**2, gain_r.se**2, cov, q)
    return Verdict(verdict.outcome, ratio, low, high, fraction, "", verdict.p_holds, verdict.p_fails, verdict.se,
                   verdict.df, decided.runs, verdict.checks)


def all_of(parts: Sequence[Verdict], *, alpha: float = 0.05) -> Verdict:
    """A claim that holds only if every part holds: an intersection–union test (Berger 1982).

    holds if every part holds (p: the largest part p_holds); fails if some part fails at
    ``alpha / 2`` after Bonferroni over the parts (p: ``len(parts) *`` the smallest p_fails); the
    numbers shown are the binding part's (the one whose p-value decides).
    """
    if not parts:
        raise ValueError("all_of needs at least one part")
    p_holds = max(p.p_holds for p in parts)
    p_fails = min(1.0, len(parts) * min(p.p_fails for p in parts))
    if all(p.outcome == "holds" for p in parts):
        outcome: Outcome = "holds"
        binding = max(parts, key=lambda p: p.p_holds)
    else:
        outcome = "fails" if p_fails < alpha / 2 else "inconclusive"
        binding = min(parts, key=lambda p: p.p_fails) if outcome == "fails" else max(parts, key=lambda p: p.p_holds)
    reason = "; ".join(p.reason for p in parts if p.reason)
    checks = tuple(c for p in parts if p.outcome == "inconclusive" for c in p.checks)
    return Verdict(outcome, binding.estimate, binding.low, binding.high, binding.threshold, reason, p_holds, p_fails,
                   binding.se, binding.df, binding.runs, checks)


# ---------------------------------------------------------------- sequential looks


def spending_alphas(looks: Sequence[int], alpha: float = 0.05) -> tuple[float, ...]:
    """Per-look ``alpha`` for ``decide`` at looks after ``looks`` runs (increasing; the last is the cap).

    O'Brien–Fleming-type spending (Lan & DeMets 1983) of the one-sided level ``a = alpha / 2`` over
    the information fraction ``tau = runs / cap``: ``a(tau) = 2 - 2 Phi(z_{1 - a/2} / sqrt(tau))``.
    Look i decides at ``alpha_i = 2 (a(tau_i) - a(tau_{i-1}))``; the ``alpha_i`` sum to ``alpha``, so
    by the union bound a false "holds" (or "fails") at any look has probability at most ``alpha / 2``,
    whatever the correlation between looks. Stopping early for futility only lowers it.
    """
    if not looks or any(r < 1 for r in looks) or any(b <= a for a, b in itertools.pairwise(looks)):
        raise ValueError(f"looks must be increasing run counts >= 1; got {list(looks)}")
    z = _NORMAL.inv_cdf(1 - alpha / 4)
    spent = [2 * _NORMAL.cdf(-z / math.sqrt(r / looks[-1])) for r in looks]
    return tuple(2 * (b - a) for a, b in itertools.pairwise([0.0, *spent]))


def sequential(verdict_at: Callable[[int, float], Verdict], looks: Sequence[int],
               alpha: float = 0.05) -> tuple[Verdict, str]:
    """Looks after ``looks[i]`` runs, ``verdict_at(runs, alpha_i)`` at the spending levels, until one decides.

    Stops at the first decided verdict, when ``could_decide`` says the cap could not decide it
    (futility), or at the cap; returns the last verdict and why it stopped.
    """
    alphas = spending_alphas(looks, alpha)
    for runs, level in zip(looks, alphas, strict=True):
        verdict = verdict_at(runs, level)
        if verdict.outcome != "inconclusive":
            return verdict, f"decided at {runs} runs"
        if runs < looks[-1] and not could_decide(verdict, cap=looks[-1], alpha=alphas[-1]):
            return verdict, f"stopped at {runs} runs: {looks[-1]} runs could not decide it"
    return verdict, f"undecided at the cap of {looks[-1]} runs"


def _projected(e: Estimate, cap: int) -> Estimate:
    """``e`` as if every group had ``cap`` runs: between-run parts shrink as ``runs / cap``, their df grow."""
    components = tuple(Component(c.variance * c.runs / cap, c.df + cap - c.runs, cap) if 0 < c.runs < cap else c
                       for c in e.components)
    return Estimate(e.value, components, tuple(max(r, cap) for r in e.runs))


def _settled(check: Check, alpha: float) -> bool:
    e = check.estimate
    return e.known and judge(*_interval(e, alpha), check.lower, check.upper) != "inconclusive"


FUTILITY = 0.10  # stop adding runs when the conditional power at the cap falls below this


def _reachable(check: Check, cap: int, alpha: float) -> bool:
    """Conditional power >= FUTILITY: if the truth were the estimate now, would ``cap`` runs clear every bound?

    The final estimate is then normal around the current one with the variance the new runs add,
    ``sum v * runs * (cap - runs) / cap^2`` over the between-run parts; it clears a bound when it
    lies more than the half-width projected at ``cap`` from it.
    """
    e = check.estimate
    if not e.known:
        return True
    low, high = _interval(_projected(e, cap), alpha)
    spread = math.sqrt(sum(c.variance * c.runs * (cap - c.runs) for c in e.components if 0 < c.runs < cap)) / cap
    slack = (high - low) / 2 + _NORMAL.inv_cdf(FUTILITY) * spread
    return all(abs(e.value - bound) > slack for bound in (check.lower, check.upper) if math.isfinite(bound))


def could_decide(verdict: Verdict, *, cap: int, alpha: float) -> bool:
    """Futility rule: could up to ``cap`` runs per group still turn this inconclusive verdict decisive?

    True iff every unsettled check keeps a conditional power of at least FUTILITY at ``cap`` runs
    (``alpha``: the cap look's), assuming the truth is the current estimate (stochastic curtailment,
    Lan, Simon & Halperin 1982). Never true of a decided verdict. It can only stop a cell early as
    inconclusive, so it never raises the error rates.
    """
    if verdict.outcome != "inconclusive" or not verdict.checks:
        return False
    return all(_reachable(c, cap, alpha) for c in verdict.checks if not _settled(c, alpha))


# ---------------------------------------------------------------- family-wise adjustment


def _family(p_values: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all p as floats, mask of the family (not NaN), the family's ascending order)."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any(p[~np.isnan(p)] < 0) or np.any(p[~np.isnan(p)] > 1):
        raise ValueError(f"p-values must be a flat sequence of numbers in [0, 1] or NaN; got {p_values!r}")
    member = ~np.isnan(p)
    return p, member, np.argsort(p[member], kind="stable")


def _place(p: np.ndarray, member: np.ndarray, order: np.ndarray, adjusted_sorted: np.ndarray) -> np.ndarray:
    out = np.full_like(p, math.nan)
    values = np.empty(len(order))
    values[order] = np.minimum(adjusted_sorted, 1.0)
    out[member] = values
    return out


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values (family-wise error); NaN is outside the family and stays NaN."""
    p, member, order = _family(p_values)
    ranked = p[member][order]
    return _place(p, member, order, np.maximum.accumulate((len(ranked) - np.arange(len(ranked))) * ranked))


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg (1995) adjusted p-values (false discovery rate); NaN stays NaN."""
    p, member, order = _family(p_values)
    ranked = p[member][order]
    scaled = len(ranked) * ranked / np.arange(1, len(ranked) + 1)
    return _place(p, member, order, np.minimum.accumulate(scaled[::-1])[::-1])


def adjusted_outcome(outcome: str, p_adjusted: float, alpha: float = 0.05) -> str:
    """A decided outcome survives if its adjusted p-value is below ``alpha / 2``, else it becomes inconclusive.

    Other outcomes (inconclusive, not_exercised) pass through.
    """
    if outcome in ("holds", "fails") and not p_adjusted < alpha / 2:
        return "inconclusive"
    return outcome
