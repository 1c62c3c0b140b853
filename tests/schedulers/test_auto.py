"""``scheduler="auto"`` (the default): silent until calibrated, then ASHA on the rungs that predict."""

from __future__ import annotations

import pytest
from builders import curve_trial

import thrifty as th
from thrifty.schedulers import Decision, make_scheduler
from thrifty.schedulers.auto import AutoStopping

OBJ = {"v": "max"}


def trial(number, values, state="completed"):
    """A trial that reported ``values`` of ``v`` at steps 1, 2, ...; a completed one also told the last."""
    return curve_trial(number, values, state=state, metric="v", final=state == "completed", params={"x": 0.1 * number})


def curve(quality, steps=9):
    """A curve whose rank at every step is its rank at the end (values rise towards ``quality``)."""
    return [quality * s / steps for s in range(1, steps + 1)]


def test_rungs_are_found_below_the_furthest_step_reported():
    rule = AutoStopping()
    assert rule.schedule([], OBJ) is None
    running = [trial(0, curve(0.9)[:5], state="running")]
    assert rule.schedule(running, OBJ).rungs == [1.0, 3.0]  # nobody has gone past 5 yet
    done = [trial(0, curve(0.9))]
    asha = rule.schedule(done, OBJ)
    assert (asha.min_resource, asha.max_resource, asha.rungs) == (1.0, 9.0, [1.0, 3.0])


def test_before_calibration_the_lowest_rung_is_open_and_the_others_judge():
    rule = AutoStopping()
    history = [trial(i, curve(0.9 - 0.1 * i)) for i in range(4)]  # 4 completed: still calibrating
    at_one = trial(10, curve(0.01)[:1], state="running")  # far below everyone at rung 1
    at_three = trial(10, curve(0.01)[:3], state="running")  # ... and at rung 3
    assert rule.decide(at_one, history + [at_one], OBJ) is Decision.CONTINUE
    assert rule.decide(at_three, history + [at_three], OBJ) is Decision.STOP
    # A rung nobody has gone past does not judge: the first trial is never stopped on its way.
    first = trial(0, curve(0.01)[:3], state="running")
    assert rule.decide(first, [first], OBJ) is Decision.CONTINUE


def test_after_calibration_predictive_rungs_judge():
    rule = AutoStopping()
    history = [trial(i, curve(0.9 - 0.1 * i)) for i in range(5)]
    worst = trial(10, curve(0.01)[:1], state="running")
    best = trial(11, curve(2.0)[:1], state="running")
    assert rule.decide(worst, history + [worst], OBJ) is Decision.STOP  # rung 1 predicts here: it judges
    assert rule.decide(best, history + [best], OBJ) is Decision.CONTINUE


def test_a_rung_whose_ranks_do_not_predict_the_end_stops_nobody():
    rule = AutoStopping()
    # Values at steps 1..3 rank in reverse of the end: the early rungs say nothing useful.
    history = [trial(i, [0.1 * i, 0.1 * i, 0.1 * i] + [0.9 - 0.1 * i] * 6) for i in range(6)]
    worst = trial(10, [0.0, 0.0, 0.0], state="running")
    assert rule.decide(worst, history + [worst], OBJ) is Decision.CONTINUE


def test_is_the_default_and_none_still_means_no_stopping():
    study = th.Study.create({"x": th.Float(0, 1)}, "max", storage="memory")
    assert study.scheduler.name == "auto"
    assert th.Study.create({"x": th.Float(0, 1)}, "max", storage="memory", scheduler=None).scheduler.name == "none"


def test_a_default_study_stops_hopeless_trials_once_calibrated():
    study = th.Study.create({"x": th.Float(0, 1)}, "max", storage="memory", strategy="random", seed=1)
    stopped_at = []
    for _ in range(30):
        t = study.ask()
        q = t.params["x"]
        for step in range(1, 10):
            t.report({"value": q * step / 9}, step=step)  # ranks are the same at every step
            if t.should_stop():
                study.tell(t, state="stopped")
                stopped_at.append(step)
                break
        else:
            study.tell(t, q)
    assert study.trials[0].state.value == "completed"  # nobody had gone further: never judged
    assert len(stopped_at) >= 10 and set(stopped_at) <= {1, 3}


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"AutoStopping\(reduction_factor=1\)"):
        AutoStopping(reduction_factor=1)
    with pytest.raises(ValueError, match=r"AutoStopping\(min_resource=0\)"):
        AutoStopping(min_resource=0)
    with pytest.raises(ValueError, match=r"AutoStopping\(min_complete=2\)"):
        make_scheduler({"name": "auto", "min_complete": 2})


def run_trial(study, values, cost_per_step):
    """Report ``values`` at steps 1, 2, ... with ``cost_per_step`` dollars each until the study
    says stop; returns (the step it stopped at or None, the trial's stop reason)."""
    t = study.ask()
    for step, v in enumerate(values, start=1):
        t.report({"value": v}, step=step, cost_usd=cost_per_step)
        if step < len(values) and t.should_stop():
            study.tell(t, state="stopped")
            return step, study.trials[t.number].reason
    study.tell(t, values[-1])
    return None, None


def test_an_unproven_trial_may_not_outspend_the_rest_of_the_study():
    """Rule 4, without any budget: the second trial costs 10 times the first per step. Better than
    the first at every step but compared with one trial only, it stops once it has spent more than
    the rest of the study and 3 times a completed trial's median (here both $0.90: at step 1)."""
    study = th.Study.create({"x": th.Float(0, 1)}, "max", storage="memory", seed=0)
    assert run_trial(study, [0.1 * s for s in range(1, 10)], 0.1) == (None, None)  # $0.90, completed
    step, reason = run_trial(study, [0.2 * s for s in range(1, 10)], 1.0)
    assert step == 3, step  # $3.00 > 3 x $0.90
    assert "more than the rest of the study ($0.9000)" in reason and reason.startswith("scheduler: auto"), reason


def test_a_dear_trial_that_leads_two_others_goes_on_and_cheap_ones_are_never_judged_by_spend():
    study = th.Study.create({"x": th.Float(0, 1)}, "max", storage="memory", seed=0)
    for q in (0.5, 0.6):
        assert run_trial(study, [q * s / 9 for s in range(1, 10)], 0.1) == (None, None)
    # Ten times dearer, and ahead of both others at every step: proven, so it runs to its end.
    assert run_trial(study, [0.9 * s / 9 for s in range(1, 10)], 1.0) == (None, None)
    # Trials without dollars (nothing reported or metered) are never stopped by rule 4.
    free = th.Study.create({"x": th.Float(0, 1)}, "max", storage="memory", seed=0)
    assert run_trial(free, [0.1 * s for s in range(1, 10)], 0.0) == (None, None)
    assert run_trial(free, [0.2 * s for s in range(1, 10)], 0.0) == (None, None)
