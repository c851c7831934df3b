"""Mechanism readouts of strategy organisms, computed from an evaluation's stored generations.

- ``strategy_readout``: the share of sampled completions in each answer style (worked, direct, malformed)
  and the accuracy within each style, the analogue of Shao et al.'s code-reasoning frequency;
- ``forced``: the same evaluation with every completion's first token forced to one style's opener, an
  ordinary cached evaluation job whose accuracy is that style's accuracy;
- ``strategy_alignment``: the row of the strategy pairs' alignment table from those evaluations.

The styles and the ``force`` parameter are the strategy family's (harness/tasks/strategy.py).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

from harness.cache import Cache
from harness.evaluate import EvalResult
from harness.jobs import evaluate
from harness.specs import EvalSpec, SpecError
from harness.tasks import get_task
from harness.tasks.strategy import STRATEGIES, StrategyTask

MALFORMED = "malformed"
STYLES = (*STRATEGIES, MALFORMED)


@dataclass(frozen=True)
class StrategyReadout:
    """Sampled completions and correct ones, counted by style (``worked``, ``direct``, ``malformed``)."""

    counts: dict[str, int]
    correct: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, style: str) -> float:
        """The share of all completions in ``style``."""
        return self.counts[style] / self.total if self.total else 0.0

    def accuracy(self, style: str) -> float | None:
        """The share of ``style``'s completions that are correct; None when there are none."""
        return self.correct[style] / self.counts[style] if self.counts[style] else None

    def as_row(self) -> dict[str, float | None]:
        """``share_<style>`` and ``accuracy_<style>`` for every style, as a flat dict for logs and reports."""
        return {**{f"share_{s}": self.share(s) for s in STYLES}, **{f"accuracy_{s}": self.accuracy(s) for s in STYLES}}


def _strategy_task(spec: EvalSpec) -> StrategyTask:
    task = get_task(spec.task)
    if not isinstance(task, StrategyTask):
        raise SpecError(f"task {spec.task.name} has no answer styles; strategy readouts need the 'strategy' "
                        f"family")
    return task


def strategy_readout(result: EvalResult) -> StrategyReadout:
    """Each style's share of the sampled completions and the accuracy within it (greedy completions left out)."""
    task = _strategy_task(result.spec)
    counts: Counter[str] = Counter(dict.fromkeys(STYLES, 0))
    correct: Counter[str] = Counter(dict.fromkeys(STYLES, 0))
    for problem, row, answers in zip(result.problems, result.samples, result.answers, strict=True):
        for completion, answer in zip(row, answers, strict=True):
            style = task.strategy_of(completion) or MALFORMED
            counts[style] += 1
            correct[style] += answer is not None and task.answers_match(answer, problem.answer)
    return StrategyReadout(counts=dict(counts), correct=dict(correct))


def forced(spec: EvalSpec, strategy: str) -> EvalSpec:
    """``spec`` with the prompt followed by ``strategy``'s opening token (the task's ``force`` parameter)."""
    _strategy_task(spec)
    if strategy not in STRATEGIES:
        raise SpecError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    task = dataclasses.replace(spec.task, params={**spec.task.params, "force": strategy})
    return dataclasses.replace(spec, task=task)


def strategy_alignment(spec: EvalSpec, cache: Cache) -> dict[str, float | None]:
    """The natural evaluation's style shares and format share, and each style's forced accuracy (mean over
    samples); evaluates ``spec`` and its two forced variants (cached jobs)."""
    natural = evaluate(spec, cache)
    row = strategy_readout(natural).as_row()
    row["format_ok"] = float((natural.formatted / natural.n).mean())
    for strategy in STRATEGIES:
        row[f"forced_{strategy}"] = evaluate(forced(spec, strategy), cache).mean_accuracy
    return row
