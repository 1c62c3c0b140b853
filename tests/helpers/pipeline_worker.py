"""Processes for the pipeline tests (tests/pipelines/).

usage:
  pipeline_worker.py write FOLDER KEY TAG N       write N entries of KEY, each a 2 MB payload tagged TAG
  pipeline_worker.py write-many FOLDER SIZE_MB    write keys k0, k1, ... (SIZE_MB each) until killed
  pipeline_worker.py hold FOLDER KEY              read KEY under its shared lock, print "holding",
                                                  keep the lock until stdin closes
  pipeline_worker.py write-dirs FOLDER SIZE_MB    store folder entries d0, d1, ... (four files of SIZE_MB / 4
                                                  each, copied from FOLDER/../source) until killed
  pipeline_worker.py hold-dir FOLDER KEY          read folder entry KEY under its shared lock, print
                                                  "holding", keep the lock until stdin closes
  pipeline_worker.py study URL CACHE HANG_AT      run a pipeline study (name "p", 6 trials, fixed params);
                                                  the train stage of trial HANG_AT writes FOLDER/hanging
                                                  and sleeps (the test kills it); -1: never
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import thrifty as th
from thrifty.pipelines import DiskCache


def payload(tag: str, size: int = 2 * 1024 * 1024) -> bytes:
    return (tag.encode() * (size // max(len(tag), 1) + 1))[:size]


def pipeline(cache: str, hang_at: int = -1) -> th.Pipeline:
    def prep(p, data):
        return {"rows": list(range(p["n"]))}

    def train(p, data, trial):
        if trial.number == hang_at:
            with open(os.path.join(cache, "..", "hanging"), "w") as f:
                f.write(str(os.getpid()))
            time.sleep(600)
        return sum(data["rows"]) * p["lr"]

    def evaluate(p, data):
        return {"f1": data * p["t"]}

    return th.Pipeline([
        th.Stage("prep", prep, space={"n": th.Int(1, 4)}),
        th.Stage("train", train, space={"lr": th.Float(0.1, 1.0)}),
        th.Stage("eval", evaluate, space={"t": th.Float(0.1, 0.9)}),
    ], cache_dir=cache)


#: The study's trials: two prep configurations, each trained twice, each evaluated twice.
PARAMS = [{"n": n, "lr": lr, "t": t} for n in (2, 3) for lr in (0.5, 0.25) for t in (0.5, 0.75)][:6]


def main() -> None:
    cmd = sys.argv[1]
    if cmd == "write":
        folder, key, tag, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
        cache = DiskCache(folder)
        for _ in range(n):
            cache.write(key, payload(tag), {"tag": tag})
    elif cmd == "write-many":
        folder, size = sys.argv[2], int(sys.argv[3]) * 1024 * 1024
        cache = DiskCache(folder)
        i = 0
        while True:
            cache.write(f"k{i}", payload(f"entry{i}", size))
            i += 1
    elif cmd == "hold":
        folder, key = sys.argv[2], sys.argv[3]
        with DiskCache(folder).reading(key) as f:
            assert f is not None
            print("holding", flush=True)
            sys.stdin.read()
    elif cmd == "write-dirs":
        folder, size = Path(sys.argv[2]), int(sys.argv[3]) * 1024 * 1024
        source = folder.parent / "source"
        (source / "sub").mkdir(parents=True, exist_ok=True)
        for j, name in enumerate(["a.bin", "b.bin", "sub/c.bin", "sub/d.bin"]):
            (source / name).write_bytes(payload(f"part{j}", size // 4))
        cache = DiskCache(folder)
        i = 0
        while True:
            cache.write_dir(f"d{i}", source, {"i": i}, move=False)
            i += 1
    elif cmd == "hold-dir":
        folder, key = sys.argv[2], sys.argv[3]
        with DiskCache(folder).reading_dir(key) as got:
            assert got is not None
            print("holding", flush=True)
            sys.stdin.read()
    elif cmd == "study":
        url, cache, hang_at = sys.argv[2], sys.argv[3], int(sys.argv[4])
        study = th.Study.create(pipeline=pipeline(cache, hang_at), objective={"f1": "max"}, name="p", storage=url,
                                strategy="random", scheduler=None, load_if_exists=True, pricing={"local": 3.6},
                                heartbeat_grace_s=2.0)
        if study.created:
            for p in PARAMS:
                study.enqueue(p)
        study.optimize(n_trials=len(PARAMS), progress=False)
        study.close()
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
