"""Budget limits other than plain dollars: GPU-hours, active wall time, soft budgets, trial counts,
and the soft forecast check that refuses a trial the dollars left cannot pay for."""

from __future__ import annotations

import pytest

import thrifty as th

SPACE = th.Space({"x": th.Float(0.0, 1.0)})
COMPLETED, STOPPED = th.TrialState.COMPLETED, th.TrialState.STOPPED


def _record(study: th.Study):
    return study.storage.study_status(study.id)


# -- GPU-hours ------------------------------------------------------------------------------------
def test_gpu_hour_budget_trips_the_breaker(db_url):
    study = th.Study.create(SPACE, "max", storage=db_url, resources={"gpu": 4}, budget=th.Budget(gpu_hours=1.0))

    def objective(trial):
        for step in range(1, 11):
            trial.report(trial.params["x"], step=step, elapsed_s=450.0)  # 4 GPUs x 450 s = 0.5 GPU-hours
        return trial.params["x"]

    result = study.optimize(objective, n_trials=5, progress=False, gpus=[0, 1, 2, 3])  # any 4 GPU ids will do
    assert result.reason == "gpu_hours", result
    [t] = study.trials
    assert t.state is STOPPED and (t.stop_kind, t.stop_limit) == (th.StopKind.BUDGET, "gpu_hours")
    assert "GPU-hours" in t.reason
    assert [m.step for m in t.measurements] == [1, 2, 2]  # stopped at the report that reached 1.0
    assert study.usage().gpu_hours == pytest.approx(1.0, abs=1e-3)
    assert study.cost_usd == 0.0  # GPU-hours are counted without any pricing
    assert _record(study).budget_stop.limit == "gpu_hours"
    with pytest.raises(th.StudyExhausted) as info:
        study.ask()
    assert info.value.reason == "gpu_hours"


# -- active wall time -----------------------------------------------------------------------------
# (time passes on a ManualClock the test advances: the arithmetic is exact, nothing sleeps)
def test_wall_time_counts_only_while_trials_run(sqlite_url):
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", name="active", storage=sqlite_url, budget=th.Budget(wall_s=30.0),
                            clock=clock)
    began = clock.time()
    t = study.ask()
    clock.advance(10.0)
    study.tell(t, 0.5)
    assert study.usage().wall_s == 10.0
    clock.advance(15.0)  # idle: nothing runs
    assert study.usage().wall_s == 10.0, "idle time is not charged"

    # Resumed (another Study object, as another process would): 25 s have passed, 10 s were used.
    resumed = th.Study.load("active", storage=sqlite_url, clock=clock)
    assert resumed.usage().wall_s == 10.0
    a = resumed.ask()
    b = resumed.ask()  # two trials at once: the time they overlap counts once
    clock.advance(5.0)
    assert resumed.usage().wall_s == 15.0  # the running period counts as it goes
    resumed.tell(a, 0.1)
    clock.advance(2.0)  # b alone
    resumed.tell(b, 0.2)
    assert resumed.usage().wall_s == 17.0, "overlapping trials count once"
    # More than the 30 s budget has passed since the study started, less has been used: it goes on.
    assert clock.time() - began > 30.0 and resumed.usage().wall_s < 30.0
    resumed.tell(resumed.ask(), 0.3)


def test_wall_time_budget_stops_running_trials(db_url):
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", storage=db_url, budget=th.Budget(wall_s=6.0), clock=clock)

    def objective(trial):
        for step in range(1, 21):
            clock.advance(0.5)
            trial.report(trial.params["x"], step=step)
        return trial.params["x"]

    result = study.optimize(objective, n_trials=5, progress=False)
    assert result.reason == "wall_s", result
    [t] = study.trials  # 20 x 0.5 s would need 10 s; the breaker stops it at 6 s
    assert t.state is STOPPED and (t.stop_kind, t.stop_limit) == (th.StopKind.BUDGET, "wall_s")
    assert "wall time" in t.reason
    assert [m.step for m in t.measurements] == list(range(1, 13)) + [12]  # tripped at the 12th report, then the tell
    assert study.usage().wall_s == 6.0
    assert study.budget_stop.at == clock.time()


# -- soft budgets (hard=False) --------------------------------------------------------------------
def _spend(trial):
    for step in range(1, 5):
        trial.report(trial.params["x"], step=step, cost_usd=0.0625)  # $0.25 a trial
    return trial.params["x"]


def test_soft_budget_only_blocks_new_trials(db_url):
    soft = th.Study.create(SPACE, "max", storage=db_url, name="soft", budget=th.Budget(usd=0.3, hard=False))
    assert soft.budget.hard is False
    result = soft.optimize(_spend, n_trials=10, progress=False)
    assert result.reason == "usd"
    trials = soft.trials
    # The second trial passes the limit at its first report and still runs to the end.
    assert [t.state for t in trials] == [COMPLETED, COMPLETED]
    assert [len(t.measurements) for t in trials] == [5, 5]  # 4 reports + the tell
    assert all(t.reason is None for t in trials)
    assert soft.cost_usd == pytest.approx(0.5)
    assert _record(soft).budget_stop is None

    # Two trials at once: one passes the limit, neither is stopped; no third starts.
    more = th.Study.create(SPACE, "max", storage=db_url, name="soft2", budget={"usd": 1.0, "hard": False})
    a, b = more.ask(), more.ask()
    a.report(0.1, step=1, cost_usd=1.5)  # no TrialStopped
    assert not b.should_stop()
    b.report(0.2, step=1, cost_usd=0.1)
    assert more.tell(a, 0.1).state is COMPLETED and more.tell(b, 0.2).state is COMPLETED
    with pytest.raises(th.StudyExhausted) as info:
        more.ask()
    assert info.value.reason == "usd"

    # The same as a hard budget: the second trial is stopped at the report that passes the limit.
    hard = th.Study.create(SPACE, "max", storage=db_url, name="hard", budget=th.Budget(usd=0.3))
    hard.optimize(_spend, n_trials=10, progress=False)
    trials = hard.trials
    assert [t.state for t in trials] == [COMPLETED, STOPPED]
    assert len(trials[1].measurements) == 2 and hard.cost_usd == pytest.approx(0.3125)


def test_trial_limit_still_works_with_dollar_limits(db_url):
    study = th.Study.create(SPACE, "max", storage=db_url, budget=th.Budget(trials=3, usd=100.0, gpu_hours=10.0))
    result = study.optimize(_spend, progress=False)
    assert result.reason == "trials" and result.n_trials == 3
    assert [t.state for t in study.trials] == [COMPLETED] * 3
    assert study.usage().trials == 3
    with pytest.raises(th.StudyExhausted) as info:
        study.ask()
    assert info.value.reason == "trials"


# -- the soft forecast check ----------------------------------------------------------------------
def _steady(trial):
    """About $0.30 a trial: 3 steps of $0.100 to $0.102 (a little dearer for larger x)."""
    for step in (1, 2, 3):
        trial.report(trial.params["x"], step=step, cost_usd=0.1 * (1 + 0.02 * trial.params["x"]))
    return trial.params["x"]


def test_forecast_refuses_a_trial_that_would_overspend(db_url):
    study = th.Study.create(SPACE, "max", storage=db_url, budget=th.Budget(usd=1.0))
    result = study.optimize(_steady, n_trials=10, progress=False)
    trials = study.trials
    # Three trials spend ~$0.91; a fourth, forecast at ~$0.30, would overspend: it never starts
    # (rather than starting and being stopped by the breaker).
    assert [t.state for t in trials] == [COMPLETED] * 3, [(t.number, t.state) for t in trials]
    assert 0.9 <= study.cost_usd <= 1.0
    assert result.reason == "usd" and "forecast" in result.message, result
    with pytest.raises(th.StudyExhausted, match="forecast") as info:
        study.ask()
    assert info.value.reason == "usd"
    assert len(study.trials) == 3 and _record(study).budget_stop is None, "the refused ask wrote nothing"
    # Money left for one more: the check lets it start.
    study.set_budget(th.Budget(usd=1.5))
    assert study.optimize(_steady, n_trials=1, progress=False).reason == "n_trials"
    assert len(study.trials) == 4


def test_forecast_stop_is_reported_as_usd_with_several_workers(sqlite_url):
    study = th.Study.create(SPACE, "max", storage=sqlite_url, budget=th.Budget(usd=1.1))
    study.optimize(_steady, n_trials=3, progress=False)  # ~$0.91 spent, ~$0.19 left: less than a trial
    result = study.optimize(_steady, n_workers=2, progress=False)
    assert len(study.trials) == 3, "the forecast check refused every trial"
    assert result.reason == "usd" and "forecast" in result.message, result
