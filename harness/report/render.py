"""Write a run's report: ``report.md`` and ``report.html`` in one directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.report.markdown import report_markdown
from harness.report.matrix import HIGH_ALIGNMENT, Matrix, build_matrix
from harness.report.page import report_html
from harness.report.plots import Curve, effect_figure, passk_curves, passk_figure, png, report_labels, variant_colours


@dataclass
class Figures:
    """A report's matrix, its variant colours (one mapping for every figure) and its figures (matplotlib
    Figures, None when there is nothing to plot)."""

    matrix: Matrix
    colours: dict[str, str]
    effect: Any | None
    passk: Any | None


def figures(run: dict[str, Any], curves: list[Curve], high_alignment: float = HIGH_ALIGNMENT) -> Figures:
    m = build_matrix(run["rows"], high_alignment)
    colours = variant_colours(report_labels(m, curves))
    return Figures(m, colours, effect_figure(m, colours), passk_figure(m.columns, curves, colours))


def write_report(run: dict[str, Any], curves: list[Curve], out_dir: Path,
                 high_alignment: float = HIGH_ALIGNMENT) -> tuple[Path, Path]:
    """Write report.md and report.html (self-contained; every text from the run escaped) into ``out_dir``;
    ``high_alignment``: the base pass@K from which a pair counts as highly aligned (the paper's pattern)."""
    f = figures(run, curves, high_alignment)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(report_markdown(run, f.matrix))
    effect = png(f.effect) if f.effect is not None else None
    passk = png(f.passk) if f.passk is not None else None
    html_path.write_text(report_html(run, f.matrix, f.colours, effect, passk))
    return md_path, html_path


def render(run: dict[str, Any], cache_root: Path, out_dir: Path,
           high_alignment: float = HIGH_ALIGNMENT) -> tuple[Path, Path]:
    """The report of a run record, with pass@k curves from the evaluations in the cache at ``cache_root``."""
    return write_report(run, passk_curves(run, cache_root), out_dir, high_alignment)
