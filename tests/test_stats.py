"""Tests of harness.stats: pass@k properties, maj@k, the paired bootstrap and verdict outcomes."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.stats import (
    Verdict,
    bootstrap_ci,
    bootstrap_samples,
    gain_above,
    gain_below,
    judge,
    maj_at_k,
    mean_at_k,
    mean_gain,
    pass_at_k,
    pass_at_k_per_problem,
    recovers,
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


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_is_deterministic_given_a_seeded_generator() -> None:
    x = np.random.default_rng(1).random((3, 40))
    first = bootstrap_ci(np.mean, x, rng=np.random.default_rng(7), n_boot=300)
    assert first == bootstrap_ci(np.mean, x, rng=np.random.default_rng(7), n_boot=300)
    assert first != bootstrap_ci(np.mean, x, rng=np.random.default_rng(8), n_boot=300)
    est, low, high = first
    assert est == pytest.approx(x.mean()) and low < est < high


def test_bootstrap_is_paired() -> None:
    x = np.random.default_rng(2).random((4, 30))
    assert bootstrap_ci(mean_gain, x, x + 0.1, rng=np.random.default_rng(0), n_boot=200) == pytest.approx(
        (0.1, 0.1, 0.1)
    )


def test_bootstrap_broadcasts_a_base_evaluated_once() -> None:
    data = np.random.default_rng(3)
    before, after = data.random(25), data.random((3, 25))
    once = bootstrap_ci(mean_gain, before, after, rng=np.random.default_rng(5), n_boot=200)
    tiled = bootstrap_ci(mean_gain, np.tile(before, (3, 1)), after, rng=np.random.default_rng(5), n_boot=200)
    assert once == tiled


def test_bootstrap_samples_of_a_vector_statistic() -> None:
    x = np.random.default_rng(4).random((2, 10))
    samples = bootstrap_samples(
        lambda a: np.array([a.mean(), a.max()]), x, rng=np.random.default_rng(0), n_boot=50
    )
    assert samples.shape == (50, 2)


def test_bootstrap_rejects_arrays_that_do_not_pair() -> None:
    with pytest.raises(ValueError, match="do not pair"):
        bootstrap_ci(mean_gain, np.zeros((2, 5)), np.zeros((3, 5)), rng=np.random.default_rng(0))


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


def scores(seed: int, p: float | np.ndarray, shape: tuple[int, ...], n: int = 16) -> np.ndarray:
    """Per-problem accuracy from n Bernoulli(p) samples: ``shape`` -> ``shape``."""
    return np.random.default_rng(seed).binomial(n, np.broadcast_to(p, shape)) / n


P = np.linspace(0.1, 0.6, 80)  # per-problem base accuracy of a constructed model


def test_gain_verdicts_on_constructed_data() -> None:
    rng = np.random.default_rng(0)
    before = scores(1, P, (80,))
    up, down = scores(2, P + 0.3, (3, 80)), scores(3, P - 0.1, (3, 80))
    assert gain_above(before, up, rng=rng, n_boot=500).outcome == "holds"
    assert gain_above(before, down, rng=rng, n_boot=500).outcome == "fails"
    assert gain_above(before, up, threshold=0.5, rng=rng, n_boot=500).outcome == "fails"
    assert gain_below(before, down, rng=rng, n_boot=500).outcome == "holds"
    assert gain_below(before, up, rng=rng, n_boot=500).outcome == "fails"
    noise = np.where(np.arange(80) % 2 == 0, 0.3, -0.3)  # mean gain exactly 0, large spread
    verdict = gain_above(before, before + noise[None, :], rng=rng, n_boot=500)
    assert verdict.outcome == "inconclusive" and verdict.low < 0 < verdict.high
    assert verdict.describe().startswith("inconclusive: ")


def test_within_on_constructed_data() -> None:
    rng = np.random.default_rng(0)
    before = scores(1, P, (80,))
    a, b = scores(2, P + 0.3, (3, 80)), scores(3, P + 0.3, (3, 80))
    assert within(before, a, b, eps=0.1, rng=rng, n_boot=500).outcome == "holds"
    assert within(before, a, scores(4, P, (3, 80)), eps=0.1, rng=rng, n_boot=500).outcome == "fails"
    assert within(before, a, b, eps=0.001, rng=rng, n_boot=500).outcome == "inconclusive"


def test_recovers_on_constructed_data() -> None:
    rng = np.random.default_rng(0)
    before = scores(1, P, (80,))
    full, most, none = scores(2, P + 0.3, (3, 80)), scores(3, P + 0.28, (3, 80)), scores(4, P, (3, 80))
    held = recovers(before, most, full, fraction=0.5, rng=rng, n_boot=500)
    assert held.outcome == "holds" and held.threshold == 0.5 and held.low < held.estimate < held.high
    assert held.estimate == pytest.approx(mean_gain(before, most) / mean_gain(before, full))
    assert recovers(before, none, full, fraction=0.5, rng=rng, n_boot=500).outcome == "fails"
    flat = recovers(before, full, np.broadcast_to(before, (3, 80)), fraction=0.5, rng=rng, n_boot=500)
    assert flat.outcome == "inconclusive" and "reference gained nothing" in flat.reason
    assert "reference gained nothing" in flat.describe()
    worse = recovers(before, full, scores(5, P - 0.1, (3, 80)), fraction=0.5, rng=rng, n_boot=500)
    assert worse.outcome == "inconclusive" and worse.reason


def test_verdict_rejects_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="unknown outcome 'pass'"):
        Verdict("pass", 0.0, 0.0, 0.0, 0.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------- error rates under the null

ALPHA, EXPERIMENTS = 0.05, 200
TOLERANCE = 2 * math.sqrt(ALPHA * (1 - ALPHA) / EXPERIMENTS)  # two Monte-Carlo standard errors


def test_gain_above_false_holds_rate_under_null() -> None:
    rng = np.random.default_rng(2024)
    p = rng.uniform(0.05, 0.95, 40)
    holds = 0
    for e in range(EXPERIMENTS):
        before, after = scores(2 * e, p, (40,)), scores(2 * e + 1, p, (2, 40))  # true gain exactly 0
        holds += gain_above(before, after, rng=rng, n_boot=500, alpha=ALPHA).outcome == "holds"
    assert holds / EXPERIMENTS <= ALPHA + TOLERANCE


def test_recovers_false_holds_rate_at_its_boundary() -> None:
    rng = np.random.default_rng(2025)
    p, delta, fraction = rng.uniform(0.1, 0.6, 40), 0.3, 0.8
    holds = 0
    for e in range(EXPERIMENTS):
        before = scores(3 * e, p, (40,))
        after_a = scores(3 * e + 1, p + fraction * delta, (2, 40))  # true gain_a = fraction * gain_b
        after_b = scores(3 * e + 2, p + delta, (2, 40))
        verdict = recovers(before, after_a, after_b, fraction=fraction, rng=rng, n_boot=500, alpha=ALPHA)
        holds += verdict.outcome == "holds"
    assert holds / EXPERIMENTS <= ALPHA + TOLERANCE
