"""A whole study on a PostgreSQL cluster that the tests start and stop themselves (initdb + pg_ctl)."""

from __future__ import annotations

import math
import time

import pytest

import _postgres
import thrifty as th
from conftest import missing


_first_trial_in_this_process = True


def objective(trial):
    global _first_trial_in_this_process
    if _first_trial_in_this_process:  # each worker's first trial waits for the other worker's one
        _first_trial_in_this_process = False
        deadline = time.time() + 30
        while trial.study.counts().get(th.TrialState.RUNNING, 0) < 2 and time.time() < deadline:
            time.sleep(0.02)
    trial.report(trial.params["x"] / 2, step=1, cost_usd=0.001)
    return trial.params["x"] + trial.params["k"] / 1000


def test_study_on_a_throwaway_cluster():
    if not _postgres.pg_ctl_available():
        missing("pg_ctl/initdb not found: cannot start a throwaway PostgreSQL")
    cluster = _postgres.ThrowawayCluster.start()
    try:
        url = cluster.url
        assert _postgres.can_connect(url)
        space = th.Space({"x": th.Float(0.0, 1.0), "k": th.Int(0, 100)})
        study = th.Study.create(space, "max", name="throwaway", storage=url, strategy="sobol", seed=2)
        study.optimize(objective, n_trials=20, n_workers=2, progress=False)

        loaded = th.Study.load("throwaway", storage=url)
        trials = loaded.trials
        assert [t.number for t in trials] == list(range(20))
        assert all(t.state is th.TrialState.COMPLETED for t in trials)
        assert len({t.worker_id for t in trials}) == 2, "both worker processes ran trials"
        assert len({(t.params["x"], t.params["k"]) for t in trials}) == 20
        assert all(t.value == pytest.approx(t.params["x"] + t.params["k"] / 1000) for t in trials)
        assert loaded.cost_usd == pytest.approx(math.fsum(t.cost_usd for t in trials))
        assert loaded.cost_usd == pytest.approx(20 * 0.001)
        assert loaded.best.number == max(trials, key=lambda t: t.value).number
        assert [s.name for s in loaded.storage.list_studies()] == ["throwaway"]
        loaded.close()
        study.close()
    finally:
        cluster.stop()
    assert not _postgres.can_connect(url), "the cluster was stopped"
