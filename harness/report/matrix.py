"""The claims x pairs matrix as data: rows normalised, claims grouped by family, columns ordered by alignment.

A run record's rows are the claim tests' findings. Only ``claim``, ``pair`` and ``outcome`` are required;
every other field (``claim_text``, ``family``, ``source``, ``published``, ``pattern``, ``recipe``, ``adjusted``,
``estimate``/``low``/``high``, ``measure``, ``alignment``, ``runs``, ``readouts``...) is shown when present
and left out when missing or malformed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

OUTCOMES = ("holds", "fails", "inconclusive", "not_exercised")
SHORT = {"holds": "holds", "fails": "FAILS", "inconclusive": "incon.", "not_exercised": "not ex."}
RENAMED = {"vacuous": "not_exercised"}  # outcome names of earlier records
MEASURES = ("gain", "difference", "fraction")
BOUNDS = {"gain": (-1.0, 1.0), "difference": (-1.0, 1.0)}  # what a pass@k change can take; shares are unbounded
# Base pass@K at or above which a pair counts as highly aligned when a run is read against the paper's pattern.
# arXiv 2508.21188 publishes no number; 0.9 puts every organism built as "-high" (0.91-0.98) and the strategy
# pairs (1.00) above it and every "-low" one (0.48-0.78) below. `python -m harness report --high-alignment X`.
HIGH_ALIGNMENT = 0.9
PAPER_MARK = {"agrees": "✓", "differs": "✗"}  # beside a verdict that agrees / differs with the paper's pattern
PATTERN_INTRO = (
    "arXiv 2508.21188 finds that the surprising claims (spurious rewards and self-rewards, one-shot RL, training on "
    "negative samples) hold only where the base model is already highly aligned with the task, and that standard "
    "RL works everywhere. Here a pair counts as highly aligned from base pass@K ≥ {t:.2f} (the paper gives no "
    "number: {command}). A verdict of holds or fails agrees or differs with the pattern; inconclusive and not "
    "exercised are undecided. Verdicts as decided alone; in brackets, how many agree or differ after the "
    "family-wise adjustment.")
PUBLISHED_FILE = Path(__file__).with_name("published.yaml")


def outcome(value: Any) -> str | None:
    """An outcome name in today's vocabulary ('vacuous' is 'not_exercised'); None when absent."""
    return RENAMED.get(value, value) if isinstance(value, str) and value else None


def number(row: dict[str, Any], field: str) -> float | None:
    """A finite number from the row, else None (absent, NaN or not a number)."""
    value = row.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def mapping(row: dict[str, Any], field: str) -> dict[str, Any]:
    value = row.get(field)
    return value if isinstance(value, dict) else {}


def text(row: dict[str, Any], field: str) -> str:
    value = row.get(field)
    return value if isinstance(value, str) else ""


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "outcome": outcome(row.get("outcome")), "adjusted": outcome(row.get("adjusted"))}


def split_label(label: str) -> tuple[str, str]:
    """'test_x_y[a-b]' -> ('test_x_y', 'a-b')."""
    match = re.fullmatch(r"(.*?)\[(.*)\]", label, flags=re.DOTALL)
    return (match.group(1), match.group(2)) if match else (label, "")


def claim_words(row: dict[str, Any]) -> str:
    """The claim in words: its ``claim_text``, else the test name made readable."""
    if text(row, "claim_text").strip():
        return " ".join(text(row, "claim_text").split())
    name = split_label(row["claim"])[0].removeprefix("test_").replace("_", " ").strip()
    return name[:1].upper() + name[1:] if name else row["claim"]


def variant(row: dict[str, Any]) -> str | None:
    """The variant a row judges: the first of its recorded ``variants``, else the first of its ``runs``."""
    variants = row.get("variants")
    if isinstance(variants, list) and variants and isinstance(variants[0], str):
        return variants[0]
    return next(iter(mapping(row, "runs")), None)


def alignment_k(alignment: dict[str, Any]) -> tuple[str, float] | None:
    """The large-k entry of an alignment ({"pass@1": x, "pass@64": y} -> ("pass@64", y))."""
    for key, value in alignment.items():
        if key != "pass@1" and isinstance(value, int | float) and math.isfinite(value):
            return key, float(value)
    return None


def alignment_value(alignment: dict[str, Any]) -> float:
    """What columns are sorted and effects plotted by: base pass@K, else pass@1, else NaN."""
    big = alignment_k(alignment)
    if big is not None:
        return big[1]
    one = alignment.get("pass@1")
    return float(one) if isinstance(one, int | float) else math.nan


@dataclass(frozen=True)
class Column:
    """A matrix column: a pair, or pair@recipe when the run used more than one recipe."""

    key: str
    pair: str
    recipe: str
    alignment: dict[str, float]

    @property
    def name(self) -> str:
        """The pair without the ``@RECIPE`` that ``--recipe`` adds to its id."""
        return self.pair.removesuffix(f"@{self.recipe}") if self.recipe else self.pair

    @property
    def order(self) -> tuple[float, str]:
        value = alignment_value(self.alignment)
        return (math.inf if math.isnan(value) else value, self.key)


@dataclass(frozen=True)
class Family:
    """A claim family: its claims (labels, in display order), sources and published reference numbers."""

    name: str
    sources: list[str]
    published: list[dict[str, str]]
    claims: list[str]

    @property
    def title(self) -> str:
        return self.name or "(no family)"


@dataclass(frozen=True)
class PatternLine:
    """One claim under one recipe read against the paper's pattern: the pairs in each reading of the verdicts
    decided alone, and how many agree and differ after the family-wise adjustment."""

    family: str
    claim: str
    recipe: str
    pattern: str
    agrees: list[str]
    differs: list[str]
    undecided: list[str]
    agrees_adjusted: int
    differs_adjusted: int


def paper_expects(row: dict[str, Any], high_alignment: float) -> str | None:
    """The verdict the paper's pattern predicts for a row: 'holds' for a claim that holds everywhere, and for one
    that holds at high alignment on a pair whose base pass@K reaches ``high_alignment``; 'fails' for the latter on
    a pair below it; None for a claim without a pattern, or a pair without a measured alignment."""
    pattern = text(row, "pattern")
    if pattern == "everywhere":
        return "holds"
    big = alignment_k(mapping(row, "alignment"))
    if pattern != "high-alignment" or big is None:
        return None
    return "holds" if big[1] >= high_alignment else "fails"


def pattern_words(pattern: str, high_alignment: float) -> str:
    """'holds only at high alignment (base pass@K >= 0.90)' or 'holds everywhere'."""
    return (f"holds only at high alignment (base pass@K ≥ {high_alignment:.2f})" if pattern == "high-alignment"
            else "holds everywhere")


@dataclass(frozen=True)
class Matrix:
    """Claims (rows, grouped by family) x columns (sorted by alignment) of normalised findings."""

    families: list[Family]
    columns: list[Column]
    cells: dict[tuple[str, str], dict[str, Any]]
    rows: list[dict[str, Any]]
    high_alignment: float = HIGH_ALIGNMENT

    @property
    def claims(self) -> list[str]:
        return [claim for family in self.families for claim in family.claims]

    @property
    def recipes(self) -> list[tuple[str, list[Column]]]:
        """The columns by recipe (sorted by name; each group in the matrix's order), or one group of every column
        named "" when the run used a single recipe and its pair ids do not name it (no ``--recipe``)."""
        if len({c.recipe for c in self.columns}) <= 1 and all(c.name == c.pair for c in self.columns):
            return [("", self.columns)]
        groups: dict[str, list[Column]] = {}
        for column in self.columns:
            groups.setdefault(column.recipe, []).append(column)
        return sorted(groups.items())

    def against_paper(self, row: dict[str, Any], adjusted: bool = False) -> str | None:
        """How a cell reads against the paper's pattern (arXiv 2508.21188): 'agrees' or 'differs' where the
        verdict (decided alone, or after the family-wise adjustment where the row has one) is holds or fails,
        'undecided' where it is neither; None for a claim without a pattern."""
        expected = paper_expects(row, self.high_alignment)
        if expected is None:
            return None
        verdict = row["adjusted"] or row["outcome"] if adjusted else row["outcome"]
        if verdict not in ("holds", "fails"):
            return "undecided"
        return "agrees" if verdict == expected else "differs"

    def pattern_lines(self) -> list[PatternLine]:
        """Per claim with a pattern and per recipe: the pairs whose verdict agrees, differs, or is undecided."""
        lines = []
        for family in self.families:
            for claim in family.claims:
                for recipe, columns in self.recipes:
                    cells = [(c.name, self.cells[(claim, c.key)]) for c in columns if (claim, c.key) in self.cells]
                    reading = {pair: self.against_paper(row) for pair, row in cells}
                    if not any(reading.values()):
                        continue
                    adjusted = [self.against_paper(row, adjusted=True) for _, row in cells]
                    lines.append(PatternLine(family.title, claim, recipe, text(cells[0][1], "pattern"),
                                             *([p for p, r in reading.items() if r == kind]
                                               for kind in ("agrees", "differs", "undecided")),
                                             adjusted.count("agrees"), adjusted.count("differs")))
        return lines

    def first(self, claim: str) -> dict[str, Any]:
        """The claim's first row: what it says, its family and source."""
        return next(r for r in self.rows if r["claim"] == claim)


def column_key(row: dict[str, Any], multi_recipe: bool) -> str:
    """The pair, with its recipe when the run used several and the pair id does not already name it
    (``--recipe`` makes ids ``PAIR@RECIPE``)."""
    pair, recipe = row["pair"], text(row, "recipe")
    return f"{pair}@{recipe}" if multi_recipe and recipe and not pair.endswith(f"@{recipe}") else pair


def build_matrix(rows: list[dict[str, Any]], high_alignment: float = HIGH_ALIGNMENT) -> Matrix:
    """The matrix of a run's rows: families in the order of their test files, claims in order within them;
    ``high_alignment`` is the base pass@K from which a pair counts as highly aligned (the paper's pattern)."""
    ordered = sorted((normalise(r) for r in rows), key=lambda r: (text(r, "nodeid").split("::")[0], r["claim"]))
    multi_recipe = len({text(r, "recipe") for r in ordered}) > 1
    columns: dict[str, Column] = {}
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    by_family: dict[str, list[str]] = {}
    for row in ordered:
        key = column_key(row, multi_recipe)
        if key not in columns or not columns[key].alignment:
            columns[key] = Column(key, row["pair"], text(row, "recipe"), mapping(row, "alignment"))
        cells[(row["claim"], key)] = row
        claims = by_family.setdefault(text(row, "family"), [])
        if row["claim"] not in claims:
            claims.append(row["claim"])
    families = [_family(name, claims, ordered) for name, claims in by_family.items()]
    return Matrix(families=families, columns=sorted(columns.values(), key=lambda c: c.order), cells=cells,
                  rows=ordered, high_alignment=high_alignment)


def _family(name: str, claims: list[str], rows: list[dict[str, Any]]) -> Family:
    mine = [r for r in rows if text(r, "family") == name]
    sources = list(dict.fromkeys(text(r, "source") for r in mine if text(r, "source")))
    published = list({(p["text"], p.get("source", "")): p for r in mine for p in _published(r)}.values())
    return Family(name, sources, published or published_reference(name), claims)


def _published(row: dict[str, Any]) -> list[dict[str, str]]:
    entries = row.get("published")
    if not isinstance(entries, list):
        return []
    return [{"text": e["text"], "source": e["source"] if isinstance(e.get("source"), str) else ""}
            for e in entries if isinstance(e, dict) and isinstance(e.get("text"), str)]


def published_reference(family: str) -> list[dict[str, str]]:
    """The built-in published numbers for a family (harness/report/published.yaml), for rows without their own."""
    return [{"text": e["text"], "source": e["source"]} for e in _published_table() if family in e["families"]]


@cache
def _published_table() -> list[dict[str, Any]]:
    import yaml

    return yaml.safe_load(PUBLISHED_FILE.read_text())


# ---------------------------------------------------------------- formatting shared by the renderers


def estimate_text(row: dict[str, Any]) -> str:
    """The estimate in the row's measure: a percentage for fractions, a signed pass@k difference otherwise."""
    value = number(row, "estimate")
    return "" if value is None else _fmt(value, text(row, "measure"))


def interval_text(row: dict[str, Any]) -> str:
    """The interval in the row's measure; a pass@k change's is cut to [-1, 1] (a two-run t interval can
    reach far beyond what the measure can take)."""
    low, high = number(row, "low"), number(row, "high")
    if low is None or high is None:
        return ""
    measure = text(row, "measure")
    if measure in BOUNDS:
        floor, ceiling = BOUNDS[measure]
        low, high = max(low, floor), min(high, ceiling)
    return f"[{_fmt(low, measure)}, {_fmt(high, measure)}]"


def _fmt(value: float, measure: str) -> str:
    return f"{round(100 * value)}%" if measure == "fraction" else f"{value:+.3f}"  # an int: never "-0%"


def column_header(column: Column) -> str:
    """'arith-high (pass@1=0.31, pass@64=0.92)' (the pair without its recipe: that is the table's)."""
    parts = [f"{k}={v:.2f}" for k, v in column.alignment.items() if isinstance(v, int | float) and math.isfinite(v)]
    return f"{column.name} ({', '.join(parts)})" if parts else column.name


def adjusted_changes(row: dict[str, Any]) -> bool:
    """Whether the family-wise adjustment changed the row's verdict."""
    return row.get("adjusted") is not None and row["adjusted"] != row["outcome"]


def detail_lines(row: dict[str, Any]) -> list[str]:
    """What a cell's hover shows: message, adjusted verdict, how it was reached, the readouts, the test."""
    lines = [text(row, "message")] if text(row, "message") else []
    if row.get("adjusted"):
        lines.append(f"after family-wise adjustment: {row['adjusted']}")
    lines += context_lines(row)
    lines += [f"{label}: " + ", ".join(f"{k} {readout_text(v)}" for k, v in values.items())
              for label, values in mapping(row, "readouts").items() if isinstance(values, dict)]
    return lines + ([text(row, "nodeid")] if text(row, "nodeid") else [])


def context_lines(row: dict[str, Any]) -> list[str]:
    """How a finding was reached: p-value, runs per variant, why sampling stopped, a shared reference."""
    lines = []
    if number(row, "p_value") is not None:
        lines.append(f"p = {number(row, 'p_value'):.3g}")
    if mapping(row, "runs"):
        lines.append("runs: " + ", ".join(f"{label} {n}" for label, n in mapping(row, "runs").items()))
    for field in ("stopped", "shares_reference"):
        if text(row, field):
            lines.append(f"{field.replace('_', ' ')}: {text(row, field)}")
    return lines


def readout_text(value: Any) -> str:
    """A readout value: a number to 3 significant digits, shares as 'name 0.40, ...'."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {readout_text(v)}" for k, v in value.items())
    return str(value)


# ---------------------------------------------------------------- the terminal matrix


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    name = row["outcome"] or "?"
    return (SHORT.get(name, name) + ("" if row.get("passed", True) else "!")
            + ("*" if adjusted_changes(row) else ""))


def _short_header(column: Column) -> str:
    big = alignment_k(column.alignment)
    return f"{column.key} ({big[0]}={big[1]:.2f})" if big else column.key


def matrix_text(rows: list[dict[str, Any]]) -> str:
    """The terminal matrix; '!' marks a failed test (in regression mode: a flipped finding), '*' a verdict the
    family-wise adjustment changed."""
    m = build_matrix(rows)
    headers = [_short_header(c) for c in m.columns]
    width = max(len(c) for c in m.claims)
    cols = [max(len(h), 9) for h in headers]
    lines = ["pairs sorted by alignment (base pass@k); '!' marks a failed test, '*' an adjusted verdict",
             " " * width + "  " + "  ".join(h.ljust(w) for h, w in zip(headers, cols, strict=True))]
    for claim in m.claims:
        cells = [_cell(m.cells.get((claim, c.key))).ljust(w) for c, w in zip(m.columns, cols, strict=True)]
        lines.append(claim.ljust(width) + "  " + "  ".join(cells))
    return "\n".join(lines)


def jobs_line(jobs: dict[str, list[str]]) -> str:
    computed, loaded = (_strings(jobs.get(kind)) for kind in ("computed", "loaded"))
    unique = len(set(computed) | set(loaded))
    return (f"jobs: {unique} unique; {len(computed)} computed ({len(set(computed))} distinct), "
            f"{len(loaded)} requests loaded from cache")


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
