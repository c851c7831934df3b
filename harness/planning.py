"""The planning pass of a pytest session: learn the jobs the selected tests need, show them, run them.

Before any test runs, each selected test that uses the harness runs once against a recording Harness
(harness/results.py): a job not cached is recorded and answered with a placeholder, and the claim is
not judged. The recorded jobs become a graph (harness/plan.py) that the scheduler runs on local worker
processes or Ray tasks (harness/scheduler.py); the pass repeats while it finds jobs not yet run (a claim
may ask for more seeds once it sees real results). Then the tests run and only judge from the cache;
a test needing a job that failed fails with the job's one-line reason.

Under pytest-xdist the controller collects nothing itself: before it starts its workers it runs the
same pytest command in one process in graph-only mode, relays that process's plan lines, and hands
the failed jobs to its workers. A spec that cannot be built is reported before anything is computed,
one line per test, pair and field, and the session stops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.cache import JobError
from harness.results import Harness, JobFailed, Recording
from harness.specs import SpecError

if TYPE_CHECKING:
    from harness.plan import Graph
    from harness.scheduler import Outcome

GRAPH_ONLY = "--claims-graph-only"  # internal: plan and run the graph, then stop (the xdist controller's helper)
MARKER = "@@claims-plan "  # prefix of the graph-only process's messages on stdout
MAX_ROUNDS = 20


@dataclass
class Planned:
    """What the planning pass did: jobs failed (key -> reason), keys computed, lines naming unbuildable specs, and
    the largest peak RSS of a job worker."""

    failed: dict[str, str] = field(default_factory=dict)
    computed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def claim_items(items: list[pytest.Item]) -> list[pytest.Item]:
    """The tests that ask the harness for jobs."""
    return [item for item in items if "claims_harness" in getattr(item, "fixturenames", ())]


def record(items: list[pytest.Item], harness: Harness) -> Recording:
    """Run each test once against the recording harness (reports, findings and warnings discarded), noting the
    tests given placeholders."""
    from _pytest.runner import runtestprotocol

    harness.recording = recording = Recording()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for item, next_item in zip(items, [*items[1:], None], strict=True):
                kept = len(item.user_properties)
                harness.pending = False
                runtestprotocol(item, log=False, nextitem=next_item)
                del item.user_properties[kept:]
                if harness.pending:
                    recording.pending.add(item.nodeid)
    finally:
        harness.recording = None
    return recording


def prepare(items: list[pytest.Item], harness: Harness, config: pytest.Config, emit: Callable[[str], None],
            *, plan_only: bool) -> Planned:
    """Record, plan, show the plan and (unless ``plan_only``) run it, until no test asks for a job not yet run.

    After the first round only the tests that were given placeholders are recorded again: the others had
    real results and asked for nothing more.
    """
    from harness.plan import CostModel, build, summary

    planned = Planned()
    model = CostModel.from_cache(harness.cache.root)
    tests = len(items)
    for round_ in range(1, MAX_ROUNDS + 1):
        recording = record(items, harness)
        items = [item for item in items if item.nodeid in recording.pending]
        if recording.errors:
            planned.errors = recording.errors
            return planned
        graph = build([s for k, s in recording.requested.items() if k not in planned.failed], harness.cache, model)
        if round_ == 1:
            workers = None if config.getoption("executor") == "ray" else workers_of(config)
            for line in summary(graph, tests=tests, workers=workers):
                emit(line)
            if len(harness.looks) > 1:
                emit(f"  --seeds auto: each variant's first look ({harness.looks[0]} runs); a cell it does not decide "
                     f"adds runs at later looks (up to {harness.looks[-1]}), planned once the first runs are in")
        elif graph.todo:
            emit(f"plan: {len(graph.todo)} more jobs asked for after round {round_ - 1}")
        if plan_only or not graph.todo:
            break
        outcome = run(graph, harness, config)
        planned.failed.update(outcome.failed)
        planned.computed.extend(outcome.computed)
        planned.peak_rss_mb = max(planned.peak_rss_mb, outcome.peak_rss_mb)
    return planned


def workers_of(config: pytest.Config) -> int:
    return config.getoption("workers") or os.cpu_count() or 1


def run(graph: Graph, harness: Harness, config: pytest.Config) -> Outcome:
    """Run the graph's missing jobs on the session's executor, with the display on the real stderr."""
    from harness.executors import Backend, LocalWorkers, RayWorkers
    from harness.scheduler import Scheduler

    logs = None
    if config.getoption("executor") == "ray":
        backend: Backend = RayWorkers(config.getoption("ray_address"), workers_of(config))
    else:
        logs = Path(tempfile.mkdtemp(prefix="claims-workers-"))
        backend = LocalWorkers(workers_of(config), logs)
    with _real_stderr(config):
        outcome = Scheduler(graph, backend, harness.cache).run()
    if logs is not None and outcome.failed:
        print(f"job logs: {logs}", file=sys.stderr)
    elif logs is not None:
        shutil.rmtree(logs, ignore_errors=True)
    return outcome


def _real_stderr(config: pytest.Config) -> contextlib.AbstractContextManager[None]:
    """pytest's capturing suspended, so the progress display (and child processes) reach the terminal."""
    capture = config.pluginmanager.getplugin("capturemanager")
    return capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()


def run_elsewhere(config: pytest.Config, emit: Callable[[str], None]) -> Planned | None:
    """The xdist controller's planning: this session's command in one process, graph-only; None (with one line)
    if that process ended without a plan, e.g. it could not collect: the workers then report why, and their
    tests compute the jobs they need."""
    import harness

    root = str(Path(harness.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    command = [sys.executable, "-m", "pytest", *config.invocation_params.args, "-n", "0", GRAPH_ONLY]
    result, tail = None, []
    with _real_stderr(config):
        process = subprocess.Popen(command, cwd=config.invocation_params.dir, env=env, stdout=subprocess.PIPE,
                                   text=True)
        for line in process.stdout:  # type: ignore[union-attr]
            if line.startswith(MARKER):
                message = json.loads(line[len(MARKER):])
                if "line" in message:
                    emit(message["line"])
                else:
                    result = message["result"]
            else:
                tail = [*tail[-40:], line.rstrip()]
        code = process.wait()
    if result is not None:
        return Planned(**result)
    last = next((line for line in reversed(tail) if line.strip()), "")
    emit(f"planning pass ended without a plan (exit code {code}: {last.strip(' =')}); the tests compute the jobs "
         "they need")
    return None


def stop_on_errors(errors: list[str], emit: Callable[[str], None]) -> None:
    """Show the specs that cannot be built and stop the session before anything is computed."""
    if errors:
        for line in errors:
            emit(line)
        raise pytest.Session.Interrupted(f"{len(errors)} planning error(s): jobs that cannot be built; nothing ran")


class Planner:
    """The planning pass's pytest hooks (registered by harness.plugin)."""

    def __init__(self, config: pytest.Config, harness_of: Callable[[pytest.Config], Harness]) -> None:
        self.config = config
        self.harness_of = harness_of
        self.planned = Planned()

    def _terminal_emit(self) -> Callable[[str], None]:
        terminal = self.config.pluginmanager.getplugin("terminalreporter")
        return terminal.write_line if terminal else print

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        """Before the tests: the planning pass (graph-only: only it; ``--plan``: only the plan)."""
        config = self.config
        if config.option.collectonly or hasattr(config, "workerinput"):
            return None
        graph_only = config.getoption("claims_graph_only")
        emit = self._terminal_emit()
        if graph_only:
            def emit(line: str) -> None:
                print(MARKER + json.dumps({"line": line}), flush=True)
        items = claim_items(session.items)
        if items:
            harness = self.harness_of(config)
            self.planned = prepare(items, harness, config, emit, plan_only=config.getoption("plan"))
            harness.failed = self.planned.failed
            self._count_computed()
        if graph_only:  # no test runs here; the controller shows the errors and stops
            print(MARKER + json.dumps({"result": self.planned.to_dict()}), flush=True)
            return True
        stop_on_errors(self.planned.errors, emit)
        return True if config.getoption("plan") else None

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: Any) -> None:
        """The controller, before it starts its workers: plan and run the graph in one process."""
        emit = self._terminal_emit()
        planned = run_elsewhere(config, emit)
        if planned is None:
            return
        self.planned = planned
        self._count_computed()
        stop_on_errors(planned.errors, emit)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["claims_failed"] = self.planned.failed

    def _count_computed(self) -> None:
        """The summary's job counts and memory: what the job workers computed, and their largest peak RSS."""
        recorder = self.config.pluginmanager.getplugin("claims-recorder")
        if recorder is not None:
            recorder.jobs["computed"].extend(self.planned.computed)
            if self.planned.peak_rss_mb:
                recorder.peak_rss_mb["jobs"] = self.planned.peak_rss_mb

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if call.excinfo is not None and call.excinfo.errisinstance((JobFailed, SpecError, JobError)):
            report.longrepr = str(call.excinfo.value)  # one line: what failed and what to do
        return report
