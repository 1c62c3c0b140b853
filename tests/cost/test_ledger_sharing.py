"""One study, one ledger: processes that create, resume or join a study spend against the same
dollar budget, and raising the budget of a study its budget stopped lets it go on."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest

import thrifty as th
from conftest import HELPERS

WORKER = os.path.join(HELPERS, "ledger_worker.py")
PER_REPORT = 0.03125  # the helper's trials: 4 reports of $0.03125 = $0.125 each, no metering
PER_TRIAL = 4 * PER_REPORT
SPACE = th.Space({"x": th.Float(0.0, 1.0)})


def _args(url: str, name: str, budget: float, n_trials: int, sleep_s: float, *markers: str) -> list[str]:
    return [sys.executable, WORKER, url, name, repr(budget), str(n_trials), repr(sleep_s), *markers]


def _run(url: str, name: str, budget: float, n_trials: int, sleep_s: float = 0.0) -> dict:
    p = subprocess.run(_args(url, name, budget, n_trials, sleep_s), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def _check_ledger(study: th.Study) -> list[th.Trial]:
    trials = study.trials
    for t in trials:
        assert t.cost_usd == pytest.approx(math.fsum(m.cost_usd for m in t.measurements), abs=1e-12)
    assert study.cost_usd == pytest.approx(math.fsum(t.cost_usd for t in trials), abs=1e-12)
    counts = study.counts()
    assert counts.get(th.TrialState.RUNNING, 0) == 0 and counts.get(th.TrialState.PENDING, 0) == 0
    return trials


def test_a_resumed_study_spends_from_the_same_ledger(db_url):
    first = _run(db_url, "shared-ledger", 1.0, 3)
    assert first["numbers"] == [0, 1, 2] and first["reason"] == "n_trials"
    assert first["spent_usd"] == pytest.approx(3 * PER_TRIAL)
    mid = th.Study.load("shared-ledger", storage=db_url)
    assert mid.budget == th.Budget(usd=1.0)
    assert mid.cost_usd == pytest.approx(0.375) and mid.usage().usd == pytest.approx(0.375)

    # The second process has no trial limit: only the budget, with $0.625 left of it, stops it.
    second = _run(db_url, "shared-ledger", 1.0, 0)
    assert second["reason"] == "usd", second
    assert second["numbers"][0] == 3, "the second process continues the study"
    # A fresh ledger would have allowed 8 trials; $0.625 left allows 5 at most (4 if the soft
    # forecast check refuses the last one, which would just fit).
    assert len(second["numbers"]) in (4, 5), second
    study = th.Study.load("shared-ledger", storage=db_url)
    trials = _check_ledger(study)
    assert len(trials) == 3 + len(second["numbers"])
    assert study.cost_usd <= 1.0 + 1e-12
    assert study.cost_usd == pytest.approx(0.375 + len(second["numbers"]) * PER_TRIAL)
    assert second["spent_usd"] == pytest.approx(study.cost_usd), "RunResult shows the study's whole spend"

    # A third process finds the budget spent and starts nothing.
    third = _run(db_url, "shared-ledger", 1.0, 0)
    assert third["numbers"] == [] and third["reason"] == "usd"
    assert th.Study.load("shared-ledger", storage=db_url).cost_usd == pytest.approx(study.cost_usd)


def test_processes_running_at_once_share_the_ledger(db_url, tmp_path):
    budget = 2.0  # 16 trials of $0.125 for both processes together
    study = th.Study.create(SPACE, "max", name="joined", storage=db_url, budget=th.Budget(usd=budget))
    a_started, b_started = tmp_path / "a_started", tmp_path / "b_started"
    # The first process's first trial holds on until the second process has started a trial, so
    # the second joins while the first runs, however slowly it starts.
    a = subprocess.Popen(_args(db_url, "joined", budget, 0, 0.01, str(a_started), str(b_started)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not a_started.exists() and a.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert a_started.exists(), "the first process never started a trial"
    b = subprocess.Popen(_args(db_url, "joined", budget, 0, 0.01, str(b_started)), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    outs = []
    for p in (a, b):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    ra, rb = outs

    assert ra["reason"] == "usd" and rb["reason"] == "usd", (ra, rb)
    assert ra["numbers"] and rb["numbers"], "both processes worked on the study"
    assert not set(ra["numbers"]) & set(rb["numbers"])
    trials = _check_ledger(study)
    assert sorted(ra["numbers"] + rb["numbers"]) == [t.number for t in trials]
    # They really ran at the same time: the second started trials while the first was running.
    a_trials = [t for t in trials if t.number in ra["numbers"]]
    b_trials = [t for t in trials if t.number in rb["numbers"]]
    assert min(t.started_at for t in b_trials) < max(t.finished_at for t in a_trials)
    # Each alone would have spent the whole $2; together they spent it once. Over the limit by at
    # most the report in flight in the other process when the breaker tripped; under it by at
    # most what the soft forecast check keeps back (less than one trial).
    spent = study.cost_usd
    assert budget - PER_TRIAL - PER_REPORT <= spent <= budget + PER_REPORT + 1e-12, spent
    assert len(trials) <= 16 + 2
    record = study.storage.study_status(study.id)
    if spent >= budget:
        assert record.budget_stop is not None and record.budget_stop.limit == "usd"
    for t in trials:
        assert t.state in (th.TrialState.COMPLETED, th.TrialState.STOPPED)
        if t.state is th.TrialState.STOPPED:
            assert t.stop_kind is th.StopKind.BUDGET and t.stop_limit == "usd"
    assert ra["spent_usd"] <= spent + 1e-12 and rb["spent_usd"] <= spent + 1e-12


def _charge(trial: th.TrialHandle) -> float:
    for step in range(1, 5):
        trial.report(trial.params["x"], step=step, cost_usd=PER_REPORT)
    return trial.params["x"]


def test_raising_the_budget_of_a_study_it_stopped_lets_it_go_on(db_url):
    study = th.Study.create(SPACE, "max", name="raised", storage=db_url, budget=th.Budget(usd=0.3))
    first = study.optimize(_charge, n_trials=50, progress=False)
    # $0.125, $0.25, then the third trial reaches $0.3125 at its second report: the breaker trips.
    assert first.reason == "usd" and first.n_trials == 3
    trials = study.trials
    assert [t.state for t in trials] == [th.TrialState.COMPLETED] * 2 + [th.TrialState.STOPPED]
    assert trials[2].stop_kind is th.StopKind.BUDGET and len(trials[2].measurements) == 3  # 2 reports + tell
    assert study.cost_usd == pytest.approx(0.3125)
    tripped = study.storage.study_status(study.id).budget_stop
    assert tripped is not None and tripped.at is not None
    stopped_at = tripped.at
    with pytest.raises(th.StudyExhausted):
        study.ask()

    # Another process (another Study object) raises the budget: the breaker re-arms.
    other = th.Study.load("raised", storage=db_url)
    other.set_budget(th.Budget(usd=0.8))
    assert study.budget == th.Budget(usd=0.8)
    assert study.storage.study_status(study.id).budget_stop is None
    second = study.optimize(_charge, n_trials=2, progress=False)
    assert second.reason == "n_trials" and second.n_trials == 2
    assert [t.state for t in study.trials[3:]] == [th.TrialState.COMPLETED] * 2
    assert study.cost_usd == pytest.approx(0.5625)

    # The re-armed breaker trips again when the new limit is reached, and stops every running trial.
    running = study.ask()
    spender = study.ask()
    running.report(0.5, step=1, cost_usd=0.01)
    with pytest.raises(th.TrialStopped) as info:
        spender.report(0.5, step=1, cost_usd=0.3)
    assert spender.stop is not None and spender.stop.kind is th.StopKind.BUDGET
    assert info.value.reason == spender.stop.text
    record = study.storage.study_status(study.id)
    assert record.budget_stop is not None and record.budget_stop.at > stopped_at
    assert running.should_stop()
    study.tell(spender, state="stopped", reason=info.value.reason)

    # Raised once more while a trial it asked to stop is still running: that trial may go on.
    study.set_budget({"usd": 5.0})
    assert not running.should_stop()
    running.report(0.6, step=2, cost_usd=0.01)  # no TrialStopped
    done = study.tell(running, 0.6)
    assert done.state is th.TrialState.COMPLETED and done.reason is None
    assert study.optimize(_charge, n_trials=1, progress=False).reason == "n_trials"
    _check_ledger(study)
    assert study.cost_usd == pytest.approx(0.5625 + 0.01 + 0.3 + 0.01 + PER_TRIAL)
