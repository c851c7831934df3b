"""Findings files: recorded verdicts per claim test, which turn a run into a regression check.

A findings file is YAML: the budget, seed setting (``auto`` or a number of runs; with ``auto``, the
``max_seeds`` cap when it was not the default 8) and recipes (empty: the pairs' own) it was recorded at,
and one verdict per test node id. Updating merges: entries of
tests that did not run are kept (a ``-k`` run deletes nothing).
An entry naming a test that no longer exists is stale: it is reported, and removed only on request.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.loading import BUDGETS, FixtureError, _Reader, read_yaml
from harness.verdicts import OUTCOMES

HEADER = """\
# Recorded claim verdicts: pytest claims/ --findings THIS_FILE fails a test whose verdict differs.
# Rewrite with: pytest claims/ --findings THIS_FILE --update-findings (tests that did not run are kept).
"""


@dataclass
class Findings:
    """Verdicts by test node id, with the budget, seeds and recipes they were recorded at."""

    budget: str
    seeds: str  # "auto" or a number of runs per variant
    max_seeds: int | None = None  # with "auto": the runs of the last look, when not the default
    pairs: str = ""
    recipes: str = ""  # --recipe names, comma-separated; "" for the pairs' own
    verdicts: dict[str, str] = field(default_factory=dict)

    def check(self, nodeid: str, outcome: str) -> str | None:
        """None when the outcome reproduces the record, else why the test fails."""
        recorded = self.verdicts.get(nodeid)
        if recorded is None:
            return "no recorded finding for this test; record it with --update-findings"
        if recorded != outcome:
            return f"finding flipped: recorded {recorded}, now {outcome}"
        return None

    def stale(self, collected: Iterable[str], rootdir: Path, pairs: Iterable[str]) -> list[str]:
        """Entries that match no collected test (``collected``: node ids before any ``-k``/``-m`` deselection).

        Judged only where the collection is whole: an entry is stale when its test file is gone, or when
        its file was collected, with every pairs file the findings were recorded with, and holds no such
        test. Entries of files this run did not collect (a narrower path, other pairs) are not judged.
        """
        collected = set(collected)
        modules = {nodeid.split("::", 1)[0] for nodeid in collected}
        recorded = {os.path.normpath(p) for p in self.pairs.split(",") if p}
        whole = recorded <= {os.path.normpath(p) for p in pairs}
        found = []
        for nodeid in sorted(self.verdicts):
            module = nodeid.split("::", 1)[0]
            gone = not (rootdir / module).exists()
            if gone or (whole and module in modules and nodeid not in collected):
                found.append(nodeid)
        return found


def load(path: Path) -> Findings:
    reader = _Reader(path, "top level", read_yaml(path))
    reader.only(["budget", "seeds", "max_seeds", "pairs", "recipes", "findings"])
    budget = reader.get("budget", str)
    if budget not in BUDGETS:
        reader.fail(f"unknown budget {budget!r}; known: {', '.join(BUDGETS)}")
    seeds = str(reader.get("seeds", (str, int)))
    if not (seeds == "auto" or (seeds.isdigit() and int(seeds) >= 1)):
        reader.fail(f"field 'seeds' = {seeds!r}: expected 'auto' or a whole number >= 1")
    max_seeds = reader.get("max_seeds", (int, type(None)), None)
    if max_seeds is not None and (seeds != "auto" or isinstance(max_seeds, bool) or max_seeds < 1):
        reader.fail(f"field 'max_seeds' = {max_seeds!r}: expected a whole number >= 1, with seeds 'auto'")
    verdicts = reader.get("findings", (dict, type(None)), None) or {}  # "findings:" with no entries reads as null
    for nodeid, outcome in verdicts.items():
        if outcome not in OUTCOMES:
            raise FixtureError(f"{path}: findings.{nodeid}: unknown verdict {outcome!r}; known: {', '.join(OUTCOMES)}")
    return Findings(budget=budget, seeds=seeds, max_seeds=max_seeds, pairs=reader.get("pairs", str, ""),
                    recipes=reader.get("recipes", str, ""), verdicts=dict(verdicts))


def save(path: Path, findings: Findings) -> None:
    """Write atomically (a crash leaves the old file whole)."""
    body = {"budget": findings.budget, "seeds": findings.seeds,
            **({"max_seeds": findings.max_seeds} if findings.max_seeds is not None else {}),
            "pairs": findings.pairs, "recipes": findings.recipes, "findings": dict(sorted(findings.verdicts.items()))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(HEADER + yaml.safe_dump(body, sort_keys=False, width=200))
    tmp.replace(path)
