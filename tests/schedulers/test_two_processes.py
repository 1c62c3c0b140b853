"""Every scheduler decides from the study's history only: two fresh processes that load one SQLite
study reach the same decisions (plans, continue/stop/pause, PBT successors) as this process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import HELPERS

import thrifty as th
from thrifty.schedulers.asha import ASHA
from thrifty.schedulers.hyperband import Hyperband
from thrifty.schedulers.pbt import PBT

WORKER = os.path.join(HELPERS, "decide_worker.py")
sys.path.insert(0, HELPERS)
from decide_worker import decisions  # noqa: E402  (the same function the two processes run)
SPACE = th.Space({"lr": th.Float(1e-3, 1.0, log=True), "act": th.Categorical(["relu", "tanh"])})


def build(url: str, scheduler) -> th.Study:
    """A study with a fixed history: 9 finished-or-paused trials with known curves, and 3 running
    trials whose latest report sits on a rung / perturbation step."""
    study = th.Study.create(SPACE, "max", name="shared", storage=url, scheduler=scheduler, seed=5)
    finals = [0.61, 0.95, 0.32, 0.77, 0.18, 0.84, 0.45, 0.52, 0.9]
    running = [0.5, 0.99, 0.05]
    handles = []
    for i in range(len(finals) + len(running)):  # all started first: a pause is told only later
        study.enqueue({"lr": 0.01 * (i + 1), "act": "relu" if i % 2 else "tanh"})
        handles.append(study.ask())
    for t, v in zip(handles, finals + running):
        for step in range(1, 5 if v in finals else 4):
            t.report(v * step / 4, step=step)
    for i, t in enumerate(handles[:len(finals)]):
        study.tell(t, state="paused" if i in (1, 4, 8) else "stopped")
    return study


@pytest.mark.parametrize("scheduler", [
    ASHA(min_resource=1, max_resource=9, reduction_factor=3, mode="promotion", check_rungs=False),
    Hyperband(min_resource=1, max_resource=9, reduction_factor=3, synchronous=True),
    Hyperband(min_resource=1, max_resource=9, reduction_factor=3, seed=2),
    PBT(population_size=12, perturbation_interval=3, max_resource=9, seed=4),
], ids=["asha-promotion", "hyperband-sync", "hyperband-async", "pbt"])
def test_two_processes_reach_the_same_decisions(sqlite_url, scheduler):
    study = build(sqlite_url, scheduler)
    here = decisions(study)
    assert len(here["decisions"]) == 3
    procs = [subprocess.Popen([sys.executable, WORKER, sqlite_url, "shared"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    assert outs[0] == outs[1] == here
    if isinstance(scheduler, PBT):  # the worst running member (0.05 at step 3) is replaced
        worst = here["decisions"]["11"]
        assert worst["decision"] == "stop" and worst["successor"] is not None
    if isinstance(scheduler, ASHA):
        # Rung 3 holds the 12 trials: its top 4 are 11 (running), 1, 8 and 5; 1 and 8 are paused
        # (at step 4 < 9), so they are resumed, best first; paused trial 4 (0.18) is not.
        assert here["plan"]["resume"] == [1, 8]
