"""Folder entries of the memo cache (a command stage's output) with real processes and files: a
writer killed mid-write leaves no torn entry, eviction never removes a folder a reader holds, the
size counts every file, a damaged folder is a miss, and concurrent writers of one key keep one whole
entry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import HELPERS

from thrifty.pipelines import DiskCache

WORKER = os.path.join(HELPERS, "pipeline_worker.py")
sys.path.insert(0, HELPERS)

from pipeline_worker import payload


def _worker(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WORKER, *map(str, args)], **kw)


def _folder(path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def test_a_folder_entry_is_moved_in_whole_and_its_size_counts_every_file(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "cache")
    src = _folder(tmp_path / "out", {"a.txt": b"hello", "deep/er/b.bin": b"x" * 1000, "deep/c": b""})
    os.symlink("a.txt", src / "link")
    size = cache.write_dir("k", src, {"stage": 0, "run_cost_usd": 0.5})
    assert not src.exists(), "moved, not copied"
    header = cache.path("k") / "header.json"
    assert size == 5 + 1000 + header.stat().st_size
    assert cache.entries()[0][:2] == ("k", size) and cache.size_bytes() == size
    with cache.reading_dir("k") as got:
        assert got is not None and got.size_bytes == size and got.header["run_cost_usd"] == 0.5
        assert (got.value / "deep" / "er" / "b.bin").read_bytes() == b"x" * 1000
        assert os.readlink(got.value / "link") == "a.txt", "a link is kept as a link"
    assert cache.header("k")["stage"] == 0
    assert cache.load("k") is None, "a folder entry is not a pickled one"
    assert cache.has("k")


def test_a_damaged_folder_entry_is_a_miss_and_removed(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "cache")
    for name, damage in [("changed", lambda d: (d / "a.txt").write_bytes(b"HELLO")),
                         ("extra", lambda d: (d / "new.txt").write_bytes(b"")),
                         ("missing", lambda d: (d / "a.txt").unlink())]:
        cache.write_dir(name, _folder(tmp_path / name, {"a.txt": b"hello"}))
        damage(cache.path(name) / "data")
        with cache.reading_dir(name) as got:
            assert got is None, name
        assert not cache.has(name), name
    (cache.path("torn") / "data").mkdir(parents=True)  # no header: never a valid entry
    with cache.reading_dir("torn") as got:
        assert got is None


def test_concurrent_writers_of_one_folder_key_keep_one_whole_entry(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "cache")
    first = _folder(tmp_path / "first", {"v": b"first"})
    second = _folder(tmp_path / "second", {"v": b"second"})
    with cache.storing_dir("k", first) as a:
        with cache.storing_dir("k", second) as b:  # the key is taken: the first entry is kept, whole
            assert (a.value / "v").read_bytes() == (b.value / "v").read_bytes() == b"first"
        assert not second.exists(), "the second folder was consumed (moved, then dropped)"
    assert os.listdir(cache.root) == ["k.entry"], "no temporary folder is left"


def test_a_writer_killed_mid_write_leaves_no_torn_folder_entry(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    for _ in range(5):  # killed just between two writes (no temporary folder left): again
        proc = _worker("write-dirs", folder, 32)
        deadline = time.time() + 20
        while time.time() < deadline:
            if folder.exists() and any(n.endswith(".tmp") for n in os.listdir(folder)):
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        left = [n for n in os.listdir(folder) if n.endswith(".tmp")]
        if left:
            break
    else:
        raise AssertionError("the writer was never killed mid-write")
    [tmp] = left
    assert (folder / tmp).is_dir()
    cache = DiskCache(folder)
    key = tmp[1:].split(".")[0]
    with cache.reading_dir(key) as got:
        assert got is None, "the entry being written does not exist: the next reader misses"
    for other, _, _ in cache.entries():  # every entry written before is whole
        with cache.reading_dir(other) as got:
            assert got is not None and (got.value / "sub" / "d.bin").read_bytes() == payload("part3", 8 * 1024 * 1024)
    assert tmp in cache.clean_temporaries() and not (folder / tmp).exists(), "the dead writer's folder is removed"


def test_eviction_never_removes_a_folder_entry_a_reader_holds(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "cache", max_bytes=3 * 1024 * 1024)
    mb = 1024 * 1024
    cache.write_dir("old", _folder(tmp_path / "old", {"a": payload("old", mb // 2), "b/c": payload("c", mb // 2)}))
    holder = _worker("hold-dir", cache.root, "old", stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        for i in range(4):  # more than the limit: the least recently used go, except the held one
            time.sleep(0.01)
            cache.write_dir(f"new{i}", _folder(tmp_path / f"new{i}", {"a": payload(f"new{i}", mb)}))
            evicted = cache.evict(keep={f"new{i}"})
            assert "old" not in evicted
        assert cache.has("old"), "the folder being read was kept"
        assert not cache.has("new0"), "an older entry nobody reads was evicted instead"
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=10) == 0
    cache.max_bytes = mb + 4096  # room for one entry
    assert "old" in cache.evict(), "once released, the least recently used entry goes"
    assert cache.size_bytes() <= cache.max_bytes
    assert not [n for n in os.listdir(cache.root) if n.startswith(".")], "evicted folders are deleted whole"
