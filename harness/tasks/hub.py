"""Hugging Face datasets as task families, loaded with ``datasets.load_dataset``.

| family | dataset (config) | eval split | train split | question | answer |
|---|---|---|---|---|---|
| math500 | HuggingFaceH4/MATH-500 | test | - | problem | answer |
| gsm8k | openai/gsm8k (main) | test | train | question | answer, after ``####`` |
| deepscaler | agentica-org/DeepScaleR-Preview-Dataset | - | train | problem | answer |
| aime24 | HuggingFaceH4/aime_2024 | train | - | problem | answer |
| amc23 | math-ai/amc23 | test | - | question | answer (a number) |
| synlogic | MiniMaxAI/SynLogic (easy) | validation | train | prompt (chat) | extra_info.game_data_str |

Parameters: ``data_files`` (a local .json/.jsonl/.parquet/.csv file in the dataset's schema, serving every
split the dataset has, or ``{"train": path, "eval": path}``) replaces the hub; ``revision`` pins a hub
revision. Formats: chat and boxed. An integer gold answer is compared exactly with the extracted answer
(math-verify would accept "17 + 22" for 39); any other gold answer is compared with math-verify.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, ClassVar

from harness.specs import TaskSpec
from harness.tasks.base import Problem, Prompt, Task, TaskError, seeded_rng
from harness.tasks.formats import FreeShape, canonical_int, extract, format_ok, user_prompt

BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
MATH_VERIFY_TIMEOUT = 5  # seconds, main thread only: math-verify's timeouts use signal.alarm


def math_equal(gold: str, answer: str) -> bool:
    """Whether math-verify finds ``answer`` equivalent to ``gold``; never raises.

    Off the main thread the timeouts are disabled (``signal.alarm`` works only there), so a
    pathological answer such as a tower of powers can run long there.
    """
    from math_verify import parse, verify

    timeout = MATH_VERIFY_TIMEOUT if threading.current_thread() is threading.main_thread() else None
    try:
        expected = parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout)
        found = parse(f"\\boxed{{{answer}}}", parsing_timeout=timeout)
        return bool(expected and found and verify(expected, found, timeout_seconds=timeout))
    except Exception:  # math-verify and sympy raise many kinds on odd input
        return False


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


class HubTask(Task):
    """A dataset of questions with gold answers, posed in the chat or boxed format."""

    formats: ClassVar[tuple[str, ...]] = ("chat", "boxed")
    params_schema: ClassVar[dict[str, type | tuple[type, ...]]] = {"data_files": (str, dict), "revision": str}
    path: ClassVar[str]
    config: ClassVar[str | None] = None
    splits: ClassVar[dict[str, str]]  # our split -> the dataset's split
    columns: ClassVar[tuple[str, str]] = ("problem", "answer")  # question column, answer column
    shape = FreeShape()

    def __init__(self, spec: TaskSpec) -> None:
        self._problems: dict[str, list[Problem]] = {}
        super().__init__(spec)

    def validate(self) -> None:
        files = self.params.get("data_files")
        if isinstance(files, dict):
            unknown = sorted(set(files) - set(self.splits))
            if unknown or not files:
                raise TaskError(f"task {self.family!r}: parameter 'data_files' has keys {sorted(files)}; "
                                f"expected a path or a dict with keys among {sorted(self.splits)}")
            paths = list(files.values())
        else:
            paths = [] if files is None else [files]
        for path in paths:
            if not isinstance(path, str) or Path(path).suffix.lower() not in BUILDERS:
                raise TaskError(f"task {self.family!r}: parameter 'data_files' = {path!r} is not a data "
                                f"file; expected a path ending in {', '.join(BUILDERS)}")

    # ------------------------------------------------------------- loading

    def available(self, split: str) -> int:
        return len(self._load(split))

    def problems(self, split: str, count: int, seed: int = 0) -> list[Problem]:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise TaskError(f"task {self.name}: count must be an int >= 0, got {count!r}")
        pool = self._load(split)
        if count > len(pool):
            raise TaskError(f"task {self.name}: count {count} exceeds the {split} split, which holds "
                            f"{len(pool)} problems; expected count <= {len(pool)}")
        order = list(range(len(pool)))
        seeded_rng(self.family, split, seed).shuffle(order)  # the same order from the hub or a local copy
        return [pool[i] for i in order[:count]]

    def _load(self, split: str) -> list[Problem]:
        if split not in ("train", "eval"):
            raise TaskError(f"task {self.name}: split must be 'train' or 'eval', got {split!r}")
        if split not in self.splits:
            raise TaskError(f"task {self.name}: {self.path} has no {split} split; "
                            f"expected one of: {', '.join(self.splits)}")
        if split not in self._problems:
            rows, source = self._rows(split)
            self._problems[split] = [self._problem(row, i, split, source)
                                     for i, row in enumerate(rows) if self._keep(row)]
        return self._problems[split]

    def _rows(self, split: str) -> tuple[list[dict[str, Any]], str]:
        """The split's rows as dicts, and a name of where they came from for messages."""
        import datasets

        files = self.params.get("data_files")
        if files is None:
            config = f" ({self.config})" if self.config else ""
            source = f"{self.path}{config} [{self.splits[split]}]"
            try:
                data = datasets.load_dataset(self.path, self.config, split=self.splits[split],
                                             revision=self.params.get("revision"))
            except ConnectionError as exc:
                raise TaskError(f"task {self.name}: the Hugging Face hub cannot be reached to load "
                                f"{self.path} ({_one_line(exc)}); use the local tiers (organisms, SmolLM2) "
                                f"or pass data_files=<a local file in the dataset's schema>") from exc
            except Exception as exc:
                raise TaskError(f"task {self.name}: cannot load {source}: {_one_line(exc)}") from exc
        else:
            source = files if isinstance(files, str) else files.get(split)
            if source is None:
                raise TaskError(f"task {self.name}: parameter 'data_files' has no {split!r} file; "
                                f"expected a key {split!r} or a single path")
            try:
                data = datasets.load_dataset(BUILDERS[Path(source).suffix.lower()], data_files=source,
                                             split="train")
            except Exception as exc:
                raise TaskError(f"task {self.name}: cannot read {self.path} data file {source}: "
                                f"{_one_line(exc)}") from exc
        columns = self.required_columns()
        missing = [c for c in columns if c not in data.column_names]
        if missing:
            raise TaskError(f"task {self.name}: {self.path} data in {source} lacks column "
                            f"{', '.join(map(repr, missing))}; expected columns {', '.join(columns)} "
                            f"(found: {', '.join(data.column_names)})")
        return data.select_columns(list(columns)).to_list(), source

    def required_columns(self) -> tuple[str, ...]:
        return self.columns

    def _problem(self, row: dict[str, Any], index: int, split: str, source: str) -> Problem:
        question, answer = self._question(row), self._gold(row)
        if not question or answer is None or not answer.strip():
            raise TaskError(f"task {self.name}: row {index} of {source} has an empty question or answer; "
                            f"expected text in columns {', '.join(self.required_columns())}")
        gold = canonical_int(answer) or answer.strip()
        return Problem(question=question, answer=gold, uid=f"{self.family}-{split}-{index}")

    def _keep(self, row: dict[str, Any]) -> bool:
        """Whether a row is posed at all (every row, unless a family filters)."""
        return True

    def _question(self, row: dict[str, Any]) -> str:
        return row[self.columns[0]]

    def _gold(self, row: dict[str, Any]) -> str | None:
        value = row[self.columns[1]]
        return None if value is None else str(value)

    # ------------------------------------------------------------- formats and verification

    def prompt(self, problem: Problem) -> Prompt:
        return user_prompt(self.spec.format, problem.question)

    def extract(self, completion: str) -> str | None:
        return extract(self.spec.format, self.shape, completion)

    def format_ok(self, completion: str) -> bool:
        return format_ok(self.spec.format, self.shape, completion)

    def answers_match(self, answer: str, gold: str) -> bool:
        gold_int = canonical_int(gold)
        if gold_int is not None:
            return canonical_int(answer) == gold_int
        return math_equal(gold, answer)


class Math500Task(HubTask):
    family = "math500"
    path = "HuggingFaceH4/MATH-500"
    splits: ClassVar[dict[str, str]] = {"eval": "test"}


class GSM8KTask(HubTask):
    """The gold answer is the number after ``####`` at the end of the worked solution."""

    family = "gsm8k"
    path = "openai/gsm8k"
    config = "main"
    splits: ClassVar[dict[str, str]] = {"train": "train", "eval": "test"}
    columns = ("question", "answer")

    def _gold(self, row: dict[str, Any]) -> str | None:
        solution = row["answer"]
        if not isinstance(solution, str) or "####" not in solution:
            return None
        return solution.rsplit("####", 1)[1]


class DeepScaleRTask(HubTask):
    family = "deepscaler"
    path = "agentica-org/DeepScaleR-Preview-Dataset"
    splits: ClassVar[dict[str, str]] = {"train": "train"}


class AIME24Task(HubTask):
    family = "aime24"
    path = "HuggingFaceH4/aime_2024"
    splits: ClassVar[dict[str, str]] = {"eval": "train"}


class AMC23Task(HubTask):
    """Answers are stored as numbers (e.g. 27.0); integral ones become canonical integers."""

    family = "amc23"
    path = "math-ai/amc23"
    splits: ClassVar[dict[str, str]] = {"eval": "test"}
    columns = ("question", "answer")


class SynLogicTask(HubTask):
    """SynLogic in verl's schema: ``prompt`` (chat messages), ``data_source`` (the task's name) and
    ``extra_info.game_data_str`` (JSON whose ``answer`` is the gold answer).

    Optional parameter ``data_source`` (a name or a list) keeps only those tasks. Verification is an
    approximation of SynLogic's per-task verifiers: the extracted answer must equal the gold answer up to
    whitespace, quotes and case (integers exactly), which under-counts tasks with several valid answers.
    """

    family = "synlogic"
    path = "MiniMaxAI/SynLogic"
    config = "easy"
    splits: ClassVar[dict[str, str]] = {"train": "train", "eval": "validation"}
    params_schema: ClassVar[dict[str, type | tuple[type, ...]]] = {
        **HubTask.params_schema, "data_source": (str, list)}
    columns = ("prompt", "extra_info")

    def required_columns(self) -> tuple[str, ...]:
        return (*self.columns, "data_source") if "data_source" in self.params else self.columns

    def _keep(self, row: dict[str, Any]) -> bool:
        wanted = self.params.get("data_source")
        return wanted is None or row["data_source"] in ([wanted] if isinstance(wanted, str) else wanted)

    def _question(self, row: dict[str, Any]) -> str:
        messages = row["prompt"] or []
        users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users and isinstance(users[-1], str) else ""

    def _gold(self, row: dict[str, Any]) -> str | None:
        try:
            answer = json.loads((row["extra_info"] or {})["game_data_str"])["answer"]
        except (KeyError, TypeError, ValueError):
            return None
        return answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)

    def answers_match(self, answer: str, gold: str) -> bool:
        gold_int = canonical_int(gold)
        if gold_int is not None:
            return canonical_int(answer) == gold_int
        return _loose(answer) == _loose(gold)


def _loose(text: str) -> str:
    return "".join(c for c in text.lower() if not c.isspace() and c not in "\"'")


HUB_FAMILIES: tuple[type[HubTask], ...] = (Math500Task, GSM8KTask, DeepScaleRTask, AIME24Task, AMC23Task,
                                           SynLogicTask)
