"""Bugs the chaos harness (tests/helpers/chaos.py, benchmarks/faults.py) found, each reduced to a
deterministic test that failed before its fix."""

from __future__ import annotations

import logging
import time

import pytest

import thrifty as th
from thrifty.errors import StorageError

SPACE = th.Space({"x": th.Float(0.0, 1.0)})


def _storage_of_w0_fails(trial):
    """Worker w0's storage fails (as on a full disk) when its trial ends; the others run on."""
    study = trial._study
    if study._worker_id.endswith("/w0"):
        def full(*_args, **_kwargs):
            raise StorageError("storage sqlite:///x.db: database or disk is full")

        study._storage.finish = full
        return trial.params["x"]
    time.sleep(30)
    return trial.params["x"]


def test_a_worker_error_with_other_workers_running_is_the_runs_error(sqlite_url):
    """Once stop_all had ended the other workers, _collect_exits went on over its snapshot of them
    and raised KeyError (a traceback instead of the worker's one line)."""
    study = th.Study.create(SPACE, "max", name="err", storage=sqlite_url, strategy="random", max_retries=1)
    started = time.time()
    with pytest.raises(th.WorkerError, match=r"^storage sqlite:///x.db: database or disk is full$"):
        study.optimize(_storage_of_w0_fails, n_trials=10, n_workers=3, progress=False)
    assert time.time() - started < 25
    trials = study.trials
    assert not [t for t in trials if t.state is th.TrialState.RUNNING]
    failed = [t for t in trials if t.state is th.TrialState.FAILED]
    assert len(failed) == 3 and all(t.retried for t in failed)
    assert sum("the worker stopped on an error: storage sqlite:///x.db" in t.error for t in failed) == 1
