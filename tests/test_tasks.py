"""Generated task families: problems, splits, answers, formats, errors and the guessing baseline."""

from __future__ import annotations

import doctest
import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import harness.tasks
from harness.specs import TaskSpec
from harness.tasks import (
    FAMILIES,
    ORGANISM_ALPHABET,
    TaskError,
    formats,
    get_task,
    operator,
    split_of,
    transfer_mix,
    truth_tables,
)
from harness.tasks.base import Problem
from harness.tasks.generated import GeneratedTask


def make(family: str, fmt: str = "bare", **params) -> GeneratedTask:
    """A fresh task (not the shared instance of get_task)."""
    return FAMILIES[family](TaskSpec(family=family, params=params, format=fmt))


def python_truth_table(expression: str, variables: int) -> str:
    """Brute force with Python's own not/and/or (same precedence as ~ & |)."""
    code = expression.replace("~", " not ").replace("&", " and ").replace("|", " or ")
    names = "abcd"[:variables]
    return "".join("T" if eval(code, {}, dict(zip(names, values, strict=True))) else "F"
                   for values in itertools.product([False, True], repeat=variables))


def at_most(params: dict, count: int) -> int:
    """``count``, or what a 1-digit space's splits can give (it has 14 eval and 86 train problems)."""
    return min(count, 10) if params.get("digits") == 1 else count


SPECS = [
    ("arithmetic", {}),
    ("arithmetic", {"digits": 1}),
    ("arithmetic", {"digits": [1, 2], "op": "-"}),
    ("arithmetic", {"digits": [2, 3], "op": "*", "operands": 3}),
    ("operator", {}),
    ("operator", {"digits": [1, 2], "offset": -3}),
    ("truth_table", {}),
    ("truth_table", {"literals": [1, 3]}),
]


# ---------------------------------------------------------------- problems and splits


@pytest.mark.parametrize(("family", "params"), SPECS)
def test_problems_are_deterministic_and_prefix_stable(family, params):
    first = make(family, **params).problems("train", 40, seed=3)
    again = make(family, **params).problems("train", 40, seed=3)
    assert first == again
    assert make(family, **params).problems("train", 15, seed=3) == first[:15]
    assert make(family, **params).problems("train", 40, seed=4) != first
    assert len({p.question for p in first}) == 40 and len({p.uid for p in first}) == 40


@pytest.mark.parametrize(("family", "params"), SPECS)
def test_problems_lie_in_their_split(family, params):
    task = make(family, **params)
    train, evals = task.problems("train", 60), task.problems("eval", 10)
    assert all(split_of(family, p.question) == "train" for p in train)
    assert all(split_of(family, p.question) == "eval" for p in evals)
    assert not {p.question for p in train} & {p.question for p in evals}


def test_small_space_is_enumerated_exactly():
    questions = [f"{a}+{b}=" for a in range(10) for b in range(10)]
    n_eval = sum(split_of("arithmetic", q) == "eval" for q in questions)
    task = make("arithmetic", digits=1)
    train, evals = task.problems("train", 100 - n_eval), task.problems("eval", n_eval)
    assert sorted(p.question for p in train + evals) == sorted(questions)
    assert (task.available("eval"), task.available("train")) == (n_eval, 100 - n_eval)
    with pytest.raises(TaskError) as err:
        task.problems("eval", n_eval + 1)
    message = str(err.value)
    assert f"count {n_eval + 1}" in message and f"holds {n_eval} problems" in message and "eval" in message
    assert "\n" not in message


@pytest.mark.parametrize(("variables", "literals"), [(3, 1), (3, 2), (3, 3), (4, 2)])
def test_truth_table_space_matches_its_count(variables, literals):
    expressions = list(truth_tables.expressions(literals, variables))
    assert len(expressions) == len(set(expressions)) == truth_tables.expression_count(literals, variables)


def test_space_sizes():
    assert make("arithmetic").space_size == 1000**2
    assert make("arithmetic", digits=[2, 2], operands=3).space_size == 90**3
    assert make("truth_table").space_size == 72 + 1728 + 51840


def test_digit_counts_are_drawn_uniformly():
    problems = make("arithmetic", digits=[1, 3]).problems("train", 1500)
    first_digits = [len(p.question.split("+")[0]) for p in problems]
    for d in (1, 2, 3):
        assert abs(first_digits.count(d) / len(problems) - 1 / 3) < 0.05
    # few draws from each stratum, so that drawing without replacement barely shifts the shares
    literals = [len(re.findall("[abc]", p.question))
                for p in make("truth_table", literals=[3, 4]).problems("train", 300)]
    assert abs(literals.count(3) / len(literals) - 1 / 2) < 0.06


def test_available_in_a_sampled_space():
    task = make("arithmetic", digits=[2, 3])
    assert task.available("train") == int(990**2 * 0.8) // 2
    assert len(task.problems("train", 20_000)) == 20_000
    with pytest.raises(TaskError, match="split must be"):
        task.available("test")


def test_count_beyond_a_large_space_fails_at_once():
    with pytest.raises(TaskError, match="count 810001 exceeds the whole space of 810000"):
        make("arithmetic", digits=[3, 3]).problems("train", 810_001)


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize(("family", "params"), [s for s in SPECS if s[0] == "arithmetic"])
def test_arithmetic_answers(family, params):
    digits = params.get("digits", [1, 3])
    low, high = (digits, digits) if isinstance(digits, int) else digits
    for p in make(family, **params).problems("eval", at_most(params, 200)):
        assert p.answer == str(eval(p.question.removesuffix("=")))
        operands = re.split(r"[-+*]", p.question.removesuffix("="))
        assert len(operands) == params.get("operands", 2)
        assert all(low <= len(v) <= high and str(int(v)) == v for v in operands)


@pytest.mark.parametrize("offset", [1, 0, -3])
def test_operator_answers(offset):
    for p in make("operator", offset=offset).problems("train", 200):
        a, b = map(int, p.question.removesuffix("=").split("#"))
        assert int(p.answer) == a + b + offset and p.answer == str(a + b + offset)


@pytest.mark.parametrize("variables", [3, 4])
def test_truth_table_answers(variables):
    for p in make("truth_table", variables=variables, literals=[1, 3]).problems("eval", 150):
        assert p.answer == python_truth_table(p.question.removesuffix("="), variables)
        assert len(p.answer) == 2**variables


def test_truth_table_order_and_evaluator():
    assert truth_tables.truth_table("~a|(c&a)", 3) == "TTTTFTFT"
    assert make("truth_table").solve("~a|(c&a)=") == "TTTTFTFT"
    for expression in ["~~a", "a&b|c", "a|b&c", "~(a|b)&c", "(a|~b)&(c|~a)", "d&~(a|b&c)"]:
        variables = 4 if "d" in expression else 3
        assert truth_tables.truth_table(expression, variables) == python_truth_table(expression, variables)


@pytest.mark.parametrize("bad", ["a&", "a&&b", "(a|b", "a)b", "e", "", "a|2"])
def test_truth_table_evaluator_rejects_malformed(bad):
    with pytest.raises(TaskError, match="cannot read"):
        truth_tables.truth_table(bad, 3)


def test_alphabet_covers_every_bare_problem():
    assert len(set(ORGANISM_ALPHABET)) == len(ORGANISM_ALPHABET)
    for family, params in [*SPECS, ("arithmetic", {"op": "*"}), ("truth_table", {"variables": 4})]:
        for p in make(family, **params).problems("train", at_most(params, 300)):
            assert set(p.text) <= set(ORGANISM_ALPHABET), p.text


def test_transfer_mix():
    arithmetic, novel = transfer_mix(0.02, digits=[1, 2])
    assert (arithmetic.task.family, novel.task.family) == ("arithmetic", "operator")
    assert (arithmetic.weight, novel.weight) == pytest.approx((0.98, 0.02))
    for component in (arithmetic, novel):
        assert len(get_task(component.task).problems("train", 50)) == 50
    with pytest.raises(TaskError, match="fraction"):
        transfer_mix(1.0)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("family", "params", "fmt", "expected"), [
    ("arithmetic", {"digits": 0}, "bare", ["'digits' = [0, 0]", "1 <= min <= max"]),
    ("arithmetic", {"digits": [3, 1]}, "bare", ["'digits' = [3, 1]", "1 <= min <= max"]),
    ("arithmetic", {"digits": [1]}, "bare", ["'digits' = [1]", "[min, max]"]),
    ("arithmetic", {"digits": [1, 2.5]}, "bare", ["'digits'", "[min, max] of ints"]),
    ("arithmetic", {"digits": "2"}, "bare", ["'digits' = '2' has the wrong type", "int or list or tuple"]),
    ("arithmetic", {"digits": True}, "bare", ["'digits' = True has the wrong type"]),
    ("arithmetic", {"op": "/"}, "bare", ["'op' = '/' is unknown", "'+', '-', '*'"]),
    ("arithmetic", {"operands": 1}, "bare", ["'operands' = 1", ">= 2"]),
    ("arithmetic", {"digit": 2}, "bare", ["unknown parameter 'digit'", "known: digits, op, operands"]),
    ("arithmetic", {}, "json", ["unknown format 'json'", "known: bare, chat, boxed"]),
    ("operator", {"offset": "1"}, "bare", ["'offset' = '1' has the wrong type", "expected int"]),
    ("truth_table", {"variables": 5}, "bare", ["'variables' = 5", "expected 3 or 4"]),
    ("truth_table", {"literals": [0, 2]}, "bare", ["'literals' = [0, 2]", "1 <= min <= max"]),
    ("truth_table", {"literals": [4, 2]}, "bare", ["'literals' = [4, 2]"]),
])
def test_impossible_parameters(family, params, fmt, expected):
    with pytest.raises(TaskError) as err:
        get_task(TaskSpec(family=family, params=params, format=fmt))
    message = str(err.value)
    assert f"task '{family}'" in message and "\n" not in message
    for part in expected:
        assert part in message


@pytest.mark.parametrize(("split", "count", "expected"), [
    ("test", 1, "split must be 'train' or 'eval', got 'test'"),
    ("eval", -1, "count must be an int >= 0, got -1"),
    ("eval", 1.5, "count must be an int >= 0, got 1.5"),
])
def test_bad_problem_requests(split, count, expected):
    with pytest.raises(TaskError, match=re.escape(expected)):
        make("arithmetic").problems(split, count)


def test_unknown_family_suggests_a_name():
    with pytest.raises(TaskError) as err:
        get_task(TaskSpec(family="arithmetc"))
    assert str(err.value).startswith("unknown task family 'arithmetc'; did you mean 'arithmetic'? known: ")
    assert "truth_table" in str(err.value) and "math500" in str(err.value)
    with pytest.raises(TaskError, match="unknown task family 'zzz'; known: aime24, amc23, arithmetic"):
        get_task(TaskSpec(family="zzz"))


def test_get_task_shares_one_instance_per_spec():
    a = get_task(TaskSpec(family="arithmetic", params={"digits": [1, 2]}))
    assert get_task(TaskSpec(family="arithmetic", params={"digits": [1, 2]})) is a
    assert get_task(TaskSpec(family="arithmetic", params={"digits": [1, 2]}, format="chat")) is not a
    assert a.problems("eval", 0) == []


# ---------------------------------------------------------------- formats


def problem(answer: str) -> Problem:
    return Problem(question="?", answer=answer, uid="u")


@pytest.mark.parametrize(("fmt", "completion", "extracted", "ok"), [
    ("bare", "46", "46", True),
    ("bare", " 46\n", "46", True),
    ("bare", "+46", "46", False),
    ("bare", "46.", "46", False),
    ("bare", "1,234", "1234", False),
    ("bare", "046", "46", False),
    ("bare", "-7", "-7", True),
    ("bare", "-0", "0", False),
    ("bare", "17 + 22", None, False),
    ("bare", "46=", None, False),
    ("bare", "", None, False),
    ("chat", "<think>12+34</think><answer>46</answer>", "46", True),
    ("chat", " <think>\nadd</think>\n<answer> 1,234 </answer>\n", "1234", True),
    ("chat", "<think>a</think><answer>17 + 22</answer>", None, True),
    ("chat", "<answer>46</answer>", "46", False),
    ("chat", "<think>a</think><answer>45</answer><answer>46</answer>", "46", False),
    ("chat", "<think>a</think><answer>46</answer> done", "46", False),
    ("chat", "<think>a</think><answer> </answer>", None, False),
    ("chat", "<think>a</think>x<answer>46</answer>", "46", False),
    ("chat", "<think><think>a</think><answer>46</answer>", "46", False),
    ("chat", "so it is \\boxed{46}", "46", False),
    ("chat", "12 + 34 = 46.", "46", False),
    ("chat", "no number here", None, False),
    ("boxed", "so \\boxed{46}.", "46", True),
    ("boxed", "\\boxed{\\frac{92}{2}}", None, True),
    ("boxed", "\\boxed{}", None, False),
    ("boxed", "\\boxed{46", "46", False),
    ("boxed", "I think 45, no, 46", "46", False),
    ("boxed", "4.5", None, False),
])
def test_integer_formats(fmt, completion, extracted, ok):
    task = make("arithmetic", fmt)
    assert task.extract(completion) == extracted
    assert task.format_ok(completion) is ok
    assert task.is_correct(completion, problem("46")) is (extracted == "46")


@pytest.mark.parametrize("completion", [
    "17 + 22", "\\boxed{17 + 22}", "<think></think><answer>17+22</answer>",
    "<think></think><answer>17 + 22</answer>",
])
def test_an_unevaluated_sum_is_not_its_value(completion):
    for fmt in ("bare", "chat", "boxed"):
        assert not make("arithmetic", fmt).is_correct(completion, problem("39"))


@pytest.mark.parametrize(("fmt", "completion", "extracted", "ok"), [
    ("bare", "TTTTFTFT", "TTTTFTFT", True),
    ("bare", "T T T T F T F T", "TTTTFTFT", False),
    ("bare", "TTTTFTF", None, False),
    ("bare", "tttt ftft", None, False),
    ("chat", "<think>rows</think><answer>TTTTFTFT</answer>", "TTTTFTFT", True),
    ("chat", "<think>rows</think><answer>T,T,T,T,F,T,F,T</answer>", "TTTTFTFT", True),
    ("chat", "The table is TTTTFTFT.", "TTTTFTFT", False),
    ("chat", "FFFFFFFF then TTTTFTFTT", "FFFFFFFF", False),
    ("boxed", "\\boxed{TTTTFTFT}", "TTTTFTFT", True),
    ("boxed", "TTTTFTFTs", None, False),
])
def test_truth_table_formats(fmt, completion, extracted, ok):
    task = make("truth_table", fmt)
    assert task.extract(completion) == extracted
    assert task.format_ok(completion) is ok


def test_prompts():
    p = make("operator").problems("eval", 1)[0]
    assert make("operator").prompt(p) == p.question
    for fmt, marker in (("chat", "<answer>"), ("boxed", "\\boxed{}")):
        (message,) = make("operator", fmt, offset=-2).prompt(p)
        assert message["role"] == "user"
        assert "a#b = a+b-2" in message["content"] and p.question.removesuffix("=") in message["content"]
        assert marker in message["content"]
    (message,) = make("truth_table", "chat").prompt(Problem(question="~a|(c&a)=", answer="TTTTFTFT", uid="u"))
    assert "~a|(c&a)" in message["content"] and "FFF, FFT, FTF, FTT, TFF, TFT, TTF, TTT" in message["content"]
    assert "8 letters" in message["content"]
    (message,) = make("arithmetic", "boxed").prompt(Problem(question="12*3=", answer="36", uid="u"))
    assert "Compute 12*3." in message["content"]


FRAGMENTS = ["<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "{", "}", "46", "-", "+", ",", ".",
             "1,234", "T", "F", "TTTTFTFT", " ", "\n", "17 + 22", "\\frac{1}{2}", "$", "é", "\x00", "٤٦"]
TEXTS = st.one_of(st.text(), st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join))
FUZZED = [make(family, fmt) for family in ("arithmetic", "operator", "truth_table")
          for fmt in ("bare", "chat", "boxed")]


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_verifiers_never_raise(text):
    for task in FUZZED:
        answer = task.extract(text)
        assert answer is None or task.shape.exact(answer)
        assert isinstance(task.format_ok(text), bool)
        assert isinstance(task.is_correct(text, problem("46")), bool)
        assert isinstance(task.is_correct(text, problem("TTTTFTFT")), bool)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_integers_round_trip(n):
    assert make("arithmetic").extract(str(n)) == str(n)
    assert make("arithmetic", "chat").extract(f"<think>x</think><answer>{n:,}</answer>") == str(n)
    assert make("arithmetic", "boxed").extract(f"\\boxed{{{n}}} and that is all") == str(n)
    assert formats.last_number(f"first 12, then {n}.") == str(n)


def test_huge_digit_strings_do_not_raise():
    assert formats.canonical_int("9" * 5000) is None
    assert make("arithmetic", "chat").extract("1" * 10_000) is None


# ---------------------------------------------------------------- guessing baseline


@pytest.mark.parametrize(("family", "params", "count"), [
    ("arithmetic", {"digits": 1}, 14),
    ("truth_table", {}, 300),
    ("operator", {"digits": [1, 2]}, 200),
])
def test_guessing_baseline_matches_simulation(family, params, count):
    task = make(family, **params)
    problems = task.problems("eval", count)
    ks = [1, 4, 16]
    exact = task.guessing_pass_at_k(problems, ks)
    answers = [p.answer for p in problems]
    values, counts = np.unique(answers, return_counts=True)
    index = np.searchsorted(values, answers)
    rng = np.random.default_rng(0)
    trials = 2000
    for k in ks:
        draws = rng.choice(len(values), size=(trials, len(problems), k), p=counts / counts.sum())
        hits = (draws == index[None, :, None]).any(axis=2).mean(axis=1)  # pass@k of each trial
        tolerance = 4 * hits.std() / np.sqrt(trials) + 1e-3
        assert abs(hits.mean() - exact[k]) < tolerance, (k, hits.mean(), exact[k])
    assert 0 < exact[1] < exact[4] < exact[16] <= 1


def test_doctests():
    for module in (formats, truth_tables, operator, harness.tasks):
        assert doctest.testmod(module).failed == 0
