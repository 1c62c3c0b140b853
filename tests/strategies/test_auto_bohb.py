"""The auto strategy's decision rule and the BOHB-style model per resource level."""

from __future__ import annotations

import logging

import pytest

import thrifty as th
from thrifty.strategies.auto import Auto
from thrifty.strategies.base import Context
from thrifty.strategies.bohb import BOHB

from _toys import SMALL, finished, run_with_steps

def decide(space, history=(), **ctx):
    auto = Auto()
    auto.bind(Context(**{"objectives": {"v": "max"}, **ctx}))
    return auto.decide(space, list(history))


def test_the_decision_rule():
    assert decide(SMALL, objectives={"a": "max", "b": "min"})[0] == "nsga2"
    assert decide(SMALL, [finished(0, [0.1, 0.2])])[0] == "mfgp"
    assert decide(SMALL, budget_trials=8)[0] == "sobol"
    assert decide(SMALL, budget_trials=50) == ("gp", "a small unconditional space (2 dimensions)")
    cond = th.Space({"opt": th.Categorical(["a", "b"]), "m": th.Float(0, 1, when={"opt": "a"})})
    assert decide(cond)[0] == "tpe"
    wide = th.Space({f"x{i}": th.Float(0, 1) for i in range(13)})
    assert decide(wide)[0] == "tpe"
    many = [finished(i, [0.1]) for i in range(301)]
    assert decide(SMALL, many)[0] == "tpe"
    # A resource: the GP over (configuration, resource) for a small unconditional space (it
    # subsamples, so the trial-count switch does not apply); a conditional space gets BOHB + TPE.
    assert decide(SMALL, many + [finished(301, [0.1, 0.2])])[0] == "mfgp"
    assert decide(cond, [finished(0, [0.1, 0.2], params={"opt": "b"})])[0] == "bohb+tpe"


def test_auto_says_what_it_chose_and_why(caplog):
    study = th.Study.create(SMALL, {"v": "max"}, storage="memory", strategy="auto", budget=th.Budget(trials=6))
    with caplog.at_level(logging.INFO, logger="thrifty.auto"):
        for _ in range(3):
            t = study.ask()
            study.tell(t, {"v": t.params["x"]})
    assert "auto: sobol (a tiny budget (6 trials)" in caplog.text
    assert caplog.text.count("auto: sobol") == 1  # said once, when it changed


def test_auto_with_steps_runs_the_gp_over_configuration_and_resource():
    study = run_with_steps(th.Study.create(SMALL, {"v": "max"}, storage="memory", strategy="auto", seed=3,
                                           scheduler={"name": "asha", "max_resource": 9}), 20)
    assert study.strategy.choice == "mfgp"
    assert study.best.value > 0.8  # the optimum is 1.0 at x=1, y=0.3


def test_bohb_fits_at_the_highest_level_with_enough_points():
    rule = BOHB(min_resource=1, reduction_factor=3, min_points=3)
    rule.bind(Context(objectives={"v": "max"}))
    history = [finished(i, [0.1 * i] * 9) for i in range(2)]  # 2 trials reached 9
    history += [finished(2 + i, [0.2 + 0.1 * i] * 3, state="stopped") for i in range(2)]  # 4 reached 3
    history += [finished(4 + i, [0.05], state="stopped") for i in range(3)]  # 7 reached 1
    level, values = rule.level(SMALL, history)
    assert level == 3.0 and sorted(values) == [0, 1, 2, 3]
    assert values[3] == pytest.approx(0.3)
    history += [finished(9, [0.9] * 9)]
    assert rule.level(SMALL, history)[0] == 9.0
    # With too little data anywhere the inner strategy starts up on its own.
    assert rule.level(SMALL, history[:2])[0] is None


def test_bohb_counts_trials_stopped_below_its_level_as_the_worst_there():
    history = [finished(0, [0.4, 0.5, 0.6]), finished(1, [0.2, 0.3, 0.35]),  # reached 3: the level
               finished(2, [0.01], state="stopped", params={"x": 0.9, "y": 0.9}),
               finished(3, [], state="stopped", params={"x": 0.1, "y": 0.1})]  # no report: says nothing

    def view_seen(impute):
        """What BOHB hands its inner model (its inner propose records it)."""
        rule = BOHB(min_resource=1, reduction_factor=3, min_points=2, impute_stopped=impute)
        rule.bind(Context(objectives={"v": "max"}))
        seen = []
        rule.inner.propose = lambda space, view, **kw: seen.extend(view) or [{"x": 0.5, "y": 0.5}]
        rule.propose(SMALL, history, seed=0, number=4)
        return {t.number: (t.state.value, t.metrics["v"]) for t in seen}

    assert view_seen(True) == {0: ("completed", 0.6), 1: ("completed", 0.35), 2: ("completed", 0.35)}
    assert sorted(view_seen(False)) == [0, 1]  # BOHB's own rule: left out


def test_bohb_with_an_asha_scheduler_runs_and_is_deterministic():
    def run(seed):
        study = th.Study.create(SMALL, {"v": "max"}, storage="memory", strategy=BOHB(min_points=4), seed=seed,
                                scheduler=th.schedulers.make_scheduler({"name": "asha", "max_resource": 9}))
        return run_with_steps(study, 25)

    a, b = run(1), run(1)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert a.best.value > 0.6  # the optimum is 1.0 at x=1, y=0.3
    with pytest.raises(ValueError, match="BOHB"):
        BOHB(reduction_factor=1)
