"""``scheduler="auto"`` (the default): silent until calibrated, then ASHA on the rungs that predict."""

from __future__ import annotations

import pytest

import thrifty as th
from thrifty.schedulers import Decision, make_scheduler
from thrifty.schedulers.auto import AutoStopping

OBJ = {"v": "max"}


def trial(number, values, state="completed"):
    ms = tuple(th.Measurement(step=i + 1, metrics={"v": v}) for i, v in enumerate(values))
    return th.Trial(number=number, state=state, params={"x": 0.1 * number}, measurements=ms,
                    metrics={"v": values[-1]} if state == "completed" else {})


def curve(quality, steps=9):
    """A curve whose rank at every step is its rank at the end (values rise towards ``quality``)."""
    return [quality * s / steps for s in range(1, steps + 1)]


def test_nobody_stops_until_enough_trials_completed():
    rule = AutoStopping()
    history = [trial(i, curve(0.9 - 0.1 * i)) for i in range(4)]  # 4 completed, perfectly ranked
    worst = trial(10, curve(0.01)[:3], state="running")  # far below everyone at rungs 1 and 3
    assert rule.schedule(history, OBJ) is None
    assert rule.decide(worst, history + [worst], OBJ) is Decision.CONTINUE


def test_after_calibration_predictive_rungs_judge_with_the_inferred_full_resource():
    rule = AutoStopping()
    history = [trial(i, curve(0.9 - 0.1 * i)) for i in range(5)]
    asha = rule.schedule(history, OBJ)
    assert (asha.min_resource, asha.max_resource, asha.rungs) == (1.0, 9.0, [1.0, 3.0])
    worst = trial(10, curve(0.01)[:3], state="running")
    best = trial(11, curve(2.0)[:3], state="running")
    assert rule.decide(worst, history + [worst], OBJ) is Decision.STOP
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
    done = [t for t in study.trials if t.state.value == "completed"]
    assert len(done) >= 5 and all(t.number >= 5 for t in study.trials if t.state.value == "stopped")
    assert len(stopped_at) >= 10 and set(stopped_at) <= {1, 3}


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"AutoStopping\(reduction_factor=1\)"):
        AutoStopping(reduction_factor=1)
    with pytest.raises(ValueError, match=r"AutoStopping\(min_resource=0\)"):
        AutoStopping(min_resource=0)
    with pytest.raises(ValueError, match=r"AutoStopping\(min_complete=2\)"):
        make_scheduler({"name": "auto", "min_complete": 2})
