"""The memo cache of stage outputs: files on disk, their index in the study's storage.

**On disk** (:class:`DiskCache`): one file per entry, ``<root>/<key>.entry``, named by the
prefix's content address (:meth:`thrifty.pipelines.Pipeline.key`). A file is a magic line, a
JSON header (the key, the payload's length and BLAKE2b digest, the prefix's stage and parameters,
what computing it cost) and the payload (the output, pickled). Rules:

- **Atomic writes.** A writer writes a temporary file in the same folder (``.<key>.<host>.<pid>.
  <random>.tmp``), flushes and fsyncs it, then ``os.replace``-s it onto the entry's name (and
  fsyncs the folder). Readers only open entry names, so a writer killed at any moment leaves no
  torn entry, only a temporary file, removed by :meth:`DiskCache.clean_temporaries` once its
  writer is dead (same host) or a day old. Concurrent writers of one key each replace the whole
  file; the last one wins, whole.
- **Verified reads.** A reader checks the magic, the header, the length and the digest, then
  unpickles; anything else is a miss (the entry is then removed), never a wrong output.
- **Readers hold a shared lock** (``fcntl.flock(LOCK_SH)``) while they read
  (:meth:`DiskCache.reading`); a read marks the entry used (its modification time).
- **Eviction never removes an entry being read.** After a write, while the folder is above
  ``max_bytes``, the least recently used entries are removed, each only under a non-blocking
  exclusive lock: an entry a reader holds is skipped. A reader that was waiting for the lock of
  an entry removed meanwhile sees it unlinked and misses.

**The index** (:class:`~thrifty.storage.base.CacheEntry` rows, schema 5) says what exists and what
it cost, so every worker and the strategy see the same facts. An entry is written before it is
indexed, and removed from the index when it is evicted or found missing; a crash in between leaves
a file the next read re-indexes from its header, or a record :func:`cached_prefixes` does not
report (it lists only entries whose file is there) and the next lookup forgets.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import socket
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from thrifty.storage.base import CacheEntry, Storage

MAGIC = b"THRIFTY-CACHE-1\n"
SUFFIX = ".entry"
TMP_SUFFIX = ".tmp"
#: A temporary file older than this (seconds) is removed whoever wrote it.
STALE_TMP_S = 86_400.0


@dataclass(frozen=True)
class CachedPrefix:
    """A stage prefix whose output is in the memo cache (what a strategy such as EEIPU reads from
    :attr:`thrifty.strategies.base.Context.cached_prefixes`).

    ``stage``: 0-based index of the prefix's last stage. ``params``: every parameter of stages
    ``0..stage``. ``key``: its content address. ``read_cost_usd``: dollars the last read of it cost
    (before any read: what writing it cost). ``run_cost_usd``: dollars computing the prefix from
    nothing cost (stages ``0..stage``). ``read_s`` / ``run_s``: the same in wall seconds.
    """

    stage: int
    params: Mapping[str, Any]
    key: str
    read_cost_usd: float
    run_cost_usd: float
    read_s: float = 0.0
    run_s: float = 0.0

    @classmethod
    def of(cls, entry: CacheEntry) -> CachedPrefix:
        return cls(entry.stage, dict(entry.params), entry.key, entry.read_cost_usd, entry.run_cost_usd,
                   entry.read_s, entry.run_s)


@dataclass(frozen=True)
class Loaded:
    """An entry read from disk: the output, its header (the stage, the prefix's parameters,
    ``run_s``, ``run_cost_usd``) and its size in bytes."""

    value: Any
    header: Mapping[str, Any] = field(default_factory=dict)
    size_bytes: int = 0


class DiskCache:
    """The entries in folder ``root`` (created on first write), at most ``max_bytes`` in all
    (``None``: no limit). See the module docstring for the rules."""

    def __init__(self, root: str | os.PathLike[str], max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def path(self, key: str) -> Path:
        """The entry file of ``key``."""
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"cache key {key!r}: expected a hex digest")
        return self.root / (key + SUFFIX)

    def has(self, key: str) -> bool:
        """Whether an entry file for ``key`` exists now."""
        return self.path(key).exists()

    # -- writing --------------------------------------------------------------------------------
    def write(self, key: str, value: Any, header: Mapping[str, Any] | None = None) -> int:
        """Store ``value`` (pickled) under ``key`` atomically, with ``header`` (plain JSON data)
        in the file; returns the entry's size in bytes."""
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        head = dict(header or {})
        head.update(key=key, length=len(payload), digest=hashlib.blake2b(payload).hexdigest())
        head_bytes = json.dumps(head, sort_keys=True, default=str).encode()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{key}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        try:
            with open(tmp, "wb") as f:
                f.write(MAGIC)
                f.write(len(head_bytes).to_bytes(8, "big"))
                f.write(head_bytes)
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path(key))
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_folder(self.root)
        return len(MAGIC) + 8 + len(head_bytes) + len(payload)

    # -- reading --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self, key: str) -> Iterator[IO[bytes] | None]:
        """Open ``key``'s entry under a shared lock held for the block (eviction skips it
        meanwhile); yields the open file, or ``None`` if there is no entry (or it was evicted while
        this reader waited for the lock)."""
        try:
            f = open(self.path(key), "rb")  # noqa: SIM115 - closed by the with below (a miss yields first)
        except FileNotFoundError:
            yield None
            return
        with f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            try:
                yield None if os.fstat(f.fileno()).st_nlink == 0 else f
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def load(self, key: str) -> Loaded | None:
        """The entry of ``key``, verified, or ``None`` (a miss: no entry, or one that fails the
        checks, which is then removed). A hit marks the entry as used now (for LRU eviction)."""
        with self.reading(key) as f:
            data = f.read() if f is not None else None
        if data is None:
            return None
        parsed = _parse(key, data)
        if parsed is None:
            self._discard(key)
            return None
        header, payload = parsed
        try:
            value = pickle.loads(payload)
        except Exception:  # noqa: BLE001 - an unreadable entry is a miss (e.g. a class that moved)
            self._discard(key)
            return None
        with contextlib.suppress(OSError):
            os.utime(self.path(key))
        return Loaded(value, header, len(data))

    def header(self, key: str) -> Mapping[str, Any] | None:
        """The verified header of ``key``'s entry, or ``None``."""
        with self.reading(key) as f:
            data = f.read() if f is not None else None
        parsed = _parse(key, data) if data is not None else None
        return None if parsed is None else parsed[0]

    # -- size limit -----------------------------------------------------------------------------
    def entries(self) -> list[tuple[str, int, float]]:
        """``(key, size in bytes, last used: epoch seconds)`` of every entry, least recently used
        first."""
        out = []
        try:
            with os.scandir(self.root) as it:
                for e in it:
                    if e.name.endswith(SUFFIX) and not e.name.startswith("."):
                        with contextlib.suppress(FileNotFoundError):
                            st = e.stat()
                            out.append((e.name[:-len(SUFFIX)], st.st_size, st.st_mtime))
        except FileNotFoundError:
            return []
        return sorted(out, key=lambda x: (x[2], x[0]))

    def size_bytes(self) -> int:
        """The entries' total size."""
        return sum(size for _, size, _ in self.entries())

    def evict(self, keep: Collection[str] = ()) -> list[str]:
        """While the entries exceed :attr:`max_bytes`, remove the least recently used ones, except
        ``keep`` and any a reader holds (see the module docstring). Returns the removed keys."""
        if self.max_bytes is None:
            return []
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed: list[str] = []
        for key, size, _ in entries:
            if total <= self.max_bytes:
                break
            if key in keep:
                continue
            gone = self._remove_unless_read(key)
            if gone is not None:
                total -= size
                if gone:
                    removed.append(key)
        return removed

    def _remove_unless_read(self, key: str) -> bool | None:
        """Remove ``key``'s entry under a non-blocking exclusive lock: ``True`` removed, ``False``
        already gone, ``None`` a reader holds it (kept)."""
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            if os.fstat(fd).st_nlink == 0:
                return False
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:  # not a newer entry written meanwhile
                    os.unlink(path)
                    return True
            return False
        finally:
            os.close(fd)

    def _discard(self, key: str) -> None:
        """Remove a damaged entry (under the same lock as eviction)."""
        self._remove_unless_read(key)

    def clean_temporaries(self) -> list[str]:
        """Remove temporary files left by writers that died (on this host: their process is gone;
        any host: older than :data:`STALE_TMP_S`). Returns their names."""
        host, removed, now = socket.gethostname(), [], time.time()
        try:
            with os.scandir(self.root) as it:
                names = [(e.name, e) for e in it if e.name.startswith(".") and e.name.endswith(TMP_SUFFIX)]
        except FileNotFoundError:
            return []
        for name, e in names:
            parts = name[1:-len(TMP_SUFFIX)].rsplit(".", 2)  # "<key>.<host>", "<pid>", "<random>"
            dead = False
            if len(parts) == 3 and parts[0].partition(".")[2] == host and parts[1].isdigit():
                dead = not _alive(int(parts[1]))
            with contextlib.suppress(FileNotFoundError):
                if dead or now - e.stat().st_mtime > STALE_TMP_S:
                    os.unlink(e.path)
                    removed.append(name)
        return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _parse(key: str, data: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(header, payload) of a complete, intact entry of ``key``, else ``None``."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        return None
    n = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "big")
    start = len(MAGIC) + 8
    try:
        header = json.loads(data[start:start + n])
    except ValueError:
        return None
    payload = data[start + n:]
    if (not isinstance(header, dict) or header.get("key") != key or header.get("length") != len(payload)
            or header.get("digest") != hashlib.blake2b(payload).hexdigest()):
        return None
    return header, payload


def cached_prefixes(storage: Storage, study_id: int, cache: DiskCache) -> tuple[CachedPrefix, ...]:
    """The study's cached prefixes: its index's entries whose file is in ``cache`` now (an entry
    evicted or lost is never reported), by stage then key."""
    return tuple(CachedPrefix.of(e) for e in storage.cache_entries(study_id) if cache.has(e.key))
