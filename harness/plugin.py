"""pytest plugin: options, pair parametrization, the ``rl`` / ``evaluate`` / ``claim`` fixtures, findings, summary.

Glue only: jobs live in harness.jobs, judgement in harness.verdicts, the matrix in harness.report.
Verdicts travel to the controller in ``report.user_properties``, so the summary works under xdist.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import shlex
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cache import Cache
from harness.loading import Pair, load_fixtures
from harness.planning import GRAPH_ONLY, Planner
from harness.results import DEFAULT_MAX_SEEDS
from harness.specs import SpecError

DEFAULT_PAIRS = "fixtures/organisms.yaml"
FINDING = "claims_finding"  # user_properties key: the Finding as a dict plus labels
JOBS = "claims_jobs"  # user_properties key: cache keys computed / loaded by the test
UNDECIDED = ("inconclusive", "not_exercised")  # verdicts that are neither a pass nor a failure
MEMORY = "claims_peak_rss_mb"  # user_properties key: (worker, peak RSS of its process so far)

pairs_key = pytest.StashKey[list[Pair]]()
findings_key = pytest.StashKey[Any]()
pairs_error_key = pytest.StashKey[str]()  # why the pairs did not load
stale_key = pytest.StashKey[list[str]]()  # findings entries that match no collected test
STALE = "claims_stale_findings"  # workeroutput key: the stale entries a worker found
harness_key = pytest.StashKey[Any]()


class ClaimFailed(AssertionError):
    """The claim's interval lies wholly on the other side of its threshold."""


class ClaimInconclusive(Exception):
    """The interval straddles the threshold, or the run could not exercise the claim: not a pass."""


# ---------------------------------------------------------------- options and configuration


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("claims", "claim verification harness")
    group.addoption("--pairs", action="append", default=None, metavar="FILE",
                    help=f"model-task pairs (fixtures YAML, relative to the working directory); repeatable; "
                         f"default {DEFAULT_PAIRS}")
    group.addoption("--budget", choices=("smoke", "standard", "paper"), default=None,
                    help="RL steps per run from the recipe's budgets (default: the findings file's, else standard)")
    group.addoption("--seeds", type=_seeds_option, default=None, metavar="auto|N",
                    help="RL runs per variant: N, or auto (the default): more runs, at sequential looks, for a "
                         "cell still undecided (smoke 1; standard and paper 2, 4, 8)")
    group.addoption("--max-seeds", type=_positive_option, default=None, metavar="N",
                    help="with --seeds auto: the most runs a variant gets (default 8)")
    group.addoption("--recipe", action="append", default=None, metavar="NAME",
                    help="run every pair under this recipe (a preset of harness/recipes/ or a YAML path) instead "
                         "of its own; repeatable: then each pair once per recipe, with ids PAIR@RECIPE")
    group.addoption("--claims-cache", default=None, metavar="DIR",
                    help="job cache directory (default: $CLAIMS_CACHE or .cache/claims)")
    group.addoption("--findings", default=None, metavar="FILE",
                    help="regression mode: fail a claim test whose verdict differs from the recorded one")
    group.addoption("--update-findings", action="store_true",
                    help="write this run's verdicts into the --findings file (others are kept)")
    group.addoption("--prune-findings", action="store_true",
                    help="with --update-findings: remove the file's entries that match no collected test")
    group.addoption("--executor", choices=("local", "ray"), default="local",
                    help="where jobs run: worker processes on this machine (default) or Ray tasks")
    group.addoption("--workers", type=_positive_option, default=None, metavar="N",
                    help="job worker processes, one torch thread each (default: the number of cores); with "
                         "--executor ray and no cluster address, the CPUs of the local Ray instance")
    group.addoption("--ray-address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or local)")
    group.addoption("--plan", action="store_true",
                    help="show the job graph of the selected tests (jobs by kind, cached, estimated cost) "
                         "and run nothing")
    group.addoption(GRAPH_ONLY, action="store_true", help=argparse.SUPPRESS)


def _seeds_option(value: str) -> str:
    """``--seeds``: 'auto' or a whole number >= 1 (kept as text: findings files record it so)."""
    if value == "auto" or (value.isdigit() and int(value) >= 1):
        return value
    raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number >= 1, got {value!r}")


def _positive_option(value: str) -> int:
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")


def seeds_of(config: pytest.Config) -> int | None:
    """The run's ``--seeds``: a number of runs per variant, or None for auto."""
    value = config.getoption("seeds") or "auto"
    return None if value == "auto" else int(value)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "claim(family, source, published=[...], text=..., pattern=...): a claim about "
                                       "RL, with its source, published numbers, the claim in words (default: the "
                                       "test's docstring, first line) and where the paper finds it holds "
                                       "('high-alignment' or 'everywhere')")
    config.addinivalue_line("markers", "slow: needs a real pretrained model or minutes of CPU")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU")
    config.pluginmanager.register(Recorder(config), "claims-recorder")
    config.pluginmanager.register(Planner(config, harness_of), "claims-planner")
    if config.getoption("plan"):  # planning only: one process, nothing for xdist workers to do
        config.option.numprocesses, config.option.dist, config.option.tx = 0, "no", []
    config.stash[findings_key] = _configure_findings(config)
    if config.getoption("budget") is None:
        config.option.budget = "standard"
    _check_seeds_and_recipes(config)


def _check_seeds_and_recipes(config: pytest.Config) -> None:
    """A seed cap below the first look, or an unknown recipe: one line, before anything is collected."""
    from harness.loading import load_recipe
    from harness.results import AUTO_LOOKS

    cap, first = config.getoption("max_seeds"), AUTO_LOOKS[config.getoption("budget")][0]
    if cap is not None and seeds_of(config) is not None:
        raise pytest.UsageError("--max-seeds works with --seeds auto (a fixed --seeds N is the number of runs)")
    if cap is not None and cap < first:
        raise pytest.UsageError(f"--max-seeds {cap} is below the {first} runs of the first look at budget "
                                f"{config.getoption('budget')!r}; allowed: {first} or more")
    for name in config.getoption("recipe") or ():
        try:
            load_recipe(name, base=config.invocation_params.dir)
        except SpecError as exc:
            raise pytest.UsageError(f"--recipe {name}: {exc}") from None


def _configure_findings(config: pytest.Config) -> Any:
    """The --findings file (or a new one for --update-findings); the run adopts its budget, seeds and recipes.

    A budget, seed setting or recipe other than the file's is a usage error, with --update-findings too:
    the file's other verdicts, kept by an update, would otherwise be relabelled with settings they were
    not recorded at.
    """
    findings_path = config.getoption("findings")
    update = config.getoption("update_findings")
    if update and not findings_path:
        raise pytest.UsageError("--update-findings needs --findings FILE (the file to write)")
    if config.getoption("prune_findings") and not update:
        raise pytest.UsageError("--prune-findings works with --update-findings (it removes entries when writing)")
    if not findings_path:
        return None
    from harness import findings as findings_module

    path = Path(findings_path)
    budget, seeds, cap = config.getoption("budget"), config.getoption("seeds"), config.getoption("max_seeds")
    recipes = ",".join(config.getoption("recipe") or ())
    if not path.exists():
        if not update:
            raise pytest.UsageError(f"{path}: findings file not found (create it with --update-findings)")
        return findings_module.Findings(budget=budget or "standard", seeds=seeds or "auto", max_seeds=cap,
                                        recipes=recipes)
    try:
        findings = findings_module.load(path)
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None
    fix = "record another file for it" if update else "drop the option to use the file's"
    if budget is not None and budget != findings.budget:
        raise pytest.UsageError(f"{path} was recorded at budget {findings.budget!r}, not {budget!r}; {fix}")
    if seeds is not None and seeds != findings.seeds:
        raise pytest.UsageError(f"{path} was recorded with --seeds {findings.seeds}, not {seeds}; {fix}")
    if cap is not None and cap != (findings.max_seeds or DEFAULT_MAX_SEEDS):
        raise pytest.UsageError(f"{path} was recorded with --max-seeds {findings.max_seeds or DEFAULT_MAX_SEEDS}, "
                                f"not {cap}; {fix}")
    if recipes and recipes != findings.recipes:
        raise pytest.UsageError(f"{path} was recorded with recipes {findings.recipes or '(the pairs own)'!r}, not "
                                f"{recipes!r}; {fix}")
    config.option.budget = findings.budget
    config.option.seeds = findings.seeds
    config.option.max_seeds = findings.max_seeds
    if findings.recipes:
        config.option.recipe = findings.recipes.split(",")
    return findings


def pair_files(config: pytest.Config) -> list[Path]:
    """The --pairs files (relative to the invocation directory, as pytest's own paths), else the default."""
    given = config.getoption("pairs")
    if not given:
        return [Path(config.rootpath, DEFAULT_PAIRS)]
    unique = {Path(config.invocation_params.dir, f).resolve(): None for f in given}
    return list(unique)


def pairs_of(config: pytest.Config) -> list[Pair]:
    """The pairs of the run's fixtures files (loaded once per process).

    A file that does not load is a one-line collection error of the first module asking for pairs; the
    others are skipped, so the error shows once (a UsageError raised during collection would show as a
    traceback, and crash xdist workers).
    """
    if pairs_error_key in config.stash:
        pytest.skip("the fixtures did not load (the collection error above says why)")
    if pairs_key not in config.stash:
        try:
            config.stash[pairs_key] = with_recipes(_load_pairs(pair_files(config)), config.getoption("recipe") or [],
                                                   config.invocation_params.dir)
        except SpecError as exc:
            config.stash[pairs_error_key] = str(exc)
            raise pytest.Collector.CollectError(str(exc)) from None
    return config.stash[pairs_key]


def _load_pairs(files: list[Path]) -> list[Pair]:
    pairs: dict[str, Pair] = {}
    for path in files:
        for pair in load_fixtures(path):
            if pair.id in pairs:
                raise SpecError(f"{path}: pairs.{pair.id}: pair id already defined in {pairs[pair.id].source}; "
                                "pair ids must be unique across --pairs files")
            pairs[pair.id] = pair
    return list(pairs.values())


def with_recipes(pairs: list[Pair], names: list[str], base: Path) -> list[Pair]:
    """The pairs under the ``--recipe`` recipes instead of their own: each once per recipe, ids ``PAIR@RECIPE``
    when there are several (a control pair is then the control under the same recipe)."""
    from harness.loading import load_recipe

    out = []
    for name in names:
        recipe, budgets = load_recipe(name, base=base)
        suffix = f"@{recipe.name}" if len(names) > 1 else ""
        out += [dataclasses.replace(p, id=p.id + suffix, recipe=recipe, budgets=budgets,
                                    control=p.control + suffix if p.control else "") for p in pairs]
    return out or pairs


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: staleness is judged on the whole collection
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    findings = config.stash[findings_key]
    if findings is None:
        return
    pairs = config.getoption("pairs") or [DEFAULT_PAIRS]
    stale = findings.stale((item.nodeid for item in items), config.rootpath, pairs)
    config.stash[stale_key] = stale
    if hasattr(config, "workeroutput"):
        config.workeroutput[STALE] = stale


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip ``gpu``-marked tests (and pairs) cleanly, with a reason, where no CUDA device is present (``--plan``
    records their jobs all the same)."""
    if item.get_closest_marker("gpu") is not None and not item.config.getoption("plan"):
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU (this machine has none; see scripts/gpu-check.sh)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pair" in metafunc.fixturenames:
        params = [pytest.param(p, id=p.id, marks=[getattr(pytest.mark, m) for m in p.marks])
                  for p in pairs_of(metafunc.config)]
        metafunc.parametrize("pair", params)


# ---------------------------------------------------------------- fixtures


def harness_of(config: pytest.Config) -> Any:
    """The process's Harness: cache, budget, seeds and the jobs that failed in this session's run of the graph."""
    if harness_key not in config.stash:
        from harness.results import Harness

        failed = getattr(config, "workerinput", {}).get("claims_failed", {})
        config.stash[harness_key] = Harness(cache=Cache(config.getoption("claims_cache")),
                                            budget=config.getoption("budget"), seeds=seeds_of(config),
                                            max_seeds=config.getoption("max_seeds") or DEFAULT_MAX_SEEDS,
                                            failed=dict(failed))
    return config.stash[harness_key]


@pytest.fixture(scope="session")
def claims_harness(pytestconfig: pytest.Config) -> Any:
    """The session's Harness (one per process; the cache is shared). Its jobs were planned and run before the
    tests (harness/planning.py)."""
    return harness_of(pytestconfig)


@pytest.fixture
def _job_tracking(request: pytest.FixtureRequest, claims_harness: Any) -> Iterator[None]:
    """Attach the jobs computed and loaded since the last report and the worker's peak memory to the test,
    for the summary."""
    claims_harness.begin_test(request.node.nodeid)
    yield
    request.node.user_properties.append((JOBS, claims_harness.jobs_since_last_report()))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    request.node.user_properties.append((MEMORY, (worker, peak_mb)))


@pytest.fixture
def rl(claims_harness: Any, _job_tracking: None) -> Callable[..., Any]:
    """``rl(pair, reward=..., polarity=..., data=..., lr_scale=...)`` -> RLOutcome over the run's seeds."""
    return claims_harness.rl


@pytest.fixture
def evaluate(claims_harness: Any, _job_tracking: None) -> Callable[..., Any]:
    """``evaluate(pair)`` -> the base model's EvalResult."""
    return claims_harness.evaluate


class Claim:
    """Judges a claim, records the finding on the test and raises unless it holds.

    In the planning pass a test given placeholders (jobs not run yet) is not judged: ``pending``.
    """

    def __init__(self, node: pytest.Item, harness: Any) -> None:
        self.node = node
        self.harness = harness

    @property
    def pending(self) -> bool:
        return self.harness.pending

    def _settle(self, finding: Any) -> None:
        __tracebackhide__ = True
        markers = list(self.node.iter_markers("claim"))
        params = dict(self.node.callspec.params) if hasattr(self.node, "callspec") else {}
        pairs = [v for v in params.values() if isinstance(v, Pair)]
        rest = [str(v) for v in params.values() if not isinstance(v, Pair)]
        label = self.node.originalname + (f"[{'-'.join(rest)}]" if rest else "")
        record = {**finding.to_dict(), "claim": label, **claim_fields(markers, self.node.function),
                  "pair": pairs[0].id if pairs else "", "recipe": pairs[0].recipe.name if pairs else ""}
        self.node.user_properties.append((FINDING, record))
        if finding.outcome == "fails":
            raise ClaimFailed(finding.message)
        if finding.outcome in UNDECIDED:
            raise ClaimInconclusive(f"{finding.outcome}: {finding.message}")

    def _judge(self, judge: Callable[[], Any]) -> None:
        """Settle ``judge()``'s finding; not in a planning pass where the claim was given (or asked for more)
        runs that do not exist yet."""
        __tracebackhide__ = True
        if self.pending:
            return
        finding = judge()
        if not self.pending:
            self._settle(finding)

    def record(self, finding: Any) -> None:
        """A finding judged elsewhere (a ``harness.verdicts.Finding``): record it, and raise unless it holds."""
        __tracebackhide__ = True
        self._judge(lambda: finding)

    def improves(self, outcome: Any, *, k: int = 1, threshold: float = 0.0, mechanism: str | None = None) -> None:
        """The variant raises pass@k by more than ``threshold``."""
        __tracebackhide__ = True
        from harness import verdicts

        self._judge(lambda: verdicts.improves(outcome, k=k, threshold=threshold, mechanism=mechanism))

    def lowers(self, outcome: Any, *, k: int, threshold: float = 0.0) -> None:
        """The variant lowers pass@k below ``threshold``."""
        __tracebackhide__ = True
        from harness import verdicts

        self._judge(lambda: verdicts.lowers(outcome, k=k, threshold=threshold))

    def recovers(self, variant: Any, reference: Any, *, fraction: float, k: int = 1,
                 mechanism: str | None = None) -> None:
        """The variant recovers at least ``fraction`` of the reference's pass@k gain."""
        __tracebackhide__ = True
        from harness import verdicts

        self._judge(lambda: verdicts.recovers(variant, reference, fraction=fraction, k=k, mechanism=mechanism))

    def matches(self, variant: Any, reference: Any, *, eps: float, k: int = 1) -> None:
        """The variant's pass@k gain is within ``eps`` of the reference's."""
        __tracebackhide__ = True
        from harness import verdicts

        self._judge(lambda: verdicts.matches(variant, reference, eps=eps, k=k))

    def preserves(self, variant: Any, reference: Any, *, k: int, eps: float) -> None:
        """The variant does not narrow the model at pass@k, alone or against the reference."""
        __tracebackhide__ = True
        from harness import verdicts

        self._judge(lambda: verdicts.preserves(variant, reference, k=k, eps=eps))

    def same_effect(self, dirty: tuple[Any, Any], clean: tuple[Any, Any], *, fraction: float, margin: float,
                    k: int = 1, mechanism: str | None = None) -> None:
        """A clean control shows the contaminated pair's effect, of the same size: (variant, reference) each."""
        __tracebackhide__ = True
        from harness import verdicts

        self._judge(lambda: verdicts.same_effect(dirty, clean, fraction=fraction, margin=margin, k=k,
                                                 mechanism=mechanism))


PATTERNS = ("high-alignment", "everywhere")


def claim_fields(markers: list[pytest.Mark], function: Callable[..., Any]) -> dict[str, Any]:
    """What a finding records of its claim, from its ``claim`` markers (the closest first; a test's own marker
    adds to or overrides its module's): ``family``, ``source``, ``claim_text`` (the marker's ``text``, else the
    first line of the test's docstring), ``published`` ([{"text", "source"}]; a plain string in the marker's
    ``published`` list takes the marker's source) and ``pattern``: where arXiv 2508.21188 finds the claim holds,
    ``high-alignment`` (only there) or ``everywhere``; "" when the paper does not say."""
    kwargs = {k: v for marker in reversed(markers) for k, v in marker.kwargs.items()}
    family = next((marker.args[0] for marker in markers if marker.args), "")
    doc = (function.__doc__ or "").strip()
    text = kwargs.get("text") or (doc.splitlines()[0] if doc else "")
    source = kwargs.get("source", "")
    published = []
    for item in kwargs.get("published", ()):
        if isinstance(item, str):
            item = {"text": item}
        if not (isinstance(item, dict) and isinstance(item.get("text"), str) and set(item) <= {"text", "source"}):
            raise ValueError(f"claim marker of {function.__name__}: each published entry is a str or "
                             f"{{'text': ..., 'source': ...}}, got {item!r}")
        published.append({"text": item["text"], "source": item.get("source", source)})
    pattern = kwargs.get("pattern", "")
    if pattern not in ("", *PATTERNS):
        raise ValueError(f"claim marker of {function.__name__}: pattern is one of {', '.join(PATTERNS)}, "
                         f"got {pattern!r}")
    return {"family": family, "source": source, "claim_text": text, "published": published, "pattern": pattern}


@pytest.fixture
def claim(request: pytest.FixtureRequest, claims_harness: Any, _job_tracking: None) -> Claim:
    """``claim.recovers(variant, standard, fraction=0.8)`` and friends: judge, record, assert."""
    return Claim(request.node, claims_harness)


# ---------------------------------------------------------------- outcomes


def _finding(report: pytest.TestReport) -> dict[str, Any] | None:
    """The test's verdict: its last judged claim (an earlier one that held did not decide the outcome)."""
    found = None
    for name, value in report.user_properties:
        if name == FINDING:
            found = value
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    finding = _finding(report)
    if report.when != "call" or finding is None:
        return report
    if call.excinfo is not None and not call.excinfo.errisinstance((ClaimFailed, ClaimInconclusive)):
        return report  # a real error in the harness or a job: leave it as pytest reports it
    findings = item.config.stash[findings_key]
    if findings is not None:
        if item.config.getoption("update_findings"):
            report.outcome, report.longrepr = "passed", None
        else:
            problem = findings.check(item.nodeid, finding["outcome"])
            if problem is None:
                report.outcome, report.longrepr = "passed", None
            else:
                report.outcome, report.longrepr = "failed", f"{problem}: {finding['message']}"
    elif finding["outcome"] in UNDECIDED:
        report.longrepr = f"{finding['outcome'].upper()}: {finding['message']}"
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    finding = _finding(report) if report.when == "call" else None
    if finding and report.failed and config.stash[findings_key] is None \
            and finding["outcome"] in UNDECIDED:
        word = finding["outcome"]
        return word, word[0].upper(), (word.upper(), {"yellow": True})
    return None


class Recorder:
    """Collects verdicts and job counts from reports (on the controller under xdist) and prints the summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rows: list[dict[str, Any]] = []
        self.jobs: dict[str, list[str]] = {"computed": [], "loaded": []}
        self.peak_rss_mb: dict[str, float] = {}  # by worker

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        finding = _finding(report)
        if report.when == "call" and finding is not None:
            self.rows.append({**finding, "nodeid": report.nodeid, "passed": report.passed})
        if report.when != "teardown":
            return
        for name, value in report.user_properties:  # the job tracker records on fixture teardown
            if name == JOBS:
                for kind in ("computed", "loaded"):
                    self.jobs[kind].extend(value[kind])
            elif name == MEMORY:
                worker, peak_mb = value
                self.peak_rss_mb[worker] = max(peak_mb, self.peak_rss_mb.get(worker, 0.0))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Under xdist the workers collect: take the stale findings entries one of them found."""
        stale = getattr(node, "workeroutput", {}).get(STALE)
        if stale is not None:
            self.config.stash[stale_key] = stale

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        stale = self.config.stash.get(stale_key, [])
        if not self.config.getoption("prune_findings"):
            fix = "remove it with --update-findings --prune-findings"
        else:  # the file is rewritten only by a run that judged a claim
            fix = "removed from the file" if self.rows else "not removed: no claim was judged, the file is kept"
        for nodeid in stale:
            terminalreporter.write_line(f"stale finding {nodeid}: matches no collected test ({fix})")
        if not self.rows:
            return
        from harness.report import jobs_line, matrix_text

        config = self.config
        adjusted = family_wise(self.rows)
        terminalreporter.section("claims x pairs")
        terminalreporter.write_line(matrix_text(self.rows))
        terminalreporter.write_line(adjusted)
        terminalreporter.write_line(runs_line(self.rows))
        terminalreporter.write_line(jobs_line(self.jobs))
        terminalreporter.write_line("peak RSS per worker: " + ", ".join(
            f"{worker} {peak_mb:.0f} MB" for worker, peak_mb in sorted(self.peak_rss_mb.items())))
        findings = config.stash[findings_key]
        if findings is None:  # pytest prints the reasons of failed tests only; say why these did not pass
            for row in self.rows:
                if not row["passed"] and row["outcome"] in UNDECIDED:
                    terminalreporter.write_line(f"{row['outcome'].upper()} {row['nodeid']}: {row['message']}")
        run = _save_run(config, self.rows, self.jobs, self.peak_rss_mb)
        if run.parent == Cache(config.getoption("claims_cache")).root / "runs":
            terminalreporter.write_line(f"run recorded: {run} (render it: python -m harness report)")
        else:
            terminalreporter.write_line(f"run recorded: {run}, as the cache's runs/ cannot be written "
                                        f"(render it: python -m harness report --run {run})")
        if findings is not None and config.getoption("update_findings"):
            from harness import findings as findings_module

            new = {r["nodeid"]: r["outcome"] for r in self.rows}
            added = sum(nodeid not in findings.verdicts for nodeid in new)
            changed = sum(findings.verdicts.get(nodeid, outcome) != outcome for nodeid, outcome in new.items())
            findings.budget, findings.seeds = config.getoption("budget"), config.getoption("seeds") or "auto"
            findings.recipes = ",".join(config.getoption("recipe") or ())
            pairs = [*filter(None, findings.pairs.split(",")), *(config.getoption("pairs") or [DEFAULT_PAIRS])]
            findings.pairs = ",".join(dict.fromkeys(pairs))
            findings.verdicts.update(new)
            if config.getoption("prune_findings"):
                for nodeid in stale:
                    findings.verdicts.pop(nodeid, None)
            findings_module.save(Path(config.getoption("findings")), findings)
            terminalreporter.write_line(f"findings written: {config.getoption('findings')} ({len(new)} verdicts: "
                                        f"{added} new, {changed} changed, {len(findings.verdicts)} in the file)")


# ---------------------------------------------------------------- summary and findings


def runs_line(rows: list[dict[str, Any]]) -> str:
    """How many runs the cells' variants used and why their sequential looks stopped."""
    from collections import Counter

    runs = Counter(next(iter(r["runs"].values())) for r in rows if r.get("runs"))  # the variant's, listed first
    stops = Counter(r["stopped"].split(" at ")[0].split(" (")[0] for r in rows if r.get("stopped"))
    return ("runs per cell: " + ", ".join(f"{n} in {count}" for n, count in sorted(runs.items()))
            + "; stopped: " + ", ".join(f"{why} {count}" for why, count in stops.most_common()))


def family_wise(rows: list[dict[str, Any]]) -> str:
    """Add to each row its verdict adjusted for the multiplicity of the run's matrix (Holm over the cells
    with a p-value) and, where a reference's runs serve several cells, which; returns the summary line.

    A cell decided on its own but not after the adjustment reads inconclusive in ``adjusted``; findings
    files keep the unadjusted verdicts.
    """
    from collections import Counter

    from harness.stats import adjusted_outcome, holm

    p_values = [float(r.get("p_value", math.nan)) if r["outcome"] in ("holds", "fails", "inconclusive")
                else math.nan for r in rows]
    adjusted = holm(p_values) if rows else []
    for row, p in zip(rows, adjusted, strict=True):
        row["p_adjusted"] = float(p)
        row["adjusted"] = adjusted_outcome(row["outcome"], float(p))
    shared = Counter(r["reference"] for r in rows if r.get("reference"))
    for row in rows:
        if shared.get(row.get("reference", ""), 0) > 1:
            row["shares_reference"] = f"{row['reference']}: the reference of {shared[row['reference']]} cells"
    moved = sum(r["adjusted"] != r["outcome"] for r in rows)
    family = sum(not math.isnan(p) for p in p_values)
    return (f"family-wise: Holm over the {family} cells with a p-value; {moved} verdict(s) decided alone are "
            f"inconclusive after it (marked *); {len(shared)} reference run groups serve {sum(shared.values())} "
            f"cells")


def _runs_dir(cache_root: Path) -> Path:
    """``<cache>/runs``, or, where the cache cannot be written (read-only, full), a private temporary one."""
    runs = cache_root / "runs"
    try:
        runs.mkdir(parents=True, exist_ok=True)
        probe = runs / f".probe.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        return runs
    except OSError:
        fallback = Path(tempfile.gettempdir()) / f"claims-runs-{os.getuid()}"
        fallback.mkdir(exist_ok=True)
        return fallback


def _save_run(config: pytest.Config, rows: list[dict[str, Any]], jobs: dict[str, list[str]],
              peak_rss_mb: dict[str, float]) -> Path:
    """Record the run beside the cache, for ``python -m harness report``: its own file, and ``latest`` if it
    finished last. A row keeps the labels of the variants it judged; its evaluations (with the row's recipe)
    are collected once for the run."""
    from harness.report import record_run
    from harness.specs import library_versions

    cache = Cache(config.getoption("claims_cache"))
    runs = _runs_dir(cache.root)
    evaluations = [{**e, **({"recipe": r["recipe"]} if r.get("recipe") else {})}
                   for r in rows for e in r.get("evaluations", ())]
    record = {
        "command": shlex.join(["pytest", *config.invocation_params.args]),
        "budget": config.getoption("budget"),
        "seeds": config.getoption("seeds") or "auto",
        "recipes": config.getoption("recipe") or [],
        "pairs": config.getoption("pairs") or [DEFAULT_PAIRS],
        "libraries": library_versions(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "finished": time.time(),
        "jobs": jobs,
        "peak_rss_mb": peak_rss_mb,
        "evaluations": list({json.dumps(e, sort_keys=True): e for e in evaluations}.values()),
        "rows": [{**{k: v for k, v in r.items() if k != "evaluations"},
                  "variants": list(dict.fromkeys(e["label"] for e in r.get("evaluations", ()) if e["label"] != "base"))}
                 for r in rows],
    }
    return record_run(runs, record)
