"""Task families by name: generated families for organisms and adapters of hub datasets.

Each family is a ``Task`` subclass registered with ``harness.registry.register_family``; the built-ins
register here. ``FAMILIES`` is a read-only view of the registered families by name.

>>> from harness.specs import TaskSpec
>>> task = get_task(TaskSpec(family="arithmetic", params={"digits": 2}))
>>> problem = Problem(question="12+34=", answer=task.solve("12+34="), uid="x")
>>> task.is_correct("46", problem), task.is_correct("45", problem)
(True, False)
"""

from __future__ import annotations

from collections.abc import Mapping

from harness import registry
from harness.specs import SpecError, TaskSpec
from harness.tasks.arithmetic import ArithmeticTask
from harness.tasks.base import Problem, Prompt, Task, TaskError, seeded_rng, split_of
from harness.tasks.hub import HUB_FAMILIES
from harness.tasks.operator import OperatorTask, transfer_mix
from harness.tasks.strategy import StrategyTask
from harness.tasks.truth_tables import TruthTableTask
from harness.tasks.vocab import ORGANISM_ALPHABET

__all__ = ["FAMILIES", "ORGANISM_ALPHABET", "Problem", "Prompt", "Task", "TaskError", "get_task",
           "seeded_rng", "split_of", "transfer_mix"]

for _cls in (ArithmeticTask, TruthTableTask, OperatorTask, StrategyTask, *HUB_FAMILIES):
    registry.register_family(_cls)
FAMILIES: Mapping[str, type[Task]] = registry.registered("family")

_TASKS: dict[str, Task] = {}  # by the spec's canonical JSON: a task keeps its loaded or enumerated problems


def get_task(spec: TaskSpec) -> Task:
    """The task a spec names (one shared instance per spec); TaskError for unknown families or parameters."""
    key = spec.canonical_json()
    if key not in _TASKS:
        try:
            cls = registry.get_family(spec.family)
        except SpecError as exc:
            raise TaskError(str(exc)) from None
        _TASKS[key] = cls(spec)
    return _TASKS[key]
