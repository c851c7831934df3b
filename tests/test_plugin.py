"""The pytest plugin end to end: pytester sessions over two tiny organism pairs that share one job cache.

The module's jobs (two organisms, their evaluations and standard-budget RL runs) are computed once, by
the ``claims_cache`` fixture in this process, before any pytester session; the sessions run in-process
and load them from the cache. Computing them first in this process also imports torch and the lazily
imported transformers and TRL modules here: an in-process pytester run drops the modules it imported
when it ends, and torch cannot be imported twice.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from helpers import RECIPE

from harness.__main__ import main as harness_main

pytest_plugins = ["pytester"]

PAIRS = """\
defaults:
  eval: {num_problems: 24, n: 8, max_new_tokens: 6}
  alignment_k: 8
  recipe: tiny.yaml

pairs:
  add-high:  # first in the file, last in the matrix: columns are sorted by alignment
    note: 1-2 digit addition, 400 pretraining steps (pass@8 about 0.9)
    model:
      organism: {mix: [{task: {family: arithmetic, params: {digits: [1, 2]}}}], steps: 400}
    task: {family: arithmetic, params: {digits: [1, 2]}}
  add-low:
    note: 1-2 digit addition, 150 pretraining steps (pass@8 about 0.1)
    model:
      organism: {mix: [{task: {family: arithmetic, params: {digits: [1, 2]}}}], steps: 150}
    task: {family: arithmetic, params: {digits: [1, 2]}}
"""

SLOW_PAIRS = """\
pairs:
  add-slow:
    marks: [slow]
    eval: {num_problems: 24, n: 8, max_new_tokens: 6}
    alignment_k: 8
    recipe: tiny.yaml
    model:
      organism: {mix: [{task: {family: arithmetic, params: {digits: [1, 2]}}}], steps: 150}
    task: {family: arithmetic, params: {digits: [1, 2]}}
"""

# Thresholds force each verdict: a pass@1 gain always exceeds -1 and never reaches +1, and the
# interval straddles its own point estimate.
CLAIMS = """\
import pytest
from harness import verdicts

pytestmark = pytest.mark.claim("test", source="tests/test_plugin.py")


def test_holds(pair, rl, claim):
    claim.improves(rl(pair), k=1, threshold=-1.0)


def test_fails(pair, rl, claim):
    claim.improves(rl(pair), k=1, threshold=1.0)


def test_inconclusive(pair, rl, claim):
    outcome = rl(pair)
    claim.improves(outcome, k=1, threshold=verdicts.improves(outcome, k=1).estimate)
"""

VERDICTS = {"test_holds": "holds", "test_fails": "fails", "test_inconclusive": "inconclusive"}
NODEIDS = {f"test_claims.py::{name}[{pair}]": outcome for name, outcome in VERDICTS.items()
           for pair in ("add-low", "add-high")}
JOBS_LINE = re.compile(r"jobs: (\d+) unique; (\d+) computed \((\d+) distinct\), (\d+) requests loaded from cache")
QUIET_ENV = {"CLAIMS_PROGRESS": "0", "CLAIMS_THREADS": "1"}


@pytest.fixture(scope="module")
def claims_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One job cache for the module, with its jobs computed. Under xdist the workers of one run share it
    (the cache's locks compute each job once)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    cache_dir = root / "test-plugin-cache"
    files = root / "test-plugin-pairs"
    files.mkdir(exist_ok=True)
    (files / "pairs.yaml").write_text(PAIRS)
    (files / "tiny.yaml").write_text(RECIPE)
    from harness.cache import Cache
    from harness.loading import load_fixtures
    from harness.results import Harness

    with pytest.MonkeyPatch.context() as mp:
        for name, value in QUIET_ENV.items():
            mp.setenv(name, value)
        harness_ = Harness(cache=Cache(cache_dir), budget="standard")
        for pair in load_fixtures(files / "pairs.yaml"):
            harness_.rl(pair)
    return cache_dir


@pytest.fixture
def run(pytester: pytest.Pytester, claims_cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., pytest.RunResult]]:
    """``run(*args)``: an in-process pytest session over the tiny pairs and CLAIMS, on the shared cache."""
    for name, value in QUIET_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CLAIMS_CACHE", raising=False)
    pytester.makeini("[pytest]\n")  # the rootdir, whatever paths the options name
    pytester.makefile(".yaml", pairs=PAIRS, slow=SLOW_PAIRS, tiny=RECIPE)
    pytester.makepyfile(test_claims=CLAIMS)

    def session(*args: str, cache: Path = claims_cache, pairs: tuple[str, ...] = ("pairs.yaml",)) -> pytest.RunResult:
        options = [f"--pairs={p}" for p in pairs]
        return pytester.runpytest("-p", "harness.plugin", "-p", "no:cacheprovider", "-W", "ignore::FutureWarning",
                                  f"--claims-cache={cache}", *options, *args)

    yield session


def jobs_counts(result: pytest.RunResult) -> tuple[int, int, int, int]:
    """(unique, computed, distinct computed, loaded) from the summary's job line."""
    match = JOBS_LINE.search(result.stdout.str())
    assert match, result.stdout.str()
    unique, computed, distinct, loaded = map(int, match.groups())
    return unique, computed, distinct, loaded


def findings_file(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------- parametrization and selection


def test_pairs_parametrize_tests_with_readable_ids(run: Callable[..., pytest.RunResult]) -> None:
    result = run("--co", "-q")
    assert result.ret == 0
    assert [line for line in result.outlines if "::" in line] == [
        f"test_claims.py::{name}[{pair}]" for name in VERDICTS for pair in ("add-high", "add-low")]  # file order
    result.stdout.fnmatch_lines(["6 tests collected*"])

    selected = run("--co", "-q", "-k", "add-low")
    assert selected.ret == 0
    lines = [line for line in selected.outlines if "::" in line]
    assert lines == [f"test_claims.py::{name}[add-low]" for name in VERDICTS]
    selected.stdout.fnmatch_lines(["3/6 tests collected (3 deselected)*"])


def test_pair_marks_select_with_m(run: Callable[..., pytest.RunResult]) -> None:
    both = ("pairs.yaml", "slow.yaml")
    everything = run("--co", "-q", "--strict-markers", pairs=both)
    assert everything.ret == 0
    everything.stdout.fnmatch_lines(["test_claims.py::test_holds[[]add-slow[]]", "9 tests collected*"])

    fast = run("--co", "-q", "--strict-markers", "-m", "not slow", pairs=both)
    assert fast.ret == 0
    assert "add-slow" not in fast.stdout.str()
    fast.stdout.fnmatch_lines(["6/9 tests collected (3 deselected)*"])

    slow = run("--co", "-q", "-m", "slow", pairs=both)
    assert [line for line in slow.outlines if "::" in line] == [f"test_claims.py::{n}[add-slow]" for n in VERDICTS]


def test_a_pair_id_in_two_files_is_a_collection_error(run: Callable[..., pytest.RunResult],
                                                      pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", again=PAIRS)
    result = run("--co", pairs=("pairs.yaml", "again.yaml"))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*again.yaml: pairs.add-high: pair id already defined in *pairs.yaml*"])


def test_a_bad_pairs_file_is_one_line_and_writes_nothing(run: Callable[..., pytest.RunResult],
                                                         pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makefile(".yaml", bad=PAIRS.replace("family: arithmetic", "family: arithmetc", 1))
    cache = tmp_path / "untouched-cache"
    result = run("-q", pairs=("bad.yaml",), cache=cache)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*bad.yaml: pairs.add-high.model.organism.mix[[]0[]].task: "
                                 "unknown task family 'arithmetc'; did you mean 'arithmetic'?*"])
    assert "Traceback" not in result.stdout.str() and "pluggy" not in result.stdout.str()
    assert not cache.exists()


# ---------------------------------------------------------------- verdicts, summary, run record, report


def test_verdicts_become_outcomes_and_the_summary_shows_the_matrix(run: Callable[..., pytest.RunResult],
                                                                   claims_cache: Path, tmp_path: Path) -> None:
    result = run("-v", "-rA")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # inconclusive is never a pass
    assert result.parseoutcomes() == {"passed": 2, "failed": 2, "inconclusive": 2}
    result.stdout.fnmatch_lines_random([
        "test_claims.py::test_holds[[]add-low[]] PASSED*",
        "test_claims.py::test_fails[[]add-low[]] FAILED*",
        "test_claims.py::test_inconclusive[[]add-low[]] INCONCLUSIVE*",
        "test_claims.py::test_inconclusive[[]add-high[]] INCONCLUSIVE*",
    ])
    # a failed claim reads as the finding: effect, interval, threshold and the pair's alignment
    result.stdout.fnmatch_lines(["E *ClaimFailed: standard RL changed pass@1 by * (95% CI * to *); "
                                 "the claim needs > +1.000; 8 runs of standard RL (a single look); pair add-*, "
                                 "alignment pass@8 = *"])

    out = result.stdout.str()
    section = out[out.index("claims x pairs"):]
    header = next(line for line in section.splitlines() if "add-low (pass@8=" in line)
    assert header.index("add-low") < header.index("add-high")  # sorted by alignment, not by file order
    low, high = (float(x) for x in re.findall(r"pass@8=([\d.]+)", header))
    assert low < high
    result.stdout.fnmatch_lines([
        "*claims x pairs*",
        "pairs sorted by alignment*",
        "test_fails * FAILS! * FAILS!*",
        "test_holds * holds * holds*",
        "test_inconclusive * incon.! * incon.!*",
    ])
    result.stdout.fnmatch_lines(["INCONCLUSIVE test_claims.py::test_inconclusive[[]add-low[]]: standard RL changed*"])
    unique, computed, distinct, loaded = jobs_counts(result)
    assert (computed, distinct) == (0, 0) and unique == 34 and loaded >= unique  # all from the module's cache
    # 34 = 2 base evaluations + 2 pairs x 8 calibration runs x (RL run + its evaluation)

    recorded = re.search(r"run recorded: (\S+\.json)", out)
    assert recorded, out
    record = json.loads(Path(recorded.group(1)).read_text())
    assert Path(recorded.group(1)).parent == claims_cache / "runs"
    assert record["budget"] == "standard" and record["seeds"] == "auto"
    assert {r["nodeid"]: r["outcome"] for r in record["rows"]} == NODEIDS
    assert {e["pair"] for e in record["evaluations"]} == {"add-low", "add-high"}
    peak = re.search(r"peak RSS per worker: main (\d+) MB", out)
    assert peak and abs(record["peak_rss_mb"]["main"] - float(peak.group(1))) <= 0.5
    assert 100 < record["peak_rss_mb"]["main"] < 24 * 1024  # torch alone takes more than 100 MB

    out_dir = tmp_path / "report"
    assert harness_main(["--claims-cache", str(claims_cache), "report", "--out", str(out_dir)]) == 0
    md, page = (out_dir / "report.md").read_text(), (out_dir / "report.html").read_text()
    assert "# Claims x pairs" in md and "| claim |" in md and "jobs:" in md
    assert page.startswith("<!doctype html>") and "<table class='matrix'" in page and "data:image/png;base64," in page


def test_report_without_a_recorded_run_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert harness_main(["report", "--claims-cache", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no recorded run under" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- findings regression


def test_findings_record_reproduce_flip_and_partial_update(run: Callable[..., pytest.RunResult],
                                                           pytester: pytest.Pytester) -> None:
    path = pytester.path / "findings" / "tiny-standard.yaml"  # its folder does not exist yet
    recorded = run("-q", "--findings", str(path), "--update-findings")
    assert recorded.ret == 0
    assert recorded.parseoutcomes() == {"passed": 6}  # recording judges nothing
    recorded.stdout.fnmatch_lines([f"findings written: {path} (6 verdicts: 6 new, 0 changed, 6 in the file)"])
    data = findings_file(path)
    assert data["budget"] == "standard" and data["seeds"] == "auto" and data["pairs"] == "pairs.yaml"
    assert data["findings"] == NODEIDS
    assert path.read_text().startswith("# Recorded claim verdicts")

    again = run("-q", "--findings", str(path))
    assert again.ret == 0
    assert again.parseoutcomes() == {"passed": 6}
    again.stdout.fnmatch_lines(["test_fails * FAILS * FAILS*"])  # the matrix shows verdicts, '!' only on failures

    doctored = dict(data, findings={**NODEIDS, "test_claims.py::test_holds[add-low]": "fails",
                                    "test_claims.py::test_holds[add-high]": "inconclusive"})
    path.write_text(yaml.safe_dump(doctored))
    flipped = run("-q", "-rf", "--findings", str(path), "-k", "add-low")
    assert flipped.ret == pytest.ExitCode.TESTS_FAILED
    assert flipped.parseoutcomes() == {"passed": 2, "failed": 1, "deselected": 3}
    flipped.stdout.fnmatch_lines(["finding flipped: recorded fails, now holds: standard RL changed pass@1 by *",
                                  "FAILED test_claims.py::test_holds[[]add-low[]] - finding flipped*"])
    assert "test_holds[add-high]" not in flipped.stdout.str()

    partial = run("-q", "--findings", str(path), "--update-findings", "-k", "add-high")
    assert partial.ret == 0
    partial.stdout.fnmatch_lines(["findings written: * (3 verdicts: 0 new, 1 changed, 6 in the file)"])
    after = findings_file(path)["findings"]
    assert after == {**NODEIDS, "test_claims.py::test_holds[add-low]": "fails"}  # add-low entries kept as they were


@pytest.mark.parametrize(("findings", "args", "message"), [
    (None, ["--update-findings"], "--update-findings needs --findings FILE (the file to write)"),
    (None, ["--findings", "missing.yaml"], "missing.yaml: findings file not found (create it with --update-findings)"),
    ({"budget": "smoke", "seeds": 1}, ["--budget", "standard"],
     "f.yaml was recorded at budget 'smoke', not 'standard'; drop the option to use the file's"),
    ({"budget": "smoke", "seeds": 1}, ["--budget", "standard", "--update-findings"],
     "f.yaml was recorded at budget 'smoke', not 'standard'; record another file for it"),
    ({"budget": "standard", "seeds": 2}, ["--seeds", "3"], "f.yaml was recorded with --seeds 2, not 3*"),
    ({"budget": "standard", "seeds": 2, "findings": {"t.py::x": "held"}}, [],
     "*f.yaml: findings.t.py::x: unknown verdict 'held'; known: holds, fails, inconclusive, not_exercised"),
    ({"budget": "huge", "seeds": 2}, [], "*f.yaml: top level: unknown budget 'huge'; known: smoke, standard, paper"),
    ({"budget": "standard", "seeds": "auto", "max_seeds": 4}, ["--max-seeds", "8"],
     "f.yaml was recorded with --max-seeds 4, not 8; drop the option to use the file's"),
    ({"budget": "standard", "seeds": "auto"}, ["--max-seeds", "4", "--update-findings"],
     "f.yaml was recorded with --max-seeds 8, not 4; record another file for it"),
    ({"budget": "standard", "seeds": 2, "max_seeds": 4}, [],
     "*f.yaml: top level: field 'max_seeds' = 4: expected a whole number >= 1, with seeds 'auto'"),
], ids=["update-without-file", "missing-file", "budget-mismatch", "budget-mismatch-update", "seeds-mismatch",
        "bad-verdict", "bad-budget", "cap-mismatch", "cap-mismatch-default", "cap-with-fixed-seeds"])
def test_findings_usage_errors(run: Callable[..., pytest.RunResult], pytester: pytest.Pytester,
                               findings: dict | None, args: list[str], message: str) -> None:
    if findings is not None:
        (pytester.path / "f.yaml").write_text(yaml.safe_dump(findings))
        args = ["--findings", "f.yaml", *args]
    result = run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "0"], "*argument --seeds: expected 'auto' or a whole number >= 1, got '0'"),
    (["--seeds", "-1"], "*argument --seeds: expected 'auto' or a whole number >= 1, got '-1'"),
    (["--seeds", "few"], "*argument --seeds: expected 'auto' or a whole number >= 1, got 'few'"),
    (["--max-seeds", "0"], "*argument --max-seeds: expected a whole number >= 1, got '0'"),
    (["--max-seeds", "1"], "ERROR: --max-seeds 1 is below the 2 runs of the first look at budget 'standard'; "
                           "allowed: 2 or more"),
    (["--seeds", "3", "--max-seeds", "4"], "ERROR: --max-seeds works with --seeds auto*"),
    (["--recipe", "organsm"], "ERROR: --recipe organsm: unknown recipe 'organsm'; did you mean 'organism'?*"),
], ids=["seeds-0", "seeds-negative", "seeds-word", "max-seeds-0", "cap-below-first-look", "cap-with-fixed-seeds",
        "unknown-recipe"])
def test_seed_and_recipe_options_are_checked_before_anything_runs(run: Callable[..., pytest.RunResult],
                                                                  args: list[str], message: str) -> None:
    result = run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() and "jobs:" not in result.stdout.str()


def test_findings_file_adopts_budget_and_seeds(run: Callable[..., pytest.RunResult],
                                               pytester: pytest.Pytester) -> None:
    data = {"budget": "standard", "seeds": 2, "pairs": "pairs.yaml", "findings": NODEIDS}
    (pytester.path / "f.yaml").write_text(yaml.safe_dump(data))
    result = run("-q", "--findings", "f.yaml", "-k", "holds")
    assert result.ret == 0 and result.parseoutcomes() == {"passed": 2, "deselected": 4}
    assert jobs_counts(result)[1] == 0  # the file's budget and seeds: the module's cached runs


def test_findings_record_and_adopt_the_seed_cap(run: Callable[..., pytest.RunResult],
                                                pytester: pytest.Pytester) -> None:
    """A file recorded with --max-seeds keeps the cap, and a run checking it uses the cap without the option."""
    recorded = run("-q", "--budget", "smoke", "--max-seeds", "2", "--findings", "capped.yaml", "--update-findings",
                   "-k", "holds")
    assert recorded.ret == 0, recorded.stdout.str()[-2000:]
    data = yaml.safe_load((pytester.path / "capped.yaml").read_text())
    assert (data["seeds"], data["max_seeds"]) == ("auto", 2)
    checked = run("-q", "--findings", "capped.yaml", "-k", "holds")  # no --max-seeds: the file's, no usage error
    assert checked.ret == 0 and checked.parseoutcomes()["passed"] == 2


# ---------------------------------------------------------------- xdist


VARIANT_CLAIMS = """\
import pytest

pytestmark = pytest.mark.claim("test", source="tests/test_plugin.py")


@pytest.mark.parametrize("n", [1, 2, 3])
def test_variant(pair, rl, claim, n):
    claim.improves(rl(pair, lr_scale=2.0), k=1, threshold=-1.0)
"""


def test_xdist_computes_every_job_once(run: Callable[..., pytest.RunResult], pytester: pytest.Pytester) -> None:
    # A variant with 3 seeds: new RL runs and evaluations, each wanted by the three tests of its pair at once.
    pytester.makepyfile(test_variant=VARIANT_CLAIMS)
    result = run("-q", "-n", "2", "--seeds", "3", "test_variant.py")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 6, result.stdout.str()
    _, computed, distinct, _ = jobs_counts(result)
    assert computed == distinct == 12, result.stdout.str()  # 2 pairs x 3 seeds x (RL run + its evaluation)
    result.stdout.fnmatch_lines(["peak RSS per worker: gw0 * MB, gw1 * MB"])
    assert "claims x pairs" in result.stdout.str()
