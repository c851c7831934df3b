"""The claims x pairs report: a matrix as data, rendered as text, Markdown and self-contained HTML with plots.

Rendered from a recorded run (``<cache>/runs/``) and cached evaluations alone: nothing is re-run.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SYMBOLS = {"holds": "holds", "fails": "FAILS", "inconclusive": "incon.", "vacuous": "vacuous"}

# Published reference numbers (DESIGN §4), each with its source, shown beside ours and labelled as published.
PUBLISHED = [
    ("spurious rewards", "Qwen2.5-Math-7B, MATH500 absolute gain: ground truth +28.8, majority vote +26.5, "
     "incorrect +24.6, random +21.4, format +16.4; Llama3 and OLMo2 gain little or lose",
     "Shao et al. 2025, arXiv 2506.10947"),
    ("one-shot RLVR", "Qwen2.5-Math-1.5B, MATH500 36.0 -> 73.6 with one example, 73.6 with 1.2k examples",
     "Wang et al. 2025, arXiv 2504.20571"),
    ("sample polarity", "Qwen2.5-Math-7B and Qwen3-4B: NSR alone improves pass@k for k = 1..256, often matching "
     "PPO/GRPO; PSR raises pass@1 and lowers large-k pass@k", "Zhu et al. 2025, arXiv 2506.01347"),
    ("model-task alignment", "Qwen2.5-7B MATH500 base 40.8, ground truth 71.0, random 57.5, incorrect 57.0, "
     "majority vote 62.1, one-shot 65.2, NSR 68.7; Llama-3.1-8B-Instruct base 32.5, random 26.8 "
     "(secondary summary, to be checked against the PDF)", "Wu et al. 2025, arXiv 2508.21188"),
]


@dataclass(frozen=True)
class Matrix:
    """Claims (rows) x pairs (columns sorted by alignment) of verdicts."""

    claims: list[str]
    pairs: list[str]
    alignment: dict[str, dict[str, float]]
    cells: dict[tuple[str, str], dict[str, Any]]


def build_matrix(rows: list[dict[str, Any]]) -> Matrix:
    alignment: dict[str, dict[str, float]] = {}
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    claims: list[str] = []
    for row in sorted(rows, key=lambda r: (r.get("nodeid", "").split("::")[0], r["claim"])):
        alignment.setdefault(row["pair"], row["alignment"])
        cells[(row["claim"], row["pair"])] = row
        if row["claim"] not in claims:
            claims.append(row["claim"])
    pairs = sorted(alignment, key=lambda p: (_alignment_value(alignment[p]), p))
    return Matrix(claims=claims, pairs=pairs, alignment=alignment, cells=cells)


def _alignment_value(a: dict[str, float]) -> float:
    big = [k for k in a if k != "pass@1"]
    return a[big[0]] if big else a.get("pass@1", 0.0)


def _header(pair: str, a: dict[str, float]) -> str:
    big = [k for k in a if k != "pass@1"]
    return f"{pair} ({big[0]}={a[big[0]]:.2f})" if big else pair


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    mark = "" if row.get("passed", True) else "!"
    return SYMBOLS[row["outcome"]] + mark


def matrix_text(rows: list[dict[str, Any]]) -> str:
    """The terminal matrix; '!' marks a test that failed (in regression mode: a flipped finding)."""
    m = build_matrix(rows)
    headers = [_header(p, m.alignment[p]) for p in m.pairs]
    width = max(len(c) for c in m.claims)
    cols = [max(len(h), 9) for h in headers]
    lines = ["pairs sorted by alignment (base pass@k); '!' marks a failed test",
             " " * width + "  " + "  ".join(h.ljust(w) for h, w in zip(headers, cols, strict=True))]
    for claim in m.claims:
        cells = [_cell(m.cells.get((claim, p))).ljust(w) for p, w in zip(m.pairs, cols, strict=True)]
        lines.append(claim.ljust(width) + "  " + "  ".join(cells))
    return "\n".join(lines)


def jobs_line(jobs: dict[str, list[str]]) -> str:
    computed, loaded = jobs["computed"], jobs["loaded"]
    unique = len(set(computed) | set(loaded))
    return (f"jobs: {unique} unique; {len(computed)} computed ({len(set(computed))} distinct), "
            f"{len(loaded)} requests loaded from cache")


def _md_cell(text: str) -> str:
    """Text for a Markdown table cell: a '|' (e.g. in a parameter id) would split the cell."""
    return text.replace("|", "\\|")


def matrix_markdown(m: Matrix) -> str:
    headers = [_md_cell(_header(p, m.alignment[p])) for p in m.pairs]
    out = ["| claim | " + " | ".join(headers) + " |", "|---" * (len(headers) + 1) + "|"]
    for claim in m.claims:
        out.append(f"| {_md_cell(claim)} | " + " | ".join(_cell(m.cells.get((claim, p))) for p in m.pairs) + " |")
    return "\n".join(out)


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


FRACTION_LIMITS = (-1.5, 2.5)  # fractions of a small reference gain can be huge: clip for reading


def effect_plot(m: Matrix) -> str:
    """Each claim's effect against alignment, one point per pair: fractions of the standard gain in one
    panel (clipped to FRACTION_LIMITS), pass@k gains in another (base64 PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[str, dict[str, list[tuple[float, float]]]] = {"fraction": defaultdict(list), "gain": defaultdict(list)}
    for (claim, pair), row in m.cells.items():
        effect, measure = row.get("effect"), row.get("measure", "gain")
        if effect is None or math.isnan(float(effect)) or measure not in panels:
            continue
        if measure == "fraction":
            effect = min(max(float(effect), FRACTION_LIMITS[0]), FRACTION_LIMITS[1])
        panels[measure][claim].append((_alignment_value(m.alignment[pair]), float(effect)))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    titles = {"fraction": "fraction of the standard-RL gain recovered (clipped)", "gain": "gain in pass@k"}
    for ax, (measure, by_claim) in zip(axes, panels.items(), strict=True):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)
        for claim, points in sorted(by_claim.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=claim, lw=1)
        ax.axhline(0, color="grey", lw=0.5)
        if measure == "fraction":
            ax.axhline(1, color="grey", lw=0.5, ls="--")
        ax.set_title(titles[measure], fontsize=10)
        ax.set_xlabel("alignment: base pass@k at the pair's k")
        if by_claim:
            ax.legend(fontsize=5, loc="best")
    data = _png(fig)
    plt.close(fig)
    return data


KS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def passk_plot(curves: dict[str, dict[str, list[float]]]) -> str:
    """pass@k at k = 1, 2, 4, ... of the base model and RL variants, one panel per pair (base64 PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = sorted(curves)
    cols = min(4, max(1, len(pairs)))
    rows = math.ceil(len(pairs) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.5 * rows), squeeze=False)
    for ax, pair in zip(axes.flat, pairs, strict=False):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)
        for label, ys in sorted(curves[pair].items()):
            ax.plot(KS[:len(ys)], ys, label=label, marker=".", lw=2.5 if label == "base" else 1,
                    color="black" if label == "base" else None)
        ax.set_xscale("log", base=2)
        ax.set_title(pair, fontsize=9)
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k")
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    axes[0][0].legend(fontsize=5)
    data = _png(fig)
    plt.close(fig)
    return data


def passk_curves(run: dict[str, Any], cache_root: Path) -> dict[str, dict[str, list[float]]]:
    """pass@k (k = 1, 2, 4, ... up to n) of each pair's base model and RL variants, from the cached evaluations."""
    from harness.cache import Cache
    from harness.evaluate import load_result
    from harness.specs import EvalSpec, from_dict

    cache = Cache(cache_root)
    curves: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for entry in run.get("evaluations", []):
        spec = from_dict(entry["spec"])
        assert isinstance(spec, EvalSpec)
        if not cache.contains(spec):
            continue
        result = load_result(spec, cache.path(spec.key))
        curves[entry["pair"]].setdefault(entry["label"], [result.pass_at_k(k) for k in KS if k <= result.n])
    return dict(curves)


def render(run: dict[str, Any], cache_root: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html (self-contained, generated text escaped)."""
    m = build_matrix(run["rows"])
    out_dir.mkdir(parents=True, exist_ok=True)
    details = [f"- **{r['claim']}** on {r['pair']}: {r['outcome']}: {r['message']}" for r in run["rows"]]
    published = [f"- {name} (published, {source}): {text}" for name, text, source in PUBLISHED]
    setup = (f"Command: `{run['command']}`; budget {run['budget']}, seeds {run['seeds']}, pairs "
             f"{', '.join(run['pairs'])}; libraries {json.dumps(run['libraries'])}; recorded {run['time']}.")
    md = "\n\n".join([
        "# Claims x pairs", setup, "Pairs are sorted by alignment (the base model's pass@k). A claim that fails "
        "on a low-alignment pair is a finding, not a bug.", matrix_markdown(m), "## Findings", "\n".join(details),
        "## Published numbers (for comparison; not measured here)", "\n".join(published), jobs_line(run["jobs"]),
    ])
    md_path = out_dir / "report.md"
    md_path.write_text(md + "\n")
    curves = passk_curves(run, cache_root)
    table = "".join(
        "<tr><th>" + html.escape(c) + "</th>" + "".join(
            f"<td class='{html.escape(str((m.cells.get((c, p)) or {}).get('outcome', '')))}' "
            f"title='{html.escape(str((m.cells.get((c, p)) or {}).get('message', '')), quote=True)}'>"
            f"{html.escape(_cell(m.cells.get((c, p))))}</td>" for p in m.pairs) + "</tr>"
        for c in m.claims)
    heads = "".join(f"<th>{html.escape(_header(p, m.alignment[p]))}</th>" for p in m.pairs)
    findings_html = "".join(f"<li><b>{html.escape(r['claim'])}</b> on {html.escape(r['pair'])}: "
                            f"{html.escape(r['outcome'])}: {html.escape(r['message'])}</li>" for r in run["rows"])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Claims x pairs</title><style>
body{{font-family:sans-serif;max-width:1200px;margin:auto}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}}
table{{border-collapse:collapse}} .holds{{background:#cfc}} .fails{{background:#fcc}}
.inconclusive{{background:#ffc}} .vacuous{{background:#ddd}}</style></head><body>
<h1>Claims x pairs</h1><p>{html.escape(setup)}</p>
<p>Pairs are sorted by alignment (base pass@k). A claim that fails on a low-alignment pair is a finding, not a bug.</p>
<table><tr><th>claim</th>{heads}</tr>{table}</table>
<h2>Effect against alignment</h2><img src="data:image/png;base64,{effect_plot(m)}">
<h2>pass@k of base and RL variants</h2>{f'<img src="data:image/png;base64,{passk_plot(curves)}">' if curves else ''}
<h2>Findings</h2><ul>{findings_html}</ul>
<h2>Published numbers (for comparison; not measured here)</h2><ul>{''.join(f'<li>{html.escape(p[2:])}</li>'
                                                                           for p in published)}</ul>
<p>{html.escape(jobs_line(run['jobs']))}</p></body></html>"""
    html_path = out_dir / "report.html"
    html_path.write_text(page)
    return md_path, html_path


def latest_run(cache_root: Path) -> dict[str, Any]:
    runs = cache_root / "runs"
    pointer = runs / "latest.json"
    if not pointer.exists():
        raise FileNotFoundError(f"no recorded run under {runs}; run the claims first: pytest claims/")
    return json.loads((runs / pointer.read_text().strip()).read_text())
