"""Strategy organisms: the two answer styles, their pretraining mix, the readouts, and a small real run."""

from __future__ import annotations

import doctest
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cache import Cache
from harness.evaluate import score
from harness.jobs import evaluate
from harness.models.organism import alphabet, build_tokenizer, draw_batch, encode_choices
from harness.readouts import forced, strategy_readout
from harness.specs import EvalSpec, MixComponent, OrganismSpec, SpecError, TaskSpec
from harness.tasks import FAMILIES, ORGANISM_ALPHABET, TaskError, get_task, split_of
from harness.tasks import strategy as strategy_module
from harness.tasks.base import Problem
from harness.tasks.strategy import StrategyTask


def make(**params) -> StrategyTask:
    """A fresh task (not the shared instance of get_task)."""
    return StrategyTask(TaskSpec(family="strategy", params=params))


def organism(steps: int, **params) -> OrganismSpec:
    return OrganismSpec(mix=(MixComponent(task=TaskSpec(family="strategy", params=params)),), steps=steps)


STEP = re.compile(r"([0-9])\+([0-9])(\+1)?=([0-9]+)")


# ---------------------------------------------------------------- answers in each style


def test_worked_answers_are_correct_carry_traces():
    task = make()
    longest = 0
    for p in task.problems("train", 400) + task.problems("eval", 100):
        a, b = map(int, p.question.removesuffix("=").split("+"))
        assert p.answer == str(a + b)
        worked, direct = task.answer_in("worked", p.question), task.answer_in("direct", p.question)
        assert direct == f"|{a + b}"
        trace, _, final = worked.removeprefix("#").partition("|")
        assert final == p.answer and worked.startswith("#")
        carry, digits = 0, []
        steps = trace.split(";")
        assert len(steps) == max(len(str(a)), len(str(b)))
        for i, step in enumerate(steps):
            x, y, plus_one, total = STEP.fullmatch(step).groups()
            assert int(x) == a // 10**i % 10 and int(y) == b // 10**i % 10 and bool(plus_one) == bool(carry)
            assert int(total) == int(x) + int(y) + carry
            carry = int(total) // 10
            digits.append(str(int(total) % 10) if i < len(steps) - 1 else total)
        assert "".join(reversed(digits)) == p.answer
        for answer, style in ((worked, "worked"), (direct, "direct")):
            assert task.format_ok(answer) and task.strategy_of(answer) == style
            assert task.is_correct(answer, p) and task.extract(answer) == p.answer
        longest = max(longest, len(worked))
    assert longest <= 30  # with EOS at most 31 generated tokens: max_new_tokens 32 suffices


def test_longest_completion_is_30_characters():
    assert make().answer_in("worked", "999+999=") == "#9+9=18;9+9+1=19;9+9+1=19|1998"
    assert len(make().answer_in("worked", "999+999=")) == 30


@pytest.mark.parametrize(("force", "completion", "extracted", "ok", "style"), [
    ("", "#3+9=12;2+8+1=11;1+4+1=6|612", "612", True, "worked"),
    ("", "|612", "612", True, "direct"),
    ("", " |612\n", "612", True, "direct"),
    ("", "612", "612", False, None),  # a direct answer without its opener: readable, not well formed
    ("", "#3+9=12;2+8+1=11;1+4+1=6", None, False, None),  # a trace cut before '|'
    ("", "#3+9=12;2+8+1=11;1+4+1=6|", None, False, None),
    ("", "#3+9=12;;2+8+1=11|612", "612", False, None),
    ("", "#3+9=12|6|12", "12", False, None),
    ("", "|0612", "612", False, None),
    ("", "|", None, False, None),
    ("", "", None, False, None),
    ("", "#|612", "612", False, None),
    ("", "#3+9=123|612", "612", False, None),
    ("", "#3+9=12;2+8+2=11|612", "612", False, None),  # the carry is +1 or nothing
    ("worked", "3+9=12;2+8+1=11;1+4+1=6|612", "612", True, "worked"),
    ("worked", "|612", "612", False, None),  # '#|612': an empty trace
    ("worked", "612", None, False, None),
    ("direct", "612", "612", True, "direct"),
    ("direct", "#3+9=12|612", "612", False, None),
    ("direct", "", None, False, None),
])
def test_extract_format_and_strategy(force, completion, extracted, ok, style):
    task = make(force=force)
    assert task.extract(completion) == extracted
    assert task.format_ok(completion) is ok
    assert task.strategy_of(completion) == style
    assert task.is_correct(completion, Problem(question="123+489=", answer="612", uid="u")) is (extracted == "612")


FRAGMENTS = ["#", "|", ";", "+", "=", "+1", "3+9=12", "0", "612", "-", " ", "\n", "é", "\x00", "٤٦", "9" * 40]
TEXTS = st.one_of(st.text(), st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join))
FUZZED = [make(force=f) for f in ("", "worked", "direct")]


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_verifiers_never_raise(text):
    for task in FUZZED:
        answer = task.extract(text)
        assert answer is None or task.shape.exact(answer)
        style = task.strategy_of(text)
        assert style in ("worked", "direct", None) and (style is not None) is task.format_ok(text)
        assert isinstance(task.is_correct(text, Problem(question="1+2=", answer="3", uid="u")), bool)


# ---------------------------------------------------------------- problems and pretraining answers


def test_only_digits_decide_the_problems():
    reference = make().problems("eval", 50)
    for params in ({"rho": 0.2}, {"rho": 1, "malformed": 0.0}, {"force": "worked"}, {"force": "direct"}):
        assert make(**params).problems("eval", 50) == reference
    assert make(digits=[2, 3]).problems("eval", 50) != reference
    assert all(split_of("strategy", p.question) == "eval" for p in reference)
    assert make().problems("train", 20, seed=1) == make().problems("train", 40, seed=1)[:20]


def test_prompts_end_with_the_forced_opener():
    p = make().problems("eval", 1)[0]
    assert [make(force=f).prompt(p) for f in ("", "worked", "direct")] == [p.question, p.question + "#",
                                                                             p.question + "|"]


def test_pretraining_answers_are_deterministic_with_probabilities_rho_and_malformed():
    task = make(rho=0.3, malformed=0.04)
    for p in task.problems("train", 300):
        choices = task.pretraining_answers(p, seed=7)
        assert choices == make(rho=0.3, malformed=0.04).pretraining_answers(p, seed=7)
        texts, weights = zip(*choices, strict=True)
        assert sum(weights) == pytest.approx(1)
        assert texts[:2] == (task.answer_in("worked", p.question), task.answer_in("direct", p.question))
        assert weights == pytest.approx((0.3 * 0.96, 0.7 * 0.96, 0.3 * 0.04, 0.7 * 0.04))
        assert not task.format_ok(texts[2]) and not task.format_ok(texts[3])
    assert [t for t, _ in make(rho=1, malformed=0).pretraining_answers(p, 0)] == [task.answer_in("worked", p.question)]
    malformed = {make(malformed=0.5).pretraining_answers(p, seed)[2][0] for seed in range(20)}
    assert len(malformed) > 1  # the corruption depends on the organism's seed


def test_pretraining_draws_match_rho_and_the_malformed_share():
    rho, bad = 0.3, 0.05
    spec = organism(1, rho=rho, malformed=bad)
    task = get_task(spec.mix[0].task)
    tokenizer = build_tokenizer(alphabet(spec))
    pools = [[encode_choices(tokenizer, task, p, spec.seed) for p in task.problems("train", 2000)]]
    generator = torch.Generator().manual_seed(0)
    rows = [row for _ in range(40) for row in draw_batch(pools, torch.tensor([1.0], dtype=torch.float64), 128,
                                                         generator)]
    styles = []
    for ids, labels in rows:
        answer = tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != -100],
                                  skip_special_tokens=True)
        styles.append(task.strategy_of(answer))
    total = len(styles)  # 5120 draws: 4 standard deviations of a share are at most 0.028
    assert abs(styles.count(None) / total - bad) < 4 * np.sqrt(bad * (1 - bad) / total)
    assert abs(styles.count("worked") / total - rho * (1 - bad)) < 4 * np.sqrt(0.3 * 0.7 / total)


def test_single_answer_families_draw_the_random_numbers_they_drew_before():
    """draw_batch's batches and generator state for one-answer pools equal the loop it replaced."""
    pools = [[[(([i], [i]), 1.0)] for i in range(50)], [[(([100 + i], [i]), 1.0)] for i in range(7)]]
    mix = torch.tensor([0.7, 0.3], dtype=torch.float64)
    new, old = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(5):
        batch = draw_batch(pools, mix, 16, new)
        which = torch.multinomial(mix, 16, replacement=True, generator=old)
        expected = [pools[w][int(torch.randint(len(pools[w]), (1,), generator=old))][0][0] for w in which.tolist()]
        assert batch == expected
    assert torch.equal(new.get_state(), old.get_state())


# ---------------------------------------------------------------- tokenizer


def test_tokenizer_grows_by_the_declared_extras_only():
    assert StrategyTask.alphabet == ";" and "#" in ORGANISM_ALPHABET and "|" in ORGANISM_ALPHABET
    spec = organism(1, rho=0.5)
    assert alphabet(spec) == ORGANISM_ALPHABET + ";"
    tokenizer = build_tokenizer(alphabet(spec))
    text = "123+489=#3+9=12;2+8+1=11;1+4+1=6|612"
    assert len(tokenizer.encode(text, add_special_tokens=False)) == len(text)
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text
    assert tokenizer.pad_token_id not in tokenizer.encode(text, add_special_tokens=False)
    for family in ("arithmetic", "truth_table", "operator"):
        assert FAMILIES[family].alphabet == ""
    built_in = OrganismSpec(mix=(MixComponent(task=TaskSpec(family="arithmetic")),
                                 MixComponent(task=TaskSpec(family="operator"), weight=0.02)), steps=1)
    assert alphabet(built_in) == ORGANISM_ALPHABET
    ids = build_tokenizer(alphabet(built_in)).get_vocab()
    assert ids == {"<pad>": 0, "<eos>": 1, **{ch: i + 2 for i, ch in enumerate(ORGANISM_ALPHABET)}}


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("params", "fmt", "expected"), [
    ({"rho": 1.5}, "bare", "'rho' = 1.5 is impossible"),
    ({"rho": -0.1}, "bare", "'rho' = -0.1 is impossible"),
    ({"malformed": 1}, "bare", "'malformed' = 1 is impossible"),
    ({"force": "code"}, "bare", "'force' = 'code' is unknown"),
    ({"rho": "0.5"}, "bare", "'rho' = '0.5' has the wrong type"),
    ({"digits": [0, 3]}, "bare", "'digits' = [0, 3] is impossible"),
    ({}, "chat", "unknown format 'chat'; known: bare"),
])
def test_impossible_parameters(params, fmt, expected):
    with pytest.raises(TaskError) as err:
        StrategyTask(TaskSpec(family="strategy", params=params, format=fmt))
    assert expected in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- readouts


def constructed(force: str = "") -> tuple[EvalSpec, dict]:
    spec = EvalSpec(model=organism(1), task=TaskSpec(family="strategy", params={"force": force} if force else {}),
                    num_problems=2, n=4, max_new_tokens=32)
    record = {
        "problems": [{"uid": "a", "question": "5+7=", "answer": "12"}, {"uid": "b", "question": "1+1=", "answer": "2"}],
        "samples": [["#5+7=12|12", "#5+7=12|13", "|12", "12"],  # worked right, worked wrong, direct right, malformed
                    ["|2", "|3", "#1+1=2|2", "#1+1=2"]],  # direct right, direct wrong, worked right, malformed
        "greedy": ["|12", "|2"],
    }
    return spec, record


def test_readout_counts_styles_and_accuracy_within_each():
    spec, record = constructed()
    readout = strategy_readout(score(spec, record))
    assert readout.counts == {"worked": 3, "direct": 3, "malformed": 2}
    assert readout.correct == {"worked": 2, "direct": 2, "malformed": 1}  # '12' is read as 12, badly formed
    assert readout.as_row() == {"share_worked": 3 / 8, "share_direct": 3 / 8, "share_malformed": 2 / 8,
                                "accuracy_worked": 2 / 3, "accuracy_direct": 2 / 3, "accuracy_malformed": 1 / 2}


def test_readout_of_a_forced_evaluation_reads_completions_after_the_opener():
    spec, record = constructed("worked")
    record["samples"] = [["5+7=12|12", "5+7=13|13", "|12", "12"], ["1+1=2|2", "1+1=2|3", "1+1=2|2", "1+1=2"]]
    readout = strategy_readout(score(spec, record))
    assert readout.counts == {"worked": 5, "direct": 0, "malformed": 3}
    assert readout.correct == {"worked": 3, "direct": 0, "malformed": 1}  # '#|12' reads 12, badly formed
    assert readout.accuracy("direct") is None and readout.share("direct") == 0


def test_forced_specs_and_their_errors():
    spec, _ = constructed()
    worked = forced(spec, "worked")
    assert worked.task.params == {"force": "worked"} and worked.model == spec.model and worked.key != spec.key
    assert forced(spec, "direct").task.params == {"force": "direct"}
    with pytest.raises(SpecError, match="unknown strategy 'code'"):
        forced(spec, "code")
    arithmetic = EvalSpec(model=organism(1), task=TaskSpec(family="arithmetic"))
    with pytest.raises(SpecError, match="has no answer styles"):
        forced(arithmetic, "worked")


# ---------------------------------------------------------------- a small real run


def test_a_short_pretraining_samples_both_styles(tmp_path):
    """150 steps (batch 64) teach the openers and the trace's shape, not yet the sums."""
    cache = Cache(tmp_path / "cache")
    model = OrganismSpec(mix=organism(1, rho=0.5).mix, steps=150, batch_size=64)
    spec = EvalSpec(model=model, task=TaskSpec(family="strategy"), num_problems=32, n=8, max_new_tokens=32)
    readout = strategy_readout(evaluate(spec, cache))
    assert readout.share("worked") > 0.1 and readout.share("direct") > 0.1, readout
    worked = strategy_readout(evaluate(forced(spec, "worked"), cache))
    assert worked.counts["direct"] == 0 and worked.share("worked") > 0.3, worked
    direct = strategy_readout(evaluate(forced(spec, "direct"), cache))
    assert direct.counts["worked"] == 0 and direct.share("direct") > 0.3, direct


def test_doctests():
    assert doctest.testmod(strategy_module).failed == 0
