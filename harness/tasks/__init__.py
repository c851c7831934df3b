"""Task families by name: generated families for organisms and adapters of hub datasets.

>>> from harness.specs import TaskSpec
>>> task = get_task(TaskSpec(family="arithmetic", params={"digits": 2}))
>>> problem = Problem(question="12+34=", answer=task.solve("12+34="), uid="x")
>>> task.is_correct("46", problem), task.is_correct("45", problem)
(True, False)
"""

from __future__ import annotations

import difflib

from harness.specs import TaskSpec
from harness.tasks.arithmetic import ArithmeticTask
from harness.tasks.base import Problem, Prompt, Task, TaskError, seeded_rng, split_of
from harness.tasks.hub import HUB_FAMILIES
from harness.tasks.operator import OperatorTask, transfer_mix
from harness.tasks.strategy import StrategyTask
from harness.tasks.truth_tables import TruthTableTask
from harness.tasks.vocab import ORGANISM_ALPHABET

__all__ = ["FAMILIES", "ORGANISM_ALPHABET", "Problem", "Prompt", "Task", "TaskError", "get_task",
           "seeded_rng", "split_of", "transfer_mix"]

FAMILIES: dict[str, type[Task]] = {
    cls.family: cls for cls in (ArithmeticTask, TruthTableTask, OperatorTask, StrategyTask, *HUB_FAMILIES)
}

_TASKS: dict[str, Task] = {}  # by the spec's canonical JSON: a task keeps its loaded or enumerated problems


def get_task(spec: TaskSpec) -> Task:
    """The task a spec names (one shared instance per spec); TaskError for unknown families or parameters."""
    key = spec.canonical_json()
    if key not in _TASKS:
        cls = FAMILIES.get(spec.family)
        if cls is None:
            close = difflib.get_close_matches(spec.family, FAMILIES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ";"
            raise TaskError(f"unknown task family {spec.family!r}{hint} known: {', '.join(sorted(FAMILIES))}")
        _TASKS[key] = cls(spec)
    return _TASKS[key]
