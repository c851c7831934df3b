"""Declarative YAML -> specs: fixtures files (model-task pairs) and RL recipes.

The loader is strict: unknown keys, duplicate keys, wrong types and missing files fail with one
line naming the file, the entry and the field. Nothing here runs a job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from harness.specs import (
    EvalSpec,
    MixComponent,
    OrganismSpec,
    PretrainedSpec,
    RecipeSpec,
    SpecError,
    TaskSpec,
)

BUDGETS = ("smoke", "standard", "paper")
RECIPES = Path(__file__).parent / "recipes"  # the presets: paper, organism, smollm2


class FixtureError(SpecError):
    """A fixtures or recipe file that cannot be loaded; the message names file, entry and field."""


def _check_duplicates(node: yaml.Node | None, where: str) -> None:
    """Reject a mapping that repeats a key (PyYAML keeps the last silently), naming the entry and the line."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, f"{where}[{i}]")
    elif isinstance(node, yaml.MappingNode):
        seen: set[tuple[str, str]] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a complex key: the constructor reports it
            ident = (key_node.tag, key_node.value)
            if ident in seen and key_node.tag != "tag:yaml.org,2002:merge":
                raise FixtureError(f"{where}: duplicate key {key_node.value!r} (line {key_node.start_mark.line + 1})")
            seen.add(ident)
            _check_duplicates(value_node, key_node.value if where == "top level" else f"{where}.{key_node.value}")


def read_yaml(path: Path) -> Any:
    """Parse a YAML file with the safe loader, rejecting duplicate keys; errors are one FixtureError line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        _check_duplicates(yaml.compose(text, Loader=yaml.SafeLoader), "top level")
        return yaml.load(text, Loader=yaml.SafeLoader)
    except FixtureError as exc:
        raise FixtureError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise FixtureError(f"{path}: {where}YAML syntax error: {getattr(exc, 'problem', exc)}") from None


class _Reader:
    """Walks a YAML mapping with a location for error messages."""

    def __init__(self, path: Path, where: str, data: Any) -> None:
        self.path, self.where = path, where
        if not isinstance(data, dict):
            self.fail(f"expected a mapping, got {type(data).__name__}")
        self.data = data

    def fail(self, message: str) -> NoReturn:
        raise FixtureError(f"{self.path}: {self.where}: {message}")

    def only(self, allowed: list[str] | tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(f"unknown key {key!r}{hint}; known: {', '.join(allowed)}")

    def child(self, key: str) -> _Reader:
        if key not in self.data:
            self.fail(f"missing required key {key!r}")
        where = key if self.where == "top level" else f"{self.where}.{key}"
        return _Reader(self.path, where, self.data[key])

    def get(self, key: str, types: type | tuple[type, ...], default: Any = dataclasses.MISSING) -> Any:
        if key not in self.data:
            if default is dataclasses.MISSING:
                self.fail(f"missing required key {key!r}")
            return default
        value = self.data[key]
        if types is float and isinstance(value, int | str) and not isinstance(value, bool):
            with contextlib.suppress(ValueError):
                value = float(value)  # YAML 1.1 reads 3e-4 (no dot) as a string
        if not isinstance(value, types) or (isinstance(value, bool) and types in (int, float)):
            expected = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
            self.fail(f"field {key!r} = {value!r}: expected {expected}")
        return value


def _spec_from(reader: _Reader, cls: type, renames: dict[str, Any] | None = None) -> Any:
    """Build a flat spec dataclass from a mapping, typing each field from the dataclass annotations."""
    renames = renames or {}
    names = [f.name for f in dataclasses.fields(cls) if f.name not in renames]
    reader.only(names)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in renames and f.name not in reader.data:
            reader.fail(f"missing required key {f.name!r}")
    kwargs: dict[str, Any] = dict(renames)
    for f in dataclasses.fields(cls):
        if f.name in reader.data and f.name not in renames:
            kwargs[f.name] = reader.get(f.name, _python_type(f))
    try:
        return cls(**kwargs)
    except TypeError as exc:
        reader.fail(str(exc))
    except SpecError as exc:
        reader.fail(str(exc))


def _python_type(f: dataclasses.Field) -> type | tuple[type, ...]:
    text = str(f.type)
    table = {"int": int, "float": float, "str": str, "bool": bool, "int | None": (int, type(None)),
             "dict[str, Any]": dict, "str | None": (str, type(None))}
    return table.get(text, object)


def task_from(reader: _Reader) -> TaskSpec:
    reader.only(["family", "params", "format"])
    spec = TaskSpec(family=reader.get("family", str), params=reader.get("params", dict, {}),
                    format=reader.get("format", str, "bare"))
    from harness.tasks import get_task

    try:
        get_task(spec)
    except SpecError as exc:
        reader.fail(str(exc))
    return spec


def _generated_split_size(spec: TaskSpec, split: str) -> int | None:
    """How many problems a generated task's split holds (None for hub datasets: they load when a job runs)."""
    from harness.tasks import get_task
    from harness.tasks.generated import GeneratedTask

    task = get_task(spec)
    return task.available(split) if isinstance(task, GeneratedTask) else None


def organism_from(reader: _Reader) -> OrganismSpec:
    allowed = [f.name for f in dataclasses.fields(OrganismSpec)]
    reader.only(allowed)
    mix_items = reader.get("mix", list)
    mix = []
    for i, item in enumerate(mix_items):
        entry = _Reader(reader.path, f"{reader.where}.mix[{i}]", item)
        entry.only(["task", "weight"])
        mix.append(MixComponent(task=task_from(entry.child("task")), weight=entry.get("weight", float, 1.0)))
    contaminate = task_from(reader.child("contaminate")) if "contaminate" in reader.data else None
    scalars = {k: v for k, v in reader.data.items() if k not in ("mix", "contaminate")}
    sub = _Reader(reader.path, reader.where, scalars)
    return _spec_from(sub, OrganismSpec, {"mix": tuple(mix), "contaminate": contaminate})


def pretrained_from(reader: _Reader) -> PretrainedSpec:
    from harness.models.pretrained import resolve

    reader.only(["hub", "path", "package", "gguf_file", "revision", "trust_remote_code"])
    kwargs = {k: reader.get(k, bool if k == "trust_remote_code" else str) for k in reader.data}
    try:
        return resolve(**kwargs, base=reader.path.parent)
    except SpecError as exc:
        reader.fail(str(exc))
    raise AssertionError  # unreachable: fail raises


def model_from(reader: _Reader) -> OrganismSpec | PretrainedSpec:
    reader.only(["organism", "pretrained"])
    if len(reader.data) != 1:
        reader.fail("a model is exactly one of 'organism' or 'pretrained'")
    if "organism" in reader.data:
        return organism_from(reader.child("organism"))
    return pretrained_from(reader.child("pretrained"))


@dataclass(frozen=True)
class Pair:
    """A model-task fixture: the base model, the task, how to evaluate it and the RL recipe."""

    id: str
    model: OrganismSpec | PretrainedSpec
    task: TaskSpec
    eval: EvalSpec  # evaluation of the base model; RL results are evaluated with the same settings
    recipe: RecipeSpec
    budgets: dict[str, int]  # RL steps per budget
    alignment_k: int = 64
    marks: tuple[str, ...] = ()
    note: str = ""
    control: str = ""  # id of a clean pair of matched alignment (for a contaminated pair)
    train_task: TaskSpec | None = None  # what RL trains on when it differs from the evaluated task
    source: str = ""  # the fixtures file
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rl_task(self) -> TaskSpec:
        return self.train_task or self.task

    def steps(self, budget: str) -> int:
        return self.budgets[budget]


PAIR_KEYS = ["model", "task", "train_task", "eval", "recipe", "alignment_k", "marks", "note", "control"]
EVAL_KEYS = ["num_problems", "n", "temperature", "top_p", "max_new_tokens", "seed", "backend", "batch_size"]


def load_recipe(name_or_path: str, *, base: Path | None = None) -> tuple[RecipeSpec, dict[str, int]]:
    """A recipe YAML (a preset name from harness/recipes/ or a path) -> (RecipeSpec, steps per budget)."""
    candidate = Path(name_or_path)
    if base is not None and not candidate.is_absolute():
        candidate = base / candidate
    if name_or_path.endswith((".yaml", ".yml")):
        path = candidate
    else:
        presets = RECIPES
        known = sorted(p.name.removesuffix(".yaml") for p in presets.iterdir() if p.name.endswith(".yaml"))
        if name_or_path not in known:
            close = difflib.get_close_matches(name_or_path, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise FixtureError(f"unknown recipe {name_or_path!r}; {hint}known: {', '.join(known)}")
        path = presets / f"{name_or_path}.yaml"
    reader = _Reader(path, "recipe", read_yaml(path))
    budgets_reader = reader.child("budgets")
    budgets_reader.only(list(BUDGETS))
    budgets = {b: budgets_reader.get(b, int) for b in BUDGETS}
    for b, steps in budgets.items():
        if steps < 1:
            budgets_reader.fail(f"field {b!r} = {steps}: RL steps must be >= 1")
    rest = _Reader(path, "recipe", {k: v for k, v in reader.data.items() if k != "budgets"})
    recipe = _spec_from(rest, RecipeSpec)
    return recipe, budgets


def load_fixtures(path: Path | str) -> list[Pair]:
    """All pairs of a fixtures file, in file order."""
    path = Path(path)
    root = _Reader(path, "top level", read_yaml(path))
    root.only(["defaults", "pairs"])
    defaults_reader = root.child("defaults") if "defaults" in root.data else _Reader(path, "defaults", {})
    defaults_reader.only(PAIR_KEYS)
    defaults = defaults_reader.data
    default_eval = {}
    if "eval" in defaults:
        default_eval_reader = defaults_reader.child("eval")
        default_eval_reader.only(EVAL_KEYS)
        default_eval = default_eval_reader.data
    pairs_reader = root.child("pairs")
    pairs = []
    for pair_id, body in pairs_reader.data.items():
        reader = _Reader(path, f"pairs.{pair_id}", body)
        reader.only(PAIR_KEYS)
        own_eval = reader.child("eval").data if "eval" in body else {}
        merged = _Reader(path, f"pairs.{pair_id}", {**defaults, **body, "eval": {**default_eval, **own_eval}})
        model = model_from(merged.child("model"))
        task = task_from(merged.child("task"))
        train_task = task_from(merged.child("train_task")) if "train_task" in merged.data else None
        if isinstance(model, OrganismSpec):
            from harness.models.organism import check_alphabet

            try:
                check_alphabet(model, [t for t in (task, train_task) if t is not None])
            except SpecError as exc:
                merged.fail(str(exc))
        eval_reader = merged.child("eval")
        eval_reader.only(EVAL_KEYS)
        evaluation = _spec_from(eval_reader, EvalSpec, {"model": model, "task": task})
        held = _generated_split_size(task, evaluation.split)
        if held is not None and evaluation.num_problems > held:
            eval_reader.fail(f"field 'num_problems' = {evaluation.num_problems}: the {evaluation.split} split of "
                             f"task {task.name} holds {held} problems; expected num_problems <= {held}")
        recipe_name = merged.get("recipe", str, "organism")
        try:
            recipe, budgets = load_recipe(recipe_name, base=path.parent)
        except FixtureError as exc:  # name the fixtures file and pair too, not only the recipe
            merged.fail(f"field 'recipe' = {recipe_name!r}: {exc}")
        k = merged.get("alignment_k", int, 64)
        if k > evaluation.n:
            merged.fail(f"alignment_k = {k} exceeds eval.n = {evaluation.n}: pass@k needs k <= n")
        if k < 1:
            merged.fail(f"alignment_k = {k}: pass@k needs k >= 1")
        marks = tuple(merged.get("marks", list, []))
        for mark in marks:
            if not isinstance(mark, str) or not mark.isidentifier():
                merged.fail(f"field 'marks': {mark!r} is not a pytest mark name")
        pairs.append(Pair(id=str(pair_id), model=model, task=task, eval=evaluation, recipe=recipe,
                          budgets=budgets, alignment_k=k, marks=marks, note=merged.get("note", str, ""),
                          control=merged.get("control", str, ""), train_task=train_task,
                          source=str(path)))
    ids = [p.id for p in pairs]
    for pair in pairs:  # a misspelt control would silently drop the pair's contamination claim
        if pair.control and (pair.control not in ids or pair.control == pair.id):
            close = difflib.get_close_matches(pair.control, [i for i in ids if i != pair.id], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise FixtureError(f"{path}: pairs.{pair.id}: field 'control' = {pair.control!r} names no other pair "
                               f"of this file{hint}")
    return pairs
