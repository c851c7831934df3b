"""Recorded runs under ``<cache>/runs/``: one JSON file per run, and ``latest.json`` naming the run that
finished last.

``latest.json`` is ``{"run": file name, "finished": seconds since the epoch}``. It is replaced (write a
temporary file, rename) under an ``fcntl.flock`` on ``latest.lock``, and only by a run that finished
later than the one it names: two runs on one cache that record out of order leave it on the later one.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from harness.specs import EvalSpec, from_dict

POINTER = "latest.json"
LOCK = "latest.lock"


class RunFileError(ValueError):
    """A run record or the latest pointer is missing, truncated or wrongly shaped (one line, naming the file)."""


def record_run(runs: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as a new ``run-<time>[-n].json`` (never over another run's) and point ``latest`` at
    it if it finished last. ``record["finished"]`` (seconds since the epoch) orders the runs."""
    runs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(record["finished"]))
    for attempt in itertools.count():  # runs finishing in the same second must not overwrite each other
        path = runs / f"run-{stamp}{f'-{attempt}' if attempt else ''}.json"
        try:
            with path.open("x") as handle:
                json.dump({**record, "id": path.stem}, handle, indent=1, default=float)
            break
        except FileExistsError:
            continue
    update_latest(runs, path, record["finished"])
    return path


def update_latest(runs: Path, path: Path, finished: float) -> bool:
    """Point ``latest.json`` at ``path`` unless it names a run that finished later; True if it moved."""
    with (runs / LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or by the kernel if we die
        pointer = runs / POINTER
        if pointer.exists():
            try:
                current = _pointer(pointer)
            except RunFileError:  # a damaged pointer names no run: this one replaces it
                current = {"finished": -math.inf, "run": ""}
            if (current["finished"], current["run"]) > (finished, path.name):
                return False
        temporary = runs / f"{POINTER}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps({"run": path.name, "finished": finished}))
        temporary.replace(pointer)
        return True


def latest_path(cache_root: Path) -> Path:
    """The run record ``latest.json`` names."""
    runs = cache_root / "runs"
    pointer = runs / POINTER
    if not pointer.exists():
        raise RunFileError(f"no recorded run under {runs}; run the claims first: pytest claims/")
    return runs / _pointer(pointer)["run"]


def _pointer(pointer: Path) -> dict[str, Any]:
    """The pointer's run and finish time; a bare file name (written before finish times were recorded) has
    finished before any run that records one."""
    content = pointer.read_text().strip()
    if re.fullmatch(r"run-[\w.-]+\.json", content):
        return {"run": content, "finished": -math.inf}
    try:
        data = json.loads(content)
    except ValueError:
        data = content
    if not (isinstance(data, dict) and isinstance(data.get("run"), str) and "/" not in data["run"]
            and isinstance(data.get("finished"), int | float)):
        raise RunFileError(f"{pointer}: expected {{\"run\": file name, \"finished\": time}}, got {_short(data)}")
    return data


REQUIRED_ROW = ("claim", "pair", "outcome")


def load_run(path: Path) -> dict[str, Any]:
    """A run record, checked for the shape the report needs: an object whose ``rows`` are objects with
    ``claim``, ``pair`` and ``outcome``; anything else is one RunFileError naming the file and the entry."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RunFileError(f"{path}: cannot read the run record ({exc.strerror})") from None
    try:
        run = json.loads(text)
    except ValueError as exc:
        raise RunFileError(f"{path}: not a complete JSON run record ({exc})") from None
    if not isinstance(run, dict):
        raise RunFileError(f"{path}: expected a JSON object with 'rows', got {type(run).__name__}")
    if not isinstance(run.get("rows"), list):
        raise RunFileError(f"{path}: 'rows' must be a list of claim results, got {_short(run.get('rows'))}")
    for i, row in enumerate(run["rows"]):
        if not isinstance(row, dict):
            raise RunFileError(f"{path}: rows[{i}]: expected an object, got {_short(row)}")
        for field in REQUIRED_ROW:
            if not isinstance(row.get(field), str):
                raise RunFileError(f"{path}: rows[{i}].{field}: expected a string, got {_short(row.get(field))}")
    if not isinstance(run.get("evaluations", []), list):
        raise RunFileError(f"{path}: 'evaluations' must be a list, got {_short(run['evaluations'])}")
    for i, entry in enumerate(run.get("evaluations", [])):
        if not (isinstance(entry, dict) and isinstance(entry.get("pair"), str) and isinstance(entry.get("label"), str)
                and isinstance(entry.get("spec"), dict)):
            raise RunFileError(f"{path}: evaluations[{i}]: expected {{pair, label, spec}}, got {_short(entry)}")
        try:
            spec = from_dict(entry["spec"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RunFileError(f"{path}: evaluations[{i}].spec: not an evaluation spec ({exc!r})") from None
        if not isinstance(spec, EvalSpec):
            raise RunFileError(f"{path}: evaluations[{i}].spec: a {spec.kind} spec, not an evaluation spec")
    return {**run, "id": path.stem}  # reports are named after the file


def _short(value: Any) -> str:
    text = json.dumps(value) if value is not None else "nothing"
    return text if len(text) <= 40 else text[:37] + "..."
