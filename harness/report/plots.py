"""The report's figures: effect against alignment (small multiples, one panel per claim family and measure)
and pass@k curves (one panel per pair), with one colour per variant across both.

Figures are sized for print (``WIDTH_IN`` inches wide, fonts of at least 8 pt) and saved at ``DPI``, so
they are at most ``WIDTH_IN * DPI`` pixels wide on screen.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.report.matrix import (
    BOUNDS,
    MEASURES,
    Column,
    Matrix,
    alignment_value,
    claim_words,
    mapping,
    number,
    split_label,
    text,
    variant,
)

BASE = "base"
BASE_COLOUR = "#000000"
REFERENCE = "standard RL"  # the reference of most claims (harness.results.describe_variant): coloured first
# tab10, then colours chosen to differ from it (from Dark2 and Paired); all dark enough for thin lines on white.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#1b9e77", "#e6ab02", "#c51b7d", "#80b1d3", "#6a3d9a", "#a6761d", "#66a61e",
           "#fb9a99", "#b15928")
WIDTH_IN = 7.0  # a printed page's text width
DPI = 160  # 7 in -> 1120 px on screen
FONT = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
        "legend.fontsize": 8, "figure.titlesize": 9}
LEGEND_LINE_IN = 0.16  # height of one 8-pt legend line
LEGEND_CHARS = 24  # legend text wider than this wraps (an effect panel is a third of WIDTH_IN)
# The y range a measure's panels may span: a fraction of a tiny reference gain can be huge, and a t interval of two
# runs can pass the bounds of pass@k; points beyond are drawn at the edge with their value.
MEASURE_LIMITS = {"fraction": (-1.5, 2.0), **BOUNDS}  # a share of the gain: a display range
KS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MEASURE_LABELS = {"gain": "gain in pass@k", "difference": "gain minus reference gain",
                  "fraction": "share of reference gain"}
DODGE = 0.012  # alignment units between neighbouring series at one pair
STYLES = (("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."))  # series sharing a colour in one panel


@dataclass(frozen=True)
class Curve:
    """pass@k at k = 1, 2, 4, ... of one model (``label``: 'base' or an RL variant) on one pair and recipe."""

    pair: str
    recipe: str
    label: str
    values: list[float]


def variant_colours(labels: Iterable[str]) -> dict[str, str]:
    """One colour per variant label for every figure of a report: 'base' black, the reference first, the rest
    in sorted order (so a variant missing from one pair or panel shifts nothing)."""
    others = sorted(set(labels) - {BASE}, key=lambda label: (label != REFERENCE, label))
    return {BASE: BASE_COLOUR, **{label: PALETTE[i % len(PALETTE)] for i, label in enumerate(others)}}


def series_key(row: dict[str, Any]) -> str:
    """What a row's point is coloured by: its variant, else (no variant recorded) the claim label."""
    return variant(row) or row["claim"]


def report_labels(m: Matrix, curves: list[Curve]) -> list[str]:
    """Every variant label of a report: the rows' series and readouts, and the curves."""
    labels = [series_key(r) for r in m.rows]
    labels += [label for r in m.rows for label in mapping(r, "readouts")]
    return labels + [c.label for c in curves]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig: Any) -> str:
    """The figure as base64 PNG (closed afterwards)."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _grid(plt: Any, heights: list[float], cols: int, n: int) -> tuple[Any, list[Any]]:
    """A constrained-layout figure WIDTH_IN wide with ``n`` axes in rows of ``cols``, row i ``heights[i]`` tall
    (each row's height includes what is drawn below its axes, so axes keep their size)."""
    fig = plt.figure(figsize=(WIDTH_IN, sum(heights)), layout="constrained")
    grid = fig.add_gridspec(len(heights), cols, height_ratios=heights)
    return fig, [fig.add_subplot(grid[i // cols, i % cols]) for i in range(n)]


# ---------------------------------------------------------------- effect against alignment


def _effect(row: dict[str, Any]) -> float | None:
    return number(row, "effect") if number(row, "effect") is not None else number(row, "estimate")


def _panels(m: Matrix) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(title, measure, rows) for each family and measure with at least one plottable effect; per recipe too
    when the run used several (the title names it), so that a series joins one recipe's pairs."""
    panels = []
    for recipe, columns in m.recipes:
        for family in m.families:
            cells = [m.cells[(claim, c.key)] for claim in family.claims for c in columns if (claim, c.key) in m.cells]
            for measure in MEASURES:
                rows = [r for r in cells if (text(r, "measure") or "gain") == measure
                        and _effect(r) is not None and not math.isnan(alignment_value(mapping(r, "alignment")))]
                if rows:
                    panels.append((family.title + (f"\n{recipe}" if recipe else ""), measure, rows))
    return panels


def _limits(rows: list[dict[str, Any]], measure: str) -> tuple[float, float]:
    """The y range of a measure's panels: its estimates (and 0; 1 for shares) with room around them, within
    MEASURE_LIMITS; intervals wider than that run to the panel's edge, so a few runs' wide intervals do not
    flatten every estimate of the measure."""
    values = [0.0, 1.0] if measure == "fraction" else [0.0]
    values += [v for r in rows if (v := _effect(r)) is not None]
    low, high = min(values), max(values)
    pad = 0.25 * (high - low or 0.1)
    floor, ceiling = MEASURE_LIMITS.get(measure, (-math.inf, math.inf))
    return max(low - pad, floor), min(high + pad, ceiling)


def effect_figure(m: Matrix, colours: dict[str, str]) -> Any | None:
    """Effect against alignment: a panel per claim family and measure (fractions, gains and differences never
    share an axis; panels of one measure share their y range), one series per claim with interval bars,
    coloured by variant. Effects beyond MEASURE_LIMITS are drawn as triangles at the edge, with the value."""
    panels = _panels(m)
    if not panels:
        return None
    plt = _pyplot()
    limits = {measure: _limits([r for _, ms, rows in panels if ms == measure for r in rows], measure)
              for measure in {ms for _, ms, _ in panels}}
    series = [_series(rows) for _, _, rows in panels]
    cols = min(3, len(panels))
    lines = [sum(label.count("\n") + 1 for label in s) for s in series]
    legends = [0.05 + LEGEND_LINE_IN * max(lines[i:i + cols]) for i in range(0, len(panels), cols)]
    with plt.rc_context(FONT):
        # each row of panels is followed by a row holding their legends (axes without frame or ticks)
        heights = [h for legend in legends for h in (2.1, legend)]
        fig, cells = _grid(plt, heights, cols, 2 * len(legends) * cols)
        for i, ((family, measure, _), lines) in enumerate(zip(panels, series, strict=True)):
            ax, key = cells[2 * cols * (i // cols) + i % cols], cells[2 * cols * (i // cols) + cols + i % cols]
            _effect_panel(ax, lines, measure, limits[measure], colours)
            ax.axvline(m.high_alignment, color=BASE_COLOUR, ls=":", lw=0.8)  # the paper's pattern's threshold
            ax.set_title(family)
            key.legend(*ax.get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(-0.25, 1), frameon=False,
                       handlelength=2.0, borderaxespad=0)
        for cell in cells:
            if not cell.has_data() and cell.get_legend() is None:
                fig.delaxes(cell)  # an unused grid cell or an empty legend cell
            elif not cell.has_data():
                cell.axis("off")
    return fig


def _series(rows: list[dict[str, Any]]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """A panel's series: {legend label: (colour key, rows sorted by alignment)}, one per claim. A series that
    shares its colour with another says which claim it is: its parameters other than the variant, else the
    claim in words (less the words all such claims of the panel begin with)."""
    by_claim: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_claim.setdefault(row["claim"], []).append(row)
    keys = {claim: series_key(points[0]) for claim, points in by_claim.items()}
    words = {claim: claim_words(points[0]).split() for claim, points in by_claim.items()}
    common = 0 if len(words) < 2 else next(
        (i for i, column in enumerate(zip(*words.values(), strict=False)) if len(set(column)) > 1),
        min(map(len, words.values())))
    labels = {}
    for claim, key in keys.items():
        siblings = [c for c, k in keys.items() if k == key]
        params = {c: "-".join(p for p in split_label(c)[1].split("-") if p and p not in key.split()) for c in siblings}
        if len(siblings) == 1:
            labels[claim] = key
        elif len(set(params.values())) == len(siblings) and all(params.values()):
            labels[claim] = f"{key} · {params[claim]}"
        else:
            labels[claim] = f"{key} · {' '.join(words[claim][common:] or words[claim])}"
    return {textwrap.fill(labels[claim], LEGEND_CHARS, subsequent_indent="  ", break_on_hyphens=False):
            (keys[claim], sorted(points, key=lambda r: alignment_value(mapping(r, "alignment"))))
            for claim, points in by_claim.items()}


def _effect_panel(ax: Any, series: dict[str, tuple[str, list[dict[str, Any]]]], measure: str,
                  limits: tuple[float, float], colours: dict[str, str]) -> None:
    low_lim, high_lim = limits
    shared: dict[str, int] = {}  # how many series of this panel already use the colour
    for i, (label, (key, points)) in enumerate(series.items()):
        marker, line = STYLES[shared.get(key, 0) % len(STYLES)]
        shared[key] = shared.get(key, 0) + 1
        colour = colours.get(key, BASE_COLOUR)
        dodge = DODGE * (i - (len(series) - 1) / 2)  # series side by side at a pair, so their bars don't overlap
        xs = [alignment_value(mapping(r, "alignment")) + dodge for r in points]
        ys = [_effect(r) for r in points]
        shown = [min(max(y, low_lim), high_lim) for y in ys]
        ax.plot(xs, shown, color=colour, ls=line, lw=1, marker=marker, ms=4, label=label, gid=key)
        for r, x, y, s in zip(points, xs, ys, shown, strict=True):
            low, high = number(r, "low"), number(r, "high")
            if low is not None and high is not None:
                ax.plot([x, x], [max(low, low_lim), min(high, high_lim)], color=colour, lw=0.8, gid=key)
            if y != s:  # clipped: a triangle at the edge, pointing out, with the value
                ax.plot([x], [s], marker="^" if y > s else "v", color=colour, ms=6, ls="none", gid=key)
                ax.annotate(_value(y, measure), (x, s), textcoords="offset points", xytext=(0, -6 if y > s else 6),
                            rotation=90, ha="center", va="top" if y > s else "bottom", color=colour,
                            bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 0.5})
    ax.axhline(0, color="grey", lw=0.6)
    if measure == "fraction":
        ax.axhline(1, color="grey", lw=0.6, ls="--")
        from matplotlib.ticker import PercentFormatter

        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(low_lim, high_lim)
    ax.set_xlim(-0.05, 1.05)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "", "0.5", "", "1"])
    ax.set_xlabel("alignment (base pass@K)")
    ax.set_ylabel(MEASURE_LABELS[measure])
    ax.grid(alpha=0.25, lw=0.5)


def _value(y: float, measure: str) -> str:
    return f"{100 * y:.0f}%" if measure == "fraction" else f"{y:+.2f}"


# ---------------------------------------------------------------- pass@k curves


def passk_figure(columns: list[Column], curves: list[Curve], colours: dict[str, str]) -> Any | None:
    """pass@k of the base model (black, thick) and each RL variant, a panel per matrix column (in the matrix's
    alignment order), one legend for the figure. A curve recorded without a recipe belongs to every column of
    its pair."""
    panels = [(c, [cv for cv in curves if cv.pair == c.pair and cv.recipe in (c.recipe, "")]) for c in columns]
    panels = [(c, cvs) for c, cvs in panels if cvs]
    if not panels:
        return None
    plt = _pyplot()
    from matplotlib.ticker import FixedLocator, NullLocator

    labels = [label for label in colours if any(cv.label == label for _, cvs in panels for cv in cvs)]
    cols = min(2 if len(panels) <= 4 else 3, len(panels))
    rows = math.ceil(len(panels) / cols)
    height = 2.5 if cols < 3 else 2.1
    legend = 0.2 + LEGEND_LINE_IN * math.ceil(len(labels) / 3)
    with plt.rc_context(FONT):
        fig, axes = _grid(plt, [height] * rows, cols, len(panels))
        fig.set_figheight(height * rows + legend)  # the legend's room, below equal rows
        handles: dict[str, Any] = {}
        for i, (ax, (column, cvs)) in enumerate(zip(axes, panels, strict=True)):
            for curve in sorted(cvs, key=lambda cv: (cv.label == BASE, cv.label)):  # base drawn last, on top
                base = curve.label == BASE
                (handles[curve.label],) = ax.plot(
                    KS[:len(curve.values)], curve.values, label=curve.label, gid=curve.label,
                    color=colours.get(curve.label, BASE_COLOUR), lw=2.6 if base else 1.1, marker=None if base else ".",
                    ms=3, zorder=3 if base else 2)
            ax.set_xscale("log", base=2)
            ks = KS[:max(len(cv.values) for cv in cvs)]
            ax.xaxis.set_major_locator(FixedLocator(ks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([str(k) for k in ks])
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(column.key)
            ax.grid(alpha=0.25, lw=0.5)
            if i % cols == 0:
                ax.set_ylabel("pass@k")
            if i >= len(panels) - cols:
                ax.set_xlabel("k (samples per problem)")
        fig.legend([handles[label] for label in labels], labels, loc="outside lower center", ncol=min(3, len(labels)),
                   frameon=False)
    return fig


def passk_curves(run: dict[str, Any], cache_root: Any) -> list[Curve]:
    """pass@k (k = 1, 2, 4, ... up to n) of each recorded evaluation that is in the cache."""
    from harness.cache import Cache
    from harness.evaluate import load_result
    from harness.specs import EvalSpec, from_dict

    cache = Cache(cache_root)
    curves: dict[tuple[str, str, str], Curve] = {}
    for entry in run.get("evaluations", []):
        key = (entry["pair"], text(entry, "recipe"), entry["label"])
        spec = from_dict(entry["spec"])  # checked by load_run
        if key in curves or not isinstance(spec, EvalSpec) or not cache.contains(spec):
            continue
        result = load_result(spec, cache.path(spec.key))
        curves[key] = Curve(*key, [result.pass_at_k(k) for k in KS if k <= result.n])
    return list(curves.values())
