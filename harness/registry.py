"""Extension points by name: task families, rewards, sample polarities and prompt formats.

The built-ins register here the way a user's code does. Register from a ``conftest.py``, from a
module or file given to ``pytest -p`` / ``python -m harness -p``, or from an installed plugin: a
distribution whose entry point in the group ``claims_harness.plugins`` names a module that registers
on import (loaded automatically by the first lookup). The registry records where each registration
came from, so a worker process replays them: ``load_plugins(plugin_sources())``.

>>> get_reward("random").needs_policy, get_reward("entropy").needs_policy
(False, True)
>>> try:
...     get_reward("randm")
... except SpecError as exc:
...     print(str(exc).split(" known:")[0])
unknown reward 'randm'; did you mean 'random'?
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from harness.specs import SpecError

if TYPE_CHECKING:
    from harness.specs import Spec
    from harness.tasks.base import Prompt, Task
    from harness.tasks.formats import Shape

ENTRY_POINT_GROUP = "claims_harness.plugins"
BUILTINS = ("harness.tasks", "harness.rl.rewards", "harness.rl.advantages")  # modules registering the built-ins
_PATH_PREFIX = "claims_plugin_"  # module names of plugin files imported by path

Kind = Literal["family", "reward", "polarity", "format"]


@dataclass(frozen=True)
class Reward:
    """A registered reward: ``factory(task, **params)`` (plus ``policy=`` when ``needs_policy``) -> RewardFunc.

    ``labels``: "majority" gives every training problem the base model's majority-vote answer as the
    ``label`` column; "wrong_majority" also keeps only the problems whose label is wrong (Shao et al.'s
    incorrect reward); None gives no labels.
    """

    name: str
    factory: Callable[..., Any]
    needs_policy: bool
    labels: str | None = None


@dataclass(frozen=True)
class Format:
    """A registered prompt format: how a question is posed, and how an answer is read back.

    ``prompt(text)`` poses the question in words (``bare`` poses the bare question itself);
    ``extract(shape, completion)`` is the canonical answer or None; ``format_ok(shape, completion)`` says
    whether the completion follows the format. Neither of the last two may raise.
    """

    name: str
    prompt: Callable[[str], Prompt]
    extract: Callable[[Shape, str], str | None]
    format_ok: Callable[[Shape, str], bool]


_entries: dict[Kind, dict[str, Any]] = {"family": {}, "reward": {}, "polarity": {}, "format": {}}
_sources: dict[tuple[Kind, str], str] = {}  # where each registration came from
_loaded: set[str] = set()  # plugin sources imported by load_plugins in this process
_ready = False  # built-ins and entry points loaded


# ---------------------------------------------------------------- registering


def register_family(cls: type[Task]) -> type[Task]:
    """Register a task family (a concrete ``harness.tasks.Task`` subclass) under ``cls.family``; usable as a decorator.

    Characters of bare prompts and answers beyond the shared organism alphabet go in ``cls.alphabet``.
    """
    from harness.tasks.base import Task

    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise SpecError(f"register_family: {cls!r} is not a subclass of harness.tasks.Task")
    name = getattr(cls, "family", None)
    if not isinstance(name, str) or not name:
        raise SpecError(f"register_family: {cls.__qualname__} has no 'family' name (a class attribute, a str)")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise SpecError(f"register_family: {cls.__qualname__} ({name!r}) does not define {missing}")
    if not isinstance(cls.alphabet, str):
        raise SpecError(f"register_family: {cls.__qualname__}.alphabet must be a str of characters, "
                        f"got {cls.alphabet!r}")
    _add("family", name, cls)
    return cls


LABELS = (None, "majority", "wrong_majority")


def register_reward(name: str, factory: Callable[..., Any], *, needs_policy: bool = False,
                    labels: str | None = None) -> Callable[..., Any]:
    """Register a reward: ``factory(task, **params)`` returns a TRL reward function (completions in, floats out).

    With ``needs_policy`` the factory is also given ``policy=``, the policy being trained
    (``policy.log_probs(prompts, completion_ids)``, see harness.rl.rewards.Policy). A factory with a
    ``seed`` parameter receives the RL run's seed unless the claim sets it. ``labels`` (see ``Reward``) asks
    for the base model's majority-vote labels in the ``label`` column.
    """
    if not callable(factory):
        raise SpecError(f"register_reward: factory of {name!r} is not callable: {factory!r}")
    if labels not in LABELS:
        raise SpecError(f"register_reward: labels of {name!r} must be one of {LABELS}, got {labels!r}")
    _add("reward", name, Reward(name=name, factory=factory, needs_policy=needs_policy, labels=labels))
    return factory


def register_polarity(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register a sample polarity: ``fn(spec, rewards, standard) -> advantages`` (tensors of shape (B,);
    ``standard`` holds TRL's group-relative advantages, ``spec`` the PolaritySpec with its ``lam``)."""
    if not callable(fn):
        raise SpecError(f"register_polarity: {name!r} is not callable: {fn!r}")
    _add("polarity", name, fn)
    return fn


def register_format(name: str, *, prompt: Callable[[str], Prompt], extract: Callable[[Shape, str], str | None],
                    format_ok: Callable[[Shape, str], bool]) -> None:
    """Register a prompt format (see ``Format``); families whose ``formats`` is None accept every registered one."""
    for part, fn in (("prompt", prompt), ("extract", extract), ("format_ok", format_ok)):
        if not callable(fn):
            raise SpecError(f"register_format: {part} of {name!r} is not callable: {fn!r}")
    _add("format", name, Format(name=name, prompt=prompt, extract=extract, format_ok=format_ok))


def _add(kind: Kind, name: str, value: Any) -> None:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise SpecError(f"register_{kind}: the name must be a non-empty str without surrounding spaces, got {name!r}")
    source = _caller_source()
    earlier = _sources.get((kind, name))
    if earlier is not None and earlier != source:  # the same source registering again (a re-import) replaces
        raise SpecError(f"{kind} {name!r} is already registered by {earlier}; registered again by {source}: "
                        "choose another name")
    _entries[kind][name] = value
    _sources[(kind, name)] = source


def _caller_source() -> str:
    """Where the registering code lives: a module name, or the file path of a conftest, script or plugin file."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    module, file = frame.f_globals.get("__name__", ""), frame.f_globals.get("__file__")
    if module == "harness" or module.startswith("harness."):
        return module
    if file is None:
        return f"<{module or 'interactive'}>"
    if module == "__main__" or module.startswith(_PATH_PREFIX) or Path(file).name == "conftest.py":
        return str(Path(file).resolve())
    return module


# ---------------------------------------------------------------- looking up


def registered(kind: Kind) -> Mapping[str, Any]:
    """A read-only, live view of one kind's registrations by name."""
    return MappingProxyType(_entries[kind])


def names(kind: Kind) -> list[str]:
    """Registered names of a kind, in registration order (built-ins first)."""
    _load_builtins()
    return list(_entries[kind])


def get_family(name: str) -> type[Task]:
    """The task family class registered as ``name``."""
    return _get("family", name, known=sorted(names("family")), label="task family")


def get_reward(name: str) -> Reward:
    return _get("reward", name)


def get_polarity(name: str) -> Callable[..., Any]:
    return _get("polarity", name)


def get_format(name: str) -> Format:
    return _get("format", name)


def _get(kind: Kind, name: str, known: list[str] | None = None, label: str | None = None) -> Any:
    _load_builtins()
    entry = _entries[kind].get(name)
    if entry is None:
        known = known if known is not None else names(kind)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SpecError(f"unknown {label or kind} {name!r}; {hint}known: {', '.join(known)}")
    return entry


def check(spec: Spec) -> None:
    """Fail with one line on any name inside ``spec`` that nothing registered: task families, formats and
    parameters, rewards and their parameters, polarities (at any depth). Run at planning time."""
    import dataclasses

    from harness.specs import PolaritySpec, RewardSpec, Spec, TaskSpec

    pending: list[Any] = [spec]
    while pending:
        value = pending.pop()
        if isinstance(value, TaskSpec):
            from harness.tasks import get_task

            get_task(value)
        elif isinstance(value, RewardSpec):
            check_reward_params(value.name, value.params)
        elif isinstance(value, PolaritySpec):
            get_polarity(value.name)
        if isinstance(value, Spec):
            pending.extend(getattr(value, f.name) for f in dataclasses.fields(value))
        elif isinstance(value, tuple | list):
            pending.extend(value)


def check_reward_params(name: str, params: dict[str, Any]) -> Reward:
    """The reward ``name``, after checking that its factory takes ``params``."""
    reward = get_reward(name)
    signature = inspect.signature(reward.factory)
    given = {"policy": None} if reward.needs_policy else {}
    if "seed" in signature.parameters:
        given["seed"] = 0  # the run's seed, unless params set one
    try:
        signature.bind(None, **{**given, **params})
    except TypeError as exc:
        if "missing" in str(exc):
            raise SpecError(f"reward {name!r} needs reward_params: {exc}") from None
        raise SpecError(f"reward {name!r} does not take parameters {sorted(params)}") from None
    return reward


# ---------------------------------------------------------------- plugins


def plugin_sources() -> list[str]:
    """Module names and file paths of the code that registered anything beyond the built-ins, in order:
    what a fresh process passes to ``load_plugins`` to see the same registrations."""
    found = {source: None for source in _sources.values()
             if not (source == "harness" or source.startswith(("harness.", "<")))}
    return list(found)


def load_plugins(sources: Iterable[str] = ()) -> None:
    """Import each plugin source once per process: a file path (``.py``; a conftest.py too) or a module name.

    A file is imported under a name of its own with its directory first on ``sys.path`` (as pytest imports a
    conftest), so it may import modules beside it. Installed plugins (entry points) load in any case.
    """
    _load_builtins()
    for source in sources:
        if source in _loaded:
            continue
        path = Path(source)
        if source.endswith(".py") or path.is_file():
            _import_file(path)
        else:
            try:
                importlib.import_module(source)
            except ModuleNotFoundError as exc:
                if exc.name is None or not source.startswith(exc.name):
                    raise  # the plugin itself imports something missing
                raise SpecError(f"plugin {source!r}: no module of that name and no such file") from None
        _loaded.add(source)


def _import_file(path: Path) -> None:
    if not path.is_file():
        raise SpecError(f"plugin {str(path)!r}: no such file")
    path = path.resolve()
    name = f"{_PATH_PREFIX}{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def _load_builtins() -> None:
    """Import the modules that register the built-ins, then the installed plugins (once per process)."""
    global _ready
    if _ready:
        return
    _ready = True
    for module in BUILTINS:
        importlib.import_module(module)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        point.load()
