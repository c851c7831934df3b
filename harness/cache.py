"""Content-addressed job cache: immutable entry directories, atomic publish, one lock per key.

An entry is ``<root>/<key[:2]>/<key>/`` holding the job's files (JSON results, safetensors
weights) and ``manifest.json`` (spec, library versions, timings, SHA-256 of every file). It is
built in ``<root>/tmp/`` and published by ``os.rename``, so a reader never sees a partial entry.
A per-key ``fcntl.flock`` makes concurrent processes compute a job once; the kernel releases
the lock of a killed process, so stale locks recover by themselves. An entry whose checksums
fail is moved to ``<root>/corrupt/`` with a warning and computed again. Nothing is pickled.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.specs import Spec, library_versions

ENV_VAR = "CLAIMS_CACHE"
DEFAULT_DIR = Path(".cache") / "claims"
MANIFEST = "manifest.json"

Compute = Callable[[Path], dict[str, Any] | None]  # writes files into a directory, returns extra manifest info


class CacheWarning(UserWarning):
    """A corrupt entry was found and is being recomputed."""


@dataclass
class CacheStats:
    """Keys this process computed and loaded (the pytest summary adds them up)."""

    computed: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)


def default_root() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR).absolute()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Cache:
    """A job store under ``root``; ``get_or_compute`` is the only way entries come to be."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).absolute() if root is not None else default_root()
        self.stats = CacheStats()
        self._verified: set[str] = set()  # entries checked once by this process

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def _lock_path(self, key: str) -> Path:
        return self.root / "locks" / f"{key}.lock"

    def get_or_compute(self, spec: Spec, compute: Compute) -> Path:
        """The entry directory of ``spec``, computing it once (under the key's lock) if missing."""
        key = spec.key
        entry = self._valid_entry(key)
        if entry is not None:
            self.stats.loaded.append(key)
            return entry
        with self.lock(key):
            entry = self._valid_entry(key, locked=True)  # another process may have published it meanwhile
            if entry is not None:
                self.stats.loaded.append(key)
                return entry
            entry = self._publish(spec, compute)
        self.stats.computed.append(key)
        return entry

    def contains(self, spec: Spec) -> bool:
        return self._valid_entry(spec.key) is not None

    def entry(self, key: str) -> Path | None:
        """The valid entry of ``key``, or None (a corrupt one is set aside)."""
        return self._valid_entry(key)

    @contextmanager
    def lock(self, key: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold the lock named ``key``; with ``wait=False``, yield False at once if another process holds it."""
        path = self._lock_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _publish(self, spec: Spec, compute: Compute) -> Path:
        tmp_root = self.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{spec.key[:16]}.", dir=tmp_root))
        try:
            started = time.time()
            extra = compute(work) or {}
            files = sorted(p for p in work.rglob("*") if p.is_file())
            manifest = {
                "key": spec.key,
                "spec": spec.to_dict(),
                "libraries": library_versions(),
                "started": started,
                "seconds": round(time.time() - started, 3),
                "files": {str(p.relative_to(work)): sha256_file(p) for p in files},
                **extra,
            }
            (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            final = self.path(spec.key)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(work, final)
            return final
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def _valid_entry(self, key: str, *, locked: bool = False) -> Path | None:
        """The entry of ``key`` if present and intact; a corrupt one is set aside under the key's lock
        (``locked``: the caller holds it already; flock is not reentrant, taking it again would deadlock)."""
        entry = self.path(key)
        if key in self._verified:
            return entry
        if not entry.exists():
            return None
        problem = self._integrity_problem(entry)
        if problem is not None:
            if locked:
                self._set_aside(key, entry, problem)
                return None
            with self.lock(key):  # another process may have set it aside, and recomputed it, meanwhile
                if entry.exists() and (problem := self._integrity_problem(entry)) is not None:
                    self._set_aside(key, entry, problem)
                    return None
            if not entry.exists():
                return None
        self._verified.add(key)
        return entry

    def _set_aside(self, key: str, entry: Path, problem: str) -> None:
        graveyard = self.root / "corrupt"
        graveyard.mkdir(parents=True, exist_ok=True)
        os.rename(entry, graveyard / f"{key}.{time.time_ns()}")
        warnings.warn(f"cache entry {key[:12]} is corrupt ({problem}); recomputing it", CacheWarning, stacklevel=4)

    @staticmethod
    def _integrity_problem(entry: Path) -> str | None:
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
            files = dict(manifest["files"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"unreadable manifest: {exc}"
        try:  # an entry being set aside by another process vanishes mid-check
            present = {str(p.relative_to(entry)) for p in entry.rglob("*") if p.is_file()} - {MANIFEST}
            if present != set(files):
                return f"files differ from the manifest: {sorted(present ^ set(files))}"
            for name, digest in files.items():
                if sha256_file(entry / name) != digest:
                    return f"checksum mismatch in {name}"
        except OSError as exc:
            return f"unreadable file: {exc}"
        return None


def read_json(entry: Path, name: str) -> Any:
    return json.loads((entry / name).read_text())


def write_json(directory: Path, name: str, data: Any) -> None:
    (directory / name).write_text(json.dumps(data, sort_keys=True))
