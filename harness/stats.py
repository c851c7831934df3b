"""Pure statistics: pass@k, mean@k, maj@k, a paired bootstrap and verdict arithmetic.

Layer 0: imports numpy only. Randomness comes from an explicit ``numpy.random.Generator``.
Shapes: ``P`` problems, ``S`` seeds (independent RL runs), ``B`` bootstrap resamples.
A per-problem score array is ``(S, P)``; a base model evaluated once gives ``(P,)``, which
broadcasts against ``(S, P)`` (the same base scores for every seed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Outcome = Literal["holds", "fails", "inconclusive"]
OUTCOMES: tuple[Outcome, ...] = ("holds", "fails", "inconclusive")
Statistic = Callable[..., "float | np.ndarray"]


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


def _majority(chunk: Sequence[str | None]) -> str | None:
    """Most frequent non-None answer; ties go to the first seen; None if every answer is None."""
    counts = Counter(a for a in chunk if a is not None)  # insertion order = first occurrence
    return counts.most_common(1)[0][0] if counts else None


def _maj_one(answers: Sequence[str | None], gold: str, k: int) -> float:
    """Majority-vote accuracy over the ``len(answers) // k`` disjoint chunks of one problem."""
    chunks = range(0, len(answers) - k + 1, k)
    return float(np.mean([_majority(answers[j : j + k]) == gold for j in chunks]))


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


# ---------------------------------------------------------------- paired bootstrap


def _paired(*arrays: np.ndarray) -> list[np.ndarray]:
    """Arrays ``(S, P)`` or ``(P,)`` -> all broadcast to one ``(S, P)``."""
    arrs = [np.atleast_2d(np.asarray(a, dtype=float)) for a in arrays]
    if not arrs or any(a.ndim != 2 for a in arrs):
        shapes = [np.shape(a) for a in arrays]
        raise ValueError(f"bootstrap needs arrays of shape (S, P) or (P,); got {shapes}")
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrs))
    except ValueError:
        raise ValueError(f"bootstrap arrays do not pair up; shapes {[a.shape for a in arrs]}") from None
    return [np.broadcast_to(a, shape) for a in arrs]


def bootstrap_samples(
    stat: Statistic, *arrays: np.ndarray, rng: np.random.Generator, n_boot: int = 2000
) -> np.ndarray:
    """``stat`` over ``n_boot`` paired resamples of arrays ``(S, P)``/``(P,)`` -> ``(B,)`` or ``(B, m)``.

    Every array gets the same seed indices and the same problem indices (a crossed resample).
    Crossed resampling counts seed-by-problem noise twice, so its intervals are mildly
    conservative (Owen 2007, "the pigeonhole bootstrap").
    """
    arrs = _paired(*arrays)
    n_seeds, n_problems = arrs[0].shape
    if n_boot < 1:
        raise ValueError(f"bootstrap needs n_boot >= 1; got {n_boot}")
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    problems = rng.integers(0, n_problems, size=(n_boot, n_problems))
    return np.array(
        [stat(*(a[np.ix_(s, p)] for a in arrs)) for s, p in zip(seeds, problems, strict=True)], dtype=float
    )


def _percentiles(samples: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column of ``(B,)`` or ``(B, m)``, ignoring NaN -> two ``()`` or ``(m,)``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}")
    cols = [c[~np.isnan(c)] for c in samples.reshape(len(samples), -1).T]
    q = np.array([np.quantile(c, [alpha / 2, 1 - alpha / 2]) if c.size else [np.nan, np.nan] for c in cols])
    return q[:, 0].reshape(samples.shape[1:]), q[:, 1].reshape(samples.shape[1:])


def bootstrap_ci(
    stat: Statistic, *arrays: np.ndarray, rng: np.random.Generator, n_boot: int = 2000, alpha: float = 0.05
) -> tuple[float, float, float]:
    """(estimate, low, high): a scalar ``stat`` of arrays ``(S, P)``/``(P,)`` and its paired percentile CI."""
    low, high = _percentiles(bootstrap_samples(stat, *arrays, rng=rng, n_boot=n_boot), alpha)
    return float(stat(*_paired(*arrays))), float(low), float(high)


def mean_gain(before: np.ndarray, after: np.ndarray) -> float:
    """Mean of ``after - before``: ``(S, P)`` or ``(P,)`` each -> scalar."""
    return float(np.mean(np.asarray(after) - np.asarray(before)))


# ---------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """A claim's outcome with the estimate and interval it rests on and the threshold it was held to."""

    outcome: Outcome
    estimate: float
    low: float
    high: float
    threshold: float
    reason: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; known: {', '.join(OUTCOMES)}")

    def describe(self) -> str:
        text = f"{self.outcome}: {self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}] vs {self.threshold:g}"
        return f"{text} ({self.reason})" if self.reason else text


def judge(low: float, high: float, lower: float = -np.inf, upper: float = np.inf) -> Outcome:
    """Interval ``[low, high]`` vs the claim's region ``(lower, upper)``.

    holds if the interval lies inside the region, fails if it lies wholly outside, else inconclusive.
    """
    if lower < low and high < upper:
        return "holds"
    if high <= lower or low >= upper:
        return "fails"
    return "inconclusive"


def gain_above(
    before: np.ndarray,
    after: np.ndarray,
    *,
    threshold: float = 0.0,
    rng: np.random.Generator,
    n_boot: int = 2000,
    alpha: float = 0.05,
) -> Verdict:
    """Claim "mean gain > threshold": before ``(P,)`` or ``(S, P)``, after ``(S, P)``."""
    est, low, high = bootstrap_ci(mean_gain, before, after, rng=rng, n_boot=n_boot, alpha=alpha)
    return Verdict(judge(low, high, lower=threshold), est, low, high, threshold)


def gain_below(
    before: np.ndarray,
    after: np.ndarray,
    *,
    threshold: float = 0.0,
    rng: np.random.Generator,
    n_boot: int = 2000,
    alpha: float = 0.05,
) -> Verdict:
    """Claim "mean gain < threshold" (e.g. PSR lowers large-k pass@k): shapes as in ``gain_above``."""
    est, low, high = bootstrap_ci(mean_gain, before, after, rng=rng, n_boot=n_boot, alpha=alpha)
    return Verdict(judge(low, high, upper=threshold), est, low, high, threshold)


def within(
    before: np.ndarray,
    after_a: np.ndarray,
    after_b: np.ndarray,
    *,
    eps: float,
    rng: np.random.Generator,
    n_boot: int = 2000,
    alpha: float = 0.05,
) -> Verdict:
    """Claim "|gain_a - gain_b| <= eps", TOST-style on the CI of the difference (before cancels).

    The (1 - alpha) interval makes each one-sided test level alpha/2; pass 2*alpha for classic TOST.
    """

    def diff(b: np.ndarray, a: np.ndarray, r: np.ndarray) -> float:
        return mean_gain(b, a) - mean_gain(b, r)

    est, low, high = bootstrap_ci(diff, before, after_a, after_b, rng=rng, n_boot=n_boot, alpha=alpha)
    return Verdict(judge(low, high, -eps, eps), est, low, high, eps)


def _recovery_stats(before: np.ndarray, a: np.ndarray, b: np.ndarray, fraction: float) -> np.ndarray:
    """(mean gain_a - fraction * mean gain_b, mean gain_b, ratio) from ``(S, P)`` arrays -> ``(3,)``."""
    ga, gb = mean_gain(before, a), mean_gain(before, b)
    return np.array([ga - fraction * gb, gb, ga / gb if gb != 0 else np.nan])


def recovers(
    before: np.ndarray,
    after_a: np.ndarray,
    after_b: np.ndarray,
    *,
    fraction: float,
    rng: np.random.Generator,
    n_boot: int = 2000,
    alpha: float = 0.05,
) -> Verdict:
    """Claim "A recovers at least ``fraction`` of B's gain", decided on ``gain_a - fraction * gain_b > 0``.

    Shows the ratio ``mean gain_a / mean gain_b`` with its percentile CI against ``fraction``.
    Inconclusive, with a reason, unless B's own gain is significantly above 0.
    """

    def stats(b: np.ndarray, a: np.ndarray, r: np.ndarray) -> np.ndarray:
        return _recovery_stats(b, a, r, fraction)

    samples = bootstrap_samples(stats, before, after_a, after_b, rng=rng, n_boot=n_boot)
    est = _recovery_stats(*_paired(before, after_a, after_b), fraction)
    low, high = _percentiles(samples, alpha)
    ratio = (float(est[2]), float(low[2]), float(high[2]), fraction)
    if judge(low[1], high[1], lower=0.0) != "holds":
        reason = f"reference gained nothing measurable: its gain {est[1]:.3g} [{low[1]:.3g}, {high[1]:.3g}]"
        return Verdict("inconclusive", *ratio, reason=reason)
    return Verdict(judge(low[0], high[0], lower=0.0), *ratio)
