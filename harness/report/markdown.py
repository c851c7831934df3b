"""The report as Markdown: every text that comes from a run (ids, messages, commands) is escaped."""

from __future__ import annotations

import json
import re
from typing import Any

from harness.report.matrix import (
    PAPER_MARK,
    PATTERN_INTRO,
    Column,
    Matrix,
    adjusted_changes,
    claim_words,
    column_header,
    estimate_text,
    interval_text,
    jobs_line,
    pattern_words,
    split_label,
    text,
)
from harness.report.readouts import readout_tables

# Markdown's inline syntax (code, emphasis, links, HTML, tables, strike-through, entities, headings); other
# punctuation only matters at the start of a line, where no run text is put.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#])")


def md(value: Any) -> str:
    """Text as literal Markdown: one line, syntax characters backslash-escaped (safe in a table cell too)."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def code_block(value: str) -> str:
    """A fenced block holding ``value`` verbatim: the fence is longer than any run of backticks in it."""
    runs = [len(r) for r in re.findall(r"`+", value)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}\n{value}\n{fence}"


def cell(row: dict[str, Any] | None, reading: str | None = None) -> str:
    if row is None:
        return "–"
    mark = f" {PAPER_MARK[reading]}" if reading in PAPER_MARK else ""
    words = [md(row["outcome"] or "?") + mark, md(estimate_text(row)),
             md(interval_text(row))]
    if adjusted_changes(row):
        words.append(f"(adjusted: {md(row['adjusted'])})")
    return " ".join(w for w in words if w)


def matrix_markdown(m: Matrix) -> str:
    """The matrix: one table per recipe when the run used several, each headed by its recipe."""
    return "\n\n".join((f"### Recipe {md(recipe)}\n\n" if recipe else "") + matrix_table(m, columns)
                       for recipe, columns in m.recipes)


def matrix_table(m: Matrix, columns: list[Column]) -> str:
    headers = [md(column_header(c)) for c in columns]
    out = ["| family | claim | " + " | ".join(headers) + " |", "|---" * (len(headers) + 2) + "|"]
    for family in m.families:
        for claim in family.claims:
            row = m.first(claim)
            cells = [m.cells.get((claim, c.key)) for c in columns]
            if not any(cells):
                continue
            params = split_label(claim)[1]
            name = md(claim_words(row)) + (f" ({md(params)})" if params else "")
            out.append(f"| {md(family.title)} | {name} | "
                       + " | ".join(cell(r, m.against_paper(r) if r else None) for r in cells) + " |")
    return "\n".join(out)


def pattern_markdown(m: Matrix) -> str:
    """Each claim with a pattern, per recipe: the pairs whose verdict agrees, differs, or is undecided."""
    lines = m.pattern_lines()
    if not lines:
        return ""
    recipes = any(line.recipe for line in lines)
    out = ["| claim | " + ("recipe | " if recipes else "") + "the paper | agrees ✓ | differs ✗ | undecided |",
           "|---" * (5 + recipes) + "|"]
    for line in lines:
        params = split_label(line.claim)[1]
        name = md(claim_words(m.first(line.claim))) + (f" ({md(params)})" if params else "")
        out.append(f"| {name} | " + (f"{md(line.recipe)} | " if recipes else "")
                   + f"{md(pattern_words(line.pattern, m.high_alignment))} | "
                   + " | ".join(f"{len(pairs)}" + (f" ({adjusted})" if adjusted is not None else "")
                                + (f": {md(', '.join(pairs))}" if pairs else "")
                                for pairs, adjusted in ((line.agrees, line.agrees_adjusted),
                                                        (line.differs, line.differs_adjusted),
                                                        (line.undecided, None))) + " |")
    return "\n".join(out)


def findings_markdown(m: Matrix) -> str:
    """Per family: sources, the published numbers (labelled), and each claim's findings on each pair."""
    parts = []
    for family in m.families:
        lines = [f"### {md(family.title)}"]
        if family.sources:
            lines.append("Source: " + "; ".join(md(s) for s in family.sources))
        if family.published:
            lines.append("Published (for comparison; not measured here):\n\n" + "\n".join(
                f"- {md(p['text'])}" + (f" ({md(p['source'])})" if p["source"] else "") for p in family.published))
        claims = []
        for claim in family.claims:
            first = m.first(claim)
            claims.append(f"- **{md(claim_words(first))}** ({md(claim)})")
            for column in m.columns:
                row = m.cells.get((claim, column.key))
                if row is not None:
                    claims.append(f"  - {md(column.key)}: {cell(row)}" + (f": {md(text(row, 'message'))}"
                                                                          if text(row, "message") else ""))
        lines.append("This run:\n\n" + "\n".join(claims))
        parts.append("\n\n".join(lines))
    return "\n\n".join(parts)


def readouts_markdown(m: Matrix) -> str:
    parts = []
    for column, (fields, table) in readout_tables(m).items():
        lines = [f"### {md(column)}", "", "| variant | " + " | ".join(md(f) for f in fields) + " |",
                 "|---" * (len(fields) + 1) + "|"]
        lines += [f"| {md(label)} | " + " | ".join(md("; ".join(v)) for v in values) + " |"
                  for label, values in table.items()]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def setup_lines(run: dict[str, Any]) -> list[str]:
    """The run's identity and settings, each present field once."""
    facts = [f"{name} {md(run[key])}" for name, key in (("run", "id"), ("recorded", "time"), ("budget", "budget"),
                                                          ("seeds", "seeds")) if run.get(key) not in (None, "")]
    if isinstance(run.get("pairs"), list):
        facts.append("pairs " + ", ".join(md(p) for p in run["pairs"]))
    if isinstance(run.get("recipes"), list) and run["recipes"]:
        facts.append("recipes " + ", ".join(md(r) for r in run["recipes"]))
    lines = ["; ".join(facts) + "."] if facts else []
    if isinstance(run.get("command"), str):
        lines.append("Command:\n\n" + code_block(run["command"]))
    if isinstance(run.get("libraries"), dict):
        lines.append("Libraries: " + md(json.dumps(run["libraries"])))
    return lines


def report_markdown(run: dict[str, Any], m: Matrix) -> str:
    readouts = readouts_markdown(m)
    pattern = pattern_markdown(m)
    parts = [
        "# Claims x pairs", *setup_lines(run),
        "Columns are pairs sorted by alignment (the base model's pass@1 and pass@K). A cell gives the verdict, "
        "the estimate and its interval (95%, or the deciding look's level; a percentage is a share of the "
        "reference's gain, a signed number a pass@k difference) and the verdict after the family-wise "
        "adjustment where it differs; ✓ / ✗ mark a verdict that agrees / differs with the paper's pattern. A "
        "claim that fails on a low-alignment pair is a finding, not a bug.",
        "## Matrix", matrix_markdown(m),
        *(["## Against the paper's pattern", PATTERN_INTRO.format(
            t=m.high_alignment, command="`python -m harness report --high-alignment X`"), pattern] if pattern else []),
        "## Findings by family", findings_markdown(m),
        *(["## Mechanism readouts", readouts] if readouts else []),
    ]
    if isinstance(run.get("jobs"), dict):
        parts.append(md(jobs_line(run["jobs"])))
    return "\n\n".join(parts) + "\n"
