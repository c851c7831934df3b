"""Runs a job graph: every ready job at once up to the workers, longest path first.

A job is ready when the jobs it needs are done (and, for an organism, the shorter run of its lineage
it continues). Ready jobs of one group (``harness.jobs.group_key``) go to one worker together, up to
``GROUP_CAP``. A failed job fails only the jobs that need it, with its one-line reason; the rest run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from harness import jobs
from harness.cache import Cache
from harness.executors import Backend, one_line, payload, resources
from harness.jobs import Inputs
from harness.plan import Graph
from harness.progress import GraphProgress
from harness.registry import plugin_sources
from harness.specs import SpecError

GROUP_CAP = 16  # jobs handed to one worker together at most
POLL = 1.0  # seconds between progress refreshes while waiting


@dataclass
class Outcome:
    """What a run of the graph did: failed jobs (key -> one-line reason, dependants included), keys computed
    by its workers, each unit's wall clock (key -> (started, ended)) as its worker reported it, and the
    largest peak RSS of a worker."""

    failed: dict[str, str] = field(default_factory=dict)
    computed: list[str] = field(default_factory=list)
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)
    peak_rss_mb: float = 0.0


def groups(ready: list[str], graph: Graph, cap: int = GROUP_CAP) -> list[list[str]]:
    """Ready jobs (in priority order) as units: jobs of one group together, ``cap`` at most, in the order
    of each unit's first member."""
    units: list[list[str]] = []
    open_units: dict[str, list[str]] = {}
    for key in ready:
        group = jobs.group_key(graph.nodes[key].spec)
        if group is None:
            units.append([key])
            continue
        unit = open_units.get(group)
        if unit is None or len(unit) >= cap:
            unit = open_units[group] = []
            units.append(unit)
        unit.append(key)
    return units


class Scheduler:
    """Runs the missing jobs of ``graph`` on ``backend`` (see the module docstring)."""

    def __init__(self, graph: Graph, backend: Backend, cache: Cache, *, group_cap: int = GROUP_CAP) -> None:
        self.graph, self.backend, self.cache = graph, backend, cache
        self.group_cap = group_cap
        self.progress = GraphProgress(len(graph.todo))
        self.plugins = plugin_sources()
        self._checked: set[str] = set()

    def run(self) -> Outcome:
        graph, outcome = self.graph, Outcome()
        todo = {n.key for n in graph.todo}
        dependants = graph.dependants()
        waiting = {key: sum(k in todo for k in graph.nodes[key].waits_on) for key in todo}
        ready = [key for key in todo if waiting[key] == 0]
        in_flight: dict[int, tuple[list[str], float]] = {}  # unit id -> (keys, submitted)
        alone: set[str] = set()  # members of a failed group, run again one by one
        done: set[str] = set()
        predicted = measured = 0.0
        next_id = 0

        def release(key: str, ok: bool) -> None:
            for after in dependants[key]:
                if after in outcome.failed or after in done:
                    continue
                if not ok and key in graph.nodes[after].deps:
                    fail(after, f"needs {graph.nodes[key].spec.short}, which failed: {outcome.failed[key]}")
                    continue
                waiting[after] -= 1
                if waiting[after] == 0:
                    ready.append(after)

        def fail(key: str, reason: str) -> None:
            outcome.failed[key] = reason
            release(key, ok=False)

        try:
            while ready or in_flight:
                impossible = {k: reason for k in ready if k not in alone and (reason := self._cannot_run(k))}
                for key, reason in impossible.items():
                    ready.remove(key)
                    self.progress.failure(graph.nodes[key].spec.short, reason)
                    fail(key, reason)
                ready.sort(key=lambda k: -graph.nodes[k].rank)
                free = len(ready) if self.backend.capacity is None else self.backend.capacity - len(in_flight)
                units = [[key] for key in ready if key in alone] + groups([k for k in ready if k not in alone], graph,
                                                                            self.group_cap)
                for unit in units[:max(free, 0)]:
                    for key in unit:
                        ready.remove(key)
                    self._submit(next_id, unit)
                    in_flight[next_id] = (unit, time.time())
                    next_id += 1
                for unit_id, answer in self.backend.wait(POLL):
                    unit, _ = in_flight.pop(unit_id)
                    outcome.computed.extend(answer["computed"])
                    outcome.peak_rss_mb = max(outcome.peak_rss_mb, answer.get("peak_rss_mb", 0.0))
                    if answer.get("started") is not None:
                        outcome.timings.update({key: (answer["started"], answer["ended"]) for key in unit})
                        measured += answer["ended"] - answer["started"]
                        predicted += sum(graph.nodes[key].seconds for key in unit)
                    unpublished = [key for key in unit if answer["error"] is not None
                                   and self.cache.entry(key) is None]
                    for key in unit:  # a failing group may have published some of its members
                        if key not in unpublished:
                            done.add(key)
                            release(key, ok=True)
                    if len(unit) > 1 and unpublished:  # one member's fault must not fail the others: alone again
                        alone.update(unpublished)
                        ready.extend(unpublished)
                        continue
                    for key in unpublished:
                        self.progress.failure(graph.nodes[key].spec.short, answer["error"])
                        fail(key, answer["error"])
                running = [graph.nodes[k].spec.short for keys, _ in in_flight.values() for k in keys]
                self.progress.update(len(done), len(outcome.failed), running,
                                     self._eta(done, outcome.failed, in_flight, measured / predicted if predicted
                                               else 1.0))
        finally:
            self.backend.close()
            self.progress.close(len(done), len(outcome.failed))
        return outcome

    def _submit(self, unit_id: int, unit: list[str]) -> None:
        specs = [self.graph.nodes[key].spec for key in unit]
        needed = {dep for key in unit for dep in self.graph.nodes[key].deps}
        entries = {dep: self.cache.path(dep) for dep in needed}
        self.backend.submit(unit_id, payload(specs, self.cache, entries, self.plugins), resources(specs[0]))

    def _cannot_run(self, key: str) -> str | None:
        """The one-line reason a ready job cannot run (its kind's ``ready_check`` on its dependencies' entries),
        found before it joins a group; None when it can. Checked once per job."""
        if key in self._checked:
            return None
        self._checked.add(key)
        spec = self.graph.nodes[key].spec
        if jobs.group_key(spec) is None:
            return None
        try:
            entries = {dep: self.cache.path(dep) for dep in self.graph.nodes[key].deps}
            jobs.ready_check(spec, Inputs(self.cache, entries))
        except SpecError as exc:
            return one_line(exc)
        except Exception:  # not a verdict on the spec: the job meets it again when it runs, and fails with it
            return None
        return None

    def _eta(self, done: set[str], failed: dict[str, str], in_flight: dict[int, tuple[list[str], float]],
             pace: float) -> float | None:
        """Seconds left: the estimated work left spread over the slots, or the longest path not started if
        longer, scaled by the pace so far (measured over estimated seconds of the finished jobs)."""
        now = time.time()
        running = {key for keys, _ in in_flight.values() for key in keys}
        left = longest = 0.0
        for node in self.graph.todo:
            if node.key not in done and node.key not in failed:
                left += node.seconds
                if node.key not in running:
                    longest = max(longest, node.rank)
        for keys, submitted in in_flight.values():
            left -= min(now - submitted, sum(self.graph.nodes[k].seconds for k in keys))
        if left <= 0:
            return None
        return max(left / self.backend.slots, longest) * min(max(pace, 0.2), 5.0)
