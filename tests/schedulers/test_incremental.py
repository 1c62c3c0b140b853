"""Schedulers keep their state incrementally (rung tables, curves, correlations kept up to date from
the history delta) and still make exactly the decisions they made when they scanned the whole
history at every report.

The reference is tests/schedulers/data/decisions.json, recorded by tests/helpers/scheduler_replay.py
from the code before the incremental state (main at 5bce165): seeded studies with every scheduler,
several trials open at once, NaN reports, failures, user stops, infeasible trials (a broken
constraint), pauses, resumes and clones. Each case is run again here, and at every report the
decision must be the recorded one, both as the study makes it (the incremental path, from the
history delta) and as a fresh scheduler makes it from the same history given as a plain list (the
whole-history path).
"""

from __future__ import annotations

import json
import math
import os
import sys

import pytest
from builders import curve_trial
from conftest import HELPERS

import thrifty as th
from thrifty.history import History, TrialLog
from thrifty.schedulers import Decision, make_scheduler

sys.path.insert(0, HELPERS)
from scheduler_replay import CASES, run_case  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data", "decisions.json")


@pytest.fixture(scope="module")
def recorded() -> dict:
    with open(DATA) as f:
        return json.load(f)


@pytest.mark.parametrize("case", sorted(CASES))
def test_decisions_are_those_recorded_before_the_incremental_state(case, recorded):
    spec = CASES[case][0]
    checked = {"incremental": 0, "whole": 0}

    def wrap(study: th.Study) -> None:
        rule = study.scheduler
        verdict = rule.verdict  # what the study acts on at each report
        fresh = make_scheduler(spec)
        fresh.bind(study.space)

        def both(trial, history, objectives, budget):
            v = verdict(trial, history, objectives, budget)
            checked["incremental"] += isinstance(history, History)
            if rule.needs_history:  # the same history as a plain list: read whole by a fresh rule
                again = fresh.verdict(trial, list(history), objectives, budget)
                assert again == v, (case, trial.number, trial.last_step)
                checked["whole"] += 1
            return v

        rule.verdict = both  # type: ignore[method-assign]

    got = run_case(case, on_study=wrap)
    want = recorded[case]
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{case}: report {i} (trial {w[0]}, step {w[1]}): {g[2:]} now, {w[2:]} recorded"
    assert len(got) == len(want)
    if make_scheduler(spec).needs_history:
        assert checked["incremental"] > 0 and checked["whole"] == checked["incremental"]


def _trial(number, values, state="running", **kw):
    return curve_trial(number, values, state=state, metric="v", timestamps=True, id=number, **kw)


def test_an_index_follows_the_delta_and_rebuilds_when_the_history_is_not_the_one_it_followed():
    rule = make_scheduler("asha")  # any scheduler that reads the history keeps its indexes so
    log = TrialLog()

    def indexed(history):
        return rule.indexed(history, "v", 1.0, "step")

    with indexed(log.read([_trial(0, [0.1, 0.2], "completed", finish_order=1), _trial(1, [0.5])])) as index:
        assert index.rung(1.0).values == {0: 0.1, 1: 0.5} and index.last_max() == 2.0
        assert list(index.measured) == [0]
    # The next read brings trial 1 further and a new trial 2: only they are read again, into the
    # index kept for the study's history.
    with indexed(log.read([_trial(1, [0.5, 0.6, 0.7]), _trial(2, [float("nan")])])) as again:
        assert again is index
        assert index.rung(1.0).values == {0: 0.1, 1: 0.5, 2: -math.inf} and index.rung(3.0).values == {1: 0.7}
        assert index.last_max() == 3.0 and index.first_min == 1.0
    # A read where trial 1 has other measurements than the ones followed: rebuilt from that history.
    with indexed(log.read([_trial(1, [0.9, 0.9, 0.9, 0.9])])) as again:
        assert again is index
        assert index.rung(1.0).values[1] == 0.9 and index.last_max() == 4.0
    # A plain list is read whole, into an index of its own; the kept one is left alone.
    with indexed([_trial(5, [0.3])]) as other:
        assert other is not index and set(other.entries) == {5}
    assert set(index.entries) == {0, 1}  # the last read of the log: trial 0 settled, trial 1 live


def test_a_scheduler_given_a_plain_list_keeps_its_study_state():
    rule = make_scheduler("auto")
    study = th.Study.create({"x": th.Float(0, 1)}, "max", storage="memory", strategy="random", seed=0)
    for _ in range(8):
        t = study.ask()
        for step in range(1, 10):
            t.report(t.params["x"] * step, step=step)
        study.tell(t, t.params["x"] * 9)
    history = study.read_history()
    with rule.indexed(history, "value", 1.0, "step") as kept:
        pass
    with rule.indexed(list(history), "value", 1.0, "step") as other:
        assert other is not kept
    with rule.indexed(history, "value", 1.0, "step") as again:
        assert again is kept and len(kept.entries) == 8
    assert rule.decide(history[0], list(history), {"value": "max"}) is Decision.CONTINUE


def test_the_history_read_from_its_delta_is_the_whole_history(db_url):
    """The delta read (unsettled trials and those settled since; an indexed query) and the log
    give what a full read gives, through pauses, resumes and trials settling out of order."""
    asha = {"name": "asha", "max_resource": 9, "mode": "promotion", "check_rungs": False}
    study = th.Study.create({"x": th.Float(0, 1)}, "max", storage=db_url, strategy="random", seed=3, scheduler=asha)
    other = th.Study.load(study.name, storage=db_url)  # a second reader that reads less often
    open_ = []
    for i in range(60):
        if len(open_) < 3:
            open_.append(study.ask())  # a paused trial that is now in the top of its rung comes back
        h = open_[i % len(open_)]
        h.report(1.0 / (h.number + 1) + 0.01 * i, step=(h.last_step or 0) + 1)  # newcomers are worse
        if h.should_stop():
            study.tell(h, state="paused" if h.pausing else "stopped")
            open_.remove(h)
        elif h.last_step >= 5:
            study.tell(h, h.params["x"])
            open_.remove(h)
        assert study.history() == study.trials
        finished = sum(t.is_finished for t in study.trials)
        assert study.read_history().n_finished == finished, "the count the cost model refits by"
        if i % 5 == 0:
            assert other.history() == other.trials
            assert other.read_history().n_finished == finished
    states = {t.state for t in study.trials}
    assert {th.TrialState.PAUSED, th.TrialState.COMPLETED} <= states
    assert any(t.start_step for t in study.trials)  # resumed
