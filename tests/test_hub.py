"""Hub dataset adapters on small local files written in each dataset's real schema (no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from math_verify import parse, verify

from harness.specs import TaskSpec
from harness.tasks import FAMILIES, Problem, TaskError
from harness.tasks.hub import HubTask

ROOT = Path(__file__).resolve().parents[1]

MATH500 = [
    {"problem": "What is $\\frac{1}{4} + \\frac{1}{4}$?", "solution": "It is $\\boxed{\\frac{1}{2}}$.",
     "answer": "\\frac{1}{2}", "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
    {"problem": "Compute $17 + 22$.", "solution": "$\\boxed{39}$", "answer": "39", "subject": "Prealgebra",
     "level": 1, "unique_id": "test/prealgebra/2.json"},
    {"problem": "Convert $(0,3)$ to polar coordinates.", "solution": "...",
     "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2,
     "unique_id": "test/precalculus/807.json"},
    {"problem": "How many dollars?", "solution": "...", "answer": "\\$18.90", "subject": "Prealgebra",
     "level": 2, "unique_id": "test/prealgebra/3.json"},
]
GSM8K = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
                 "May. How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
               "altogether in April and May.\n#### 72"},
    {"question": "A shop sells 1234 pens a day. How many in a day?", "answer": "It sells 1,234.\n#### 1,234"},
    {"question": "The temperature went from 3 to -4. By how much did it change?",
     "answer": "-4-3=-7\n#### -7"},
]
DEEPSCALER = [
    {"problem": "Find $x$ if $2x = 1$.", "answer": "\\frac{1}{2}", "solution": "Divide by 2."},
    {"problem": "What is $6 \\cdot 7$?", "answer": "42", "solution": "Multiply."},
]
AIME24 = [
    {"id": 60, "problem": "Every morning Aya goes for a $9$-kilometer-long walk ...", "solution": "...",
     "answer": "204", "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_I_Problems/Problem_1",
     "year": "2024"},
    {"id": 61, "problem": "Let $ABC$ be a triangle ...", "solution": "...", "answer": "113",
     "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_I_Problems/Problem_2", "year": "2024"},
]
AMC23 = [
    {"id": 0, "question": "Cities $A$ and $B$ are $45$ miles apart ...", "answer": 27.0,
     "url": "https://artofproblemsolving.com/wiki/index.php/2023_AMC_12A_Problems/Problem_1"},
    {"id": 1, "question": "What is the probability ...", "answer": 0.5,
     "url": "https://artofproblemsolving.com/wiki/index.php/2023_AMC_12A_Problems/Problem_2"},
]


def synlogic_row(index: int, task: str, question: str, answer: object) -> dict:
    """A row in the verl schema of MiniMaxAI/SynLogic (the gold answer lives in extra_info.game_data_str)."""
    game = {"question": question, "answer": answer, "difficulty": 1, "metadata": "{}", "gpt_response": ""}
    return {"data_source": task, "prompt": [{"role": "user", "content": question}], "ability": "logic",
            "reward_model": {"ground_truth": "", "style": "rule"},
            "extra_info": {"index": index, "game_data_str": json.dumps(game)}}


SYNLOGIC = [
    synlogic_row(0, "object_counting", "I have a chair, two tables and a lamp. How many objects?", "4"),
    synlogic_row(1, "web_of_lies", "Does Ka tell the truth? Answer Yes or No.", "Yes"),
    synlogic_row(2, "word_sorting", "Sort: pear apple fig", "apple fig pear"),
    synlogic_row(3, "arrow_maze", "Fill the grid.", [["1", "2"], ["3", "4"]]),
]


def write(path: Path, rows: list[dict]) -> str:
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(rows))
    return str(path)


def hub(family: str, fmt: str = "boxed", **params) -> HubTask:
    return FAMILIES[family](TaskSpec(family=family, params=params, format=fmt))


def boxed(answer: str) -> str:
    return f"Let me think. ... \\boxed{{{answer}}}"


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_math500_from_a_local_file(tmp_path, suffix):
    task = hub("math500", data_files=write(tmp_path / f"math500{suffix}", MATH500))
    problems = task.problems("eval", 4)
    assert sorted(p.question for p in problems) == sorted(r["problem"] for r in MATH500)
    assert {p.uid for p in problems} == {f"math500-eval-{i}" for i in range(4)}
    by_question = {p.question: p for p in problems}
    assert by_question[MATH500[1]["problem"]].answer == "39"
    assert task.available("eval") == 4
    assert task.problems("eval", 2, seed=1) == task.problems("eval", 4, seed=1)[:2]
    assert hub("math500", data_files=str(tmp_path / f"math500{suffix}")).problems("eval", 4) == problems


def test_gsm8k_gold_is_the_number_after_hashes(tmp_path):
    path = write(tmp_path / "gsm8k.parquet", GSM8K)
    answers = {p.question: p.answer for p in hub("gsm8k", data_files=path).problems("train", 3)}
    assert [answers[r["question"]] for r in GSM8K] == ["72", "1234", "-7"]


def test_gsm8k_splits_from_separate_files(tmp_path):
    files = {"train": write(tmp_path / "train.jsonl", GSM8K[:2]),
             "eval": write(tmp_path / "test.jsonl", GSM8K[2:])}
    task = hub("gsm8k", "chat", data_files=files)
    assert [p.answer for p in task.problems("eval", 1)] == ["-7"]
    assert sorted(p.answer for p in task.problems("train", 2)) == ["1234", "72"]
    with pytest.raises(TaskError, match="count 2 exceeds the eval split, which holds 1 problems"):
        task.problems("eval", 2)


@pytest.mark.parametrize(("family", "rows", "split", "golds"), [
    ("deepscaler", DEEPSCALER, "train", ["\\frac{1}{2}", "42"]),
    ("aime24", AIME24, "eval", ["204", "113"]),
    ("amc23", AMC23, "eval", ["27", "0.5"]),
])
def test_math_datasets(tmp_path, family, rows, split, golds):
    task = hub(family, data_files=write(tmp_path / f"{family}.parquet", rows))
    problems = sorted(task.problems(split, len(rows)), key=lambda p: p.uid)
    assert [p.answer for p in problems] == golds
    for p in problems:
        assert task.is_correct(boxed(p.answer), p)
        assert not task.is_correct(boxed("123456"), p)


def test_synlogic(tmp_path):
    path = write(tmp_path / "synlogic.parquet", SYNLOGIC)
    task = hub("synlogic", "chat", data_files=path)
    problems = {p.uid: p for p in task.problems("eval", 4)}
    counting, lies, sorting, maze = (problems[f"synlogic-eval-{i}"] for i in range(4))
    assert counting.question == SYNLOGIC[0]["prompt"][0]["content"] and counting.answer == "4"
    assert task.is_correct("<think>count</think><answer>4</answer>", counting)
    assert task.is_correct("<think>...</think><answer> yes </answer>", lies)
    assert not task.is_correct("<think>...</think><answer>No</answer>", lies)
    assert task.is_correct("<think>...</think><answer>apple fig pear</answer>", sorting)
    assert maze.answer == '[["1", "2"], ["3", "4"]]'
    assert task.is_correct("<think>...</think><answer>[['1','2'],['3','4']]</answer>", maze)
    only = hub("synlogic", "chat", data_files=path, data_source=["web_of_lies", "word_sorting"])
    assert sorted((p.uid, p.answer) for p in only.problems("train", 2)) == [
        ("synlogic-train-1", "Yes"), ("synlogic-train-2", "apple fig pear")]


# ---------------------------------------------------------------- verification


def test_symbolic_answers_use_math_verify(tmp_path):
    task = hub("math500", data_files=write(tmp_path / "m.jsonl", MATH500))
    half, _, polar, dollars = sorted(task.problems("eval", 4), key=lambda p: p.uid)
    assert task.is_correct(boxed("\\frac{1}{2}"), half)
    assert task.is_correct(boxed("0.5"), half) and task.is_correct(boxed("1/2"), half)
    assert not task.is_correct(boxed("\\frac{1}{3}"), half)
    assert task.is_correct(boxed("(3, \\pi/2)"), polar)
    assert task.is_correct(boxed("18.90"), dollars)
    chat = hub("math500", "chat", data_files=str(tmp_path / "m.jsonl"))
    assert chat.is_correct("<think>add</think><answer>\\frac{2}{4}</answer>", half)
    assert chat.format_ok("<think>add</think><answer>\\frac{2}{4}</answer>")
    assert not chat.format_ok(boxed("\\frac{1}{2}"))


def test_integer_gold_is_compared_exactly(tmp_path):
    """math-verify evaluates "17 + 22" to 39; an integer gold answer must not accept it."""
    assert verify(parse("$39$", parsing_timeout=None), parse("17 + 22", parsing_timeout=None),
                  timeout_seconds=None)
    task = hub("math500", data_files=write(tmp_path / "m.jsonl", MATH500))
    p = next(p for p in task.problems("eval", 4) if p.answer == "39")
    assert task.is_correct(boxed("39"), p) and task.is_correct(boxed("+39."), p)
    assert task.is_correct("so the answer is 39", p)
    for wrong in (boxed("17 + 22"), boxed("17+22"), boxed("\\frac{78}{2}"), "17 + 22", boxed("39.5")):
        assert not task.is_correct(wrong, p), wrong


def test_math_verify_works_off_the_main_thread(tmp_path):
    task = hub("math500", data_files=write(tmp_path / "m.jsonl", MATH500))
    half = next(p for p in task.problems("eval", 4) if p.answer == "\\frac{1}{2}")
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.extend(
        [task.is_correct(boxed("0.5"), half), task.is_correct(boxed("2"), half)]))
    worker.start()
    worker.join(timeout=60)
    assert results == [True, False]


FRAGMENTS = ["<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "{", "}", "\\frac{1}{2}", "39",
             "17 + 22", "^", "\\sqrt", "$", " ", "x", "=", "\\left(", "\\right)", ",", "é", "\x00"]


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(FRAGMENTS), max_size=10).map("".join)))
def test_hub_verifiers_never_raise(text):
    for task in FUZZ_TASKS:
        for gold in ("39", "\\frac{1}{2}"):
            assert isinstance(task.is_correct(text, Problem(question="q", answer=gold, uid="u")), bool)
        assert isinstance(task.format_ok(text), bool)
        answer = task.extract(text)
        assert answer is None or isinstance(answer, str)


FUZZ_TASKS = [hub("math500", "chat"), hub("math500", "boxed"), hub("synlogic", "chat")]


# ---------------------------------------------------------------- errors


def test_missing_column_names_dataset_file_and_columns(tmp_path):
    path = write(tmp_path / "bad.jsonl", [{"question": "What is 1+1?", "answer": "2"}])
    with pytest.raises(TaskError) as err:
        hub("math500", data_files=path).problems("eval", 1)
    message = str(err.value)
    assert "\n" not in message
    for part in ("math500", "HuggingFaceH4/MATH-500", path, "lacks column 'problem'",
                 "expected columns problem, answer"):
        assert part in message


def test_missing_nested_gold_fails_clearly(tmp_path):
    rows = [{"data_source": "x", "prompt": [{"role": "user", "content": "q"}], "extra_info": {"index": 0}}]
    with pytest.raises(TaskError, match=r"row 0 of .* has an empty question or answer"):
        hub("synlogic", "chat", data_files=write(tmp_path / "s.jsonl", rows)).problems("eval", 1)
    gsm = [{"question": "q", "answer": "no final line"}]
    with pytest.raises(TaskError, match="row 0"):
        hub("gsm8k", data_files=write(tmp_path / "g.jsonl", gsm)).problems("train", 1)


@pytest.mark.parametrize(("family", "split", "expected"), [
    ("math500", "train", "HuggingFaceH4/MATH-500 has no train split; expected one of: eval"),
    ("aime24", "train", "has no train split"),
    ("amc23", "train", "has no train split"),
    ("deepscaler", "eval", "has no eval split; expected one of: train"),
    ("gsm8k", "test", "split must be 'train' or 'eval'"),
])
def test_unavailable_splits(tmp_path, family, split, expected):
    with pytest.raises(TaskError, match=expected):
        hub(family, data_files=str(tmp_path / "never_read.jsonl")).problems(split, 1)


@pytest.mark.parametrize(("params", "fmt", "expected"), [
    ({"data_files": "data.txt"}, "boxed", "'data_files' = 'data.txt' is not a data file"),
    ({"data_files": {"test": "a.json"}}, "boxed", "expected a path or a dict with keys among ['eval']"),
    ({"data_files": 3}, "boxed", "'data_files' = 3 has the wrong type"),
    ({"revision": "main", "split": "test"}, "boxed", "unknown parameter 'split'"),
    ({}, "bare", "unknown format 'bare'; known: chat, boxed"),
])
def test_bad_hub_parameters(params, fmt, expected):
    with pytest.raises(TaskError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        hub("math500", fmt, **params)


def test_unreadable_files(tmp_path):
    missing = str(tmp_path / "missing.parquet")
    with pytest.raises(TaskError, match=r"cannot read HuggingFaceH4/MATH-500 data file .*missing\.parquet"):
        hub("math500", data_files=missing).problems("eval", 1)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(TaskError) as err:
        hub("math500", data_files=str(broken)).problems("eval", 1)
    assert "broken.jsonl" in str(err.value) and "\n" not in str(err.value)


def test_unreachable_hub_points_to_local_tiers():
    code = ("from harness.specs import TaskSpec\nfrom harness.tasks import get_task, TaskError\n"
            "try:\n    get_task(TaskSpec(family='math500', format='boxed')).problems('eval', 1)\n"
            "except TaskError as e:\n    print(e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120).stdout.strip()
    assert "the Hugging Face hub cannot be reached to load HuggingFaceH4/MATH-500" in out
    assert "local tiers (organisms, SmolLM2)" in out and "data_files" in out
