"""Mechanism readouts (informative-group share, clipped-token fraction, entropy, strategy shares...) as one
compact table per matrix column: a row per variant, a column per readout, a before/after (start/end) pair of
readouts merged into one column of ``before → after`` lines."""

from __future__ import annotations

from typing import Any

from harness.report.matrix import Matrix, mapping, readout_text

# Shown first, in this order, when present; any other readout follows in the order first seen.
KNOWN = ("informative_share", "clipped_fraction", "entropy", "strategy_share", "strategy_accuracy")
PHASES = (("_before", "_after"), ("_start", "_end"))


def merge_phases(values: dict[str, Any]) -> dict[str, Any]:
    """Readouts with each ``X_before``/``X_after`` (``X_start``/``X_end``) pair merged into ``X: (first, last)``."""
    merged: dict[str, Any] = {}
    for name, value in values.items():
        for first, last in PHASES:
            stem = name.removesuffix(first) if name.endswith(first) else name.removesuffix(last)
            if name.endswith((first, last)) and stem + first in values and stem + last in values:
                merged[stem] = (values[stem + first], values[stem + last])
                break
        else:
            merged[name] = value
    return merged


def lines(value: Any) -> list[str]:
    """One readout as text lines: a number, ``name share`` per strategy, or ``before → after`` of either."""
    if isinstance(value, tuple):
        first, last = value
        if isinstance(first, dict) and isinstance(last, dict):
            return [f"{k} {readout_text(first.get(k, ''))} → {readout_text(last.get(k, ''))}"
                    for k in dict.fromkeys([*first, *last])]
        return [f"{readout_text(first)} → {readout_text(last)}"]
    if isinstance(value, dict):
        return [f"{k} {readout_text(v)}" for k, v in value.items()]
    return [readout_text(value)]


def readout_tables(m: Matrix) -> dict[str, tuple[list[str], dict[str, list[list[str]]]]]:
    """{column key: (readout names, {variant: each readout's lines, [] where missing})} for columns with readouts."""
    tables = {}
    for column in m.columns:
        merged: dict[str, dict[str, Any]] = {}
        for (_, key), row in m.cells.items():
            if key != column.key:
                continue
            for label, values in mapping(row, "readouts").items():
                if isinstance(values, dict):
                    merged.setdefault(label, {}).update(values)
        if not merged:
            continue
        merged = {label: merge_phases(values) for label, values in merged.items()}
        seen = list(dict.fromkeys(name for values in merged.values() for name in values))
        fields = [f for f in KNOWN if f in seen] + [f for f in seen if f not in KNOWN]
        tables[column.key] = ([f.replace("_", " ") for f in fields],
                              {label: [lines(values[f]) if f in values else [] for f in fields]
                               for label, values in sorted(merged.items())})
    return tables
