"""Truth tables: ``~a|(c&a)=`` -> ``TTTTFTFT``.

An expression over the variables a, b, c (and d) with ``~`` (not, binds tightest), ``&`` (and), ``|`` (or)
and parentheses. The answer lists its values over all assignments in binary counting order, a the most
significant variable and F before T: for three variables FFF, FFT, FTF, FTT, TFF, TFT, TTF, TTT.

Parameters: ``variables`` (3 or 4, default 3) and ``literals`` (int or [min, max], default [2, 4]):
how many literals (a variable or its negation) the expression has. The literal count is drawn
uniformly from the range, then an expression uniformly among those with that many literals (every
binary tree shape, operator and literal); every operand that is itself a binary operation is
parenthesised, so an expression is written in exactly one way.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import cache
from typing import Any, ClassVar, NoReturn

from harness.tasks import formats
from harness.tasks.base import TaskError
from harness.tasks.generated import GeneratedTask, parse_range

VARIABLES = "abcd"


def truth_table(expression: str, variables: int) -> str:
    """The values of ``expression`` over all assignments of the first ``variables`` variables.

    >>> truth_table("~a|(c&a)", 3)
    'TTTTFTFT'
    """
    rows = 1 << variables
    full = (1 << rows) - 1
    # bit i of a variable's mask is its value in assignment i (a is the most significant bit of i)
    masks = {v: sum(1 << i for i in range(rows) if i >> (variables - 1 - j) & 1)
             for j, v in enumerate(VARIABLES[:variables])}
    parser = _Parser(expression.replace(" ", ""), masks, full)
    value = parser.parse()
    return "".join("T" if value >> i & 1 else "F" for i in range(rows))


class _Parser:
    """Recursive descent: ``or := and ('|' and)*``, ``and := not ('&' not)*``, ``not := '~' not | atom``."""

    def __init__(self, text: str, masks: dict[str, int], full: int) -> None:
        self.text, self.masks, self.full, self.pos = text, masks, full, 0

    def parse(self) -> int:
        value = self._or()
        if self.pos != len(self.text):
            self._fail()
        return value

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _fail(self) -> NoReturn:
        raise TaskError(f"truth table: cannot read {self.text!r} at position {self.pos}; expected a variable "
                        f"of {''.join(self.masks)}, ~, &, | or parentheses")

    def _or(self) -> int:
        value = self._and()
        while self._peek() == "|":
            self.pos += 1
            value |= self._and()
        return value

    def _and(self) -> int:
        value = self._not()
        while self._peek() == "&":
            self.pos += 1
            value &= self._not()
        return value

    def _not(self) -> int:
        char = self._peek()
        if char not in ("~", "(", *self.masks):
            self._fail()
        self.pos += 1
        if char == "~":
            return self.full & ~self._not()
        if char == "(":
            value = self._or()
            if self._peek() != ")":
                self._fail()
            self.pos += 1
            return value
        return self.masks[char]


@cache
def expression_count(literals: int, variables: int) -> int:
    """How many distinct expressions have ``literals`` literals over ``variables`` variables."""
    if literals == 1:
        return 2 * variables
    return sum(2 * expression_count(k, variables) * expression_count(literals - k, variables)
               for k in range(1, literals))


def _leaves(variables: int) -> list[str]:
    return [p + v for v in VARIABLES[:variables] for p in ("", "~")]


def _wrap(expression: str, literals: int) -> str:
    return expression if literals == 1 else f"({expression})"


def expressions(literals: int, variables: int) -> Iterator[str]:
    """Every expression with ``literals`` literals, in a fixed order."""
    if literals == 1:
        yield from _leaves(variables)
        return
    for k in range(1, literals):
        for left in expressions(k, variables):
            for right in expressions(literals - k, variables):
                for op in "&|":
                    yield _wrap(left, k) + op + _wrap(right, literals - k)


def random_expression(literals: int, variables: int, rng: random.Random) -> str:
    """One expression with ``literals`` literals, uniformly at random."""
    if literals == 1:
        return rng.choice(_leaves(variables))
    weights = [expression_count(k, variables) * expression_count(literals - k, variables)
               for k in range(1, literals)]
    k = rng.choices(range(1, literals), weights=weights)[0]
    left = _wrap(random_expression(k, variables, rng), k)
    right = _wrap(random_expression(literals - k, variables, rng), literals - k)
    return left + rng.choice("&|") + right


class TruthTableTask(GeneratedTask):
    """The truth table of a boolean expression over 3 or 4 variables."""

    family = "truth_table"
    params_schema: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "variables": int, "literals": (int, list, tuple)}
    defaults: ClassVar[dict[str, Any]] = {"variables": 3, "literals": [2, 4]}

    def validate(self) -> None:
        if self.params["variables"] not in (3, 4):
            raise TaskError(f"task {self.family!r}: parameter 'variables' = {self.params['variables']!r} "
                            f"is impossible; expected 3 or 4")
        self.params["literals"] = parse_range(self.family, "literals", self.params["literals"], minimum=1)
        self.shape = formats.TruthShape(1 << self.params["variables"])

    def strata(self) -> list[int]:
        low, high = self.params["literals"]
        return list(range(low, high + 1))

    def stratum_size(self, stratum: int) -> int:
        return expression_count(stratum, self.params["variables"])

    def stratum_questions(self, stratum: int) -> Iterator[str]:
        return (e + "=" for e in expressions(stratum, self.params["variables"]))

    def draw(self, stratum: int, rng: random.Random) -> str:
        return random_expression(stratum, self.params["variables"], rng) + "="

    def solve(self, question: str) -> str:
        return truth_table(question.removesuffix("="), self.params["variables"])

    def describe(self, question: str) -> str:
        n = self.params["variables"]
        names = ", ".join(VARIABLES[:n])
        order = ", ".join(format(i, f"0{n}b").replace("0", "F").replace("1", "T") for i in range(1 << n))
        return (f"Consider the boolean expression {question.removesuffix('=')} over the variables {names}, "
                f"where ~ is NOT, & is AND and | is OR. Give its truth table as one string of {1 << n} "
                f"letters, T for true and F for false, one for each assignment of ({names}) in the order "
                f"{order}.")
