"""Content-addressed job cache: immutable entry directories, atomic publish, one lock per key.

An entry is ``<root>/<key[:2]>/<key>/`` holding the job's files (JSON results, safetensors
weights) and ``manifest.json`` (spec, library versions, timings, SHA-256 of every file). It is
built in ``<root>/tmp/<key16>.<pid>@<host>.<random>/`` and published by ``os.rename``, so a reader
never sees a partial entry; a later run removes the temporary directories whose process is gone.
Loading a valid entry takes no lock and writes nothing, so a complete cache can be read-only.
A per-key ``fcntl.flock`` makes concurrent processes compute a job once; the holder writes its pid,
host and start time into the lock file, and a waiter names it after a few seconds. The kernel
releases the lock of a killed process, so stale locks recover by themselves. An entry whose
checksums fail is moved to ``<root>/corrupt/`` with a warning and computed again. A job that
resumes after a kill keeps its checkpoints in ``<root>/work/<key>/``, removed once the entry is
published. Filesystem trouble (no space, a read-only cache) ends the job with one ``JobError``
line. Nothing is pickled.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.specs import Spec, library_versions

ENV_VAR = "CLAIMS_CACHE"
DEFAULT_DIR = Path(".cache") / "claims"
MANIFEST = "manifest.json"
LOCK_NOTICE = 3.0  # seconds a lock wait lasts before the waiter says whose lock it waits on
LOCK_REMIND = 300.0  # and again every so often while it keeps waiting
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
OUT_OF_SPACE_TEXT = ("No space left on device", "StorageFull", "Disk quota exceeded", "File too large")

Compute = Callable[[Path], dict[str, Any] | None]  # writes files into a directory, returns extra manifest info


class CacheWarning(UserWarning):
    """A corrupt entry was found and is being recomputed."""


class JobError(RuntimeError):
    """A job that could not run or be published; the message is one line: what failed, where, what to do."""


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


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``, following the causes libraries wrap it in."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a full disk, a quota or a file-size limit (safetensors reports it as text)."""
    err = _os_error(exc)
    if err is not None and err.errno in OUT_OF_SPACE:
        return True
    return any(text in str(exc) for text in OUT_OF_SPACE_TEXT)


def _owner_tag() -> str:
    """``<pid>@<host>``: who owns a temporary directory or holds a lock."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class Cache:
    """A job store under ``root``; ``get_or_compute`` is the only way entries come to be."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).absolute() if root is not None else default_root()
        if self.root.exists() and not self.root.is_dir():
            raise JobError(f"cache directory {self.root} is a file, not a directory; point --claims-cache "
                           f"(or ${ENV_VAR}) at a directory")
        self.stats = CacheStats()
        self._verified: set[str] = set()  # entries checked once by this process
        self._swept = False

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def work_dir(self, key: str) -> Path:
        """Where the job of ``key`` keeps what outlives a kill (resume checkpoints, logs); the cache removes it
        once the entry is published, so a kill at any point before leaves it to resume from."""
        return self.root / "work" / key

    def _lock_path(self, key: str) -> Path:
        return self.root / "locks" / f"{key}.lock"

    def get_or_compute(self, spec: Spec, compute: Compute) -> Path:
        """The entry directory of ``spec``, computing it once (under the key's lock) if missing.

        A valid entry is loaded without a lock or a write; only computing needs a writable cache.
        """
        key = spec.key
        what = f"{spec.kind} job {key[:12]}"
        entry = self._valid_entry(key)
        if entry is not None:
            self.stats.loaded.append(key)
            return entry
        with self.lock(key, what=what):
            entry = self._valid_entry(key, locked=True)  # another process may have published it meanwhile
            if entry is not None:
                self.stats.loaded.append(key)
                return entry
            entry = self._publish(spec, compute, what)
        self.stats.computed.append(key)
        return entry

    def contains(self, spec: Spec) -> bool:
        return self._valid_entry(spec.key) is not None

    def entry(self, key: str) -> Path | None:
        """The valid entry of ``key``, or None (a corrupt one is set aside)."""
        return self._valid_entry(key)

    def _fs_error(self, exc: OSError, doing: str) -> JobError:
        """A one-line JobError for filesystem trouble while ``doing`` something in this cache."""
        reason = exc.strerror or str(exc)
        where = exc.filename or self.root
        if out_of_space(exc):
            return JobError(f"{doing}: no space left under {self.root} ({reason}: {where}); nothing was published "
                            "and its temporary files were removed; free some space (or point --claims-cache at "
                            "another disk) and rerun")
        if isinstance(exc, FileExistsError | NotADirectoryError):
            return JobError(f"{doing}: {where} is in the way ({reason}); the cache directory {self.root} must be a "
                            "directory of cache entries: point --claims-cache at one")
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return JobError(f"{doing}: the cache {self.root} is read-only ({reason}: {where}) and holds no valid "
                            "entry for it; point --claims-cache at a writable directory (or a copy of this cache)")
        return JobError(f"{doing}: {reason} ({where}); check the cache directory {self.root}")

    @contextmanager
    def lock(self, key: str, *, wait: bool = True, what: str = "") -> Iterator[bool]:
        """Hold the lock named ``key``; with ``wait=False``, yield False at once if another process holds it.

        The holder writes its pid, host, start time and ``what`` into the lock file; a waiter prints them
        after LOCK_NOTICE seconds (a hung holder is then a named process) and keeps waiting.
        """
        path = self._lock_path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a+b", buffering=0)  # unbuffered: a failed holder record leaves nothing to flush
        except OSError as exc:
            raise self._fs_error(exc, f"cannot take the lock of {what or key}") from None
        with handle:
            if not _try_lock(handle):
                if not wait:
                    yield False
                    return
                _wait_for_lock(handle, path, what or key)
            _write_holder(handle, what)
            try:
                yield True
            finally:
                with suppress(OSError):
                    handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def sweep(self) -> list[Path]:
        """Remove the temporary directories of jobs killed on this host (owner pid gone); returns them.

        Directories of another host, of a live process, or without an owner tag are left alone.
        """
        removed = []
        host = socket.gethostname()
        tmp_root = self.root / "tmp"
        for work in tmp_root.iterdir() if tmp_root.is_dir() else ():
            owner = work.name.split(".", 1)[1].rsplit(".", 1)[0] if work.name.count(".") >= 2 else ""
            pid, _, owner_host = owner.partition("@")
            if pid.isdigit() and owner_host == host and not _process_alive(int(pid)):
                shutil.rmtree(work, ignore_errors=True)
                removed.append(work)
        return removed

    def _publish(self, spec: Spec, compute: Compute, what: str) -> Path:
        if not self._swept:
            self._swept = True
            self.sweep()
        tmp_root = self.root / "tmp"
        try:
            tmp_root.mkdir(parents=True, exist_ok=True)
            work = _fresh_dir(tmp_root, f"{spec.key[:16]}.{_owner_tag()}")
        except OSError as exc:
            raise self._fs_error(exc, f"cannot compute {what}") from None
        try:
            started = time.time()
            extra = compute(work) or {}
            _share(work)
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
        except BaseException as exc:
            shutil.rmtree(work, ignore_errors=True)
            if isinstance(exc, Exception) and not isinstance(exc, JobError) and out_of_space(exc):
                err = _os_error(exc) or OSError(errno.ENOSPC, str(exc).splitlines()[0] if str(exc) else "no space")
                raise self._fs_error(err, f"{what} failed") from None
            raise
        shutil.rmtree(self.work_dir(spec.key), ignore_errors=True)
        return final

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
            try:
                with self.lock(key):  # another process may have set it aside, and recomputed it, meanwhile
                    if entry.exists() and (problem := self._integrity_problem(entry)) is not None:
                        self._set_aside(key, entry, problem)
                        return None
            except JobError:
                raise JobError(f"cache entry {entry} is corrupt ({problem}) and the cache cannot be written to "
                               "set it aside; delete that directory, or point --claims-cache at a writable "
                               "copy of the cache") from None
            if not entry.exists():
                return None
        self._verified.add(key)
        return entry

    def _set_aside(self, key: str, entry: Path, problem: str) -> None:
        graveyard = self.root / "corrupt"
        try:
            graveyard.mkdir(parents=True, exist_ok=True)
            os.rename(entry, graveyard / f"{key}.{time.time_ns()}")
        except OSError as exc:
            raise self._fs_error(exc, f"cannot set aside the corrupt entry {key[:12]} ({problem})") from None
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


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it."""
    with suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _share(directory: Path) -> None:
    """Give an entry's files the umask's permissions: some writers (safetensors) make them private to their
    owner, and a cache shared between users must be readable by them."""
    mask = _umask()
    for path in directory.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _fresh_dir(parent: Path, prefix: str) -> Path:
    """A new directory ``<prefix>.<random>`` with the umask's permissions (``mkdtemp`` would make it private
    to its owner, and the published entry unreadable by others sharing the cache)."""
    while True:
        path = parent / f"{prefix}.{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path


def _try_lock(handle: IO[bytes]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(handle: IO[bytes], what: str) -> None:
    """Record who holds the lock (best effort: a full disk must not stop the job from running)."""
    pid, _, host = _owner_tag().partition("@")
    record = {"pid": int(pid), "host": host, "since": time.time(), "what": what}
    with suppress(OSError):
        handle.truncate(0)
        handle.write((json.dumps(record) + "\n").encode())


def _holder(path: Path) -> str:
    """Who holds the lock at ``path``, in words, from what the holder wrote into it."""
    try:
        record = json.loads(path.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["since"]))
        minutes = (time.time() - record["since"]) / 60
        doing = f" computing {record['what']}" if record.get("what") else ""
        return f"pid {record['pid']} on {record['host']}{doing}, since {since} ({minutes:.1f} min)"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not recorded itself (an older harness, or one starting up)"


def _wait_for_lock(handle: IO[bytes], path: Path, what: str) -> None:
    """Block until the lock is ours, naming its holder after LOCK_NOTICE seconds and now and then after."""
    started = time.monotonic()
    notice = LOCK_NOTICE
    pause = 0.01
    while not _try_lock(handle):
        waited = time.monotonic() - started
        if waited >= notice:
            print(f"harness: waiting {waited:.0f} s for the lock of {what} ({path}), held by {_holder(path)}; "
                  "still waiting (kill that process if it hangs: its lock is released when it exits)",
                  file=sys.stderr, flush=True)
            notice += LOCK_REMIND
        time.sleep(pause)
        pause = min(pause * 2, 0.2)
