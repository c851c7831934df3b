"""Pickle-free resume checkpoints: one directory per run and step, tensors in safetensors, the rest in JSON.

``<work>/checkpoint-<step>/`` holds ``state.safetensors`` and ``state.json``, then ``manifest.json``,
written last, with each file's size and SHA-256. The directory is filled under a temporary name and
renamed into place; one whose manifest is missing, unreadable or does not match its files (a kill or a
full disk during the save) is discarded when the work directory is next read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from torch import Tensor

TENSORS, STATE, MANIFEST = "state.safetensors", "state.json", "manifest.json"
PREFIX = "checkpoint-"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(work: Path, step: int, tensors: dict[str, Tensor], state: dict) -> Path:
    """Save one checkpoint of one run; returns its directory."""
    from safetensors.torch import save_file

    final = work / f"{PREFIX}{step}"
    partial = work / f".{PREFIX}{step}.tmp-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(partial / TENSORS))
    (partial / STATE).write_text(json.dumps(state))
    files = {name: {"bytes": (partial / name).stat().st_size, "sha256": _digest(partial / name)}
             for name in (TENSORS, STATE)}
    (partial / MANIFEST).write_text(json.dumps({"step": step, "files": files}))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final


def _complete(directory: Path) -> bool:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        return all((directory / name).stat().st_size == meta["bytes"] and _digest(directory / name) == meta["sha256"]
                   for name, meta in manifest["files"].items()) and set(manifest["files"]) == {TENSORS, STATE}
    except (OSError, ValueError, KeyError, TypeError):
        return False


def steps(work: Path) -> list[int]:
    """Steps of the run's complete checkpoints, ascending; partial ones and temporary directories are removed."""
    if not work.is_dir():
        return []
    for leftover in work.glob(f".{PREFIX}*.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    found = []
    for directory in work.glob(f"{PREFIX}*"):
        suffix = directory.name[len(PREFIX):]
        if suffix.isdigit() and _complete(directory):
            found.append(int(suffix))
        else:
            print(f"discarding incomplete checkpoint {directory}", file=sys.stderr)
            shutil.rmtree(directory, ignore_errors=True)
    return sorted(found)


def read(work: Path, step: int) -> tuple[dict[str, Tensor], dict]:
    """The tensors and JSON state of a complete checkpoint."""
    from safetensors.torch import load_file

    directory = work / f"{PREFIX}{step}"
    return load_file(str(directory / TENSORS)), json.loads((directory / STATE).read_text())


def prune(work: Path, below: int) -> None:
    """Remove the run's checkpoints older than step ``below``."""
    for step in steps(work):
        if step < below:
            shutil.rmtree(work / f"{PREFIX}{step}", ignore_errors=True)
