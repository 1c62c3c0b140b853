"""The memo cache of stage outputs: files on disk, their index in the study's storage.

**On disk** (:class:`DiskCache`): one entry per key, ``<root>/<key>.entry``, named by the
prefix's content address (:meth:`thrifty.pipelines.Pipeline.key`). Two kinds:

- **a file** (a function stage's output, a Python object): a magic line, a JSON header (the key,
  the payload's length and BLAKE2b digest, the prefix's stage and parameters, what computing it
  cost) and the payload (the output, pickled): :meth:`DiskCache.write`, :meth:`DiskCache.load`;
- **a folder** (a command stage's output folder): ``<key>.entry/data/``, the folder as the
  command wrote it, and ``<key>.entry/header.json``, the same header with a manifest instead of
  one digest (every file's relative path, size in bytes and BLAKE2b digest, every sub-folder and
  symbolic link): :meth:`DiskCache.write_dir` / :meth:`DiskCache.storing_dir`,
  :meth:`DiskCache.reading_dir`. Its size is every file's bytes plus the header's. Only regular
  files, folders and symbolic links may be in it (a link is stored as a link, never followed).

Rules (both kinds):

- **Atomic writes.** A writer writes a temporary file (a folder: a temporary folder, into which
  the output folder is moved, or copied when it is on another file system) in the same folder
  (``.<key>.<host>.<pid>.<random>.tmp``), flushes and fsyncs it (a folder: every file and folder
  in it, the header last), then renames it onto the entry's name (and fsyncs the folder). Readers
  only open entry names, so a writer killed at any moment leaves no torn entry, only a temporary
  file or folder, removed by :meth:`DiskCache.clean_temporaries` once its writer is dead (same
  host) or a day old. Concurrent writers of one key: a file is replaced whole, the last one wins;
  a folder cannot replace a folder, so the first one stays and the others' are dropped (one key,
  one content).
- **Verified reads.** A reader checks the magic, the header, the length and the digest, then
  unpickles (a folder: the header, then the manifest against the files, every digest included);
  anything else is a miss (the entry is then removed), never a wrong output.
- **Readers hold a shared lock** (``fcntl.flock(LOCK_SH)``, on the file or the entry's folder)
  while they read (:meth:`DiskCache.reading`; a folder: for the whole ``with`` block of
  :meth:`DiskCache.reading_dir`, in which the reader may read the folder's files, e.g. the next
  stage's run); a read marks the entry used (its modification time). :meth:`DiskCache.storing_dir`
  takes that lock on its temporary folder before renaming it, so its writer holds the new entry
  from the moment it exists.
- **Eviction never removes an entry being read.** After a write, while the folder is above
  ``max_bytes``, the least recently used entries are removed, each only under a non-blocking
  exclusive lock: an entry a reader holds is skipped (a folder is first renamed to a temporary
  name, then deleted). A reader that was waiting for the lock of an entry removed meanwhile sees
  it unlinked (a folder: its name no longer leads to it) and misses.

**The index** (:class:`~thrifty.storage.base.CacheEntry` rows, schema 5) says what exists and what
it cost, so every worker and the strategy see the same facts. An entry is written before it is
indexed, and removed from the index when it is evicted or found missing; a crash in between leaves
a file the next read re-indexes from its header, or a record :func:`cached_prefixes` does not
report (it lists only entries whose file is there) and the next lookup forgets.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import pickle
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from thrifty.storage.base import CacheEntry, Storage

MAGIC = b"THRIFTY-CACHE-1\n"
#: The ``magic`` of a folder entry's header.
DIR_MAGIC = "THRIFTY-CACHE-DIR-1"
SUFFIX = ".entry"
TMP_SUFFIX = ".tmp"
#: In a folder entry: its header (JSON) and the stored folder.
HEADER_NAME = "header.json"
DATA_NAME = "data"
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
    """An entry read from disk: the output (a folder entry: the :class:`~pathlib.Path` of its
    stored folder, to read only while its reader's lock is held), its header (the stage, the
    prefix's parameters, ``run_s``, ``run_cost_usd``) and its size in bytes."""

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
        """Whether an entry (a file or a folder) for ``key`` exists now."""
        return self.path(key).exists()

    def _tmp_path(self, key: str) -> Path:
        """A fresh temporary name beside the entries (see :meth:`clean_temporaries`)."""
        return self.root / f".{key}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"

    # -- writing --------------------------------------------------------------------------------
    def write(self, key: str, value: Any, header: Mapping[str, Any] | None = None) -> int:
        """Store ``value`` (pickled) under ``key`` atomically, with ``header`` (plain JSON data)
        in the file; returns the entry's size in bytes."""
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        head = dict(header or {})
        head.update(key=key, length=len(payload), digest=hashlib.blake2b(payload).hexdigest())
        head_bytes = json.dumps(head, sort_keys=True, default=str).encode()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp_path(key)
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

    def write_dir(self, key: str, source: str | os.PathLike[str], header: Mapping[str, Any] | None = None, *,
                  move: bool = True) -> int:
        """Store the folder ``source`` under ``key`` as a folder entry (see :meth:`storing_dir`);
        returns the entry's size in bytes."""
        with self.storing_dir(key, source, header, move=move) as stored:
            return stored.size_bytes

    @contextlib.contextmanager
    def storing_dir(self, key: str, source: str | os.PathLike[str], header: Mapping[str, Any] | None = None, *,
                    move: bool = True) -> Iterator[Loaded]:
        """Store the folder ``source`` under ``key`` atomically (see the module docstring), with
        ``header`` (plain JSON data) beside it, and hold the new entry's shared lock for the block:
        yields it as :class:`Loaded` (``value``: the stored folder's path, to read in the block).

        ``move``: the folder is moved into the cache (renamed, or copied then deleted when the
        cache is on another file system), so ``source`` is gone afterwards; ``False`` copies it.
        Where another writer stored ``key`` first, its entry is kept and yielded instead (the same
        key is the same content) and ``source`` is still consumed when ``move``. On an error
        (``ValueError``: something in ``source`` is neither a file, a folder nor a link; ``OSError``)
        nothing is stored and ``source`` is left where it was."""
        source = Path(source)
        self.path(key)  # a valid key
        if not source.is_dir():
            raise ValueError(f"{source}: not a folder")
        for rel, kind, _ in _walk(source):
            if kind == "other":
                raise ValueError(f"{source / rel}: neither a file, a folder nor a link; a cached folder holds "
                                 "only those")
        with contextlib.ExitStack() as held:
            stored = self._store_dir(key, source, header, move, held)
            yield stored

    def _store_dir(self, key: str, source: Path, header: Mapping[str, Any] | None, move: bool,
                   held: contextlib.ExitStack) -> Loaded:
        """:meth:`storing_dir`'s work; the lock it takes is released when ``held`` closes."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp_path(key)
        os.mkdir(tmp)
        data = tmp / DATA_NAME
        moved, fd = False, None
        try:
            if move:
                try:
                    os.rename(source, data)
                    moved = True
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
            if not moved:
                shutil.copytree(source, data, symlinks=True)
            files, total = _manifest(data, sync=True)
            head = dict(header or {})
            head.update(magic=DIR_MAGIC, key=key, files=files, data_bytes=total)
            head_bytes = json.dumps(head, sort_keys=True, default=str).encode()
            with open(tmp / HEADER_NAME, "wb") as f:
                f.write(head_bytes)
                f.flush()
                os.fsync(f.fileno())
            _fsync_folder(tmp)
            fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
            fcntl.flock(fd, fcntl.LOCK_SH)  # held before the entry exists: no eviction can take it
            placed = self._place_dir(tmp, key, held)
        except BaseException:
            if fd is not None:
                os.close(fd)
            if moved:
                with contextlib.suppress(OSError):
                    os.rename(data, source)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if move and not moved:
            shutil.rmtree(source, ignore_errors=True)
        if placed is not None:  # another writer's entry: ours is dropped
            os.close(fd)
            shutil.rmtree(tmp, ignore_errors=True)
            return placed
        held.callback(os.close, fd)
        _fsync_folder(self.root)
        return Loaded(self.path(key) / DATA_NAME, head, total + len(head_bytes))

    def _place_dir(self, tmp: Path, key: str, held: contextlib.ExitStack) -> Loaded | None:
        """Rename the complete temporary folder ``tmp`` onto ``key``'s entry: ``None`` done, or
        the entry another writer placed first (its reading lock entered into ``held``)."""
        for _ in range(3):
            try:
                os.rename(tmp, self.path(key))
                return None
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                    raise
            reader = self.reading_dir(key)
            existing = held.enter_context(reader)
            if existing is not None:
                return existing
            # damaged (now removed), evicted meanwhile, or a file entry: try again
        raise OSError(errno.EEXIST, f"cache entry {key} exists and cannot be read as a folder")

    # -- reading --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self, key: str) -> Iterator[IO[bytes] | None]:
        """Open ``key``'s entry under a shared lock held for the block (eviction skips it
        meanwhile); yields the open file, or ``None`` if there is no entry (or it was evicted while
        this reader waited for the lock)."""
        try:
            f = open(self.path(key), "rb")  # noqa: SIM115 - closed by the with below (a miss yields first)
        except (FileNotFoundError, IsADirectoryError):  # a folder entry is not this kind's
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

    @contextlib.contextmanager
    def reading_dir(self, key: str) -> Iterator[Loaded | None]:
        """Open ``key``'s folder entry under a shared lock held for the block (eviction skips it
        meanwhile) and verify it; yields it as :class:`Loaded` (``value``: the stored folder's
        path: read it in the block, never write into it), or ``None``: no folder entry, one
        evicted while this reader waited for the lock, or a damaged one (then removed). A hit
        marks the entry as used now (for LRU eviction)."""
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            yield None
            return
        loaded = None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if _same_inode(path, fd):
                loaded = _check_dir(key, path)
                damaged = loaded is None
            else:
                damaged = False
        except BaseException:
            os.close(fd)
            raise
        if loaded is None:
            os.close(fd)
            if damaged:
                self._discard(key)
            yield None
            return
        try:
            with contextlib.suppress(OSError):
                os.utime(path)
            yield loaded
        finally:
            os.close(fd)  # releases the lock

    def header(self, key: str) -> Mapping[str, Any] | None:
        """The header of ``key``'s entry (a file: verified; a folder: its ``header.json``, the
        files not checked), or ``None``."""
        if self.path(key).is_dir():
            head = _dir_header(key, self.path(key))
            return None if head is None else head[0]
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
                        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                            st = e.stat(follow_symlinks=False)
                            size = _dir_size(Path(e.path)) if stat.S_ISDIR(st.st_mode) else st.st_size
                            out.append((e.name[:-len(SUFFIX)], size, st.st_mtime))
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
        already gone, ``None`` a reader holds it (kept). A folder is renamed to a temporary name
        under the lock (so no reader reaches it any more), then deleted."""
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
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                if not _same_inode(path, fd):
                    return False
                trash = self._tmp_path(key)
                try:
                    os.rename(path, trash)
                except FileNotFoundError:
                    return False
                _fsync_folder(self.root)
                shutil.rmtree(trash, ignore_errors=True)
                return True
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
        """Remove temporary files and folders left by writers (or evictions) that died (on this
        host: their process is gone; any host: older than :data:`STALE_TMP_S`). Returns their
        names."""
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
                if dead or now - e.stat(follow_symlinks=False).st_mtime > STALE_TMP_S:
                    if e.is_dir(follow_symlinks=False):
                        shutil.rmtree(e.path)
                    else:
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


def _same_inode(path: Path, fd: int) -> bool:
    """Whether ``path`` still names what ``fd`` has open (not removed, not replaced)."""
    try:
        a, b = os.stat(path, follow_symlinks=False), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _walk(folder: Path, rel: str = "") -> Iterator[tuple[str, str, os.DirEntry[str]]]:
    """``(relative path, kind, entry)`` of everything under ``folder``, sorted, links not
    followed; kind: ``file``, ``dir``, ``link`` or ``other``."""
    with os.scandir(folder) as it:
        found = sorted(it, key=lambda e: e.name)
    for e in found:
        r = rel + e.name
        if e.is_symlink():
            yield r, "link", e
        elif e.is_dir(follow_symlinks=False):
            yield r, "dir", e
            yield from _walk(Path(e.path), r + "/")
        elif e.is_file(follow_symlinks=False):
            yield r, "file", e
        else:
            yield r, "other", e


def _manifest(folder: Path, sync: bool = False) -> tuple[dict[str, list[Any]], int]:
    """The manifest of ``folder`` (relative path -> ``["file", size, digest]``, ``["dir"]`` or
    ``["link", target]``) and its files' total size; ``sync``: fsync every file and folder.
    Raises ``ValueError`` on anything else (a socket, a device)."""
    files: dict[str, list[Any]] = {}
    total = 0
    for rel, kind, e in _walk(folder):
        if kind == "link":
            files[rel] = ["link", os.readlink(e.path)]
        elif kind == "dir":
            files[rel] = ["dir"]
            if sync:
                _fsync_folder(Path(e.path))
        elif kind == "file":
            digest, size = hashlib.blake2b(), 0
            with open(e.path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                if sync:
                    os.fsync(f.fileno())
            files[rel] = ["file", size, digest.hexdigest()]
            total += size
        else:
            raise ValueError(f"{e.path}: neither a file, a folder nor a link")
    if sync:
        _fsync_folder(folder)
    return files, total


def _dir_header(key: str, entry: Path) -> tuple[dict[str, Any], int] | None:
    """A folder entry's header and the header file's size, if it is one of ``key``'s."""
    try:
        raw = (entry / HEADER_NAME).read_bytes()
        head = json.loads(raw)
    except (OSError, ValueError):
        return None
    if not isinstance(head, dict) or head.get("magic") != DIR_MAGIC or head.get("key") != key:
        return None
    return head, len(raw)


def _check_dir(key: str, entry: Path) -> Loaded | None:
    """A folder entry of ``key`` whose files match its manifest, else ``None``."""
    found = _dir_header(key, entry)
    if found is None:
        return None
    head, head_size = found
    try:
        files, total = _manifest(entry / DATA_NAME)
    except (OSError, ValueError):
        return None
    if files != head.get("files") or total != head.get("data_bytes"):
        return None
    return Loaded(entry / DATA_NAME, head, total + head_size)


def _dir_size(entry: Path) -> int:
    """A folder entry's size: its files' bytes (from its header; a damaged one: counted) plus
    the header's."""
    found = _dir_header(entry.name[:-len(SUFFIX)], entry)
    if found is not None and isinstance(found[0].get("data_bytes"), int):
        return found[0]["data_bytes"] + found[1]
    total = 0
    for root, _, names in os.walk(entry):
        for n in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, n)).st_size
    return total


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
