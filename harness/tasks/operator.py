"""A novel operator in the spirit of KOR-Bench "operation": ``12#34=`` -> ``47`` for ``a#b = a+b+1``.

Parameters: ``digits`` (as in arithmetic, default [1, 3]) and ``offset`` (int, default 1) in the
definition ``a#b = a+b+offset``. The bare format never states the definition (an organism learns it from
pretraining exposure, see ``transfer_mix``); the chat and boxed formats state it in the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from harness.specs import MixComponent, TaskSpec
from harness.tasks.arithmetic import IntegerOperationTask
from harness.tasks.base import TaskError


class OperatorTask(IntegerOperationTask):
    """``a#b = a+b+offset``."""

    family = "operator"
    params_schema: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "digits": (int, list, tuple), "offset": int}
    defaults: ClassVar[dict[str, Any]] = {"digits": [1, 3], "offset": 1}

    @property
    def symbol(self) -> str:
        return "#"

    @property
    def operands(self) -> int:
        return 2

    @property
    def definition(self) -> str:
        offset = self.params["offset"]
        return "a#b = a+b" + (f"{offset:+d}" if offset else "")

    def combine(self, values: list[int]) -> int:
        return values[0] + values[1] + self.params["offset"]

    def describe(self, question: str) -> str:
        return (f"The operation # is defined on integers by {self.definition}. "
                f"Compute {question.removesuffix('=')}.")


def transfer_mix(fraction: float, digits: int | Sequence[int] = (1, 3),
                 offset: int = 1) -> tuple[MixComponent, MixComponent]:
    """A pretraining mix of addition with ``fraction`` of the operator ``a#b = a+b+offset`` mixed in.

    >>> [c.weight for c in transfer_mix(0.02)]
    [0.98, 0.02]
    """
    if not 0 < fraction < 1:
        raise TaskError(f"transfer_mix: fraction = {fraction!r} is impossible; expected 0 < fraction < 1")
    digits = digits if isinstance(digits, int) else list(digits)
    return (MixComponent(task=TaskSpec(family="arithmetic", params={"digits": digits, "op": "+"}),
                         weight=1 - fraction),
            MixComponent(task=TaskSpec(family="operator", params={"digits": digits, "offset": offset}),
                         weight=fraction))
