"""The case table of docs/reliability.md from a run of the fault suite.

    python -m pytest tests/test_faults.py --junitxml=faults.xml
    python scripts/reliability_table.py faults.xml > table.md

A summary by class, then one row per case: its class (the first word of the test name after
``test_``), the case (the rest of the name and its parameters), the expected behaviour (the test's
docstring) and the result with its time.
"""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

SUITE = Path(__file__).resolve().parents[1] / "tests" / "test_faults.py"


def docstrings() -> dict[str, str]:
    tree = ast.parse(SUITE.read_text())
    return {node.name: " ".join((ast.get_docstring(node) or "").split())
            for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def outcome(case: ET.Element) -> str:
    for kind in ("failure", "error", "skipped"):
        found = case.find(kind)
        if found is not None:
            reason = (found.get("message") or "").splitlines()[0][:80] if kind == "skipped" else ""
            return {"failure": "FAILED", "error": "ERROR", "skipped": f"skipped ({reason})"}[kind]
    return "met"


def main(junit: str) -> None:
    docs = docstrings()
    rows, classes = [], Counter()
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        function, _, params = name.partition("[")
        kind, _, rest = function.removeprefix("test_").partition("_")
        label = rest.replace("_", " ") + (f" [{params.rstrip(']')}]" if params else "")
        result = outcome(case)
        classes[(kind, result == "met")] += 1
        rows.append(f"| {kind} | {label} | {docs.get(function, '')} | {result} ({float(case.get('time', 0)):.1f} s) |")
    print("| class | cases | met |\n|---|---|---|")
    for kind in sorted({k for k, _ in classes}):
        print(f"| {kind} | {classes[(kind, True)] + classes[(kind, False)]} | {classes[(kind, True)]} |")
    print(f"| all | {sum(classes.values())} | {sum(n for (_, met), n in classes.items() if met)} |")
    print("\n| class | case | expected behaviour | result |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1])
