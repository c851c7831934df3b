"""Tests of harness.stats: pass@k properties, maj@k, Student's t, contrasts, verdicts, looks, adjustments."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.stats import (
    GUARD,
    UNKNOWN,
    Component,
    Estimate,
    Group,
    Prior,
    Verdict,
    adjusted_outcome,
    all_of,
    benjamini_hochberg,
    between_run,
    contrast,
    could_decide,
    decide,
    difference,
    gain_above,
    gain_below,
    holm,
    judge,
    maj_at_k,
    mean_at_k,
    not_worse,
    pass_at_k,
    pass_at_k_per_problem,
    recovers,
    run_gains,
    sequential,
    spending_alphas,
    t_isf,
    t_sf,
    within,
)


@st.composite
def nck(draw: st.DrawFn, max_n: int = 60) -> tuple[int, int, int]:
    n = draw(st.integers(1, max_n))
    return n, draw(st.integers(0, n)), draw(st.integers(1, n))


def exact_pass_at_k(n: int, c: int, k: int) -> float:
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


# ---------------------------------------------------------------- pass@k


@given(nck())
def test_pass_at_k_is_a_probability(args: tuple[int, int, int]) -> None:
    assert 0.0 <= pass_at_k(*args) <= 1.0


@given(nck())
def test_pass_at_k_monotone_in_k(args: tuple[int, int, int]) -> None:
    n, c, _ = args
    values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values))


@given(nck())
def test_pass_at_n_is_any_correct_and_pass_at_1_is_accuracy(args: tuple[int, int, int]) -> None:
    n, c, _ = args
    assert pass_at_k(n, c, n) == float(c > 0)
    assert pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)


@given(nck())
def test_pass_at_k_matches_exact_combinatorics(args: tuple[int, int, int]) -> None:
    assert pass_at_k(*args) == pytest.approx(exact_pass_at_k(*args), rel=1e-9, abs=1e-12)


@given(
    st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n), max_size=8))),
    st.integers(1, 40),
)
def test_per_problem_matches_scalar(args: tuple[int, list[int]], k: int) -> None:
    n, correct = args
    k = min(k, n)
    got = pass_at_k_per_problem(n, np.array(correct, dtype=int), k)
    assert got.shape == (len(correct),)
    np.testing.assert_allclose(got, [pass_at_k(n, c, k) for c in correct], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(("n", "c", "k"), [(10, 3, 2), (20, 5, 4), (16, 1, 8), (30, 12, 5)])
def test_pass_at_k_matches_monte_carlo(n: int, c: int, k: int) -> None:
    rng = np.random.default_rng(0)
    trials = 20_000
    draws = rng.random((trials, n)).argsort(axis=1)[:, :k]  # k of n without replacement
    hit = (draws < c).any(axis=1).mean()  # samples 0..c-1 are the correct ones
    p = pass_at_k(n, c, k)
    assert abs(hit - p) <= 4 * math.sqrt(p * (1 - p) / trials) + 1e-3


def test_pass_at_k_large_n_is_finite_and_exact() -> None:
    n, ks = 1024, [1, 2, 8, 64, 256, 512, 1000, 1024]
    counts = np.array([0, 1, 2, 10, 100, 512, 1000, 1023, 1024])
    for c in counts:
        got = [pass_at_k(n, int(c), k) for k in ks]
        assert all(np.isfinite(got)) and got == sorted(got) and got[0] >= 0.0 and got[-1] <= 1.0
        np.testing.assert_allclose(got, [exact_pass_at_k(n, int(c), k) for k in ks], rtol=1e-9, atol=1e-12)
    for k in ks:
        exact = [exact_pass_at_k(n, int(c), k) for c in counts]
        grid = pass_at_k_per_problem(n, np.tile(counts, (2, 1)), k)  # (S, P) -> (S, P)
        assert grid.shape == (2, len(counts))
        np.testing.assert_allclose(grid, [exact, exact], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 0, 5), (4, 0, 0), (4, 5, 1), (4, -1, 1)])
def test_pass_at_k_rejects_bad_values(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match=f"n={n}, c={c}, k={k}"):
        pass_at_k(n, c, k)
    with pytest.raises(ValueError):
        pass_at_k_per_problem(n, np.array([c]), k)


def test_mean_at_k_is_accuracy() -> None:
    np.testing.assert_allclose(mean_at_k(8, np.array([0, 2, 8])), [0.0, 0.25, 1.0])
    with pytest.raises(ValueError):
        mean_at_k(8, np.array([9]))


# ---------------------------------------------------------------- maj@k


def test_maj_at_k_constructed() -> None:
    answers = [
        ["a", "b", "a", "a"],  # chunks (a,b): tie -> first seen a; (a,a) -> a
        ["b", "a", "a", "a"],  # (b,a): tie -> b, wrong; (a,a) right
        [None, None, "a"],  # (None, None) has no winner; "a" is the unused remainder
        [None, None, None, "x"],  # (None, None) has no winner; (None, x) -> x
        ["x", "y", "y", "x", "z"],  # n // k = 2 chunks of 2, the 5th answer is unused
    ]
    gold = ["a", "a", "a", "x", "y"]
    np.testing.assert_allclose(maj_at_k(answers, gold, 2), [1.0, 0.5, 0.0, 0.5, 0.5])
    np.testing.assert_allclose(maj_at_k(answers[:4], gold[:4], 3), [1.0, 1.0, 1.0, 0.0])  # one chunk each


def test_maj_at_1_is_accuracy() -> None:
    answers = [["a", None, "b", "a"], ["c", "c", "c", "d"]]
    np.testing.assert_allclose(maj_at_k(answers, ["a", "d"], 1), [0.5, 0.25])


def test_maj_at_k_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="k=3"):
        maj_at_k([["a", "b"]], ["a"], 3)
    with pytest.raises(ValueError, match="one gold answer"):
        maj_at_k([["a"]], ["a", "b"], 1)


# ---------------------------------------------------------------- Student's t


@pytest.mark.parametrize(
    ("q", "df", "table"),  # two-sided 95%, 99%, one-sided 95% critical values of standard t tables
    [(0.025, 1, 12.7062047), (0.025, 2, 4.30265273), (0.025, 3, 3.18244631), (0.025, 5, 2.57058184),
     (0.025, 10, 2.22813885), (0.025, 30, 2.04227246), (0.025, 100, 1.98397152), (0.005, 1, 63.6567412),
     (0.005, 5, 4.03214298), (0.005, 10, 3.16927267), (0.05, 1, 6.31375151), (0.05, 7, 1.89457861)],
)
def test_t_isf_matches_tables(q: float, df: float, table: float) -> None:
    assert t_isf(q, df) == pytest.approx(table, abs=1e-7)
    assert t_isf(1 - q, df) == pytest.approx(-table, abs=1e-7)


@given(st.floats(-1e4, 1e4))
def test_t_sf_matches_closed_forms_at_1_and_2_df(t: float) -> None:
    assert t_sf(t, 1) == pytest.approx(0.5 - math.atan(t) / math.pi, rel=1e-10, abs=1e-15)
    assert t_sf(t, 2) == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)), rel=1e-9, abs=1e-15)


@given(st.floats(1e-9, 0.5), st.floats(0.5, 1e5))
def test_t_isf_inverts_t_sf(q: float, df: float) -> None:
    t = t_isf(q, df)
    assert t >= 0 and t_sf(t, df) == pytest.approx(q, rel=1e-9)
    assert t >= -NormalDist().inv_cdf(q) - 1e-9  # heavier tails than the normal


def test_t_tends_to_the_normal() -> None:
    assert t_isf(0.025, math.inf) == pytest.approx(1.959963985)
    assert t_isf(0.025, 1e6) == pytest.approx(1.959963985, abs=1e-5)
    assert t_sf(2.0, math.inf) == pytest.approx(NormalDist().cdf(-2.0))
    assert t_sf(math.inf, 3) == 0.0 and t_sf(-math.inf, 3) == 1.0 and t_sf(0.0, 3) == 0.5


def test_t_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="df > 0"):
        t_sf(1.0, 0)
    with pytest.raises(ValueError, match=r"\(0, 1\); got 1.5"):
        t_isf(1.5, 3)


# ---------------------------------------------------------------- contrasts and their variance


def test_prior_from_gains() -> None:
    prior = Prior.from_gains(np.array([0.01, 0.03, 0.05]))
    assert prior.variance == pytest.approx(0.0004) and prior.df == 2
    with pytest.raises(ValueError, match="at least 2 runs"):
        Prior.from_gains(np.array([0.01]))
    with pytest.raises(ValueError, match="df > 0"):
        Prior(0.01, 0)


@pytest.mark.parametrize(
    ("gains", "prior", "expected"),
    [
        ([0.1, 0.3], None, (0.02, 1)),  # own variance only
        ([0.1], None, (math.nan, 0)),  # one run, no prior: unknown
        ([0.1], Prior(0.004, 7), (0.004, 7)),  # one run: the prior is all there is
        ([0.1, 0.12, 0.14], Prior(0.004, 7), ((2 * 0.0004 + 7 * 0.004) / 9, 9)),  # pooled
        ([0.1, 0.2, 0.15], Prior(0.002, 7), (0.0025, 9)),  # own larger, not significantly: own, pooled df
        ([0.1, 0.3], Prior(0.004, 7), (0.02, 1)),  # own significantly larger (F = 5, p = 0.06): own alone
    ],
)
def test_between_run_combines_own_runs_and_prior(gains: list[float], prior: Prior | None,
                                                  expected: tuple[float, float]) -> None:
    variance, df = between_run(np.array(gains), prior)
    assert df == expected[1]
    assert variance == pytest.approx(expected[0], nan_ok=True)


@pytest.mark.parametrize(("ratio", "df"), [(1.65, 9), (1.75, 2)])
def test_between_run_guard_is_an_f_test_at_its_level(ratio: float, df: int) -> None:
    """With 3 runs and a prior of df 7, P(F(2, 7) > f) = (1 + 2 f / 7)^-3.5 crosses GUARD at f = 1.70."""
    assert pytest.approx((1 + 2 * 1.701 / 7) ** -3.5, abs=1e-4) == GUARD
    gains = np.array([-1.0, 0.0, 1.0]) * math.sqrt(ratio * 0.01)  # own variance = ratio * 0.01
    assert between_run(gains, Prior(0.01, 7))[1] == df


def test_contrast_components_by_hand() -> None:
    before = np.array([0.0, 0.5, 1.0, 0.5])
    a = np.array([[0.5, 0.5, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]])  # run gains 0.125, 0.25
    b = np.array([[0.0, 0.5, 1.0, 1.0]])  # one run, gain 0.125
    e = contrast(before, [Group(a), Group(b, Prior(0.01, 4))], [1.0, -0.5])
    assert e.value == pytest.approx(0.1875 - 0.0625)
    problem = (a.mean(axis=0) - before) - 0.5 * (b[0] - before)  # [0.25, 0.25, 0, 0]
    assert e.components == (Component(pytest.approx(np.var([0.125, 0.25], ddof=1) / 2), 1, 2),
                            Component(pytest.approx(0.25 * 0.01), 4, 1),
                            Component(pytest.approx(np.var(problem, ddof=1) / 4), 3, 0))
    assert e.runs == (2, 1) and e.df == 1
    assert e.se == pytest.approx(math.sqrt(sum(c.variance for c in e.components)))
    np.testing.assert_allclose(run_gains(before, a), [0.125, 0.25])


def test_contrast_skips_groups_of_weight_zero_and_knows_when_it_cannot_know() -> None:
    before, one = np.array([0.2, 0.4, 0.6]), np.array([[0.3, 0.5, 0.6]])
    assert contrast(before, [Group(one)], [1.0]).known is False  # one run, no prior
    known = contrast(before, [Group(np.tile(one, (2, 1))), Group(one)], [1.0, 0.0])
    assert known.known and len(known.components) == 2 and known.runs == (2, 1)


def test_contrast_rejects_mismatched_input() -> None:
    before = np.zeros(5)
    with pytest.raises(ValueError, match=r"group 1 scores have shape \(2, 4\); expected \(S, 5\)"):
        contrast(before, [Group(np.zeros((2, 5))), Group(np.zeros((2, 4)))], [1.0, 1.0])
    with pytest.raises(ValueError, match="one weight per group"):
        contrast(before, [Group(np.zeros((2, 5)))], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"shape \(P,\)"):
        contrast(np.zeros((2, 5)), [Group(np.zeros((2, 5)))], [1.0])


def test_difference_of_independent_estimates_adds_variances() -> None:
    a = Estimate(0.3, (Component(0.01, 7, 2), Component(0.001, 99, 0)), (2,))
    b = Estimate(0.1, (Component(0.02, 3, 4),), (4,))
    d = difference(a, b)
    assert d.value == pytest.approx(0.2) and d.se == pytest.approx(math.sqrt(0.031)) and d.df == 3
    assert d.runs == (2, 4)


# ---------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    ("interval", "region", "outcome"),
    [
        ((0.1, 0.2), (0.0, np.inf), "holds"),
        ((-0.2, 0.0), (0.0, np.inf), "fails"),
        ((-0.1, 0.1), (0.0, np.inf), "inconclusive"),
        ((-0.05, 0.05), (-0.1, 0.1), "holds"),
        ((0.2, 0.3), (-0.1, 0.1), "fails"),
        ((0.05, 0.3), (-0.1, 0.1), "inconclusive"),
    ],
)
def test_judge(interval: tuple[float, float], region: tuple[float, float], outcome: str) -> None:
    assert judge(*interval, *region) == outcome


@given(st.floats(-1, 1), st.floats(1e-4, 1), st.floats(1, 300), st.sampled_from([(0.0, math.inf), (-math.inf, 0.0),
                                                                                 (-0.3, 0.3)]))
def test_decide_agrees_with_its_p_values(value: float, se: float, df: float, region: tuple[float, float]) -> None:
    e = Estimate(value, (Component(se * se, df, 2),), (2,))
    v = decide(e, lower=region[0], upper=region[1], threshold=0.0)
    assert v.low == pytest.approx(value - t_isf(0.025, df) * se) and v.se == pytest.approx(se) and v.df == df
    margin = 1e-9  # the interval and the p-values are computed separately
    if abs(v.p_holds - 0.025) > margin and abs(v.p_fails - 0.025) > margin:
        assert (v.outcome == "holds") == (v.p_holds < 0.025)
        assert (v.outcome == "fails") == (v.p_fails < 0.025)
    assert v.p_value == {"holds": v.p_holds, "fails": v.p_fails}.get(v.outcome, min(v.p_holds, v.p_fails))


def test_decide_with_unknown_variance_is_inconclusive_with_a_reason() -> None:
    e = Estimate(0.5, (Component(math.nan, 0, 1), Component(0.0001, 99, 0)), (1,))
    v = decide(e, lower=0.0, threshold=0.0)
    assert v.outcome == "inconclusive" and v.reason == UNKNOWN and v.p_value == 1.0
    assert (v.low, v.high) == (-math.inf, math.inf) and "one run and no calibrated prior" in v.describe()


def scores(seed: int, p: float | np.ndarray, shape: tuple[int, ...], n: int = 16) -> np.ndarray:
    """Per-problem accuracy from n Bernoulli(p) samples: ``shape`` -> ``shape``."""
    return np.random.default_rng(seed).binomial(n, np.clip(np.broadcast_to(p, shape), 0, 1)) / n


P = np.linspace(0.1, 0.6, 80)  # per-problem base accuracy of a constructed model
BEFORE = scores(1, P, (80,))


def test_gain_verdicts_on_constructed_data() -> None:
    up, down = Group(scores(2, P + 0.3, (3, 80))), Group(scores(3, P - 0.1, (3, 80)))
    assert gain_above(BEFORE, up).outcome == "holds"
    assert gain_above(BEFORE, down).outcome == "fails"
    assert gain_above(BEFORE, up, threshold=0.5).outcome == "fails"
    assert gain_below(BEFORE, down).outcome == "holds"
    assert gain_below(BEFORE, up).outcome == "fails"
    noise = np.where(np.arange(80) % 2 == 0, 0.3, -0.3)  # mean gain exactly 0, large spread
    verdict = gain_above(BEFORE, Group(BEFORE + noise[None, :].repeat(2, axis=0)))
    assert verdict.outcome == "inconclusive" and verdict.low < 0 < verdict.high
    assert verdict.describe().startswith("inconclusive: ") and verdict.runs == (2,)


def test_run_to_run_spread_widens_the_interval() -> None:
    shift = np.array([[0.0], [0.1]])  # two runs whose gains differ by 0.1 on every problem
    tight = gain_above(BEFORE, Group(scores(2, P + 0.05, (2, 80))))
    spread = gain_above(BEFORE, Group(scores(2, P + 0.05, (2, 80)) + shift))
    assert tight.se < 0.02 and spread.se > 0.04  # the mean of two runs 0.1 apart has an se of about 0.05
    assert spread.outcome == "inconclusive" and spread.df == 1


def test_a_prior_decides_with_one_run() -> None:
    one = Group(scores(2, P + 0.2, (1, 80)))
    assert gain_above(BEFORE, one).reason == UNKNOWN
    assert gain_above(BEFORE, Group(one.after, Prior(0.02**2, 7))).outcome == "holds"
    assert gain_above(BEFORE, Group(one.after, Prior(0.2**2, 7))).outcome == "inconclusive"


def test_within_and_not_worse_on_constructed_data() -> None:
    a, b = Group(scores(2, P + 0.3, (3, 80))), Group(scores(3, P + 0.3, (3, 80)))
    flat = Group(scores(4, P, (3, 80)))
    assert within(BEFORE, a, b, eps=0.1).outcome == "holds"
    assert within(BEFORE, a, flat, eps=0.1).outcome == "fails"
    assert within(BEFORE, a, b, eps=0.001).outcome == "inconclusive"
    assert not_worse(BEFORE, a, b, eps=0.1).outcome == "holds"
    assert not_worse(BEFORE, flat, a, eps=0.1).outcome == "fails"
    assert not_worse(BEFORE, a, flat, eps=0.0).threshold == 0.0


def test_recovers_on_constructed_data() -> None:
    full, most, none = (Group(scores(s, P + d, (3, 80))) for s, d in ((2, 0.3), (3, 0.28), (4, 0.0)))
    held = recovers(BEFORE, most, full, fraction=0.5)
    assert held.outcome == "holds" and held.threshold == 0.5 and 0.5 < held.low < held.estimate < held.high
    assert held.estimate == pytest.approx(run_gains(BEFORE, most.after).mean() / run_gains(BEFORE, full.after).mean())
    assert recovers(BEFORE, none, full, fraction=0.5).outcome == "fails"
    flat = recovers(BEFORE, full, Group(np.broadcast_to(BEFORE, (3, 80))), fraction=0.5)
    assert flat.outcome == "inconclusive" and flat.reason.startswith("reference gained nothing measurable")
    worse = recovers(BEFORE, full, Group(scores(5, P - 0.1, (3, 80))), fraction=0.5)
    assert worse.outcome == "inconclusive" and worse.reason and worse.checks == ()  # more runs cannot help
    one = recovers(BEFORE, most, Group(full.after[:1]), fraction=0.5)
    assert one.outcome == "inconclusive" and one.reason == UNKNOWN


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.3), st.floats(0.02, 0.3), st.floats(0.1, 1.0))
def test_fieller_interval_agrees_with_the_decision(seed: int, gain_v: float, gain_r: float, fraction: float) -> None:
    data = np.random.default_rng(seed)
    spread = data.uniform(0, 0.05, size=(2, 3, 1))  # per-run shifts, so the runs differ
    variant = Group(scores(seed, P + gain_v, (3, 80)) + spread[0], Prior(0.03**2, 7))
    reference = Group(scores(seed + 1, P + gain_r, (3, 80)) + spread[1])
    v = recovers(BEFORE, variant, reference, fraction=fraction)
    if v.reason:
        return
    decided = contrast(BEFORE, [variant, reference], [1.0, -fraction])
    assert v.p_value == decide(decided, lower=0.0, threshold=fraction).p_value
    assert {"holds": fraction < v.low, "fails": v.high < fraction,
            "inconclusive": v.low <= fraction <= v.high}[v.outcome]
    q = t_isf(0.025, decided.df)
    for r in (v.low, v.high):  # each bound solves (a - r b)^2 = q^2 var(a - r b)
        e = contrast(BEFORE, [variant, reference], [1.0, -r])
        assert abs(e.value) == pytest.approx(q * e.se, rel=1e-6, abs=1e-9)


def test_all_of_is_an_intersection_union_test() -> None:
    def part(outcome: str, p_holds: float, p_fails: float) -> Verdict:
        return Verdict(outcome, p_holds, -1.0, 1.0, 0.0, p_holds=p_holds, p_fails=p_fails)  # type: ignore[arg-type]

    held = all_of([part("holds", 0.01, 0.9), part("holds", 0.02, 0.9)])
    assert held.outcome == "holds" and held.p_value == 0.02 and held.estimate == 0.02  # the binding part's
    assert all_of([part("holds", 0.01, 0.9), part("inconclusive", 0.2, 0.3)]).outcome == "inconclusive"
    failed = all_of([part("holds", 0.01, 0.9), part("fails", 0.9, 0.001)])
    assert failed.outcome == "fails" and failed.p_value == 0.002  # Bonferroni over the two parts
    assert all_of([part("holds", 0.01, 0.9), part("fails", 0.9, 0.02)]).outcome == "inconclusive"
    with pytest.raises(ValueError, match="at least one part"):
        all_of([])


def test_verdict_rejects_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="unknown outcome 'pass'"):
        Verdict("pass", 0.0, 0.0, 0.0, 0.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------- sequential looks


def test_spending_alphas_obrien_fleming() -> None:
    alphas = spending_alphas([2, 4, 8])
    assert sum(alphas) == pytest.approx(0.05) and alphas[0] < alphas[1] < alphas[2]
    assert sum(alphas[:2]) / 2 == pytest.approx(0.001525, abs=2e-6)  # one-sided spent at half information
    assert spending_alphas([8]) == pytest.approx((0.05,))
    assert sum(spending_alphas([1, 2, 3, 4, 8], alpha=0.1)) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"increasing run counts >= 1; got \[2, 2\]"):
        spending_alphas([2, 2])


def test_could_decide_projects_the_half_width_at_the_cap() -> None:
    def verdict(value: float, variance: float, runs: int = 2) -> Verdict:
        return decide(Estimate(value, (Component(variance, runs - 1, runs),), (runs,)), lower=0.0, threshold=0.0)

    # se 0.01 from 2 runs: at 8 runs the half-width is 2.365 * 0.005 = 0.0118, and 6 new runs move the
    # estimate by sd sqrt(1e-4 * 2 * 6) / 8 = 0.0043: conditional power 10% at 0.0118 - 1.2816 * 0.0043 = 0.0063
    near, edge, far = verdict(0.006, 0.01**2), verdict(0.0066, 0.01**2), verdict(0.05, 0.01**2)
    assert near.outcome == edge.outcome == far.outcome == "inconclusive"
    assert not could_decide(near, cap=8, alpha=0.05)
    assert could_decide(edge, cap=8, alpha=0.05) and could_decide(far, cap=8, alpha=0.05)
    assert not could_decide(verdict(0.5, 0.01**2, runs=8), cap=8, alpha=0.05)  # decided already
    unknown = decide(Estimate(0.0, (Component(math.nan, 0, 1),), (1,)), lower=0.0, threshold=0.0)
    assert could_decide(unknown, cap=8, alpha=0.05)  # more runs make the variance known


def test_sequential_stops_when_decided_futile_or_capped() -> None:
    shifts = np.array([0.0, 0.02, -0.01, 0.03, 0.01, -0.02, 0.02, 0.0])[:, None]

    def looks_at(gain: float):
        after = scores(9, P + gain, (8, 80)) + shifts
        return lambda runs, alpha: gain_above(BEFORE, Group(after[:runs], Prior(0.02**2, 7)), alpha=alpha)

    expected = {0.3: ("holds", "decided at 2 runs"), 0.06: ("holds", "decided at 4 runs"),
                0.0: ("inconclusive", "stopped at 2 runs: 8 runs could not decide it"),
                0.01: ("inconclusive", "stopped at 4 runs: 8 runs could not decide it"),
                0.02: ("inconclusive", "undecided at the cap of 8 runs")}
    for gain, (outcome, why) in expected.items():
        verdict, stopped = sequential(looks_at(gain), [2, 4, 8])
        assert (verdict.outcome, stopped) == (outcome, why), gain


# ---------------------------------------------------------------- family-wise adjustment


def test_holm_and_benjamini_hochberg_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(holm([0.01, math.nan, 0.02]), [0.02, math.nan, 0.02])  # NaN: not in the family
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        holm([0.5, 1.5])


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_adjusted_p_values_bound_the_raw_ones(p: list[float]) -> None:
    h, bh = holm(p), benjamini_hochberg(p)
    assert np.all(h >= np.array(p) - 1e-15) and np.all(bh >= np.array(p) - 1e-15)
    assert np.all(h <= 1) and np.all(bh <= h + 1e-15)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(h[order]) >= -1e-15) and np.all(np.diff(bh[order]) >= -1e-15)


def test_adjusted_outcome() -> None:
    assert adjusted_outcome("holds", 0.01) == "holds"
    assert adjusted_outcome("holds", 0.03) == "inconclusive"
    assert adjusted_outcome("fails", 0.03) == "inconclusive"
    assert adjusted_outcome("not_exercised", 0.9) == "not_exercised"


def test_a_pass_at_k_change_keeps_its_interval_within_what_the_measure_can_take() -> None:
    """Two runs far apart give a 1-df t interval far beyond [-1, 1]; the claims cut it there, deciding as before."""
    before = np.full(4, 0.5)
    apart = Group(np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))
    raw = decide(contrast(before, [apart], [1.0]), lower=-0.02, threshold=-0.02)
    assert raw.low < -1.0 and raw.high > 1.0
    for verdict in (gain_above(before, apart, threshold=-0.02), not_worse(before, apart, Group(np.full((2, 4), 0.5)),
                                                                            eps=0.02)):
        assert (verdict.low, verdict.high) == (-1.0, 1.0)
        assert (verdict.outcome, verdict.p_value) == (raw.outcome, raw.p_value)
    lone = gain_above(before, Group(np.array([[0.6, 0.6, 0.6, 0.6]])))  # one run, no prior: no interval at all
    assert (lone.low, lone.high) == (-math.inf, math.inf) and lone.reason == UNKNOWN
