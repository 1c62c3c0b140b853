"""Metering: a trial is charged its resources' price for the wall time it runs, plus what it
reports; the ledger fills in cost objectives and cost utilities.

Measured intervals are measured on a :class:`thrifty.ManualClock` the test advances, so the
arithmetic is checked exactly; one test charges a real child process its real wall time."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import time

import pytest

import thrifty as th

SPACE = th.Space({"x": th.Float(0.0, 1.0)})
COMPLETED, STOPPED, FAILED = th.TrialState.COMPLETED, th.TrialState.STOPPED, th.TrialState.FAILED
P4D = "aws:p4d.24xlarge"


def _ledger_adds_up(study: th.Study) -> None:
    trials = study.trials
    for t in trials:
        assert t.cost_usd == pytest.approx(math.fsum(m.cost_usd for m in t.measurements), abs=1e-12)
        assert t.elapsed_s == pytest.approx(math.fsum(m.elapsed_s for m in t.measurements), abs=1e-9)
        assert t.gpu_s == pytest.approx(math.fsum(m.gpu_s for m in t.measurements), abs=1e-9)
    assert study.cost_usd == pytest.approx(math.fsum(t.cost_usd for t in trials), abs=1e-12)
    assert study.usage().gpu_hours == pytest.approx(math.fsum(t.gpu_s for t in trials) / 3600.0, abs=1e-12)


# -- a real child process -------------------------------------------------------------------------
CHILDREN = [[sys.executable, "-c", "import time; time.sleep(1.0)"]]
if shutil.which("sleep"):
    CHILDREN.append([shutil.which("sleep"), "1"])


@pytest.mark.parametrize("command", CHILDREN, ids=lambda c: "python" if c[0] == sys.executable else "sleep")
def test_a_real_child_process_is_charged_its_wall_time(sqlite_url, command):
    """$36/h is $0.01 a second. The interval charged at the report runs from the trial's start
    (ask) to the report: the child's wall time (measured here around the call) plus the small
    overhead of starting the objective and of the report itself. Tolerance: at least the child's
    time, at most 0.25 s more (process start is inside the measured child time)."""
    rate_per_s = 0.01
    study = th.Study.create(SPACE, "max", storage=sqlite_url, pricing={"local": 36.0})
    seen = {}

    def objective(trial):
        t0 = time.monotonic()
        subprocess.run(command, check=True)
        seen["child_s"] = time.monotonic() - t0
        trial.report(0.5, step=1)
        seen["charged"] = trial.cost_usd
        return 0.5

    study.optimize(objective, n_trials=1, progress=False)
    child_s, charged = seen["child_s"], seen["charged"]
    assert child_s >= 1.0
    assert rate_per_s * child_s <= charged <= rate_per_s * (child_s + 0.25), (child_s, charged)
    [trial] = study.trials
    report, told = trial.measurements
    assert report.cost_usd == pytest.approx(charged, abs=1e-12)
    assert report.cost_usd == pytest.approx(report.elapsed_s * rate_per_s, rel=1e-12)
    assert child_s <= report.elapsed_s <= child_s + 0.25
    assert told.elapsed_s < 0.5 and told.cost_usd == pytest.approx(told.elapsed_s * rate_per_s, rel=1e-12)
    assert trial.cost_usd == pytest.approx(report.cost_usd + told.cost_usd, abs=1e-12)
    assert study.cost_usd == pytest.approx(trial.cost_usd, abs=1e-12)
    assert trial.gpu_s == 0.0 and study.usage().gpu_hours == 0.0


# -- a share of a multi-GPU instance --------------------------------------------------------------
def test_two_of_eight_gpus_pay_a_quarter_of_the_instance_and_accrue_gpu_hours(db_url):
    instance_per_h = th.Catalogue.builtin().instances[P4D].usd_per_hour
    assert instance_per_h == 32.773
    share_per_h = instance_per_h * 2 / 8
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", storage=db_url, name="p4d", pricing=P4D, resources={"gpu": 2}, clock=clock)
    assert study.pricing.usd_per_hour_for(study.resources) == pytest.approx(share_per_h)

    # Durations given explicitly: the exact arithmetic.
    t = study.ask()
    assert dict(t.resources) == {"gpu": 2.0}
    t.report(0.5, step=1, elapsed_s=1800.0)
    assert t.cost_usd == pytest.approx(share_per_h / 2)  # $4.096625
    assert study.usage().gpu_hours == pytest.approx(1.0)  # 2 GPUs for half an hour
    done = study.tell(t, 0.6, elapsed_s=900.0)
    assert done.cost_usd == pytest.approx(share_per_h * 0.75)
    assert done.gpu_s == pytest.approx(2 * 2700.0)
    assert study.usage().gpu_hours == pytest.approx(1.5)
    assert study.cost_usd == pytest.approx(share_per_h * 0.75)

    # Durations measured: every interval costs share/3600 per second and 2 GPU-seconds per second.
    def objective(trial):
        for step in (1, 2):
            clock.advance(600.0)
            trial.report(trial.params["x"], step=step)
        clock.advance(300.0)
        return trial.params["x"]

    study.optimize(objective, n_trials=2, progress=False, gpus=[0, 1])  # nothing runs on them: any ids will do
    for trial in study.trials[1:]:
        assert [m.elapsed_s for m in trial.measurements] == [600.0, 600.0, 300.0]
        assert trial.cost_usd == pytest.approx(share_per_h * 1500.0 / 3600.0, rel=1e-12)
        assert trial.gpu_s == 3000.0
        for m in trial.measurements:
            assert m.cost_usd == pytest.approx(m.elapsed_s * share_per_h / 3600.0, rel=1e-12)
            assert m.gpu_s == pytest.approx(2 * m.elapsed_s, rel=1e-12)
    _ledger_adds_up(study)
    assert study.usage().gpu_hours == pytest.approx(1.5 + 2 * 3000.0 / 3600.0, rel=1e-12)
    assert th.Study.load("p4d", storage=db_url).usage().gpu_hours == pytest.approx(study.usage().gpu_hours)


def test_explicit_costs_add_to_metering():
    study = th.Study.create(SPACE, "max", storage="memory", pricing={"local": 36.0})
    t = study.ask()
    t.report(0.1, step=1, elapsed_s=10.0, cost_usd=0.5)  # $0.10 of time + $0.50 of API calls
    assert t.cost_usd == pytest.approx(0.6)
    done = study.tell(t, 0.2, elapsed_s=5.0, cost_usd=0.25)
    assert [m.cost_usd for m in done.measurements] == pytest.approx([0.6, 0.3])
    assert done.cost_usd == pytest.approx(0.9) and study.cost_usd == pytest.approx(0.9)
    # Without pricing, a trial costs exactly what it reports.
    plain = th.Study.create(SPACE, "max", storage="memory")
    t = plain.ask()
    t.report(0.1, step=1, elapsed_s=3600.0, cost_usd=0.5)
    assert plain.tell(t, 0.2, elapsed_s=3600.0).cost_usd == pytest.approx(0.5)


def test_an_early_stopped_trial_is_charged_exactly_its_measurements(sqlite_url):
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", storage=sqlite_url, pricing={"local": 36.0}, clock=clock)

    def objective(trial):
        for step in range(1, 11):
            trial.report(trial.params["x"] * step, step=step, elapsed_s=10.0, cost_usd=0.05)  # $0.15 a step
            if step == 3:
                trial.study.stop_trial(trial.number)
            if trial.should_stop():
                clock.advance(2.0)  # cleaning up before returning: metered by the tell
                return None
        return trial.params["x"]

    study.optimize(objective, n_trials=1, progress=False)
    [t] = study.trials
    assert t.state is STOPPED and t.reason.startswith("user")
    assert len(t.measurements) == 4  # 3 reports, then the tell's metered interval
    assert [m.step for m in t.measurements] == [1, 2, 3, 3]
    tail = t.measurements[-1]
    assert tail.metrics == {} and tail.elapsed_s == 2.0 and tail.cost_usd == pytest.approx(0.02, rel=1e-12)
    assert t.cost_usd == pytest.approx(0.47, abs=1e-12)  # not the 10 planned steps
    assert dict(t.metrics) == {"value": pytest.approx(t.params["x"] * 3)}  # its last report
    _ledger_adds_up(study)


def test_a_failed_trials_cost_is_in_the_ledger(db_url):
    study = th.Study.create(SPACE, "max", storage=db_url, pricing={"local": 36.0}, clock=th.ManualClock())

    def objective(trial):
        trial.report(0.1, step=1, elapsed_s=20.0, cost_usd=0.3)  # $0.50
        raise RuntimeError("CUDA out of memory")

    study.optimize(objective, n_trials=2, progress=False)
    trials = study.trials
    assert [t.state for t in trials] == [FAILED, FAILED]
    for t in trials:
        assert "CUDA out of memory" in t.error
        assert t.cost_usd == pytest.approx(0.5, rel=1e-12)  # the report; no time passed after it
    failed = study.tell(study.ask(), state="failed", error="OOM", cost_usd=0.25, elapsed_s=1.0)
    assert failed.cost_usd == pytest.approx(0.26)
    _ledger_adds_up(study)
    assert study.cost_usd == pytest.approx(math.fsum(t.cost_usd for t in trials) + 0.26)
    assert study.usage().usd == pytest.approx(study.cost_usd)


# -- the ledger in objectives ---------------------------------------------------------------------
def _run(study: th.Study, acc: float, elapsed_s: float, **tell) -> th.Trial:
    t = study.ask()
    t.report({"acc": acc / 2}, step=1, elapsed_s=elapsed_s)
    return study.tell(t, {"acc": acc}, elapsed_s=0.0, **tell)


def test_cost_objective_is_filled_from_the_ledger_and_the_front_works(db_url):
    study = th.Study.create(SPACE, {"acc": "max", "cost_usd": "min"}, storage=db_url, pricing={"local": 36.0})
    a = _run(study, 0.90, 100.0)  # $1.00
    b = _run(study, 0.80, 50.0)  # $0.50
    _run(study, 0.70, 80.0)  # $0.80: worse than b on both
    d = _run(study, 0.95, 200.0)  # $2.00
    e = _run(study, 0.99, 10.0, cost_usd=4.0)  # $4.10: the told cost counts too
    trials = study.trials
    assert [t.metrics["cost_usd"] for t in trials] == pytest.approx([1.0, 0.5, 0.8, 2.0, 4.1])
    for t in trials:
        assert t.metrics["cost_usd"] == pytest.approx(t.cost_usd, abs=1e-12)
        assert t.state is COMPLETED
    assert sorted(t.number for t in study.pareto_front()) == sorted([a.number, b.number, d.number, e.number])
    with pytest.raises(th.ThriftyError, match="pareto_front"):
        study.best
    # A cost the objective returns itself is kept.
    t = study.ask()
    kept = study.tell(t, {"acc": 0.5, "cost_usd": 123.0}, elapsed_s=1.0)
    assert kept.metrics["cost_usd"] == 123.0 and kept.cost_usd == pytest.approx(0.01)
    # elapsed_s is filled in the same way.
    timed = th.Study.create(SPACE, {"acc": "max", "elapsed_s": "min"}, storage="memory")
    t = timed.ask()
    t.report({"acc": 0.1}, step=1, elapsed_s=7.0)
    assert timed.tell(t, {"acc": 0.2}, elapsed_s=3.0).metrics["elapsed_s"] == pytest.approx(10.0)


def test_cost_utility_stores_acc_squared_per_dollar_and_best_maximizes_it(db_url):
    study = th.Study.create(SPACE, th.CostUtility("acc", power=2), name="util", storage=db_url,
                            pricing={"local": 36.0})
    assert study.objectives == {"utility": "max"}
    a = _run(study, 0.9, 100.0)  # 0.81 / $1.00 = 0.81
    b = _run(study, 0.6, 25.0)  # 0.36 / $0.25 = 1.44
    c = _run(study, 0.95, 200.0)  # 0.9025 / $2.00 = 0.45125
    assert a.metrics["utility"] == pytest.approx(0.81)
    assert b.metrics["utility"] == pytest.approx(1.44)
    assert c.metrics["utility"] == pytest.approx(0.45125)
    assert dict(b.metrics) == {"acc": 0.6, "utility": pytest.approx(1.44)}
    free = _run(study, 0.99, 0.0)  # cost nothing: utility undefined (NaN), never best
    assert math.isnan(free.metrics["utility"])
    assert study.best.number == b.number
    assert study.best.value == pytest.approx(1.44)
    # Stored with the study: another process computes the same utility.
    again = th.Study.load("util", storage=db_url)
    assert again.utility == th.CostUtility("acc", power=2)
    assert _run(again, 0.5, 1.0).metrics["utility"] == pytest.approx(0.25 / 0.01)
    assert again.best.metrics["utility"] == pytest.approx(25.0)
    with pytest.raises(th.ValidationError, match="acc"):
        again.tell(again.ask(), {"loss": 0.1})


# -- intervals are neither lost nor counted twice -------------------------------------------------
def test_a_measured_interval_starts_at_the_previous_report_even_a_given_one():
    """``elapsed_s`` is "seconds since the previous report": after a report that gave its
    duration, the next measured interval starts at that report, not at the one before."""
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", storage="memory", pricing={"local": 36.0}, clock=clock)
    t = study.ask()
    clock.advance(50.0)
    t.report(0.1, step=1, elapsed_s=5.0)
    clock.advance(10.0)
    t.report(0.2, step=2)
    given, measured = t.snapshot().measurements
    assert given.elapsed_s == 5.0
    assert measured.elapsed_s == 10.0, "the 50 s before the first report were counted twice"
    assert measured.cost_usd == pytest.approx(0.1, rel=1e-12)


def test_time_before_an_invalid_result_is_still_charged(sqlite_url):
    """A refused tell records nothing; the trial's time must still reach the ledger when it is
    then recorded as failed."""
    clock = th.ManualClock()
    study = th.Study.create(SPACE, {"acc": "max"}, storage=sqlite_url, pricing={"local": 36.0}, clock=clock)

    def objective(trial):
        clock.advance(40.0)
        return {"wrong_name": 1.0}

    study.optimize(objective, n_trials=1, progress=False, max_consecutive_failures=None)
    [t] = study.trials
    assert t.state is FAILED and "needs ['acc']" in t.error
    assert t.elapsed_s == 40.0 and t.cost_usd == pytest.approx(0.4, rel=1e-12)
    assert study.cost_usd == pytest.approx(t.cost_usd, abs=1e-12)
    # The same through ask/tell: a refused tell, then the failure, charges the time once.
    h = study.ask()
    clock.advance(20.0)
    with pytest.raises(th.ValidationError):
        study.tell(h, {"wrong_name": 1.0})
    done = study.tell(h, state="failed", error="bad result")
    assert done.elapsed_s == 20.0 and len(done.measurements) == 1
    assert study.cost_usd == pytest.approx(0.6, rel=1e-12)
