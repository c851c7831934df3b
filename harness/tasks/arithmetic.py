"""Integer arithmetic: ``12+34=`` -> ``46``; operands drawn by digit count, then uniformly.

Parameters: ``digits`` (int or [min, max], default [1, 3]; 1-digit numbers are 0-9), ``op`` ("+", "-"
or "*", default "+"), ``operands`` (>= 2, default 2; evaluated left to right). Each operand's digit count
is drawn uniformly from the range, so 1-digit problems are as frequent as 3-digit ones.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

from harness.tasks import formats
from harness.tasks.base import TaskError
from harness.tasks.generated import GeneratedTask, parse_range

OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def numbers_with(digits: int) -> range:
    """The non-negative integers written with ``digits`` digits (1 digit: 0-9)."""
    return range(10) if digits == 1 else range(10 ** (digits - 1), 10 ** digits)


class IntegerOperationTask(GeneratedTask):
    """Shared by integer-valued operations on operands of a range of digit counts."""

    shape = formats.IntegerShape()

    @property
    @abstractmethod
    def symbol(self) -> str:
        """The operator written between the operands."""

    @property
    @abstractmethod
    def operands(self) -> int:
        """How many operands a question has."""

    @abstractmethod
    def combine(self, values: list[int]) -> int:
        """The value of the operation on ``values``."""

    def validate(self) -> None:
        self.params["digits"] = parse_range(self.family, "digits", self.params["digits"], minimum=1)

    def strata(self) -> list[tuple[int, ...]]:
        low, high = self.params["digits"]
        return list(itertools.product(range(low, high + 1), repeat=self.operands))

    def stratum_size(self, stratum: tuple[int, ...]) -> int:
        return math.prod(10 if d == 1 else 9 * 10 ** (d - 1) for d in stratum)

    def stratum_questions(self, stratum: tuple[int, ...]) -> Iterator[str]:
        for values in itertools.product(*(numbers_with(d) for d in stratum)):
            yield self._question(values)

    def draw(self, stratum: tuple[int, ...], rng: random.Random) -> str:
        ranges = [numbers_with(d) for d in stratum]
        return self._question([rng.randrange(r.start, r.stop) for r in ranges])

    def solve(self, question: str) -> str:
        return str(self.combine([int(v) for v in question.removesuffix("=").split(self.symbol)]))

    def _question(self, values: tuple[int, ...] | list[int]) -> str:
        return self.symbol.join(map(str, values)) + "="


class ArithmeticTask(IntegerOperationTask):
    """``a+b=``, ``a-b=`` (answers may be negative) or ``a*b=``."""

    family = "arithmetic"
    params_schema: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "digits": (int, list, tuple), "op": str, "operands": int}
    defaults: ClassVar[dict[str, Any]] = {"digits": [1, 3], "op": "+", "operands": 2}

    def validate(self) -> None:
        super().validate()
        if self.params["op"] not in OPERATIONS:
            raise TaskError(f"task {self.family!r}: parameter 'op' = {self.params['op']!r} is unknown; "
                            f"expected one of {', '.join(repr(o) for o in OPERATIONS)}")
        if self.params["operands"] < 2:
            raise TaskError(f"task {self.family!r}: parameter 'operands' = {self.params['operands']!r} "
                            f"is impossible; expected an int >= 2")

    @property
    def symbol(self) -> str:
        return self.params["op"]

    @property
    def operands(self) -> int:
        return self.params["operands"]

    def combine(self, values: list[int]) -> int:
        return functools.reduce(OPERATIONS[self.symbol], values)

    def describe(self, question: str) -> str:
        return f"Compute {question.removesuffix('=')}."
