"""Crashes and interrupts with real processes: nothing is lost, nothing stays RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import thrifty as th
from conftest import HELPERS

WORKER = os.path.join(HELPERS, "optimize_worker.py")
SPACE = th.Space({"x": th.Float(0.0, 1.0), "c": th.Categorical(["a", "b"])})


def _run(url, name, mode, marker, *extra, **kw):
    return subprocess.Popen([sys.executable, WORKER, url, name, mode, str(marker), *map(str, extra)],
                            stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(path, timeout_s=60.0):
    deadline = time.time() + timeout_s
    while not os.path.exists(path):
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_worker_trial_is_failed_retried_and_study_completes(db_url, tmp_path):
    study = th.Study.create(SPACE, "max", name="crash", storage=db_url, budget=th.Budget(trials=12),
                            max_retries=1, heartbeat_grace_s=1.0, seed=3)
    marker = tmp_path / "trial3"
    a = _run(db_url, "crash", "hang", marker)
    _wait_for(marker)
    os.kill(a.pid, signal.SIGKILL)
    a.wait(timeout=30)
    ghost = next(t for t in study.trials if t.number == 3)
    assert ghost.state is th.TrialState.RUNNING  # the worker died without a word

    b = _run(db_url, "crash", "normal", marker)
    _, err = b.communicate(timeout=300)
    assert b.returncode == 0, err

    trials = study.trials
    assert [t.number for t in trials] == list(range(len(trials)))
    failed = next(t for t in trials if t.number == 3)
    assert failed.state is th.TrialState.FAILED
    assert "no heartbeat" in failed.error and "re-enqueued" in failed.error
    assert failed.retried
    retries = [t for t in trials if t.retry_of == 3]
    assert len(retries) == 1
    assert retries[0].state is th.TrialState.COMPLETED
    assert dict(retries[0].params) == dict(failed.params)
    states = [t.state for t in trials]
    assert states.count(th.TrialState.COMPLETED) == 12
    assert th.TrialState.RUNNING not in states and th.TrialState.PENDING not in states


@pytest.mark.slow
def test_supervisor_fails_and_replaces_a_worker_that_dies(sqlite_url, tmp_path):
    study = th.Study.create(SPACE, "max", name="suicide", storage=sqlite_url, max_retries=1, seed=4)
    p = _run(sqlite_url, "suicide", "suicide", tmp_path / "m", 2, 8)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    trials = study.trials
    dead = next(t for t in trials if t.number == 2)
    assert dead.state is th.TrialState.FAILED and "died" in dead.error
    retry = next(t for t in trials if t.retry_of == 2)
    assert retry.state is th.TrialState.COMPLETED and dict(retry.params) == dict(dead.params)
    assert [t.state for t in trials].count(th.TrialState.COMPLETED) == 8
    assert th.TrialState.RUNNING not in [t.state for t in trials]


@pytest.mark.slow
@pytest.mark.parametrize("n_workers", [1, 3])
def test_ctrl_c_leaves_no_running_trials(sqlite_url, tmp_path, n_workers):
    study = th.Study.create(SPACE, "max", name="interrupt", storage=sqlite_url, seed=5)
    marker = tmp_path / "started"
    p = _run(sqlite_url, "interrupt", "slow", marker, n_workers, start_new_session=True)
    _wait_for(marker)
    deadline = time.time() + 30
    while study.counts().get(th.TrialState.RUNNING, 0) < n_workers:
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    p.communicate(timeout=60)
    assert p.returncode != 0
    trials = study.trials
    assert trials, "trials had started"
    assert all(t.state is not th.TrialState.RUNNING for t in trials)
    interrupted = [t for t in trials if t.state is th.TrialState.FAILED]
    assert len(interrupted) >= n_workers
    assert all("interrupted" in t.error or "died" in t.error for t in interrupted)
