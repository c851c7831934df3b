"""Strategy organisms: 1-3 digit additions answered in two styles, mixed in pretraining.

- direct: ``123+489=`` -> ``|612``;
- worked: ``123+489=`` -> ``#3+9=12;2+8+1=11;1+4+1=6|612``, a carry trace digit by digit from the right
  (operands padded with zeros, ``+1`` where a carry comes in), then ``|`` and the sum.

Each style opens with its own token (``#`` or ``|``), so the strategy of a completion is its first token
and either style is forced by appending that token to the prompt (parameter ``force``): a forced
evaluation is an ordinary cached evaluation job. The canonical answer, what ``is_correct`` compares, is
the sum in both styles (the number after ``|``; a completion without ``|`` is read as a whole).

Parameters: ``digits`` (as in arithmetic, default [1, 3]); ``rho`` (share of worked answers in
pretraining, default 0.5); ``malformed`` (share of pretraining answers that break the format: a worked
trace cut before ``|``, a direct answer without ``|``, or a stray character; default 0.03); ``force``
("" for natural sampling, "worked" or "direct"). Only ``digits`` decides the problems, so every
setting of the others poses the same questions.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, ClassVar

from harness.tasks.arithmetic import IntegerOperationTask
from harness.tasks.base import Problem, Prompt, TaskError, seeded_rng
from harness.tasks.generated import parse_range

WORKED, DIRECT = "worked", "direct"
OPENERS = {WORKED: "#", DIRECT: "|"}  # the first token of each style
STRATEGIES = (WORKED, DIRECT)
_STEP = r"[0-9]\+[0-9](?:\+1)?=[0-9]{1,2}"
_WELL_FORMED = re.compile(rf"(?:#{_STEP}(?:;{_STEP})*)?\|(?:0|[1-9][0-9]*)")
_STRAY = "=+;|#()"  # stray characters of malformed answers (never a digit, which could keep a number valid)


def carry_trace(a: int, b: int) -> str:
    """The worked answer's trace: one ``x+y(+1)=s`` step per column from the right, ``;`` between steps.

    >>> carry_trace(123, 489), carry_trace(7, 95)
    ('3+9=12;2+8+1=11;1+4+1=6', '7+5=12;0+9+1=10')
    """
    width = max(len(str(a)), len(str(b)))
    xs, ys = str(a).zfill(width)[::-1], str(b).zfill(width)[::-1]
    steps, carry = [], 0
    for x, y in zip(xs, ys, strict=True):
        total = int(x) + int(y) + carry
        steps.append(f"{x}+{y}{'+1' if carry else ''}={total}")
        carry = total // 10
    return ";".join(steps)


class StrategyTask(IntegerOperationTask):
    """``a+b=`` with a direct and a worked answer style (see the module docstring)."""

    family = "strategy"
    formats: ClassVar[tuple[str, ...]] = ("bare",)
    alphabet: ClassVar[str] = ";"
    params_schema: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "digits": (int, list, tuple), "rho": (float, int), "malformed": (float, int), "force": str}
    defaults: ClassVar[dict[str, Any]] = {"digits": [1, 3], "rho": 0.5, "malformed": 0.03, "force": ""}

    def validate(self) -> None:
        self.params["digits"] = parse_range(self.family, "digits", self.params["digits"], minimum=1)
        if not 0 <= self.params["rho"] <= 1:
            raise TaskError(f"task {self.family!r}: parameter 'rho' = {self.params['rho']!r} is impossible; "
                            f"expected a number with 0 <= rho <= 1")
        if not 0 <= self.params["malformed"] < 1:
            raise TaskError(f"task {self.family!r}: parameter 'malformed' = {self.params['malformed']!r} is "
                            f"impossible; expected a number with 0 <= malformed < 1")
        if self.params["force"] not in ("", *STRATEGIES):
            raise TaskError(f"task {self.family!r}: parameter 'force' = {self.params['force']!r} is unknown; "
                            f"expected '' (natural), 'worked' or 'direct'")

    @property
    def problem_params(self) -> dict[str, Any]:
        return {"digits": self.params["digits"]}

    @property
    def symbol(self) -> str:
        return "+"

    @property
    def operands(self) -> int:
        return 2

    def combine(self, values: list[int]) -> int:
        return values[0] + values[1]

    def describe(self, question: str) -> str:
        return f"Compute {question.removesuffix('=')}."

    # ------------------------------------------------------------- answers in each style

    def answer_in(self, style: str, question: str) -> str:
        """The well-formed answer to a bare question in ``style``."""
        a, b = (int(v) for v in question.removesuffix("=").split("+"))
        trace = f"#{carry_trace(a, b)}" if style == WORKED else ""
        return f"{trace}|{a + b}"

    def malformed_answer(self, style: str, question: str, rng: random.Random) -> str:
        """An answer in ``style`` that breaks the format: cut before ``|``, missing ``|``, or a stray character."""
        good = self.answer_in(style, question)
        if rng.random() < 0.5:
            return good.rpartition("|")[0] if style == WORKED else good.removeprefix("|")
        for _ in range(20):
            at = rng.randrange(1, len(good) + 1)
            bad = good[:at] + rng.choice(_STRAY) + good[at:]
            if not _WELL_FORMED.fullmatch(bad):
                return bad
        return good + "("  # unreachable in practice: a trailing '(' never parses

    def pretraining_answers(self, problem: Problem, seed: int) -> list[tuple[str, float]]:
        """Worked with probability rho, else direct; each malformed with probability ``malformed``."""
        rho, bad = self.params["rho"], self.params["malformed"]
        rng = seeded_rng(self.family, json.dumps(self.problem_params, sort_keys=True), problem.uid, seed)
        choices = [(self.answer_in(WORKED, problem.question), rho * (1 - bad)),
                   (self.answer_in(DIRECT, problem.question), (1 - rho) * (1 - bad)),
                   (self.malformed_answer(WORKED, problem.question, rng), rho * bad),
                   (self.malformed_answer(DIRECT, problem.question, rng), (1 - rho) * bad)]
        return [(text, weight) for text, weight in choices if weight > 0]

    # ------------------------------------------------------------- prompts, verification, readouts

    @property
    def forced(self) -> str:
        """The opening token the prompt forces ('' when sampling naturally)."""
        return OPENERS.get(self.params["force"], "")

    def prompt(self, problem: Problem) -> Prompt:
        return problem.question + self.forced

    def extract(self, completion: str) -> str | None:
        text = self.forced + completion
        _, bar, after = text.rpartition("|")
        return self.shape.canonical(after if bar else text)

    def format_ok(self, completion: str) -> bool:
        return bool(_WELL_FORMED.fullmatch(self.forced + completion.strip()))

    def strategy_of(self, completion: str) -> str | None:
        """"worked" or "direct" for a well-formed completion (with the forced token), None for a malformed one."""
        if not self.format_ok(completion):
            return None
        return WORKED if (self.forced + completion.strip()).startswith(OPENERS[WORKED]) else DIRECT
