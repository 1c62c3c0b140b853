"""A study run in one process and resumed in another continues where it stopped."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

import thrifty as th
from conftest import HELPERS

WORKER = os.path.join(HELPERS, "resume_worker.py")
SEED = 11
#: Per process: 3 trials through ask/tell ($0.06 each), then 2 through optimize() ($0.03 each).
N_ASK, N_OPT = 3, 2


def _run_worker(url: str, name: str) -> list[int]:
    p = subprocess.run(
        [sys.executable, WORKER, url, name, str(SEED), str(N_ASK), str(N_OPT)],
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def _reference_params(n: int) -> list[dict]:
    """What a fresh in-memory study with the same space, strategy and seed proposes for 0..n-1."""
    space = th.Space({"x": th.Float(0.0, 1.0), "lr": th.Float(1e-4, 1e-1, log=True), "k": th.Int(1, 64)})
    ref = th.Study.create(space, "max", storage="memory", strategy="sobol", seed=SEED)
    out = []
    for _ in range(n):
        t = ref.ask()
        out.append(dict(t.params))
        ref.tell(t, 0.0)
    return out


def test_study_resumes_in_another_process(db_url):
    first = _run_worker(db_url, "resumable")
    assert first == [0, 1, 2, 3, 4]
    mid = th.Study.load("resumable", storage=db_url)
    assert [t.number for t in mid.trials] == [0, 1, 2, 3, 4]
    assert mid.cost_usd == pytest.approx(N_ASK * 0.06 + N_OPT * 0.03)

    second = _run_worker(db_url, "resumable")
    assert second == [5, 6, 7, 8, 9], "the second process continues the numbering"

    study = th.Study.load("resumable", storage=db_url)
    trials = study.trials
    assert [t.number for t in trials] == list(range(10)), "numbers are dense"
    assert all(t.state is th.TrialState.COMPLETED for t in trials)
    assert study.strategy.name == "sobol" and study.seed == SEED

    ref = _reference_params(10)
    got = [dict(t.params) for t in trials]
    assert got[:5] == ref[:5]
    assert got[5:] == ref[5:], "the resumed run continues the Sobol sequence"
    assert got[5:] != ref[:5], "the resumed run did not restart the sequence at 0"
    assert len({p["x"] for p in got}) == 10

    for t in trials:
        assert t.value == t.params["x"]
        assert t.cost_usd == pytest.approx(math.fsum(m.cost_usd for m in t.measurements), abs=1e-12)
    per_process = N_ASK * 0.06 + N_OPT * 0.03
    assert study.cost_usd == pytest.approx(math.fsum(t.cost_usd for t in trials), abs=1e-12)
    assert study.cost_usd == pytest.approx(2 * per_process)
    assert study.best.value == max(p["x"] for p in got)
