"""The cost report: a ledger with hand-checkable numbers (every state's spend counted, failed
trials included), the budget and what is left, the circuit breaker, the estimates (savings from
early stopping, forecast to finish) and the JSON form."""

from __future__ import annotations

import json
import math

import pytest

import thrifty as th
from thrifty.analysis.report import (
    CostReport,
    cost_report,
    error_gist,
    forecast_trials,
    full_resource,
    random_configs,
)

SPACE = th.Space({"x": th.Float(0.0, 1.0)})
TRACEBACK = 'Traceback (most recent call last):\n  File "train.py", line 3, in <module>\nValueError: boom\n'


def _full_trial(study, value, steps=10, usd_per_step=0.1, s_per_step=1.0):
    t = study.ask()
    for step in range(1, steps + 1):
        t.report(value, step=step, cost_usd=usd_per_step, elapsed_s=s_per_step)
    return study.tell(t, value, elapsed_s=0.0)


def _stopped_trial(study, steps=3, usd_per_step=0.1, s_per_step=1.0, reason="scheduler: asha"):
    t = study.ask()
    for step in range(1, steps + 1):
        t.report(0.1, step=step, cost_usd=usd_per_step, elapsed_s=s_per_step)
    return study.tell(t, state="stopped", reason=reason, elapsed_s=0.0)


@pytest.fixture
def mixed(sqlite_url):
    """A study with a known ledger, no pricing (a trial costs what it reports), 2 GPUs a trial.

    - trials 0-3 completed: 10 steps of $0.10 and 1 s each: $1.00, 10 s, 20 GPU-s each;
    - trials 4-5 stopped early at step 3: $0.30, 3 s each;
    - trial 6 failed: $0.20 reported at step 1 (1 s), then $0.05 told with the traceback: $0.25;
    - trial 7 infeasible: $0.10 told with the reason, no step;
    - trial 8 still running: $0.50 reported at step 1 (1 s).
    Total $5.45; GPU-seconds 2 x (40 + 6 + 1 + 0 + 1) = 96.
    """
    study = th.Study.create(SPACE, "max", name="mixed", storage=sqlite_url, resources={"gpu": 2},
                            budget=th.Budget(trials=10, usd=100.0))
    for i in range(4):
        _full_trial(study, 0.5 + i / 10)
    _stopped_trial(study)
    _stopped_trial(study)
    t = study.ask()
    t.report(0.05, step=1, cost_usd=0.2, elapsed_s=1.0)
    study.tell(t, state="failed", error=TRACEBACK, cost_usd=0.05, elapsed_s=0.0)
    t = study.ask()
    study.tell(t, state="infeasible", error="out of memory at batch 512\nCUDA said so", cost_usd=0.1, elapsed_s=0.0)
    running = study.ask()
    running.report(0.01, step=1, cost_usd=0.5, elapsed_s=1.0)
    return study


def test_ledger_and_spend_by_state_add_up(mixed):
    r = cost_report(mixed)
    assert isinstance(r, CostReport)
    assert r.study == "mixed" and r.objectives == {"value": "max"}
    assert r.spent_usd == pytest.approx(5.45)
    assert r.trials_started == 9 and r.trials_total == 9
    assert r.gpu_hours == pytest.approx(96 / 3600)
    assert r.wall_s >= 0.0

    expected = {  # state: (trials, dollars, seconds, GPU-hours)
        "completed": (4, 4.0, 40.0, 80 / 3600),
        "stopped": (2, 0.6, 6.0, 12 / 3600),
        "failed": (1, 0.25, 1.0, 2 / 3600),
        "infeasible": (1, 0.1, 0.0, 0.0),
        "running": (1, 0.5, 1.0, 2 / 3600),
    }
    assert [s.state for s in r.by_state] == list(expected)
    for state, (n, usd, secs, gpu_h) in expected.items():
        s = r.spend(state)
        assert (s.trials, s.cost_usd, s.elapsed_s, s.gpu_hours) == (
            n, pytest.approx(usd), pytest.approx(secs), pytest.approx(gpu_h)), state
    # Nothing is hidden: the states add up to the ledger, failed and infeasible trials included.
    assert math.fsum(s.cost_usd for s in r.by_state) == pytest.approx(r.spent_usd)
    assert r.notes == ()

    by_number = {t.number: t for t in r.trials}
    assert [t.number for t in r.trials] == list(range(9))
    assert by_number[0].state == "completed" and by_number[0].cost_usd == pytest.approx(1.0)
    assert by_number[0].elapsed_s == pytest.approx(10.0) and by_number[0].gpu_hours == pytest.approx(20 / 3600)
    assert by_number[0].last_step == 10 and by_number[0].note is None
    assert by_number[0].resources == {"gpu": 2.0}
    assert by_number[4].state == "stopped" and by_number[4].last_step == 3
    assert by_number[4].note == "scheduler: asha"
    assert by_number[6].state == "failed" and by_number[6].cost_usd == pytest.approx(0.25)
    assert by_number[6].note == "ValueError: boom"  # the traceback's last line, not "Traceback ..."
    assert by_number[7].state == "infeasible" and by_number[7].note == "out of memory at batch 512"
    assert by_number[7].last_step is None
    assert by_number[8].state == "running" and by_number[8].cost_usd == pytest.approx(0.5)

    # Most expensive first; ties by number.
    assert [t.number for t in r.most_expensive()] == [0, 1, 2, 3, 8, 4, 5, 6, 7]
    assert [t.number for t in r.most_expensive(3)] == [0, 1, 2]

    # The budget: what is left of each limit; no breaker.
    b = r.budget
    assert b.hard and not b.breaker_tripped and b.breaker_limit is None and b.breaker_at is None
    assert b.exhausted is None
    (trials, usd) = b.limits
    assert (trials.limit, trials.value, trials.used, trials.left) == ("trials", 10, 9, 1)
    assert (usd.limit, usd.value) == ("usd", 100.0)
    assert usd.used == pytest.approx(5.45) and usd.left == pytest.approx(94.55)

    # The best completed trial so far.
    assert r.best is not None
    assert (r.best.number, r.best.metric, r.best.direction) == (3, "value", "max")
    assert r.best.value == pytest.approx(0.8) and r.best.cost_usd == pytest.approx(1.0)


def test_estimates_use_the_study_cost_model(mixed):
    r = cost_report(mixed)
    model = mixed.cost_model()
    assert model.is_fitted

    saved = r.saved_by_early_stopping
    assert saved.estimate and "estimate" in saved.note
    assert saved.stopped_trials == 2 and saved.stopped_cost_usd == pytest.approx(0.6)
    assert saved.full_resource == 10.0  # the largest step of a completed trial
    stopped = [t for t in mixed.trials if t.state is th.TrialState.STOPPED]
    forecasts = [model.predict(dict(t.params), 10.0) for t in stopped]
    assert saved.usd == pytest.approx(sum(max(f.mean_usd - t.cost_usd, 0) for f, t in zip(forecasts, stopped)))
    assert saved.low_usd == pytest.approx(sum(max(f.low_usd - t.cost_usd, 0) for f, t in zip(forecasts, stopped)))
    assert saved.high_usd == pytest.approx(sum(max(f.high_usd - t.cost_usd, 0) for f, t in zip(forecasts, stopped)))
    assert saved.low_usd <= saved.usd <= saved.high_usd

    fc = r.forecast_to_finish
    assert fc.estimate and fc.remaining_trials == 1 and not fc.capped
    per_trial = model.expected_cost(random_configs(mixed.space, 256, mixed.seed), 10.0)
    assert fc.per_trial_usd == pytest.approx(per_trial)
    assert fc.usd == pytest.approx(per_trial) and fc.uncapped_usd == pytest.approx(per_trial)
    assert "cost model" in fc.basis


def test_savings_are_close_to_the_hand_computed_amount(sqlite_url):
    """Every step costs $0.10 whatever the params: a full trial (10 steps) costs $1.00, so each
    trial stopped at step 3 ($0.30) saved about $0.70."""
    study = th.Study.create(SPACE, "max", storage=sqlite_url)
    for i in range(6):
        _full_trial(study, i / 10)
    for _ in range(3):
        _stopped_trial(study)
    saved = cost_report(study).saved_by_early_stopping
    assert saved.stopped_trials == 3 and saved.stopped_cost_usd == pytest.approx(0.9)
    assert saved.usd == pytest.approx(3 * 0.7, rel=0.25)
    assert saved.low_usd <= saved.usd <= saved.high_usd


def test_no_stopped_trials_and_no_trial_limit(sqlite_url):
    study = th.Study.create(SPACE, "max", storage=sqlite_url)
    for i in range(3):
        _full_trial(study, i / 10)
    r = cost_report(study)
    assert r.saved_by_early_stopping.usd == 0.0 and r.saved_by_early_stopping.stopped_trials == 0
    assert "no trial was stopped" in r.saved_by_early_stopping.note
    fc = r.forecast_to_finish
    assert fc.usd is None and fc.remaining_trials is None and "no trial limit" in fc.note
    assert r.budget.limits == () and not r.budget.breaker_tripped


def test_forecast_without_a_fitted_model_uses_the_mean_cost_and_the_dollars_left(sqlite_url):
    """Two finished trials ($0.20 and $0.40) are too few for the cost model: a new trial is
    expected to cost their mean, $0.30; 3 of 5 trials are left: $0.90, capped by the $0.20 left
    of a $0.80 budget."""
    study = th.Study.create(SPACE, "max", storage=sqlite_url, budget=th.Budget(trials=5, usd=0.8))
    study.tell(study.ask(), 0.1, cost_usd=0.2, elapsed_s=0.0)
    study.tell(study.ask(), 0.2, cost_usd=0.4, elapsed_s=0.0)
    assert not study.cost_model().is_fitted, "precondition: two trials do not fit the cost model"
    r = cost_report(study)
    fc = r.forecast_to_finish
    assert fc.remaining_trials == 3
    assert fc.per_trial_usd == pytest.approx(0.3)
    assert fc.uncapped_usd == pytest.approx(0.9)
    assert fc.capped and fc.usd == pytest.approx(0.2)
    assert "mean cost of the 2 finished trials" in fc.basis
    assert "$0.2000 left" in fc.note

    # Without the dollar limit the forecast is not capped.
    study.set_budget(th.Budget(trials=5))
    fc = cost_report(study).forecast_to_finish
    assert not fc.capped and fc.usd == pytest.approx(0.9)


def test_breaker_trip_is_reported_with_its_limit_and_time(sqlite_url):
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", storage=sqlite_url, budget=th.Budget(usd=1.0), clock=clock)
    t = study.ask()
    t.report(0.1, step=1, cost_usd=0.6, elapsed_s=1.0)
    clock.advance(5.0)
    with pytest.raises(th.TrialStopped):
        t.report(0.2, step=2, cost_usd=0.6, elapsed_s=1.0)  # $1.20 >= $1.00: the breaker trips
    tripped = clock.time()
    clock.advance(5.0)
    study.tell(t, state="stopped", elapsed_s=0.0)

    r = cost_report(study)
    b = r.budget
    assert b.breaker_tripped and b.breaker_limit == "usd"
    assert b.breaker_message.startswith("budget: ") and "$1.00" in b.breaker_message
    assert b.breaker_at == tripped
    (usd,) = b.limits
    assert usd.used == pytest.approx(1.2) and usd.left == 0.0
    assert b.exhausted is not None and "$1.00" in b.exhausted
    (trial,) = r.trials
    assert trial.state == "stopped" and trial.note == b.breaker_message
    assert r.spent_usd == pytest.approx(1.2) and r.spend("stopped").cost_usd == pytest.approx(1.2)
    # No completed trial: the full resource is unknown, so the saving is 0, with the reason.
    saved = r.saved_by_early_stopping
    assert saved.usd == 0.0 and saved.stopped_trials == 1 and "no completed trial" in saved.note
    assert r.best is None


def test_soft_budget_never_trips_the_breaker(sqlite_url):
    study = th.Study.create(SPACE, "max", storage=sqlite_url, budget=th.Budget(usd=1.0, hard=False))
    t = study.ask()
    t.report(0.1, step=1, cost_usd=1.5, elapsed_s=1.0)
    study.tell(t, 0.1, elapsed_s=0.0)
    b = cost_report(study).budget
    assert not b.hard and not b.breaker_tripped
    assert b.limits[0].left == 0.0 and b.exhausted is not None


def test_to_dict_round_trips_through_json(mixed):
    r = cost_report(mixed)
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)  # strictly valid JSON
    assert json.loads(text) == d
    assert d["spent_usd"] == pytest.approx(5.45)
    assert [s["state"] for s in d["by_state"]] == ["completed", "stopped", "failed", "infeasible", "running"]
    assert d["budget"]["limits"][0] == {"limit": "trials", "value": 10, "used": 9, "left": 1}
    assert d["saved_by_early_stopping"]["estimate"] is True
    assert d["forecast_to_finish"]["remaining_trials"] == 1
    assert d["best"]["number"] == 3 and d["best"]["params"] == dict(mixed.trials[3].params)
    assert len(d["trials"]) == 9 and d["trials"][6]["note"] == "ValueError: boom"
    assert d["trials"][0]["resources"] == {"gpu": 2.0}


def test_non_finite_values_become_strings_in_json(sqlite_url):
    study = th.Study.create(SPACE, "min", storage=sqlite_url)
    study.tell(study.ask(), float("nan"), cost_usd=0.1, elapsed_s=0.0)
    d = cost_report(study).to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["best"] is None


def test_multi_objective_study_has_no_single_best(sqlite_url):
    study = th.Study.create(SPACE, {"acc": "max", "cost_usd": "min"}, storage=sqlite_url)
    study.tell(study.ask(), {"acc": 0.9}, cost_usd=0.3, elapsed_s=0.0)
    r = cost_report(study)
    assert r.best is None and any("Pareto front" in n for n in r.notes)
    assert r.spent_usd == pytest.approx(0.3)


def test_forecast_trials_sums_lognormal_forecasts(sqlite_url):
    study = th.Study.create(SPACE, "max", storage=sqlite_url)
    for i in range(6):
        _full_trial(study, i / 10)
    model = study.cost_model()
    trials = study.trials
    assert full_resource(trials) == 10.0
    fc = forecast_trials(model, SPACE, 20, 10.0)
    assert fc.per_trial_usd == pytest.approx(model.expected_cost(random_configs(SPACE, 256, 0), 10.0))
    assert fc.mean_usd == pytest.approx(20 * fc.per_trial_usd)
    assert fc.mean_usd == pytest.approx(20.0, rel=0.25)  # 20 trials of $1.00
    assert fc.low_usd < fc.mean_usd < fc.high_usd
    assert "Monte Carlo" in fc.method
    big = forecast_trials(model, SPACE, 5000, 10.0)  # the normal approximation of the sum
    assert big.low_usd < big.mean_usd < big.high_usd and "normal" in big.method
    assert forecast_trials(model, SPACE, 20, 10.0) == fc  # reproducible
    with pytest.raises(ValueError):
        forecast_trials(model, SPACE, 0, 10.0)


def test_error_gist():
    assert error_gist(None) is None and error_gist("  \n") is None
    assert error_gist(TRACEBACK) == "ValueError: boom"
    assert error_gist("exit status 1\nstderr tail") == "exit status 1"
