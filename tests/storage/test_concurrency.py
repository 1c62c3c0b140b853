"""Many real processes on one study: SQLite file and PostgreSQL."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

import thrifty as th
from conftest import HELPERS


@pytest.mark.parametrize(("n_workers", "per_worker", "n_enqueued"), [
    # The default run: 4 processes on each storage (starting a process costs more than its asks).
    pytest.param(4, 60, 40, id="4-processes"),
    pytest.param(8, 250, 200, marks=pytest.mark.slow, id="8-processes"),
])
def test_processes_share_one_study(db_url, tmp_path, n_workers, per_worker, n_enqueued):
    space = th.Space({"x": th.Float(0.0, 1.0), "k": th.Int(0, 10_000)})
    study = th.Study.create(space, "max", name="shared", storage=db_url, strategy="random", seed=1)
    enqueued = {study.enqueue({"x": 0.5, "k": i}).number: i for i in range(n_enqueued)}
    go = tmp_path / "go"
    outs = [tmp_path / f"worker{i}.json" for i in range(n_workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, os.path.join(HELPERS, "ask_tell_worker.py"), db_url, "shared", str(per_worker),
             str(out), str(go)],
            stderr=subprocess.PIPE, text=True,
        )
        for out in outs
    ]
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err

    handed = [h for out in outs for h in json.loads(out.read_text())]
    numbers = [h["number"] for h in handed]
    total = n_workers * per_worker
    # No trial was handed out twice, and every ask got a trial.
    assert len(numbers) == total
    assert len(set(numbers)) == total
    # Each enqueued trial was handed out exactly once, with its own params.
    for h in handed:
        if h["number"] in enqueued:
            assert h["params"] == {"x": 0.5, "k": enqueued[h["number"]]}
    assert set(enqueued) <= set(numbers)
    # Every worker did some of the enqueued work or new work; all workers took part.
    assert len({h["pid"] for h in handed}) == n_workers

    trials = study.trials
    assert [t.number for t in trials] == list(range(total)), "numbers are unique and dense"
    assert all(t.state is th.TrialState.COMPLETED for t in trials)
    assert all(t.value == float(t.number) for t in trials), "no write was lost or crossed"
    assert study.cost_usd == pytest.approx(math.fsum(t.cost_usd for t in trials), abs=1e-9)
    assert study.cost_usd == pytest.approx(total * 0.001, rel=1e-9)
