"""The report as one self-contained HTML page (figures inlined as PNG): fits a 1280-px window and prints.

Every text that comes from a run is escaped (``html.escape`` with quotes, attributes included).
"""

from __future__ import annotations

import html
import json
from typing import Any

from harness.report.matrix import (
    OUTCOMES,
    PAPER_MARK,
    PATTERN_INTRO,
    SHORT,
    Column,
    Matrix,
    adjusted_changes,
    alignment_k,
    claim_words,
    context_lines,
    detail_lines,
    estimate_text,
    interval_text,
    jobs_line,
    number,
    pattern_words,
    split_label,
    text,
)
from harness.report.readouts import readout_tables

STYLE = """
:root{--holds:#b9e3b0;--fails:#f4aaa3;--inconclusive:#fbe3a0;--not_exercised:#dedede;--other:#fff}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:1200px;margin:0 auto;
 padding:0 16px 32px}
h1{font-size:22px;margin:18px 0 6px}h2{font-size:18px;margin:26px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 4px}h4{font-size:13px;margin:6px 0;color:#555}
code,.label{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11px}
pre{background:#f6f6f6;padding:6px 8px;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px}
.setup{color:#444;font-size:13px}
.legend{font-size:12px;margin:6px 0}.legend span.sw{display:inline-block;padding:1px 6px;margin-right:6px;
 border:1px solid #ccc}
table.matrix{border-collapse:collapse;table-layout:fixed;width:100%}
.matrix th,.matrix td{border:1px solid #fff;padding:3px 4px;font-size:12px;vertical-align:middle;
 overflow-wrap:anywhere}
.matrix thead th{background:#eef0f3;font-weight:600;text-align:center;vertical-align:bottom}
.matrix thead th .al{display:block;font-weight:normal;color:#555;font-size:11px}
.matrix tr.family th{background:#dde5f0;text-align:left;font-size:12.5px;padding:4px 6px}
.matrix tr.family .src{font-weight:normal;color:#444;margin-left:8px}
.matrix th.claim{text-align:left;font-weight:normal;background:#fafafa}
.matrix td{text-align:center;line-height:1.25}
.matrix td a{color:inherit;text-decoration:none;display:block}
.matrix td .v{font-weight:600}.matrix td .i{color:#333;font-size:11px}
.matrix td.changed{outline:2px dashed #333;outline-offset:-3px}.matrix td .adj{font-size:11px;font-weight:600}
.matrix td.none{background:#fff;color:#aaa}.matrix td .pp{font-weight:700}
table.pattern{border-collapse:collapse;width:100%;table-layout:fixed;font-size:12px}
.pattern th,.pattern td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top;
 overflow-wrap:anywhere}.pattern th{background:#eef0f3}
.holds{background:var(--holds)}.fails{background:var(--fails)}.inconclusive{background:var(--inconclusive)}
.not_exercised{background:var(--not_exercised)}.other{background:var(--other)}
.label{display:block;color:#666;margin-top:1px}
figure{margin:12px 0}figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:12.5px;color:#444;margin-top:4px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.variants{font-size:12px;columns:4;column-gap:18px;margin:4px 0 0;padding:0;list-style:none}
.cmp{display:grid;grid-template-columns:2fr 1fr;gap:18px;align-items:start}
.published{background:#f6f3ea;border-left:3px solid #c9b77d;padding:4px 10px;font-size:13px}
.published ul,.ours ul{margin:4px 0;padding-left:18px}.ours>ul>li{margin-bottom:6px}
.pill{display:inline-block;padding:0 5px;border-radius:3px;font-size:11.5px;font-weight:600}
.detail{color:#555;font-size:12px}
table.readouts{border-collapse:collapse;margin:4px 0 10px;font-size:12px}
.readouts th,.readouts td{border-bottom:1px solid #ddd;padding:2px 8px;text-align:right}
.readouts th:first-child,.readouts td:first-child{text-align:left;max-width:220px;white-space:normal}
.readouts td{white-space:nowrap}
.readout-grid{display:flex;flex-wrap:wrap;align-items:flex-start;gap:6px 24px}
.readout-grid>div{max-width:100%}
@page{size:A4;margin:12mm}
@media print{body{max-width:none;padding:0;font-size:10pt}.screen{display:none}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 .matrix th,.matrix td{font-size:8pt}.matrix td .i,.matrix td .adj,.matrix thead th .al{font-size:7pt}
 tr,figure,.family-section,.readout-grid>div{break-inside:avoid}h2{break-after:avoid}
 .variants{columns:3}.cmp{grid-template-columns:3fr 2fr}}
"""


def e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _outcome_class(name: str | None) -> str:
    return name if name in OUTCOMES else "other"


def swatch(colour: str) -> str:
    return f"<span class='swatch' style='background:{e(colour)}'></span>"


def column_head(column: Column) -> str:
    """The pair (its recipe is the table's), with the base model's pass@1 and pass@K."""
    parts = [f"pass@1 {column.alignment['pass@1']:.2f}"] if number(column.alignment, "pass@1") is not None else []
    big = alignment_k(column.alignment)
    if big is not None:
        parts.append(f"{big[0]} {big[1]:.2f}")
    return (f"<th scope='col' title='{e(column.key)}'>{e(column.name)}"
            f"<span class='al'>{'<br>'.join(map(e, parts))}</span></th>")


def matrix_cell(m: Matrix, row: dict[str, Any] | None, anchor: str) -> str:
    if row is None:
        return "<td class='none' title='not run on this pair'>–</td>"
    name = row["outcome"] or "?"
    classes = _outcome_class(row["outcome"]) + (" changed" if adjusted_changes(row) else "")
    reading = m.against_paper(row)
    mark = f" <span class='pp'>{PAPER_MARK[reading]}</span>" if reading in PAPER_MARK else ""
    body = [f"<span class='v'>{e(SHORT.get(name, name))}</span>{mark}"]
    if estimate_text(row):
        body.append(f"<br>{e(estimate_text(row))}")
    if interval_text(row):
        body.append(f"<br><span class='i'>{e(interval_text(row))}</span>")
    if adjusted_changes(row):
        body.append(f"<br><span class='adj'>adj. → {e(SHORT.get(row['adjusted'], row['adjusted']))}</span>")
    paper = [f"paper's pattern: {pattern_words(text(row, 'pattern'), m.high_alignment)}: {reading}"] if reading else []
    return (f"<td class='{classes}' title='{e(chr(10).join(paper + detail_lines(row)))}'><a href='#{anchor}'>"
            f"{''.join(body)}</a></td>")


Anchors = dict[tuple[str, str], str]  # (claim, column key) -> id of the finding in the findings section


def matrix_html(m: Matrix, anchors: Anchors) -> str:
    """The matrix: one table per recipe when the run used several, each headed by its recipe."""
    return "".join((f"<h3>Recipe <code>{e(recipe)}</code></h3>" if recipe else "")
                   + matrix_table(m, columns, anchors) for recipe, columns in m.recipes)


def matrix_table(m: Matrix, columns: list[Column], anchors: Anchors) -> str:
    heads = "".join(column_head(c) for c in columns)
    narrow = len(columns) <= 3  # few columns: a narrower table, not cells stretched across the page
    claim_width, table_width = ("38%", f"min(100%, {480 + 140 * len(columns)}px)") if narrow else ("26%", "100%")
    body = []
    for family in m.families:
        claims = [claim for claim in family.claims if any((claim, c.key) in m.cells for c in columns)]
        if not claims:
            continue
        source = f" <span class='src'>{e('; '.join(family.sources))}</span>" if family.sources else ""
        body.append(f"<tr class='family'><th colspan='{len(columns) + 1}'>{e(family.title)}"
                    f"{source}</th></tr>")
        for claim in claims:
            params = split_label(claim)[1]
            label = f" <span class='label'>{e(params)}</span>" if params else ""
            cells = "".join(matrix_cell(m, m.cells.get((claim, c.key)), anchors.get((claim, c.key), ""))
                            for c in columns)
            body.append(f"<tr><th scope='row' class='claim' title='{e(claim)}'>{e(claim_words(m.first(claim)))}"
                        f"{label}</th>{cells}</tr>")
    return (f"<table class='matrix' style='width:{table_width}'><colgroup><col style='width:{claim_width}'></colgroup>"
            f"<thead><tr><th scope='col'>claim</th>{heads}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def legend_html() -> str:
    swatches = "".join(f"<span class='sw {o}'>{e(o.replace('_', ' '))}</span>" for o in OUTCOMES)
    return (f"<div class='legend'>{swatches} <span class='sw' style='outline:2px dashed #333;outline-offset:-3px'>"
            "adj. →</span> the family-wise adjustment changes the verdict (shown after the arrow); "
            "✓ / ✗ the verdict agrees / differs with the paper's pattern (next section). "
            "<span class='screen'>Hover a cell for its message, runs and readouts; click for the finding.</span></div>")


def pairs_html(pairs: list[str], adjusted: int | None = None) -> str:
    count = f"<b>{len(pairs)}</b>" + (f" ({adjusted})" if adjusted is not None else "")
    return count + (f" <span class='label'>{e(', '.join(pairs))}</span>" if pairs else "")


def pattern_html(m: Matrix) -> str:
    """Each claim with a pattern, per recipe: the pairs whose verdict agrees, differs, or is undecided."""
    lines = m.pattern_lines()
    if not lines:
        return ""
    recipes = any(line.recipe for line in lines)
    heads = "<th>claim</th>" + ("<th>recipe</th>" if recipes else "") + "<th>the paper</th>" + "".join(
        f"<th>{h}</th>" for h in ("agrees ✓", "differs ✗", "undecided"))
    rows = []
    for line in lines:
        params = split_label(line.claim)[1]
        label = f" <span class='label'>{e(params)}</span>" if params else ""
        rows.append(f"<tr><td>{e(claim_words(m.first(line.claim)))}{label}</td>"
                    + (f"<td><code>{e(line.recipe)}</code></td>" if recipes else "")
                    + f"<td>{e(pattern_words(line.pattern, m.high_alignment))}</td>"
                    + f"<td>{pairs_html(line.agrees, line.agrees_adjusted)}</td>"
                    + f"<td>{pairs_html(line.differs, line.differs_adjusted)}</td><td>{pairs_html(line.undecided)}</td>"
                    + "</tr>")
    intro = PATTERN_INTRO.format(t=m.high_alignment, command="<code>python -m harness report --high-alignment X</code>")
    return f"<p>{intro}</p><table class='pattern'><tr>{heads}</tr>{''.join(rows)}</table>"


def finding_item(column: str, row: dict[str, Any]) -> str:
    """One finding: verdict, pair, the adjusted verdict where it differs, the message (else the estimate and
    interval), then how it was reached (readouts are in their own tables)."""
    name = row["outcome"] or "?"
    words = [f"<span class='pill {_outcome_class(row['outcome'])}'>{e(name)}</span>", f"<b>{e(column)}</b>"]
    if adjusted_changes(row):
        words.append(f"<span class='adj'>(adjusted: {e(row['adjusted'])})</span>")
    if text(row, "message"):
        words[-1] += ":"
        words.append(e(text(row, "message")))
    else:
        words += [e(t) for t in (estimate_text(row), interval_text(row)) if t]
    context = context_lines(row) + ([text(row, "nodeid")] if text(row, "nodeid") else [])
    details = f"<div class='detail'>{'<br>'.join(map(e, context))}</div>" if context else ""
    return " ".join(words) + details


def findings_html(m: Matrix, anchors: Anchors) -> str:
    sections = []
    for family in m.families:
        claims = []
        for claim in family.claims:
            items = []
            for column in m.columns:
                row = m.cells.get((claim, column.key))
                if row is None:
                    continue
                items.append(f"<li id='{anchors[(claim, column.key)]}'>{finding_item(column.key, row)}</li>")
            claims.append(f"<li><b>{e(claim_words(m.first(claim)))}</b> <code>{e(claim)}</code>"
                          f"<ul>{''.join(items)}</ul></li>")
        published = "".join(f"<li>{e(p['text'])}" + (f" <i>({e(p['source'])})</i>" if p["source"] else "") + "</li>"
                            for p in family.published)
        aside = (f"<div class='published'><h4>Published (for comparison; not measured here)</h4><ul>{published}</ul>"
                 "</div>") if published else "<div></div>"
        source = f"<p class='detail'>Source: {e('; '.join(family.sources))}</p>" if family.sources else ""
        sections.append(f"<section class='family-section'><h3>{e(family.title)}</h3>{source}"
                        f"<div class='cmp'><div class='ours'><h4>This run</h4><ul>{''.join(claims)}</ul></div>"
                        f"{aside}</div></section>")
    return "".join(sections)


def readouts_html(m: Matrix, colours: dict[str, str]) -> str:
    tables = []
    for column, (fields, table) in readout_tables(m).items():
        heads = "".join(f"<th>{e(f)}</th>" for f in fields)
        rows = "".join(f"<tr><td>{swatch(colours.get(label, '#fff'))}{e(label)}</td>"
                       + "".join(f"<td>{'<br>'.join(map(e, v))}</td>" for v in values) + "</tr>"
                       for label, values in table.items())
        tables.append(f"<div><h3>{e(column)}</h3><table class='readouts'><tr><th>variant</th>{heads}</tr>{rows}"
                      "</table></div>")
    return f"<div class='readout-grid'>{''.join(tables)}</div>" if tables else ""


def variants_html(colours: dict[str, str]) -> str:
    items = "".join(f"<li>{swatch(c)}{e(label)}</li>" for label, c in colours.items())
    return f"<ul class='variants'>{items}</ul>"


def figure_html(data: str | None, alt: str, caption: str) -> str:
    if data is None:
        return f"<p class='detail'>{e(alt)}: nothing to plot in this run.</p>"
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{e(alt)}'>"
            f"<figcaption>{caption}</figcaption></figure>")


EFFECT_CAPTION = (
    "Each claim's effect against the pair's alignment (base pass@K), one panel per claim family and measure: "
    "a <i>gain</i> is the change in pass@k, a <i>difference</i> the variant's gain minus the reference's, a "
    "<i>share</i> the fraction of the reference's gain recovered (dashed line: all of it). Panels of one measure "
    "share their y axis; a run under several recipes has a panel per recipe. The dotted vertical line is where "
    "a pair starts to count as highly aligned (the paper's pattern). Bars are the verdicts' intervals (95%, or "
    "the deciding look's level); a bar that reaches the edge of a panel goes on beyond it, and a triangle at the "
    "edge is a point beyond the axis, with its value. Series are spread slightly sideways at each pair so that "
    "their bars stay apart. Colour = variant, as in every figure of this report.")
PASSK_CAPTION = ("pass@k of the base model (black, thick) and of each RL variant, one panel per pair in the "
                 "matrix's order (alignment rising).")


def setup_html(run: dict[str, Any]) -> str:
    facts = [f"{name} <b>{e(run[key])}</b>" for name, key in (("run", "id"), ("recorded", "time"),
                                                              ("budget", "budget"), ("seeds", "seeds"))
             if run.get(key) not in (None, "")]
    if isinstance(run.get("pairs"), list):
        facts.append("pairs " + ", ".join(f"<code>{e(p)}</code>" for p in run["pairs"]))
    if isinstance(run.get("recipes"), list) and run["recipes"]:
        facts.append("recipes " + ", ".join(f"<code>{e(r)}</code>" for r in run["recipes"]))
    parts = [f"<p class='setup'>{'; '.join(facts)}.</p>"] if facts else []
    if isinstance(run.get("command"), str):
        parts.append(f"<pre>{e(run['command'])}</pre>")
    if isinstance(run.get("libraries"), dict):
        parts.append(f"<p class='setup'>Libraries: {e(json.dumps(run['libraries']))}</p>")
    return "".join(parts)


def report_html(run: dict[str, Any], m: Matrix, colours: dict[str, str], effect_png: str | None,
                passk_png: str | None) -> str:
    anchors = {cell: f"finding-{i}" for i, cell in enumerate(m.cells)}
    readouts = readouts_html(m, colours)
    pattern = pattern_html(m)
    jobs = f"<p class='detail'>{e(jobs_line(run['jobs']))}</p>" if isinstance(run.get("jobs"), dict) else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Claims x pairs{e(' — ' + run['id']) if run.get('id') else ''}</title><style>{STYLE}</style></head><body>
<h1>Claims x pairs</h1>{setup_html(run)}
<h2>Matrix</h2>
<p>Rows are claims, grouped by family with their source; columns are pairs sorted by alignment (the base model's
pass@1 and pass@K, rising to the right). A cell gives the verdict, the estimate and its interval (95%, or the
deciding look's level; a percentage is a share of the reference's gain, a signed number a pass@k difference).
A claim that fails on a low-alignment pair is a finding, not a bug.</p>
{legend_html()}{matrix_html(m, anchors)}
{f"<h2>Against the paper's pattern</h2>{pattern}" if pattern else ""}
<h2>Effect against alignment</h2>
{figure_html(effect_png, "Effect against alignment", EFFECT_CAPTION)}
<h2>pass@k of base and RL variants</h2>
{figure_html(passk_png, "pass@k curves", PASSK_CAPTION)}
<h4>Variant colours (all figures and tables)</h4>{variants_html(colours)}
{f"<h2>Mechanism readouts</h2>{readouts}" if readouts else ""}
<h2>Findings by family</h2>{findings_html(m, anchors)}
{jobs}</body></html>
"""
