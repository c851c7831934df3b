"""The report of a recorded run: structure, escaping, colours, the run records and the latest pointer.

Most tests render ``data/report_run.json``, derived from a real smoke run (its ``provenance`` says how: the
rows as recorded, plus the row fields the run did not record yet, and the pass@k curves computed from the
run's cache), so they need no models or cache.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, subprocess_env

from harness.__main__ import main as harness_main
from harness.report import figures, latest_path, load_run, record_run, write_report
from harness.report.markdown import md
from harness.report.matrix import build_matrix, published_reference
from harness.report.plots import BASE, BASE_COLOUR, DPI, Curve
from harness.report.runs import update_latest

pytest_plugins = ["pytester"]

FIXTURE = Path(__file__).parent / "data" / "report_run.json"
HOSTILE = "<script>alert(1)</script>|`x`*y*[z](u)"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def recorded() -> tuple[dict[str, Any], list[Curve]]:
    """The real smoke run (a fresh copy) and its pass@k curves."""
    data = json.loads(FIXTURE.read_text())
    return data["run"], [Curve(**c) for c in data["curves"]]


def render(tmp_path: Path, run: dict[str, Any], curves: list[Curve] = ()) -> tuple[str, str]:
    md_path, html_path = write_report(run, list(curves), tmp_path / "out")
    return md_path.read_text(), html_path.read_text()


class MatrixTable(HTMLParser):
    """The matrix's header cells, family rows and claim rows (their text), and its cells' classes and titles."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.heads: list[str] = []
        self.rows: list[tuple[str, str]] = []  # ("family" | "claim", text)
        self.cells: list[dict[str, str]] = []  # class, title, text
        self._in, self._kind, self._text = False, "", ""
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._in = "matrix" in a.get("class", "")
        elif self._in and tag in ("th", "td"):
            self._kind = "td" if tag == "td" else ("claim" if a.get("scope") == "row" else
                                                  "family" if "colspan" in a else "head")
            self._text = ""
            if tag == "td":
                self.cells.append({"class": a.get("class", ""), "title": a.get("title", "")})

    def handle_data(self, data: str) -> None:
        if self._in and self._kind:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in = False
        elif self._in and tag in ("th", "td") and self._kind:
            if self._kind == "head":
                self.heads.append(self._text)
            elif self._kind == "td":
                self.cells[-1]["text"] = self._text
            else:
                self.rows.append((self._kind, self._text))
            self._kind = ""


# ---------------------------------------------------------------- structure


def test_a_real_run_reads_as_claims_in_words_grouped_by_family(tmp_path: Path, recorded: Any) -> None:
    run, curves = recorded
    md_text, page = render(tmp_path, run, curves)
    table = MatrixTable(page)
    families = list(dict.fromkeys(r["family"] for r in sorted(run["rows"], key=lambda r: r["nodeid"])))
    assert [text.split(" ")[0] for kind, text in table.rows if kind == "family"] == families
    # every claim appears once, in words, under its family's row, with its parameters beside it
    current, seen = "", {}
    for kind, text in table.rows:
        if kind == "family":
            current = text
        else:
            seen.setdefault(current.split(" ")[0], []).append(text)
    for row in run["rows"]:
        params = row["claim"].partition("[")[2].rstrip("]")
        assert f"{row['claim_text']} {params}".strip() in seen[row["family"]]
    assert sum(map(len, seen.values())) == len({r["claim"] for r in run["rows"]})
    for row in run["rows"]:  # each family row names its source
        assert any(kind == "family" and text.startswith(row["family"]) and row["source"] in text
                   for kind, text in table.rows)
    # columns sorted by alignment, headers give pass@1 and pass@K
    by_pair = {r["pair"]: r["alignment"] for r in run["rows"]}
    order = sorted(by_pair, key=lambda p: by_pair[p]["pass@64"])
    assert [h.split("pass@1")[0] for h in table.heads[1:]] == order
    for head, pair in zip(table.heads[1:], order, strict=True):
        assert f"pass@1 {by_pair[pair]['pass@1']:.2f}" in head and f"pass@64 {by_pair[pair]['pass@64']:.2f}" in head
    # the Markdown has the same claims and families
    for row in run["rows"]:
        assert md(row["claim_text"]) in md_text and f"### {md(row['family'])}" in md_text
    assert "data:image/png;base64," in page and page.count("<figure>") == 2


def test_published_numbers_stand_beside_ours_labelled_as_published(tmp_path: Path, recorded: Any) -> None:
    run, _ = recorded
    mine = {"text": "Model X: 74.8 with two examples vs 73.6 with one", "source": "A user's claim file"}
    for row in run["rows"]:
        if row["family"] == "one-shot":
            row["published"] = [mine]
        elif row["family"] == "spurious":
            del row["published"]  # falls back to the built-in table, by family
    md_text, page = render(tmp_path, run)
    sections = dict(re.findall(r"<section class='family-section'><h3>([^<]+)</h3>(.*?)</section>", page))
    assert "74.8 with two examples" in sections["one-shot"] and "A user&#x27;s claim file" in sections["one-shot"]
    assert "36.0 -&gt; 73.6" not in sections["one-shot"]  # a marker's numbers replace the table's
    assert published_reference("spurious")[0]["text"][:40] in html_unescape(sections["spurious"])
    assert "Published (for comparison; not measured here)" in sections["spurious"]
    assert "Published" not in sections["boundary"]  # no numbers on record: nothing labelled
    assert "74.8 with two examples" in md_text
    assert md_text.count("Published (for comparison; not measured here)") == len(
        [f for f in build_matrix(run["rows"]).families if f.published])


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_cells_carry_estimate_interval_adjusted_verdict_and_details(tmp_path: Path, recorded: Any) -> None:
    run, _ = recorded
    row = next(r for r in run["rows"] if r["claim"] == "test_standard_rl_improves_pass_at_1")
    row.update(adjusted="inconclusive", p_value=0.031, stopped="interval cleared the threshold after 4 runs",
               shares_reference="the standard-RL runs of test_standard_rl", runs={"standard RL": 4})
    _, page = render(tmp_path, run)
    cells = MatrixTable(page).cells
    cell = next(c for c in cells if "p = 0.031" in c["title"])
    assert cell["class"] == f"{row['outcome']} changed"
    assert f"{row['estimate']:+.3f}" in cell["text"] and f"[{row['low']:+.3f}, {row['high']:+.3f}]" in cell["text"]
    assert "adj. → incon." in cell["text"]
    for detail in (row["message"], "after family-wise adjustment: inconclusive", "runs: standard RL 4",
                   "stopped: interval cleared", "shares reference: the standard-RL runs", "informative_share",
                   row["nodeid"]):
        assert detail in cell["title"]
    spurious = "test_spurious_reward_recovers_most_of_the_gain[logic-low-random]"
    fraction = next(c for c in cells if spurious in c["title"])
    assert re.search(r"-?\d+%\[-?\d+%, -?\d+%\]", fraction["text"])  # fractions read as percentages
    assert sum("changed" in c["class"] for c in cells) == 1


def test_missing_fields_show_nothing_and_vacuous_reads_not_exercised(tmp_path: Path) -> None:
    rows = [{"claim": "test_bare", "pair": "p1", "outcome": "vacuous"},
            {"claim": "test_bare", "pair": "p2", "outcome": "holds", "estimate": float("nan"), "alignment": "bad",
             "readouts": [1], "published": "x", "runs": None, "measure": 3}]
    malformed = {"jobs": {"computed": 3, "loaded": ["k"]}, "command": 5, "pairs": "x", "libraries": [], "seeds": None}
    md_text, page = render(tmp_path, {"rows": rows, **malformed})
    table = MatrixTable(page)
    assert [c["class"] for c in table.cells] == ["not_exercised", "holds"]
    assert table.rows == [("family", "(no family)"), ("claim", "Bare")]
    assert "not ex." in table.cells[0]["text"] and "vacuous" not in page
    assert "| (no family) | Bare | not\\_exercised | holds |" in md_text
    assert "<figure>" not in page and "nothing to plot in this run" in page
    assert "jobs: 1 unique; 0 computed" in page and "<pre>" not in page


def recipe_tables(page: str) -> list[tuple[str, list[str]]]:
    """The matrix's tables of a multi-recipe run: (recipe, the pairs of its header)."""
    return [(recipe, [h.split("pass@1")[0] for h in MatrixTable(table).heads[1:]])
            for recipe, table in re.findall(r"<h3>Recipe <code>([^<]*)</code></h3>(<table class='matrix'.*?</table>)",
                                            page, flags=re.DOTALL)]


def test_two_recipes_give_a_table_each(tmp_path: Path, recorded: Any) -> None:
    run, _ = recorded
    extra = [dict(r, recipe="batched-v2") for r in run["rows"] if r["pair"] == "arith-high"]
    run["rows"] += extra
    md_text, page = render(tmp_path, run)
    assert recipe_tables(page) == [("batched-v2", ["arith-high"]), ("organism", ["logic-low", "arith-high"])]
    assert "### Recipe batched-v2\n\n| family | claim | arith-high (pass@1=0.71, pass@64=0.99) |" in md_text
    panels = [ax for ax in figures(run, []).effect.axes if ax.get_title()]  # a panel per family per recipe
    assert {"spurious\nbatched-v2", "spurious\norganism"} <= {ax.get_title() for ax in panels}  # family, then recipe
    assert all(any(list(line.get_xdata()) == [0.9, 0.9] for line in ax.lines) for ax in panels)  # the threshold


def test_ids_that_name_their_recipe_are_shown_without_it(tmp_path: Path, recorded: Any) -> None:
    run, _ = recorded
    rows = [r for r in run["rows"] if r["pair"] == "arith-high"]
    run["rows"] = ([dict(r, pair="arith-high@organism") for r in rows]
                   + [dict(r, pair="arith-high@organism-shao", recipe="organism-shao") for r in rows])
    page = render(tmp_path, run)[1]
    assert recipe_tables(page) == [("organism", ["arith-high"]), ("organism-shao", ["arith-high"])]
    for key in ("arith-high@organism", "arith-high@organism-shao"):  # the header's hover names the id in full
        assert f"<th scope='col' title='{key}'>arith-high<" in page
    run["rows"] = [r for r in with_patterns(run)["rows"] if r["recipe"] == "organism-shao"]  # `-k organism-shao`
    page = render(tmp_path, run)[1]
    assert recipe_tables(page) == [("organism-shao", ["arith-high"])]  # one recipe, still named
    assert all(line.agrees + line.differs + line.undecided == ["arith-high"]
               for line in build_matrix(run["rows"]).pattern_lines())


# Readouts of one strategy-organism run as harness.readouts records them (abridged from a smoke run).
STRATEGY_READOUTS = {
    "informative_share": 0.888, "clipped_fraction": 0.0, "entropy_start": 0.145, "entropy_end": 0.150,
    "strategy_share_before": {"worked": 0.379, "direct": 0.595, "malformed": 0.0255},
    "strategy_share_after": {"worked": 0.382, "direct": 0.593, "malformed": 0.0255},
    "strategy_accuracy_before": {"worked": 0.927, "direct": 0.517, "malformed": 0.0239},
    "strategy_accuracy_after": {"worked": 0.930, "direct": 0.520, "malformed": 0.0240}}


def with_strategy_readouts(run: dict[str, Any]) -> dict[str, Any]:
    for row in run["rows"]:
        if row["pair"] == "arith-high":
            row["readouts"] = {label: STRATEGY_READOUTS for label in row.get("readouts") or {"standard RL": 0}}
    return run


def test_readouts_merge_before_and_after_into_one_column(tmp_path: Path, recorded: Any) -> None:
    run, _ = recorded
    md_text, page = render(tmp_path, with_strategy_readouts(run))
    table = re.search(r"<h3>arith-high</h3><table class='readouts'>(.*?)</table>", page).group(1)
    heads = re.findall(r"<th>([^<]*)</th>", table)
    assert heads == ["variant", "informative share", "clipped fraction", "entropy", "strategy share",
                     "strategy accuracy"]
    assert "<td>0.145 → 0.15</td>" in table
    assert "worked 0.379 → 0.382<br>direct 0.595 → 0.593<br>malformed 0.0255 → 0.0255" in table
    assert "| worked 0.927 → 0.93; direct 0.517 → 0.52; malformed 0.0239 → 0.024 |" in md_text


# ---------------------------------------------------------------- escaping


def hostile_run(run: dict[str, Any]) -> dict[str, Any]:
    for row in run["rows"]:
        if row["pair"] == "arith-high":
            row["pair"] = f"arith{HOSTILE}"
    run["rows"][0]["claim"] = f"test_x[{HOSTILE}]"
    run["rows"][0]["claim_text"] = f"claim {HOSTILE}"
    run["rows"][0]["message"] = f"message {HOSTILE} & 'quoted'"
    run["command"] = f"pytest -k 'a or b' {HOSTILE} ``` end"
    return run


def test_hostile_ids_are_escaped_in_html(tmp_path: Path, recorded: Any) -> None:
    run, curves = recorded
    _, page = render(tmp_path, hostile_run(run), curves)
    assert "<script>" not in page and "alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|`x`*y*[z](u)" in page
    assert "&amp; &#x27;quoted&#x27;" in page
    table = MatrixTable(page)
    assert any(h.startswith(f"arith{HOSTILE}") for h in table.heads)
    assert any(text == f"claim {HOSTILE} {HOSTILE}" for kind, text in table.rows if kind == "claim")


def test_hostile_ids_are_escaped_in_markdown(tmp_path: Path, recorded: Any) -> None:
    run, _ = recorded
    md_text, _ = render(tmp_path, hostile_run(run))
    fence = "\n````\n"  # the command, verbatim in a fenced block (literal text there)
    outside = md_text.split(fence)[0] + md_text.split(fence)[2]
    assert md_text.split(fence)[1] == run["command"]
    assert "<script>" not in outside and HOSTILE not in outside
    escaped = md(HOSTILE)
    assert escaped == r"\<script\>alert(1)\</script\>\|\`x\`\*y\*\[z\](u)"
    table = [line for line in md_text.splitlines() if line.startswith("| ")]
    columns = len(re.split(r"(?<!\\)\|", table[0]))
    assert all(len(re.split(r"(?<!\\)\|", line)) == columns for line in table)  # no id splits a cell
    assert "```` \n" not in md_text and "\n````\npytest -k 'a or b'" in md_text  # a fence longer than the ```


def test_markdown_renders_hostile_ids_as_text(tmp_path: Path, recorded: Any) -> None:
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py renders the Markdown to check it")
    run, _ = recorded
    md_text, _ = render(tmp_path, hostile_run(run))
    rendered = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(md_text)
    assert "<script>" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|`x`*y*[z](u)" in rendered  # literal text: no code, emphasis, link
    assert "<code>x</code>" not in rendered and "<em>y</em>" not in rendered and '<a href="u">' not in rendered
    header_cells = rendered.split("</thead>")[0].count("<th>")
    body = rendered.split("<tbody>")[1].split("</tbody>")[0]
    assert all(row.count("<td>") == header_cells for row in body.split("</tr>")[:-1])


# ---------------------------------------------------------------- figures and colours


def drawn_colours(fig: Any) -> dict[str, set[str]]:
    """{gid: colours of the lines drawn with it} over every axes of a figure."""
    from matplotlib.colors import to_hex

    found: dict[str, set[str]] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_gid():
                found.setdefault(line.get_gid(), set()).add(to_hex(line.get_color()))
    return found


def legend_entries(fig: Any) -> list[tuple[str, str, float]]:
    """(text, handle colour, font size) of every legend of a figure."""
    from matplotlib.colors import to_hex

    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    return [(text.get_text(), to_hex(handle.get_color()), text.get_fontsize())
            for legend in legends for text, handle in zip(legend.texts, legend.legend_handles, strict=True)]


def test_one_colour_per_variant_in_every_figure(recorded: Any) -> None:
    run, curves = recorded
    f = figures(run, curves)
    effect, passk = drawn_colours(f.effect), drawn_colours(f.passk)
    for drawn in (effect, passk):
        for gid, colours in drawn.items():
            assert colours == {f.colours[gid]}, gid
    assert set(effect) & set(passk) and all(effect[g] == passk[g] for g in set(effect) & set(passk))
    assert len(set(f.colours.values())) == len(f.colours)  # no two variants share a colour
    assert f.colours[BASE] == BASE_COLOUR
    for text, colour, _ in legend_entries(f.passk) + legend_entries(f.effect):
        assert colour == f.colours[text.replace("\n  ", " ").split(" · ")[0]], text
    base_width = {line.get_linewidth() for ax in f.passk.axes for line in ax.get_lines() if line.get_gid() == BASE}
    others = {line.get_linewidth() for ax in f.passk.axes for line in ax.get_lines() if line.get_gid() != BASE}
    assert min(base_width) > max(others)


def test_a_variant_missing_on_one_pair_shifts_no_colour(recorded: Any) -> None:
    run, curves = recorded
    full = figures(run, curves).colours
    gone = [c for c in curves if not (c.pair == "arith-high" and c.label == "format_only reward")]
    f = figures(run, gone)
    assert f.colours == full
    panel = next(ax for ax in f.passk.axes if ax.get_title() == "arith-high")
    assert "format_only reward" not in {line.get_gid() for line in panel.get_lines()}
    for gid, colours in drawn_colours(f.passk).items():
        assert colours == {full[gid]}


def test_figures_fit_the_page_with_readable_legends_and_no_empty_panels(recorded: Any) -> None:
    run, curves = recorded
    f = figures(run, curves)
    for fig in (f.effect, f.passk):
        assert fig.get_size_inches()[0] * DPI <= 1200
        assert all(size >= 8 for _, _, size in legend_entries(fig))
    assert len(f.passk.legends) == 1 and all(ax.get_legend() is None for ax in f.passk.axes)
    plotted = [ax for ax in f.effect.axes if ax.axison]
    families = {r["family"] for r in run["rows"]}
    assert {ax.get_title() for ax in plotted} == families
    assert all(any(len(line.get_xdata()) for line in ax.get_lines()) for ax in plotted)
    for ax in plotted:  # gains, differences and fractions never share an axis
        assert ax.get_ylabel() in ("gain in pass@k", "gain minus reference gain", "share of reference gain")
    fractions = {ax.get_ylim() for ax in plotted if ax.get_ylabel() == "share of reference gain"}
    assert len(fractions) == 1  # panels of one measure share their y range


def test_effects_beyond_the_axis_are_marked_at_the_edge_with_their_value(recorded: Any) -> None:
    run, _ = recorded
    row = next(r for r in run["rows"] if r["measure"] == "fraction")
    row["effect"] = row["estimate"] = 5.0
    ax = next(ax for ax in figures(run, []).effect.axes if ax.get_title() == row["family"])
    top = ax.get_ylim()[1]
    assert all(max(line.get_ydata(), default=0) <= top for line in ax.get_lines())
    assert any(line.get_marker() == "^" and math.isclose(line.get_ydata()[0], top) for line in ax.get_lines())
    assert "500%" in [t.get_text() for t in ax.texts]


def test_a_pass_at_k_change_reads_within_its_bounds_and_a_share_as_computed(tmp_path: Path, recorded: Any) -> None:
    run, _ = recorded
    gain = next(r for r in run["rows"] if r["measure"] == "gain")
    share = next(r for r in run["rows"] if r["measure"] == "fraction")
    gain["low"], gain["high"] = -5.272, 0.5
    share["low"], share["high"] = -5.272, 3.0
    markdown, page = render(tmp_path, run)
    cells = MatrixTable(page).cells
    assert "[-1.000, +0.500]" in next(c for c in cells if gain["nodeid"] in c["title"])["text"]
    assert "[-527%, 300%]" in next(c for c in cells if share["nodeid"] in c["title"])["text"]
    assert md("[-1.000, +0.500]") in markdown and "5.272" not in markdown


def test_wide_intervals_do_not_set_the_axis_of_a_measure(recorded: Any) -> None:
    """A two-run t interval far beyond pass@k's bounds runs to the panel's edge; the axis follows the estimates."""
    run, _ = recorded
    gains = [r for r in run["rows"] if r["measure"] == "gain"]
    gains[0]["low"], gains[0]["high"] = -3.0, 3.0
    ax = next(ax for ax in figures(run, []).effect.axes if ax.get_title() == gains[0]["family"])
    low, high = ax.get_ylim()
    assert -1.0 <= low < 0 < high <= 1.0
    assert high - low < 1.0  # the organisms' gains are a few hundredths: the axis is not stretched to +-1


# ---------------------------------------------------------------- run records and the latest pointer


def test_latest_names_the_run_that_finished_last(tmp_path: Path, recorded: Any) -> None:
    run, _ = recorded
    runs = tmp_path / "runs"
    later = record_run(runs, {**run, "finished": 2000.0})
    earlier = record_run(runs, {**run, "finished": 1000.0})  # finished first, recorded second
    assert later != earlier and later.exists() and earlier.exists()
    assert latest_path(tmp_path) == later
    assert json.loads(earlier.read_text())["id"] == earlier.stem
    assert not update_latest(runs, earlier, 1500.0)
    last = record_run(runs, {**run, "finished": 3000.0})
    assert latest_path(tmp_path) == last
    (runs / "latest.json").write_text(earlier.name)  # a pointer from before finish times: any run replaces it
    assert latest_path(tmp_path) == earlier
    assert update_latest(runs, later, 2000.0) and latest_path(tmp_path) == later


RECORD = """
import json, sys, time
from pathlib import Path
from harness.report import record_run
sys.stdin.readline()  # start together
print(record_run(Path(sys.argv[1]), {"rows": [], "finished": float(sys.argv[2])}).name)
"""


def test_concurrent_runs_leave_latest_on_the_last_to_finish(tmp_path: Path) -> None:
    finishes = [1000.3, 1000.1, 1000.4, 1000.2]  # one second: one file name stamp; the last to finish starts third
    procs = [subprocess.Popen([sys.executable, "-c", RECORD, str(tmp_path / "runs"), str(t)], cwd=REPO,
                              env=subprocess_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for t in finishes]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    names = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert len(set(names)) == 4  # no run overwrote another
    assert latest_path(tmp_path).name == names[finishes.index(max(finishes))]


def test_report_command_renders_latest_into_a_folder_named_after_the_run(
        tmp_path: Path, recorded: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = recorded
    path = record_run(tmp_path / "cache" / "runs", {**run, "finished": 1.0})
    monkeypatch.chdir(tmp_path)
    assert harness_main(["report", "--claims-cache", str(tmp_path / "cache")]) == 0
    folder = tmp_path / "reports" / path.stem
    assert (folder / "report.html").exists() and (folder / "report.md").exists()
    assert f"reports/{path.stem}/report.md" in capsys.readouterr().out
    assert harness_main(["report", "--run", str(path), "--out", str(tmp_path / "given")]) == 0
    assert (tmp_path / "given" / "report.html").read_text().count("<tr class='family'>") == len(
        {r["family"] for r in run["rows"]})


@pytest.mark.parametrize(("content", "problem"), [
    ('{"rows": [{"claim": "a", "pair"', "not a complete JSON run record"),
    ("[1, 2]", "expected a JSON object with 'rows', got list"),
    ('{"rows": {"a": 1}}', "'rows' must be a list of claim results"),
    ('{"rows": [{"claim": "a", "outcome": "holds"}]}', "rows[0].pair: expected a string, got nothing"),
    ('{"rows": [], "evaluations": [{"pair": "p"}]}', "evaluations[0]: expected {pair, label, spec}"),
    ('{"rows": [], "evaluations": [{"pair": "p", "label": "base", "spec": {"kind": "nope"}}]}',
     "evaluations[0].spec: not an evaluation spec (KeyError('nope'))"),
    ('{"rows": [], "jobs": {"computed": 3}, "evaluations": [{"pair": "p", "label": "base", "spec": {"kind": "eval"}}]}',
     "evaluations[0].spec: not an evaluation spec"),
])
def test_a_bad_run_file_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                              problem: str) -> None:
    path = tmp_path / "run-bad.json"
    path.write_text(content)
    assert harness_main(["report", "--run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"python -m harness report: {path}: ") and problem in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_bad_latest_pointer_or_missing_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "latest.json").write_text('{"run": 3}')
    assert harness_main(["report", "--claims-cache", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "latest.json: expected {\"run\": file name, \"finished\": time}, got {\"run\": 3}" in capsys.readouterr().err
    (runs / "latest.json").write_text('{"run": "run-gone.json", "finished": 1}')
    assert harness_main(["report", "--claims-cache", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run-gone.json: cannot read the run record" in err


CLAIMS = """
import pytest
from harness.verdicts import Finding

def finding(outcome):
    return Finding(outcome, "m", 0.1, 0.0, 0.2, 0.0, {"pass@1": 0.1, "pass@8": 0.5})

@pytest.mark.claim("fam", source="src")
@pytest.mark.parametrize("x", ["a", "b"])
def test_agrees(claim, x):
    claim.record(finding("holds"))
"""


def test_a_session_records_its_command_quoted_and_points_latest_at_it(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_claims=CLAIMS)
    cache = pytester.path / "cache"
    result = pytester.runpytest("-p", "harness.plugin", "-p", "no:cacheprovider", f"--claims-cache={cache}",
                                "-k", "a or b")
    assert result.ret == 0, result.stdout.str()
    record = load_run(latest_path(cache))
    assert record["command"].startswith(f"pytest -p harness.plugin -p no:cacheprovider --claims-cache={cache} ")
    assert " -k 'a or b'" in record["command"]  # shell quoting kept
    assert [r["claim"] for r in record["rows"]] == ["test_agrees[a]", "test_agrees[b]"]
    assert record["id"] == latest_path(cache).stem and record["finished"] > 0


MARKED = """
import pytest
from harness.verdicts import Finding

pytestmark = pytest.mark.claim("fam", source="src", published=["p"])

def finding(outcome):
    return Finding(outcome, "m", 0.1, 0.0, 0.2, 0.0, {"pass@1": 0.1, "pass@8": 0.5})

@pytest.mark.claim(pattern="high-alignment")
def test_marked(claim):
    claim.record(finding("holds"))

def test_unmarked(claim):
    claim.record(finding("holds"))

@pytest.mark.claim(pattern="sometimes")
def test_misspelt(claim):
    claim.record(finding("holds"))
"""


def test_a_tests_claim_marker_adds_its_pattern_to_the_modules(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_claims=MARKED)
    cache = pytester.path / "cache"
    result = pytester.runpytest("-p", "harness.plugin", "-p", "no:cacheprovider", f"--claims-cache={cache}")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*ValueError: claim marker of test_misspelt: pattern is one of high-alignment, "
                                 "everywhere, got 'sometimes'"])
    rows = {r["claim"]: r for r in load_run(latest_path(cache))["rows"]}
    assert rows["test_marked"]["pattern"] == "high-alignment" and rows["test_unmarked"]["pattern"] == ""
    assert all(r["family"] == "fam" and r["source"] == "src" and r["published"] == [{"text": "p", "source": "src"}]
               for r in rows.values())


# ---------------------------------------------------------------- the paper's pattern

# As the claim markers under claims/ set them.
PATTERNS = {"standard": "everywhere", "spurious": "high-alignment", "self-reward": "high-alignment"}
SPURIOUS = "test_spurious_reward_recovers_most_of_the_gain[{}]"
MAJORITY = "test_majority_vote_recovers_most_of_the_gain"


def with_patterns(run: dict[str, Any]) -> dict[str, Any]:
    for row in run["rows"]:
        row["pattern"] = PATTERNS.get(row["family"], "")
    return run


def test_verdicts_are_read_against_the_papers_pattern(recorded: Any) -> None:
    """logic-low (base pass@64 0.69) is below the default 0.9 and arith-high (0.99) above it."""
    run, _ = recorded
    m = build_matrix(with_patterns(run)["rows"])
    reading = {(r["pair"], r["claim"]): m.against_paper(r) for r in m.rows}
    assert reading[("logic-low", "test_standard_rl_improves_pass_at_1")] == "agrees"  # holds, as everywhere
    assert reading[("arith-high", SPURIOUS.format("random"))] == "differs"  # fails where it should hold
    assert reading[("logic-low", SPURIOUS.format("random"))] == "agrees"  # fails where it should not hold
    assert reading[("logic-low", MAJORITY)] == "differs"  # holds at low alignment
    assert reading[("arith-high", MAJORITY)] == "undecided"  # inconclusive
    assert {reading[k] for k in reading if k[1].startswith(("test_base_model", "test_positive"))} == {None}
    lines = {line.claim: line for line in m.pattern_lines()}
    assert set(lines) == {r["claim"] for r in m.rows if r["pattern"]}
    assert (lines[SPURIOUS.format("random")].agrees, lines[SPURIOUS.format("random")].differs) == (
        ["logic-low"], ["arith-high"])
    assert (lines[MAJORITY].differs, lines[MAJORITY].undecided) == (["logic-low"], ["arith-high"])
    [standard] = [r for r in run["rows"] if r["pair"] == "arith-high" and r["family"] == "standard"]
    standard["adjusted"] = "inconclusive"  # the family-wise adjustment undecides one of the two agreements
    m = build_matrix(run["rows"])
    assert m.against_paper(m.cells[(standard["claim"], "arith-high")], adjusted=True) == "undecided"
    line = next(line for line in m.pattern_lines() if line.claim == standard["claim"])
    assert (len(line.agrees), line.agrees_adjusted, line.differs_adjusted) == (2, 1, 0)
    lowered = build_matrix(run["rows"], high_alignment=0.5)  # now logic-low is highly aligned too
    assert lowered.against_paper(lowered.cells[(SPURIOUS.format("random"), "logic-low")]) == "differs"
    assert lowered.against_paper(lowered.cells[(MAJORITY, "logic-low")]) == "agrees"


def test_the_report_marks_cells_and_sums_up_the_pattern_per_recipe(tmp_path: Path, recorded: Any) -> None:
    run, _ = recorded
    run = with_patterns(run)
    run["rows"] += [dict(r, recipe="organism-shao") for r in run["rows"] if r["pair"] == "arith-high"]
    md_text, page = render(tmp_path, run)
    cells = {c["title"].splitlines()[-1]: c for c in MatrixTable(page).cells if c["title"]}
    standard = [c for t, c in cells.items() if "test_standard_rl" in t]
    assert standard and all(c["text"].startswith("holds ✓") for c in standard)
    assert all(c["title"].startswith("paper's pattern: holds everywhere: agrees") for c in standard)
    [random_low] = [c for t, c in cells.items() if "spurious_reward" in t and "logic-low-random" in t]
    assert random_low["text"].startswith("FAILS ✓")
    assert "paper's pattern: holds only at high alignment (base pass@K ≥ 0.90): agrees" in random_low["title"]
    section = page.split("<h2>Against the paper's pattern</h2>")[1].split("<h2>")[0]
    rows = re.findall(r"<tr><td>(.*?)</td></tr>", section, flags=re.DOTALL)
    assert len(rows) == 7 * 2  # 3 spurious, 3 self-reward and the standard-RL claim, under two recipes
    assert "<code>organism-shao</code></td><td>holds only at high alignment" in section
    assert ("| Standard RL with the true reward raises pass@1 | organism | holds everywhere | 2 (2): logic-low, "
            "arith-high | 0 (0) | 0 |") in md_text
    assert "fails ✗ " in md_text and "holds ✓ " in md_text


def test_the_report_command_takes_the_high_alignment_threshold(tmp_path: Path, recorded: Any,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = recorded
    path = tmp_path / "run.json"
    path.write_text(json.dumps(with_patterns(run)))
    assert harness_main(["report", "--run", str(path), "--out", str(tmp_path / "out"), "--claims-cache",
                         str(tmp_path / "cache"), "--high-alignment", "0.5"]) == 0
    md_text = (tmp_path / "out" / "report.md").read_text()
    assert "base pass@K ≥ 0.50" in md_text
    assert ("| Majority-vote reward without labels recovers at least half of the true-reward gain | holds only "
            "at high alignment (base pass@K ≥ 0.50) | 1 (1): logic-low | 0 (0) | 1: arith-high |") in md_text
    with pytest.raises(SystemExit):
        harness_main(["report", "--run", str(path), "--high-alignment", "0"])
    assert "argument --high-alignment: expected a number in (0, 1], got '0'" in capsys.readouterr().err


# ---------------------------------------------------------------- looking at it


@pytest.mark.slow
def test_the_page_fits_1280_px_and_prints_in_headless_chromium(tmp_path: Path, recorded: Any) -> None:
    """Screenshot the report of the real run (with a strategy organism's readouts, the widest table) at 1280 px,
    measure the page's width and print it to PDF."""
    if not Path(CHROMIUM).exists():
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    run, curves = recorded
    _, html_path = write_report(with_strategy_readouts(run), curves, tmp_path / "out")
    probe = tmp_path / "probe.html"  # the page, plus a script writing its scroll width where --dump-dom shows it
    probe.write_text(html_path.read_text().replace(
        "</body>", "<script>document.title = 'width ' + document.documentElement.scrollWidth</script></body>"))
    png, pdf = tmp_path / "report.png", tmp_path / "report.pdf"
    for extra, target in ((f"--screenshot={png}", html_path), (f"--print-to-pdf={pdf}", html_path),
                          ("--dump-dom", probe)):
        done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                               "--window-size=1280,2000", extra, target.as_uri()],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    assert png.stat().st_size > 50_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.stat().st_size > 50_000 and pdf.read_bytes()[:5] == b"%PDF-"
    width = re.search(r"<title>width (\d+)</title>", done.stdout)
    assert width and int(width.group(1)) <= 1280, textwrap.shorten(done.stdout, 300)
