"""The contract every registered scheduler keeps, run over every name in the registry.

A decision is a function of the trial and the study's history (``thrifty.schedulers.base``): the
same history gives the same decision, plan and successor in a fresh object and in one that has
followed the study report by report (its caches warm); an empty history, a trial without steps,
and stopped, failed, paused and pending trials in the history are all handled; bad constructor
arguments raise ``ValidationError``; ``to_spec()`` builds an equal scheduler.

Every name of ``thrifty.schedulers.available()`` must have a :class:`Case` in :data:`CASES`: a new
scheduler fails :func:`test_every_registered_scheduler_has_a_case` until it is described here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import builders
import numpy as np
import pytest
from _contract import (
    assert_constructor_refuses,
    assert_refused_naming_the_argument,
    bad_argument_cases,
    json_round_trip,
    known_gap,
)

import thrifty as th
from thrifty.schedulers import AskPlan, Decision, Scheduler, available, make_scheduler

SPACE = th.Space({"lr": th.Float(1e-4, 1.0, log=True), "width": th.Int(8, 64), "act": th.Categorical(["a", "b"])})
MAX, MIN = {"value": "max"}, {"value": "min"}
STEPS = 9  # every trial of the simulated study runs to step 9 unless it is stopped


@dataclass(frozen=True)
class Case:
    """How the suite exercises one registered scheduler: ``spec``, a configuration whose rungs
    (or intervals) fall inside 9 steps; ``bad``, values of constructor arguments each of which must
    be refused (an unknown argument is tried for every scheduler)."""

    spec: Mapping[str, Any]
    bad: Sequence[Mapping[str, Any]]


CASES: dict[str, Case] = {
    "none": Case({"name": "none"}, bad=[]),
    "median": Case({"name": "median", "min_trials": 3, "min_resource": 2},
                   bad=[{"min_trials": 0}, {"min_resource": -1}, {"statistic": "max"}, {"resource": "seconds"}]),
    "percentile": Case({"name": "percentile", "q": 40, "min_trials": 3},
                       bad=[{"q": 0}, {"q": 100}, {"q": True}, {"min_trials": 1.5}]),
    "threshold": Case({"name": "threshold", "value": 0.2, "min_resource": 3},
                      bad=[{"value": float("inf")}, {"min_resource": -2}, {"value": "high"}]),
    "patience": Case({"name": "patience", "patience": 3, "min_delta": 0.01},
                     bad=[{"patience": 0}, {"patience": -1}, {"min_delta": float("nan")}, {"growth": -0.5}]),
    "asha": Case({"name": "asha", "min_resource": 1, "max_resource": 9, "min_complete": 3},
                 bad=[{"min_resource": 0}, {"max_resource": 0.5}, {"reduction_factor": 1}, {"mode": "eager"},
                      {"min_complete": 2}, {"rho_min": 1.0}]),
    "hyperband": Case({"name": "hyperband", "min_resource": 1, "max_resource": 9, "seed": 4},
                      bad=[{"min_resource": -1}, {"max_resource": 1}, {"reduction_factor": 0.5}]),
    "pbt": Case({"name": "pbt", "population_size": 4, "perturbation_interval": 3, "max_resource": 9, "seed": 2},
                bad=[{"population_size": 1}, {"perturbation_interval": 0}, {"quantile": 0.7},
                     {"resample_probability": 1.5}, {"factors": (0.8,)}]),
    "adaptive": Case({"name": "adaptive", "min_resource": 1, "max_resource": 9, "min_complete": 3},
                     bad=[{"min_resource": 0}, {"reduction_factor": 1.0}, {"max_resource": -9}]),
    "auto": Case({"name": "auto", "min_complete": 3},
                 bad=[{"reduction_factor": 1.0}, {"min_resource": 0}, {"min_complete": 2}, {"rho_min": 2.0}]),
}

def names() -> list[str]:
    return available()


def case(name: str) -> Case:
    if name not in CASES:
        pytest.fail(f"scheduler {name!r} is registered but has no Case in tests/schedulers/test_scheduler_contract.py")
    return CASES[name]


def scheduler(name: str) -> Scheduler:
    """A fresh scheduler of the case's configuration, bound to the space as a study binds it."""
    s = make_scheduler(dict(case(name).spec))
    s.bind(SPACE)
    return s


def reports(n_trials: int = 12, seed: int = 5) -> Iterator[tuple[th.Trial, list[th.Trial]]]:
    """A study as its scheduler sees it, report by report: trial ``i`` runs after trials ``< i``
    finished (every third of them STOPPED at step 4, one FAILED without reports, one still
    PENDING); yields ``(trial, history)`` at each of trial ``i``'s reports, the history holding
    the trial itself. Curves rise towards a quality drawn per trial, with noise."""
    rng = np.random.default_rng(seed)
    configs = builders.random_history(SPACE, n_trials, seed=seed)
    settled: list[th.Trial] = []
    for cfg in configs:
        i = cfg.number
        quality = float(rng.uniform(0.2, 1.0))
        values = [quality * (s / STEPS) ** 0.5 + float(rng.normal(0, 0.02)) for s in range(1, STEPS + 1)]
        if i == 4:
            settled.append(builders.failed(i, cfg.params))
            continue
        for k in range(1, STEPS + 1):
            t = builders.curve_trial(i, values[:k], params=cfg.params)
            yield t, [*settled, t, builders.pending(n_trials, SPACE.decode([0.5, 0.5, 0.5]))]
        end = 4 if i % 3 == 2 else STEPS
        state = "stopped" if end < STEPS else "completed"
        settled.append(builders.curve_trial(i, values[:end], params=cfg.params, state=state, final=end == STEPS))


def decisions(s: Scheduler, trial: th.Trial, history: Sequence[th.Trial], objectives: Mapping[str, str]) -> tuple:
    """Everything a scheduler says at one report: the decision, the plan, and the successor after a stop."""
    d = s.decide(trial, history, objectives)
    succ = s.successor(trial, history, objectives) if d is Decision.STOP else None
    return d, s.plan(history, objectives), succ


# -- the registry ---------------------------------------------------------------------------------
def test_every_registered_scheduler_has_a_case():
    assert sorted(CASES) == names(), "describe each registered scheduler in CASES (and only those)"


# -- determinism ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("objectives", [MAX, MIN], ids=["max", "min"])
def test_decisions_are_functions_of_the_history(name, objectives):
    """One object follows the study report by report; a fresh object per report must agree with
    it at every report, and so must the first object asked again afterwards."""
    following = scheduler(name)
    seen = []
    for trial, history in reports():
        said = decisions(following, trial, history, objectives)
        assert decisions(scheduler(name), trial, history, objectives) == said, (trial.number, trial.last_step)
        seen.append((trial, history, said))
    for trial, history, said in seen[::7]:
        assert decisions(following, trial, history, objectives) == said
    if name != "none":
        assert any(d is not Decision.CONTINUE for _, _, (d, _, _) in seen) or name in ("threshold", "patience"), \
            "the simulated study never exercised a decision other than CONTINUE"


# -- what the history may hold -------------------------------------------------------------------
@pytest.mark.parametrize("name", names())
def test_an_empty_history_continues_a_first_report_and_plans_a_new_trial(name):
    s = scheduler(name)
    t = builders.curve_trial(0, [0.5], params=SPACE.decode([0.5, 0.5, 0.5]))
    assert s.decide(t, [t], MAX) is Decision.CONTINUE
    assert s.plan([], MAX) == AskPlan()


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("measurements", [
    (), (th.Measurement(step=None, metrics={"value": 0.5}),), (th.Measurement(step=None, metrics={}, cost_usd=0.1),),
], ids=["no-reports", "final-value-without-step", "cost-only"])
def test_a_trial_without_steps_continues(name, measurements):
    history = settled_history()[:10]
    t = builders.running(len(history), SPACE.decode([0.5, 0.5, 0.5]), measurements=measurements)
    assert scheduler(name).decide(t, [*history, t], MAX) is Decision.CONTINUE


def settled_history() -> list[th.Trial]:
    """The study of :func:`reports` once every trial settled (completed, stopped, failed)."""
    last: list[th.Trial] = []
    for _, history in reports():
        last = history
    return [t for t in last if t.state.is_finished]


@pytest.mark.parametrize("name", names())
def test_stopped_failed_paused_and_pending_trials_in_the_history_are_handled(name):
    history = settled_history()
    n = len(history)
    extra = [
        builders.curve_trial(n, [0.9, 0.95, 0.97], state="paused", params=history[0].params),
        builders.stopped(n + 1, history[1].params, measurements=builders.measurements([0.1])),
        builders.failed(n + 2, history[2].params, measurements=builders.measurements([0.3, 0.2])),
        builders.pending(n + 3, history[3].params),
        builders.pending(n + 4, history[4].params, retry_of=4),
    ]
    t = builders.curve_trial(n + 5, [0.6, 0.65, 0.7], params=history[5].params)
    everything = [*history, *extra, t]
    d, plan, _ = decisions(scheduler(name), t, everything, MAX)
    assert d in tuple(Decision)
    paused = {x.number for x in everything if x.state is th.TrialState.PAUSED}
    assert set(plan.resume) <= paused, "a plan may resume only PAUSED trials"
    # Pending trials carry no data: adding more of them changes no decision.
    more_pending = [*everything, *(builders.pending(n + 6 + k, history[k].params) for k in range(3))]
    assert scheduler(name).decide(t, more_pending, MAX) is d


# -- construction ---------------------------------------------------------------------------------
#: Known gaps (issue 12 item 5, `specs`): remove an entry when its case passes (the marks are strict).
#: A class without an ``__init__`` answers an unknown argument with Python's "X() takes no arguments".
UNKNOWN_ARGUMENT_NOT_NAMED: set[str] = set()
#: Whether constructors raise ``ValidationError`` themselves; today they raise a bare ``ValueError``
#: that ``make_scheduler`` wraps. Set it to True when `specs` lands.
CONSTRUCTORS_VALIDATE = True
BAD = {n: CASES[n].bad for n in names() if n in CASES}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=known_gap(n in UNKNOWN_ARGUMENT_NOT_NAMED, "the message does not name the argument"))
    for n in names()
])
def test_an_unknown_argument_by_spec_raises_a_validation_error_naming_it(name):
    assert_refused_naming_the_argument(make_scheduler, {"name": name, "no_such_argument": 1}, "no_such_argument")


@pytest.mark.parametrize(("name", "kwargs"), bad_argument_cases(BAD, lambda name, arg: False, ""))
def test_bad_arguments_by_spec_raise_a_one_line_validation_error_naming_the_argument(name, kwargs):
    assert_refused_naming_the_argument(make_scheduler, {"name": name, **kwargs}, next(iter(kwargs)))


@pytest.mark.parametrize(("name", "kwargs"), bad_argument_cases(
    BAD, lambda name, arg: not CONSTRUCTORS_VALIDATE,
    "the constructor raises a bare ValueError until `specs` validates it"))
def test_bad_arguments_to_the_constructor_raise_a_validation_error(name, kwargs):
    assert_constructor_refuses(make_scheduler, name, kwargs)


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("configured", [False, True], ids=["defaults", "configured"])
def test_to_spec_round_trips_through_json_to_an_equal_scheduler(name, configured):
    original = make_scheduler(dict(case(name).spec) if configured else name)
    rebuilt = json_round_trip(make_scheduler, original, name)
    for s in (original, rebuilt):
        s.bind(SPACE)
    for trial, history in list(reports())[::5]:
        assert decisions(rebuilt, trial, history, MAX) == decisions(original, trial, history, MAX)
