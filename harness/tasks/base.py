"""What every task family provides: problems by split, prompts by format, extraction and verification."""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.registry import names
from harness.specs import SpecError, TaskSpec

EVAL_FRACTION = 0.2  # share of a generated family's problem space reserved for the eval split

Prompt = str | list[dict[str, str]]  # bare text, or chat messages for a chat template


class TaskError(SpecError):
    """Unknown family or parameter, impossible parameters, or a malformed dataset."""


@dataclass(frozen=True)
class Problem:
    """One question with its gold answer in canonical form."""

    question: str  # the bare question, e.g. "12+34="
    answer: str  # canonical gold answer, e.g. "46"
    uid: str  # stable id, unique within the family
    label: str | None = None  # a pseudo-label for rewards that ask for one (the base model's majority answer)

    @property
    def text(self) -> str:
        """Pretraining text of a character-level organism: question followed by answer."""
        return self.question + self.answer


def split_of(family: str, question: str) -> str:
    """Deterministic split by hash of the question: the same problem is always in the same split."""
    h = int.from_bytes(hashlib.sha256(f"{family}\x00{question}".encode()).digest()[:8], "big")
    return "eval" if (h % 10_000) < EVAL_FRACTION * 10_000 else "train"


def seeded_rng(*parts: Any) -> random.Random:
    """A ``random.Random`` seeded from a stable hash of ``parts`` (not Python's salted ``hash``)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class Task(ABC):
    """A task family bound to its parameters and prompt format."""

    family: ClassVar[str]
    verifier_version: ClassVar[int] = 1  # bump when extraction or verification changes: stored scores are redone
    formats: ClassVar[tuple[str, ...] | None] = None  # the formats it poses problems in; None: every registered one
    params_schema: ClassVar[dict[str, type | tuple[type, ...]]] = {}
    defaults: ClassVar[dict[str, Any]] = {}
    alphabet: ClassVar[str] = ""  # characters of bare prompts and answers beyond ORGANISM_ALPHABET (organisms)

    def __init__(self, spec: TaskSpec) -> None:
        unknown = sorted(set(spec.params) - set(self.params_schema))
        if unknown:
            raise TaskError(f"task {self.family!r}: unknown parameter {unknown[0]!r}; "
                            f"known: {', '.join(sorted(self.params_schema)) or 'none'}")
        for name, value in spec.params.items():
            expected = self.params_schema[name]
            if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
                raise TaskError(f"task {self.family!r}: parameter {name!r} = {value!r} has the wrong type; "
                                f"expected {_type_name(expected)}")
        formats = self.formats if self.formats is not None else names("format")
        if spec.format not in formats:
            raise TaskError(f"task {self.family!r}: unknown format {spec.format!r}; known: {', '.join(formats)}")
        self.spec = spec
        self.params = {**self.defaults, **spec.params}
        self.validate()

    def validate(self) -> None:  # noqa: B027 (a hook: families with checkable values override it)
        """Raise TaskError for impossible parameter values."""

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    def problems(self, split: str, count: int, seed: int = 0) -> list[Problem]:
        """``count`` distinct problems of ``split``, deterministic in (params, split, seed)."""

    @abstractmethod
    def available(self, split: str) -> int:
        """How many distinct problems ``problems(split, ...)`` can return (a safe lower bound where the
        space is too large to enumerate)."""

    @abstractmethod
    def prompt(self, problem: Problem) -> Prompt:
        """The problem posed in this task's format."""

    @abstractmethod
    def extract(self, completion: str) -> str | None:
        """The answer in a completion, canonicalised, or None; never raises."""

    @abstractmethod
    def format_ok(self, completion: str) -> bool:
        """Whether the completion follows the output format; never raises."""

    def pretraining_answers(self, problem: Problem, seed: int) -> list[tuple[str, float]]:
        """What an organism is pretrained to write after ``problem.question``, each text with its probability
        per draw (summing to 1): the canonical answer alone unless a family mixes answer styles.
        Deterministic in (params, problem, seed)."""
        return [(problem.answer, 1.0)]

    def is_correct(self, completion: str, problem: Problem) -> bool:
        """Whether the extracted answer matches the gold answer; never raises."""
        answer = self.extract(completion)
        return answer is not None and self.answers_match(answer, problem.answer)

    def answers_match(self, answer: str, gold: str) -> bool:
        return answer == gold

    def guessing_pass_at_k(self, problems: Sequence[Problem], ks: Sequence[int]) -> dict[int, float]:
        """pass@k of a sampler that ignores the prompt and draws answers from their distribution.

        The guesser draws each answer with its frequency among ``problems``; for a problem whose
        answer has frequency q the chance that k draws include it is 1 - (1 - q)^k (exact).
        """
        counts = Counter(p.answer for p in problems)
        total = len(problems)
        return {k: sum(1 - (1 - counts[p.answer] / total) ** k for p in problems) / total for k in ks}


def _type_name(expected: type | tuple[type, ...]) -> str:
    if isinstance(expected, tuple):
        return " or ".join(t.__name__ for t in expected)
    return expected.__name__
