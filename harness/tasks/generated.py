"""Generated families: questions drawn from a known space, split by hash of the question, answers computed.

A family's space is cut into strata (e.g. the digit counts of the operands); a question is drawn by
picking a stratum uniformly, then a question of that stratum uniformly. ``problems`` draws without
replacement from that distribution, keeping the questions of the requested split:

- a space of at most ``ENUMERATION_LIMIT`` questions is enumerated and sampled exactly (weighted sampling
  without replacement by exponential keys), so the split's size is known and a too large ``count`` fails;
- a larger space is sampled by rejection, dropping repeats and questions of the other split.

Either way the result is deterministic in (family, parameters, split, seed), and a smaller ``count``
gives a prefix of a larger one.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
from abc import abstractmethod
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from harness.specs import TaskSpec
from harness.tasks import formats
from harness.tasks.base import EVAL_FRACTION, Problem, Prompt, Task, TaskError, seeded_rng, split_of

ENUMERATION_LIMIT = 200_000  # spaces up to this size are enumerated, larger ones rejection-sampled
_MAX_DRAWS_PER_PROBLEM = 100


def parse_range(family: str, name: str, value: Any, minimum: int) -> list[int]:
    """An ``int`` or ``[min, max]`` parameter as ``[min, max]``; TaskError when impossible."""
    if isinstance(value, int):
        value = [value, value]
    if (len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or not minimum <= value[0] <= value[1]):
        raise TaskError(f"task {family!r}: parameter {name!r} = {value!r} is impossible; "
                        f"expected an int or [min, max] of ints with {minimum} <= min <= max")
    return [value[0], value[1]]


def _share(split: str) -> float:
    return EVAL_FRACTION if split == "eval" else 1 - EVAL_FRACTION


class GeneratedTask(Task):
    """A family with a generated problem space and exactly computed answers."""

    shape: formats.Shape

    def __init__(self, spec: TaskSpec) -> None:
        self._pools: dict[str, list[tuple[str, float]]] = {}
        super().__init__(spec)

    # ------------------------------------------------------------- what a family defines

    @abstractmethod
    def strata(self) -> Sequence[Hashable]:
        """The parts of the space, each drawn with equal probability."""

    @abstractmethod
    def stratum_size(self, stratum: Hashable) -> int:
        """How many distinct questions ``stratum`` holds."""

    @abstractmethod
    def stratum_questions(self, stratum: Hashable) -> Iterable[str]:
        """Every question of ``stratum``, in a fixed order."""

    @abstractmethod
    def draw(self, stratum: Hashable, rng: random.Random) -> str:
        """One question of ``stratum``, uniformly at random."""

    @abstractmethod
    def solve(self, question: str) -> str:
        """The canonical answer of a bare question."""

    @abstractmethod
    def describe(self, question: str) -> str:
        """The question in words, with any definitions it needs, for the chat and boxed formats."""

    # ------------------------------------------------------------- problems

    @property
    def problem_params(self) -> dict[str, Any]:
        """The parameters that decide which problems are drawn (by default all of them)."""
        return self.params

    @property
    def space_size(self) -> int:
        return sum(self.stratum_size(s) for s in self.strata())

    def available(self, split: str) -> int:
        self._check_split(split)
        if self.space_size <= ENUMERATION_LIMIT:
            return len(self._pool(split))
        return int(self.space_size * _share(split)) // 2  # rejection sampling slows near exhaustion

    def problems(self, split: str, count: int, seed: int = 0) -> list[Problem]:
        self._check_split(split)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise TaskError(f"task {self.name}: count must be an int >= 0, got {count!r}")
        key = json.dumps(self.problem_params, sort_keys=True)
        rng = seeded_rng(self.family, key, split, seed)
        if self.space_size <= ENUMERATION_LIMIT:
            questions = self._sample_enumerated(split, count, rng)
        elif count > self.space_size:
            raise TaskError(f"task {self.name}: count {count} exceeds the whole space of {self.space_size} "
                            f"problems; expected count well below {self.space_size}")
        else:
            questions = self._sample_rejection(split, count, rng)
        return [Problem(question=q, answer=self.solve(q), uid=self._uid(q)) for q in questions]

    def _check_split(self, split: str) -> None:
        if split not in ("train", "eval"):
            raise TaskError(f"task {self.name}: split must be 'train' or 'eval', got {split!r}")

    def _pool(self, split: str) -> list[tuple[str, float]]:
        """The split's questions with their probability under the generating distribution."""
        if split not in self._pools:
            strata = self.strata()
            self._pools[split] = [
                (q, 1.0 / (len(strata) * self.stratum_size(s)))
                for s in strata for q in self.stratum_questions(s) if split_of(self.family, q) == split
            ]
        return self._pools[split]

    def _sample_enumerated(self, split: str, count: int, rng: random.Random) -> list[str]:
        pool = self._pool(split)
        if count > len(pool):
            raise TaskError(f"task {self.name}: count {count} exceeds the {split} split, which holds "
                            f"{len(pool)} problems; expected count <= {len(pool)} or a larger space")
        keys = [rng.expovariate(1.0) / weight for _, weight in pool]  # Efraimidis-Spirakis race
        return [pool[i][0] for i in heapq.nsmallest(count, range(len(pool)), key=keys.__getitem__)]

    def _sample_rejection(self, split: str, count: int, rng: random.Random) -> list[str]:
        strata = self.strata()
        seen: set[str] = set()
        out: list[str] = []
        for _ in range(_MAX_DRAWS_PER_PROBLEM * count + 10_000):
            if len(out) == count:
                return out
            question = self.draw(strata[rng.randrange(len(strata))], rng)
            if question not in seen:
                seen.add(question)
                if split_of(self.family, question) == split:
                    out.append(question)
        if len(out) == count:
            return out
        raise TaskError(f"task {self.name}: drew only {len(out)} distinct {split} problems of the {count} "
                        f"asked; expected a count well below the split's size (about "
                        f"{int(self.space_size * _share(split))})")

    def _uid(self, question: str) -> str:
        return f"{self.family}-{hashlib.sha256(question.encode()).hexdigest()[:12]}"

    # ------------------------------------------------------------- formats

    def prompt(self, problem: Problem) -> Prompt:
        if self.spec.format == "bare":
            return problem.question
        return formats.user_prompt(self.spec.format, self.describe(problem.question))

    def extract(self, completion: str) -> str | None:
        return formats.extract(self.spec.format, self.shape, completion)

    def format_ok(self, completion: str) -> bool:
        return formats.format_ok(self.spec.format, self.shape, completion)
