"""Mechanism readouts (informative-group share, clipped-token fraction, entropy, strategy shares...) as one
compact table per matrix column: a row per variant, a column per readout."""

from __future__ import annotations

from typing import Any

from harness.report.matrix import Matrix, mapping, readout_text

# Shown first, in this order, when present; any other readout follows in the order first seen.
KNOWN = ("informative_share", "clipped_fraction", "entropy", "strategy_share_before", "strategy_share_after")


def readout_tables(m: Matrix) -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    """{column key: (readout names, {variant: values as text, '' where missing})} for columns with readouts."""
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
        seen = list(dict.fromkeys(name for values in merged.values() for name in values))
        fields = [f for f in KNOWN if f in seen] + [f for f in seen if f not in KNOWN]
        tables[column.key] = ([f.replace("_", " ") for f in fields],
                              {label: [readout_text(values[f]) if f in values else "" for f in fields]
                               for label, values in sorted(merged.items())})
    return tables
