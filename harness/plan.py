"""The job graph and its cost: which jobs the tests need, in what order, and what the missing ones cost.

``build`` expands the specs the tests asked for into a deduplicated graph: each job's dependencies
(``harness.jobs.deps``), and one ordering edge per organism that continues a shorter run of its
lineage planned in the same graph. Cached jobs are leaves. Each missing job gets an estimate from a
``CostModel``: CPU core-seconds, a line in the job's work units fitted per kind (and task family) to
the timings recorded in the cache's manifests, or built-in defaults; jobs on pretrained models get
GPU-hours from their token counts (assumptions in ``GPU_ASSUMPTIONS``).
"""

from __future__ import annotations

import functools
import heapq
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness import jobs
from harness.cache import MANIFEST, Cache
from harness.models import ModelSpec
from harness.models.organism import lineage, longest_prefix
from harness.progress import duration
from harness.specs import EvalSpec, OrganismSpec, PretrainedSpec, RLSpec, Spec, from_dict

KINDS = ("organism", "pretrained", "eval", "rl")

MIN_FIT = 3  # timed jobs needed to fit a line

# GPU-hours of jobs on pretrained models, calibrated to the README's estimates for the paper's pairs.
RL_GPU_SECONDS_PER_TOKEN_7B = 100 * 3600 / (300 * 64 * 16 * 4096)  # a paper-recipe run on a 7B model: 100 H100-h
EVAL_GPU_SECONDS_PER_TOKEN_7B = 1.5 * 3600 / (500 * 257 * 4096)  # MATH500 with n = 256 on a 7B model: 1.5 H100-h
DEFAULT_PARAMS_B = 7.0
GPU_ASSUMPTIONS = ("GPU-hours (H100) assume: an RL run of the paper recipe on a 7B model (300 steps of 64 prompts "
                   "x 16 completions up to 4,096 tokens) takes 100 H100-hours and a MATH500 evaluation with "
                   "n = 256 takes 1.5, both linear in tokens (at maximum length) and in parameters (read from the "
                   "model's name; 7B when it does not say)")


def base_model(spec: Spec) -> Spec:
    """The organism or pretrained model at the root of a job's chain of models."""
    while isinstance(spec, EvalSpec | RLSpec):
        spec = spec.model
    return spec


def on_gpu(spec: Spec) -> bool:
    """Jobs on pretrained models are costed in GPU-hours (organism jobs in CPU core-seconds)."""
    return isinstance(spec, EvalSpec | RLSpec) and isinstance(base_model(spec), PretrainedSpec)


def family(spec: Spec) -> str:
    """The task family a job's cost depends on."""
    if isinstance(spec, OrganismSpec):
        return "+".join(sorted({c.task.family for c in spec.mix}))
    task = getattr(spec, "task", None)
    return task.family if task is not None else "*"


def units(spec: Spec, start: int = 0) -> float:
    """A job's work in the units its cost is linear in (organisms: from step ``start``)."""
    if isinstance(spec, OrganismSpec):
        return (spec.steps - start) * spec.batch_size
    if isinstance(spec, EvalSpec):
        return spec.num_problems * (spec.n + 1) * spec.max_new_tokens
    if isinstance(spec, RLSpec):
        r = spec.recipe
        return spec.steps * r.prompts_per_step * r.num_generations * r.max_completion_length
    return 1.0


def params_billions(model: ModelSpec) -> float:
    """Parameters of a pretrained model, from its name (``...-7B``, ``...-135M``); 7B when it does not say."""
    name = f"{Path(model.source).name} {model.gguf_file or ''}" if isinstance(model, PretrainedSpec) else ""
    found = re.findall(r"(?<![\d.])(\d+(?:\.\d+)?)([BM])(?![A-Za-z])", name)
    if not found:
        return DEFAULT_PARAMS_B
    number, unit = found[-1]
    return float(number) * (1.0 if unit == "B" else 1e-3)


def gpu_hours(spec: Spec) -> float:
    scale = params_billions(base_model(spec)) / 7.0
    if isinstance(spec, RLSpec):
        return units(spec) * scale * RL_GPU_SECONDS_PER_TOKEN_7B / 3600
    if isinstance(spec, EvalSpec):
        return units(spec) * scale * EVAL_GPU_SECONDS_PER_TOKEN_7B / 3600
    return 0.0


@dataclass(frozen=True)
class Line:
    """seconds = fixed + per_unit x units."""

    fixed: float
    per_unit: float

    def __call__(self, work: float) -> float:
        return self.fixed + self.per_unit * work

    @staticmethod
    def fit(points: list[tuple[float, float]]) -> Line:
        """Least squares over (units, seconds), kept non-negative; through the origin where the units do not vary."""
        n = len(points)
        mean_x = sum(x for x, _ in points) / n
        mean_y = sum(y for _, y in points) / n
        var_x = sum((x - mean_x) ** 2 for x, _ in points)
        if var_x > 1e-9 * max(mean_x, 1.0) ** 2:
            slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var_x
            if slope > 0 and mean_y - slope * mean_x >= 0:
                return Line(mean_y - slope * mean_x, slope)
        return Line(0.0, sum(y for _, y in points) / max(sum(x for x, _ in points), 1e-12))


# Built-in CPU costs (seconds = fixed + per_unit x units): lines fitted to the manifests of two cold runs on
# this project's 2-core x86_64 machine (2 local workers, one torch thread each, little other load, 2026-12-01):
# the standard-RL tests on the 8 organism pairs at the smoke budget (32 jobs) and the spurious-reward and
# standard-RL tests of arith-low and logic-low at the standard budget (36 jobs). Organism runs pay a fixed
# cost for building and encoding their problem pools; the operator family costs what arithmetic does.
DEFAULTS: dict[tuple[str, str], Line] = {
    ("organism", "*"): Line(8.6, 2.53e-4),  # units: steps x batch size (steps added to the run it continues)
    ("organism", "truth_table"): Line(26.6, 3.43e-4),
    ("eval", "*"): Line(0.0, 7.0e-6),  # units: problems x (samples + 1 greedy) x max new tokens
    ("eval", "truth_table"): Line(0.0, 1.30e-5),
    ("rl", "*"): Line(0.46, 2.75e-5),  # units: steps x prompts x generations x max completion tokens
    ("rl", "truth_table"): Line(0.85, 6.5e-5),
    ("pretrained", "*"): Line(30.0, 0.0),  # a GGUF conversion (not measured: about 20 s for SmolLM2-135M)
}


@dataclass
class CostModel:
    """Estimated core-seconds of a CPU job: a line per (kind, task family) fitted to recorded timings, else per
    kind, else the built-in defaults."""

    fitted: dict[tuple[str, str], Line] = field(default_factory=dict)
    timed: dict[str, int] = field(default_factory=dict)  # timed jobs per kind behind the fitted lines

    @classmethod
    def from_cache(cls, root: Path) -> CostModel:
        """Fitted to the CPU timings in the manifests under ``root`` (grouped jobs count their share)."""
        points: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for path in root.glob(f"??/*/{MANIFEST}"):
            try:
                manifest = json.loads(path.read_text())
                if manifest.get("libraries", {}).get("accelerator"):
                    continue  # GPU timings say nothing about CPU jobs
                spec = from_dict(manifest["spec"])
                seconds = float(manifest["seconds"]) / manifest.get("group_size", 1)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # unreadable, or from another version of the specs
            if spec.kind not in KINDS or on_gpu(spec):
                continue
            work = units(spec, manifest.get("continued_from_step", 0))
            for group in ((spec.kind, family(spec)), (spec.kind, "*")):
                points.setdefault(group, []).append((work, seconds))
        model = cls()
        for group, found in points.items():
            if len(found) >= MIN_FIT:
                model.fitted[group] = Line.fit(found)
                if group[1] == "*":
                    model.timed[group[0]] = len(found)
        return model

    def line(self, spec: Spec) -> Line:
        for table in (self.fitted, DEFAULTS):
            for group in ((spec.kind, family(spec)), (spec.kind, "*")):
                if group in table:
                    return table[group]
        raise KeyError(spec.kind)

    def seconds(self, spec: Spec, start: int = 0) -> float:
        """Estimated seconds: CPU core-seconds, or GPU-seconds for jobs on pretrained models."""
        if on_gpu(spec):
            return gpu_hours(spec) * 3600
        return self.line(spec)(units(spec, start))

    def source(self) -> str:
        if not self.timed:
            return "built-in defaults (the cache holds no timed CPU jobs)"
        fitted = ", ".join(f"{kind} {count}" for kind, count in sorted(self.timed.items()))
        return f"fitted to the timings of cached jobs ({fitted}); built-in defaults for other kinds"


@dataclass
class Node:
    """A job in the graph; ``deps`` and ``after`` are keys (data dependencies, and the shorter run of the
    lineage a planned organism continues)."""

    spec: Spec
    cached: bool
    deps: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    start: int = 0  # organisms: the pretraining step the job continues from
    seconds: float = 0.0  # estimated: CPU core-seconds, GPU-seconds on pretrained models
    rank: float = 0.0  # estimated seconds of the longest path from this job to the end of the graph

    @functools.cached_property
    def key(self) -> str:
        """The spec's key, hashed once: the scheduler reads every node's key at each progress refresh."""
        return self.spec.key

    @property
    def waits_on(self) -> tuple[str, ...]:
        return self.deps + self.after


@dataclass
class Graph:
    nodes: dict[str, Node]
    model: CostModel

    @property
    def todo(self) -> list[Node]:
        return [n for n in self.nodes.values() if not n.cached]

    def dependants(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {key: [] for key in self.nodes}
        for node in self.nodes.values():
            for key in node.waits_on:
                out[key].append(node.key)
        return out

    def critical_path(self) -> float:
        return max((n.rank for n in self.todo), default=0.0)

    def makespan(self, workers: int) -> float:
        """Estimated wall seconds on ``workers`` workers: ready jobs started longest path first."""
        waiting = {n.key: sum(not self.nodes[k].cached for k in n.waits_on) for n in self.todo}
        dependants = self.dependants()
        ready = [(-n.rank, n.key) for n in self.todo if waiting[n.key] == 0]
        heapq.heapify(ready)
        running: list[tuple[float, str]] = []
        now = 0.0
        while ready or running:
            while ready and len(running) < workers:
                _, key = heapq.heappop(ready)
                heapq.heappush(running, (now + self.nodes[key].seconds, key))
            now, key = heapq.heappop(running)
            for after in dependants[key]:
                waiting[after] -= 1
                if waiting[after] == 0:
                    heapq.heappush(ready, (-self.nodes[after].rank, after))
        return now


def build(requested: Iterable[Spec], cache: Cache, model: CostModel | None = None) -> Graph:
    """The graph of the requested jobs and the missing jobs they need, with estimates and ranks."""
    model = model or CostModel.from_cache(cache.root)
    nodes: dict[str, Node] = {}

    def visit(spec: Spec) -> None:
        if spec.key in nodes:
            return
        node = nodes[spec.key] = Node(spec=spec, cached=cache.entry(spec.key) is not None)
        if not node.cached:
            needed = jobs.deps(spec)
            for dep in needed:
                visit(dep)
            node.deps = tuple(dep.key for dep in needed)

    for spec in requested:
        visit(spec)
    _order_lineages(nodes, cache)
    for node in nodes.values():
        if not node.cached:
            node.seconds = model.seconds(node.spec, node.start)
    graph = Graph(nodes, model)
    _rank(graph)
    return graph


def _order_lineages(nodes: dict[str, Node], cache: Cache) -> None:
    """A planned organism continues the longest shorter run of its lineage, cached or planned: after a planned one."""
    lineages: dict[str, list[Node]] = {}
    for node in nodes.values():
        if isinstance(node.spec, OrganismSpec) and not node.cached:
            lineages.setdefault(lineage(node.spec), []).append(node)
    for members in lineages.values():
        members.sort(key=lambda n: n.spec.steps)
        for shorter, node in zip([None, *members], members, strict=False):
            cached = longest_prefix(node.spec, cache)
            if shorter is not None and (cached is None or shorter.spec.steps > cached[0]):
                node.after, node.start = (shorter.key,), shorter.spec.steps
            elif cached is not None:
                node.start = cached[0]


def _rank(graph: Graph) -> None:
    """Each missing job's rank: its estimate plus the largest rank among the jobs waiting on it."""
    dependants = graph.dependants()
    order: list[str] = []
    seen: set[str] = set()

    def visit(key: str) -> None:  # dependants first: reversed, a topological order
        if key in seen:
            return
        seen.add(key)
        for after in dependants[key]:
            visit(after)
        order.append(key)

    for key in graph.nodes:
        visit(key)
    for key in order:
        node = graph.nodes[key]
        if not node.cached:
            node.rank = node.seconds + max((graph.nodes[k].rank for k in dependants[key]), default=0.0)


def summary(graph: Graph, *, tests: int, workers: int | None) -> list[str]:
    """The plan as text: jobs by kind, cached and to run, estimated cost, the critical path and the wall time."""
    todo = graph.todo
    gpu = any(on_gpu(n.spec) for n in graph.nodes.values())
    lines = [f"plan: {len(graph.nodes)} jobs for {tests} tests: {len(graph.nodes) - len(todo)} cached, "
             f"{len(todo)} to run",
             f"  {'kind':<10} {'jobs':>6} {'cached':>7} {'to run':>7} {'CPU core-s':>11}"
             + (f" {'GPU-hours':>10}" if gpu else "")]
    rows = [(kind, [n for n in graph.nodes.values() if n.spec.kind == kind]) for kind in KINDS]
    for kind, members in [*rows, ("total", list(graph.nodes.values()))]:
        if not members:
            continue
        missing = [n for n in members if not n.cached]
        cpu_seconds = sum(n.seconds for n in missing if not on_gpu(n.spec))
        line = (f"  {kind:<10} {len(members):>6} {len(members) - len(missing):>7} {len(missing):>7} "
                f"{cpu_seconds:>11,.0f}")
        if gpu:
            line += f" {sum(n.seconds for n in missing if on_gpu(n.spec)) / 3600:>10,.1f}"
        lines.append(line)
    if any(not on_gpu(n.spec) for n in todo):
        plural = "s" if workers and workers > 1 else ""
        wall = f"; about {duration(graph.makespan(workers))} on {workers} worker{plural}" if workers else ""
        lines.append(f"  critical path {duration(graph.critical_path())}{wall}")
        lines.append(f"  CPU cost model: {graph.model.source()}")
    if gpu:
        lines.append(f"  {GPU_ASSUMPTIONS}")
    return lines
