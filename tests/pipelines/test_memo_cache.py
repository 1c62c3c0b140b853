"""The on-disk memo cache with real processes: concurrent writers never corrupt an entry, a writer
killed mid-write leaves no torn entry, and eviction never removes an entry a reader holds."""

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


def test_concurrent_writers_of_one_key_never_corrupt_it(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    tags = ["alpha", "beta", "gamma"]
    procs = [_worker("write", tmp_path, "k", tag, 15) for tag in tags]
    seen = set()
    while any(p.poll() is None for p in procs):
        got = cache.load("k")
        if got is not None:  # every read is one writer's whole entry, never a mix or a torn one
            assert got.value in {payload(t) for t in tags}
            assert got.header["tag"] in tags
            seen.add(got.header["tag"])
    assert all(p.wait() == 0 for p in procs)
    final = cache.load("k")
    assert final is not None and final.value == payload(final.header["tag"])
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")], "no temporary file is left"


def _kill_mid_write(folder: Path) -> str:
    """Start a writer of 16 MB entries, SIGKILL it while it writes one; the temporary file it
    left (``.<key>.<host>.<pid>.<random>.tmp``)."""
    for _ in range(5):  # killed just between two writes (no temporary file left): again
        proc = _worker("write-many", folder, 16)
        deadline = time.time() + 20
        while time.time() < deadline:
            if folder.exists() and any(n.endswith(".tmp") for n in os.listdir(folder)):
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        left = [n for n in os.listdir(folder) if n.endswith(".tmp")]
        if left:
            assert len(left) == 1
            return left[0]
    raise AssertionError("the writer was never killed mid-write")


def test_a_writer_killed_mid_write_leaves_no_torn_entry(tmp_path: Path) -> None:
    tmp = _kill_mid_write(tmp_path)
    cache = DiskCache(tmp_path)
    key = tmp[1:].split(".")[0]
    assert cache.load(key) is None, "the entry being written does not exist: the next reader misses"
    for other, _, _ in cache.entries():  # every entry written before is whole
        got = cache.load(other)
        assert got is not None and got.value == payload(f"entry{other[1:]}", 16 * 1024 * 1024)
    assert tmp in cache.clean_temporaries(), "the dead writer's temporary file is cleaned up"
    # The next writer of that key (the trial that recomputes it) stores it whole.
    cache.write(key, "recomputed")
    assert cache.load(key).value == "recomputed"


def test_eviction_never_removes_an_entry_a_reader_holds(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, max_bytes=3 * 1024 * 1024)
    cache.write("old", payload("old", 1024 * 1024))
    holder = _worker("hold", tmp_path, "old", stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        for i in range(4):  # more than the limit: the least recently used go, except the held one
            time.sleep(0.01)
            cache.write(f"new{i}", payload(f"new{i}", 1024 * 1024))
            evicted = cache.evict(keep={f"new{i}"})
            assert "old" not in evicted
        assert cache.has("old"), "the entry being read was kept"
        assert not cache.has("new0"), "an older entry nobody reads was evicted instead"
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=10) == 0
    cache.max_bytes = 1024 * 1024 + 4096  # room for one entry
    assert "old" in cache.evict(), "once released, the least recently used entry goes"
    assert cache.size_bytes() <= cache.max_bytes
