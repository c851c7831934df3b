"""Jobs: per spec kind, what it needs (``deps``), how it is checked and computed, and ``materialize``.

A job receives its dependencies' published cache entries through ``Inputs``; it never computes them
itself, so a planner sees the whole graph before anything runs (harness/plan.py) and a scheduler
runs it (harness/scheduler.py). ``materialize`` computes a spec and its dependencies depth-first in
this process: the convenience of the command line, tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cache import Cache
from harness.models import ModelSpec, has_entry
from harness.specs import EvalSpec, OrganismSpec, RLSpec, Spec, SpecError


@dataclass(frozen=True)
class Inputs:
    """What a job is given: the cache (for run-time state such as resume directories) and the published
    entries of its declared dependencies, by key."""

    cache: Cache
    entries: Mapping[str, Path] = field(default_factory=dict)

    def entry(self, spec: Spec) -> Path:
        """The published entry of the dependency ``spec``."""
        try:
            return self.entries[spec.key]
        except KeyError:
            raise KeyError(f"{spec.short} is not among the job's declared dependencies (harness.jobs.deps)") from None

    def model(self, spec: ModelSpec) -> Path | None:
        """The entry holding a model's weights, or None for a hub or local model loaded in place."""
        return self.entry(spec) if has_entry(spec) else None


Run = Callable[[Any, Path, Inputs], dict | None]
RunGroup = Callable[[list[Any], list[Path], Inputs], list[dict | None]]


@dataclass(frozen=True)
class JobKind:
    """One kind of job. ``check`` raises SpecError for a spec that cannot be built (planning time);
    ``ready_check`` for one that cannot run given its dependencies' entries (when they are in, before the job
    joins a group, so that one member's impossibility does not fail its group). ``group_key``: jobs with
    the same non-None key may run side by side in one process through ``run_group`` (one output directory
    each)."""

    deps: Callable[[Any], tuple[Spec, ...]]
    run: Run
    check: Callable[[Any], None] = lambda spec: None
    ready_check: Callable[[Any, Inputs], None] = lambda spec, inputs: None
    group_key: Callable[[Any], str | None] = lambda spec: None
    run_group: RunGroup | None = None


def _model_deps(model: ModelSpec) -> tuple[Spec, ...]:
    return (model,) if has_entry(model) else ()


def _pretrain(spec: OrganismSpec, out: Path, inputs: Inputs) -> dict:
    from harness.models.organism import pretrain

    return pretrain(spec, out, inputs.cache)


def _convert(spec: Any, out: Path, inputs: Inputs) -> dict:
    from harness.models.pretrained import convert_gguf

    return convert_gguf(spec, out)


def _evaluate(spec: EvalSpec, out: Path, inputs: Inputs) -> dict:
    from harness.evaluate import sample

    return sample(spec, out, inputs)


def _check_eval(spec: EvalSpec) -> None:
    from harness.evaluate import check

    check(spec)


def _rl_deps(spec: RLSpec) -> tuple[Spec, ...]:
    from harness.rl.runner import extra_inputs

    return (*_model_deps(spec.model), *extra_inputs(spec))


def _rl(spec: RLSpec, out: Path, inputs: Inputs) -> dict:
    from harness.rl.runner import train

    return train(spec, out, inputs)


def _check_rl(spec: RLSpec) -> None:
    from harness.rl.runner import check

    check(spec)


def _ready_rl(spec: RLSpec, inputs: Inputs) -> None:
    """The run's training problems can be chosen (e.g. an incorrect-label reward has a wrong label to train on)."""
    from harness.rl.runner import select_problems

    select_problems(spec, inputs)


def _rl_group_key(spec: RLSpec) -> str | None:
    """Organism RL runs of the batched engine with the same base model, task, recipe, steps and pool size."""
    from harness.rl.batched import group_key

    return group_key(spec) if isinstance(spec.model, OrganismSpec) else None


def _rl_group(specs: list[RLSpec], outs: list[Path], inputs: Inputs) -> list[dict]:
    """Runs of one group, side by side through the batched engine (harness/rl/batched.py)."""
    from harness.rl.batched import train_inputs

    return train_inputs(specs, outs, inputs)


JOBS: dict[str, JobKind] = {
    "organism": JobKind(deps=lambda spec: (), run=_pretrain),
    "pretrained": JobKind(deps=lambda spec: (), run=_convert),
    "eval": JobKind(deps=lambda spec: _model_deps(spec.model), run=_evaluate, check=_check_eval),
    "rl": JobKind(deps=_rl_deps, run=_rl, check=_check_rl, ready_check=_ready_rl, group_key=_rl_group_key,
                  run_group=_rl_group),
}


def deps(spec: Spec) -> tuple[Spec, ...]:
    """The specs whose entries ``spec``'s job reads."""
    return JOBS[spec.kind].deps(spec)


def check(spec: Spec) -> None:
    """Raise SpecError naming the field (``rl.reward: ...``) if ``spec`` or a job it needs cannot be computed.

    Cheap and offline: what needs a hub dataset to check is left to the job.
    """
    try:
        JOBS[spec.kind].check(spec)
    except SpecError as exc:
        raise SpecError(f"{spec.kind}.{exc}") from None
    for dep in deps(spec):
        check(dep)


def group_key(spec: Spec) -> str | None:
    return JOBS[spec.kind].group_key(spec)


def ready_check(spec: Spec, inputs: Inputs) -> None:
    """Raise SpecError if ``spec`` cannot run on its dependencies' entries ``inputs`` (see ``JobKind``)."""
    JOBS[spec.kind].ready_check(spec, inputs)


def compute(spec: Spec, inputs: Inputs) -> Path:
    """The entry of ``spec``, computed from ``inputs`` once (under the key's lock) if missing."""
    job = JOBS[spec.kind]
    return inputs.cache.get_or_compute(spec, lambda out: job.run(spec, out, inputs))


def compute_group(specs: list[Spec], inputs: Inputs) -> list[Path]:
    """Entries of jobs of one group (same ``group_key``), in the order given; those missing are computed
    together by ``run_group``.

    Each member is published as its own entry under its own lock: the locks are taken one inside the
    other, in the order of the keys (the same in every process, so two sessions sharing a cache cannot
    wait on each other), and the group runs in the innermost over the members no other process has published.
    """
    ordered = sorted(specs, key=lambda spec: spec.key)
    entries = dict(zip((spec.key for spec in ordered), _compute_group(ordered, inputs), strict=True))
    return [entries[spec.key] for spec in specs]


def _compute_group(specs: list[Spec], inputs: Inputs) -> list[Path]:
    job = JOBS[specs[0].kind]
    assert job.run_group is not None and len({group_key(s) for s in specs}) == 1, "not one group"
    outs: dict[int, Path] = {}
    extras: dict[int, dict] = {}

    def from_member(i: int) -> list[Path]:
        if i == len(specs):
            todo = sorted(outs)
            if todo:
                results = job.run_group([specs[j] for j in todo], [outs[j] for j in todo], inputs)
                for j, result in zip(todo, results, strict=True):
                    extras[j] = {**(result or {}), "group_size": len(todo)}
            return []
        rest: list[Path] = []

        def compute_member(out: Path) -> dict:
            outs[i] = out
            rest.extend(from_member(i + 1))
            return extras[i]

        entry = inputs.cache.get_or_compute(specs[i], compute_member)
        if i not in outs:  # published already: the rest is reached outside this member's lock
            rest.extend(from_member(i + 1))
        return [entry, *rest]

    return from_member(0)


def inputs_for(spec: Spec, cache: Cache) -> Inputs:
    """``spec``'s inputs, its dependencies materialized in this process."""
    return Inputs(cache, {dep.key: materialize(dep, cache) for dep in deps(spec)})


def evaluate(spec: EvalSpec, cache: Cache) -> Any:
    """The scored EvalResult of ``spec``, sampled once (with its model, in this process) and scored on every load."""
    from harness.evaluate import load_result

    return load_result(spec, materialize(spec, cache))


def materialize(spec: Spec, cache: Cache) -> Path:
    """The cache entry of ``spec``, computed in this process with its dependencies (depth-first) if missing."""
    entry = cache.entry(spec.key)
    if entry is not None:
        cache.stats.loaded.append(spec.key)
        return entry
    return compute(spec, inputs_for(spec, cache))
