"""Completion criteria: unit level on hand-built trials (expectations computed by hand), then end to
end through ``Study.create(stop_when=...)`` and ``optimize``."""

from __future__ import annotations

import math

import builders
import numpy as np
import pytest

import thrifty as th

COMPLETED, STOPPED, FAILED = th.TrialState.COMPLETED, th.TrialState.STOPPED, th.TrialState.FAILED
SPACE = th.Space({"x": th.Float(0.0, 1.0)})


def trials(values, costs=None, states=None, metric="v"):
    """Finished trials in number order: values (None: no metric), costs, states."""
    costs = costs or [1.0] * len(values)
    states = states or [COMPLETED] * len(values)
    return [
        builders.trial(i, state=s, params={"x": 0.5}, metrics={} if v is None else {metric: v}, cost_usd=c)
        for i, (v, c, s) in enumerate(zip(values, costs, states))
    ]


# -- TargetReached --------------------------------------------------------------------------------
def test_target_reached_max_and_min():
    target = th.TargetReached(0.9)
    assert target.check([], "v", "max") is None
    assert target.check(trials([0.5, 0.89]), "v", "max") is None
    why = target.check(trials([0.5, 0.95, 0.7]), "v", "max")
    assert why is not None and "target reached" in why and "0.95" in why and ">= 0.9" in why
    assert target.check(trials([0.9]), "v", "max") is not None  # reaching it exactly counts
    assert target.check(trials([0.5, 0.95]), "other", "max") is None  # another metric
    low = th.TargetReached(0.1)
    assert low.check(trials([0.5, 0.2]), "v", "min") is None
    assert "<= 0.1" in low.check(trials([0.5, 0.05]), "v", "min")
    assert th.TargetReached(-2).check(trials([-1.0, -3.0]), "v", "min") is not None


def test_target_counts_only_completed_finite_values():
    target = th.TargetReached(0.9)
    assert target.check(trials([0.99], states=[STOPPED]), "v", "max") is None
    assert target.check(trials([0.99], states=[FAILED]), "v", "max") is None
    assert target.check(trials([math.nan, math.inf, 0.5]), "v", "max") is None
    assert target.check(trials([None, 0.91]), "v", "max") is not None


# -- NoImprovement over trials --------------------------------------------------------------------
def test_no_improvement_over_a_window_of_trials_relative():
    rule = th.NoImprovement(min_improvement=0.01, trials=3)
    # Best before the window (after trial 1): 0.6; best now 0.603: +0.003 / 0.6 = 0.5% < 1%.
    why = rule.check(trials([0.5, 0.6, 0.601, 0.602, 0.603]), "v", "max")
    assert why is not None and "no improvement" in why and "last 3 trials" in why
    assert "0.005" in why and "relative" in why
    # +0.007 / 0.6 = 1.17% >= 1%: go on.
    assert rule.check(trials([0.5, 0.6, 0.601, 0.602, 0.607]), "v", "max") is None
    # The window must have elapsed: 3 trials are not more than 3.
    assert rule.check(trials([0.6, 0.6, 0.6]), "v", "max") is None
    assert rule.check(trials([0.6, 0.6, 0.6, 0.6]), "v", "max") is not None
    # No completed value before the window: nothing to compare with.
    assert rule.check(trials([None, 0.6, 0.6, 0.6], states=[FAILED] + [COMPLETED] * 3), "v", "max") is None
    # Minimizing: best 2.0 before, 1.99 now: 0.01 / 2.0 = 0.5% < 1%.
    assert rule.check(trials([3.0, 2.0, 2.5, 1.99, 2.2]), "v", "min") is not None
    assert rule.check(trials([3.0, 2.0, 2.5, 1.9, 2.2]), "v", "min") is None  # 5%
    # Failed and stopped trials in the window count as trials without improvement.
    assert rule.check(trials([0.5, 0.6, 0.9, 0.9, 0.9], states=[COMPLETED, COMPLETED, STOPPED, FAILED, STOPPED]),
                      "v", "max") is not None


def test_no_improvement_absolute():
    rule = th.NoImprovement(min_improvement=0.002, trials=3, relative=False)
    assert rule.check(trials([0.5, 0.6, 0.601, 0.602, 0.603]), "v", "max") is None  # +0.003 >= 0.002
    why = th.NoImprovement(min_improvement=0.005, trials=3, relative=False).check(
        trials([0.5, 0.6, 0.601, 0.602, 0.603]), "v", "max")
    assert why is not None and "0.003" in why and "relative" not in why
    assert "()" not in why
    # Relative to a best of 0 is absolute too (no division by zero).
    assert th.NoImprovement(0.01, trials=2).check(trials([0.0, 0.005, 0.004]), "v", "max") is not None
    assert th.NoImprovement(0.01, trials=2).check(trials([0.0, 0.02, 0.004]), "v", "max") is None


# -- NoImprovement over dollars -------------------------------------------------------------------
def test_no_improvement_over_a_window_of_dollars():
    rule = th.NoImprovement(min_improvement=0.01, usd=1.0)
    # $0.40 a trial: the last $1 takes the last 3 trials (back to $1.20); before them the best
    # was 0.7 (after trial 1); now 0.702: +0.002 / 0.7 = 0.29% < 1%.
    why = rule.check(trials([0.5, 0.7, 0.7, 0.701, 0.702], costs=[0.4] * 5), "v", "max")
    assert why is not None and "$1.20" in why
    # With 4 trials the window reaches back to trial 1: best before it 0.5, now 0.702: +40%.
    assert rule.check(trials([0.5, 0.7, 0.701, 0.702], costs=[0.4] * 4), "v", "max") is None
    # Less than $1 spent in all: the window has not elapsed.
    assert rule.check(trials([0.5, 0.5, 0.5], costs=[0.3] * 3), "v", "max") is None
    # The window must leave a trial before it.
    assert rule.check(trials([0.5, 0.5], costs=[1.0, 1.0]), "v", "max") is not None
    assert rule.check(trials([0.5, 0.5], costs=[0.5, 1.0]), "v", "max") is not None
    assert rule.check(trials([0.5, 0.5], costs=[2.0, 0.5]), "v", "max") is None
    # Absolute, minimizing: best 1.0 before the window, 0.95 now: 0.05 >= 0.01 -> go on; 0.995 -> done.
    absolute = th.NoImprovement(min_improvement=0.01, usd=1.0, relative=False)
    assert absolute.check(trials([1.0, 0.95], costs=[0.5, 1.0]), "v", "min") is None
    assert absolute.check(trials([1.0, 0.995], costs=[0.5, 1.0]), "v", "min") is not None


# -- ImprovementNotWorthCost ----------------------------------------------------------------------
def test_improvement_not_worth_its_cost():
    values, costs = [0.5, 0.6, 0.62, 0.63], [1.0, 1.0, 1.0, 1.0]
    # Window 3: best 0.5 -> 0.63, gain 0.13 / 3 = 0.04333 a trial; the next trial costs $1.00.
    # At $100 a unit it is worth $4.33: go on. At $20 a unit, $0.867 < $1.00: done.
    assert th.ImprovementNotWorthCost(usd_per_unit=100, window=3).check(trials(values, costs), "v", "max") is None
    why = th.ImprovementNotWorthCost(usd_per_unit=20, window=3).check(trials(values, costs), "v", "max")
    assert why is not None and "not worth the cost" in why
    assert "$0.8667" in why and "$1.0000" in why and "0.0433" in why
    # Break-even is not enough: at $23.08 a unit, $1.0003 >= $1.00: go on.
    assert th.ImprovementNotWorthCost(usd_per_unit=23.08, window=3).check(trials(values, costs), "v", "max") is None
    # The expected cost is the mean of the last `window` trials only: $0.50, $0.50, $0.50 here.
    cheap = trials(values, [9.0, 0.5, 0.5, 0.5])
    assert th.ImprovementNotWorthCost(usd_per_unit=20, window=3).check(cheap, "v", "max") is None  # $0.867 >= $0.50
    # Needs `window` finished trials after the first completed one.
    assert th.ImprovementNotWorthCost(usd_per_unit=1, window=3).check(trials(values[:3], costs[:3]), "v", "max") is None
    early_fail = trials([None, 0.5, 0.5, 0.5], costs, states=[FAILED] + [COMPLETED] * 3)
    assert th.ImprovementNotWorthCost(usd_per_unit=1, window=3).check(early_fail, "v", "max") is None
    # No progress at all is never worth a positive cost; minimizing works on the gain's size.
    assert th.ImprovementNotWorthCost(usd_per_unit=1e6, window=2).check(trials([0.5, 0.5, 0.5]), "v", "max")
    down = trials([2.0, 1.0, 0.9], [1.0, 1.0, 1.0])  # gain (2.0 - 0.9) / 2 = 0.55 a trial
    assert th.ImprovementNotWorthCost(usd_per_unit=2, window=2).check(down, "v", "min") is None  # $1.10
    assert th.ImprovementNotWorthCost(usd_per_unit=1.5, window=2).check(down, "v", "min") is not None  # $0.825


# -- construction --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: th.TargetReached("high"),
        lambda: th.TargetReached(math.nan),
        lambda: th.TargetReached(True),
        lambda: th.NoImprovement(0.01),  # no window
        lambda: th.NoImprovement(0.01, trials=3, usd=1.0),  # two windows
        lambda: th.NoImprovement(-0.1, trials=3),
        lambda: th.NoImprovement(0.01, trials=0),
        lambda: th.NoImprovement(0.01, trials=2.5),
        lambda: th.NoImprovement(0.01, usd=0),
        lambda: th.NoImprovement(0.01, usd=-1.0),
        lambda: th.NoImprovement(math.inf, trials=3),
        lambda: th.ImprovementNotWorthCost(usd_per_unit=0),
        lambda: th.ImprovementNotWorthCost(usd_per_unit=-5),
        lambda: th.ImprovementNotWorthCost(usd_per_unit="lots"),
        lambda: th.ImprovementNotWorthCost(usd_per_unit=10, window=1),
        lambda: th.ImprovementNotWorthCost(usd_per_unit=10, window=2.0),
    ],
)
def test_constructors_refuse_bad_arguments(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize(
    ("stop_when", "match"),
    [
        ({"name": "target"}, "target"),
        ({"name": "target", "value": "x"}, "target"),
        ({"name": "no_improvement", "trials": 3, "usd": 1.0}, "exactly one window"),
        ({"name": "not_worth_cost", "usd_per_unit": 10, "window": 1}, "window"),
        ({"name": "patience"}, "not a criterion"),
        (["target reached"], "not a criterion"),
        ([th.TargetReached(1.0), 42], "not a criterion"),
        ({"name": "target", "value": 1.0, "colour": "red"}, "target"),
    ],
)
def test_bad_stop_when_is_refused_and_nothing_is_written(sqlite_url, stop_when, match):
    with pytest.raises(th.ValidationError, match=match):
        th.Study.create(SPACE, "max", name="crit", storage=sqlite_url, stop_when=stop_when)
    with pytest.raises(th.StudyNotFound):
        th.Study.load("crit", storage=sqlite_url)


def test_multi_objective_studies_refuse_criteria(sqlite_url):
    with pytest.raises(th.ValidationError, match="single objective"):
        th.Study.create(SPACE, {"acc": "max", "cost_usd": "min"}, name="multi", storage=sqlite_url,
                        stop_when=[th.TargetReached(0.9)])
    with pytest.raises(th.StudyNotFound):
        th.Study.load("multi", storage=sqlite_url)


# -- end to end ----------------------------------------------------------------------------------
def _scripted(values, costs=None):
    """An objective returning values[number] (the last one after that), reporting costs[number]."""

    def objective(trial):
        i = min(trial.number, len(values) - 1)
        trial.report(values[i], step=1, cost_usd=costs[min(i, len(costs) - 1)] if costs else 0.0)
        return values[i]

    return objective


def test_target_reached_ends_optimize(db_url):
    study = th.Study.create(SPACE, "max", name="target", storage=db_url, stop_when=[th.TargetReached(0.9)])
    result = study.optimize(_scripted([0.1, 0.5, 0.95, 0.2]), n_trials=20, progress=False)
    assert result.reason == "criterion" and "target reached" in result.message
    assert len(study.trials) == 3 and study.best.value == 0.95
    # Stored with the study: a study loaded elsewhere is complete too and refuses new trials.
    loaded = th.Study.load("target", storage=db_url)
    assert [c.to_spec() for c in loaded.criteria] == [{"name": "target", "value": 0.9}]
    with pytest.raises(th.StudyExhausted) as info:
        loaded.ask()
    assert info.value.reason == "criterion" and "target reached" in str(info.value)
    assert loaded.optimize(_scripted([0.1]), n_trials=5, progress=False).reason == "criterion"
    assert len(loaded.trials) == 3


def test_no_improvement_ends_optimize_minimizing(db_url):
    crit = th.NoImprovement(min_improvement=0.05, trials=3)
    study = th.Study.create(SPACE, "min", name="plateau", storage=db_url, stop_when=crit)
    # Best after each trial: 10, 5, 5, 4.9, 4.8 -> after trial 4 the best improved 4% over 3 trials.
    result = study.optimize(_scripted([10.0, 5.0, 6.0, 4.9, 4.8, 1.0]), n_trials=20, progress=False)
    assert result.reason == "criterion" and "no improvement" in result.message, result
    assert len(study.trials) == 5
    loaded = th.Study.load("plateau", storage=db_url)
    assert [c.to_spec() for c in loaded.criteria] == [crit.to_spec()]
    assert loaded.criteria[0].params() == {"min_improvement": 0.05, "trials": 3, "usd": None, "relative": True}


def test_dollar_window_and_not_worth_cost_end_optimize(db_url):
    # $0.25 a trial: the last $1.00 is the last 4 trials. After 5 trials the window reaches back
    # to trial 1 (best before it 0.5: +60%); after 6 the best before it is 0.8 and now 0.804: done.
    study = th.Study.create(SPACE, "max", storage=db_url, name="usdwin",
                            stop_when=[th.NoImprovement(0.01, usd=1.0)])
    result = study.optimize(_scripted([0.5, 0.8, 0.801, 0.802, 0.803, 0.804, 0.9], [0.25]), n_trials=20,
                            progress=False)
    assert result.reason == "criterion" and "$1.00" in result.message, result
    assert len(study.trials) == 6 and study.cost_usd == pytest.approx(1.5)

    # Gains of 0.01 a trial at $5 a unit are worth $0.05 < $0.10 a trial: done after 1 + 2 trials.
    worth = th.Study.create(SPACE, "max", storage=db_url, name="worth",
                            stop_when=[th.ImprovementNotWorthCost(usd_per_unit=5.0, window=2)])
    result = worth.optimize(_scripted([0.50, 0.51, 0.52, 0.53, 0.54], [0.1]), n_trials=20, progress=False)
    assert result.reason == "criterion" and "not worth the cost" in result.message, result
    assert len(worth.trials) == 3


def test_criterion_ends_optimize_with_several_workers(sqlite_url):
    study = th.Study.create(SPACE, "max", storage=sqlite_url, stop_when=[th.TargetReached(0.5)])

    def objective(trial):
        trial.report(trial.params["x"], step=1)
        return trial.params["x"]

    result = study.optimize(objective, n_trials=200, n_workers=2, progress=False)
    assert result.reason == "criterion", result
    assert study.best.value >= 0.5
    trials = study.trials
    assert all(t.state is COMPLETED for t in trials)
    # Once a trial reaching the target is recorded, each worker's next ask sees it: at most the
    # other worker, which may have checked the criterion just before, starts one more trial.
    hit_at = min(t.finished_at for t in trials if t.value >= 0.5)
    assert len([t for t in trials if t.started_at > hit_at]) <= 1


# -- NoExpectedImprovement -----------------------------------------------------------------------
PLANE = th.Space({"x": th.Float(0.0, 1.0), "y": th.Float(0.0, 1.0)})


def _on_grid(f, xs):
    return [builders.trial(i, params={"x": float(x), "y": float(y)}, metrics={"v": f(x, y)})
            for i, (x, y) in enumerate(xs)]


def test_no_expected_improvement_goes_on_while_the_model_sees_a_gain_and_stops_when_it_does_not():
    rule = th.NoExpectedImprovement(min_improvement=0.001, min_trials=10, confirm_trials=0)
    rng = np.random.default_rng(0)
    def slope(x, y):  # maximised: the best is at x = 1
        return 1.0 + x

    left = rng.random((25, 2)) * [0.5, 1.0]  # only the left half seen: the model expects more at x > 0.5
    assert rule.check(_on_grid(slope, left), "v", "max", space=PLANE) is None
    # The whole square seen, the corner x = 1 among the trials: nothing left worth a trial.
    grid = [(x, y) for x in (0.0, 0.25, 0.5, 0.75, 1.0) for y in (0.0, 0.25, 0.5, 0.75, 1.0)]
    why = rule.check(_on_grid(slope, grid), "v", "max", space=PLANE)
    assert why is not None and "no expected improvement" in why and "25 completed trials" in why
    # The grid's trials come in order of x, so the best rose over the last trials: a rule that wants
    # the model's verdict confirmed by them goes on.
    assert th.NoExpectedImprovement(min_improvement=0.001, min_trials=10, confirm_trials=5).check(
        _on_grid(slope, grid), "v", "max", space=PLANE) is None
    calm = grid[20:] + grid[:20]  # the x = 1 column first: the last 20 trials changed nothing
    assert th.NoExpectedImprovement(min_improvement=0.001, min_trials=10, confirm_trials=5).check(
        _on_grid(slope, calm), "v", "max", space=PLANE) is not None
    # A long study (more trials than the model is conditioned on): the same verdicts.
    fine = [(x / 19, y / 19) for x in range(20) for y in range(20)]
    assert rule.check(_on_grid(slope, fine), "v", "max", space=PLANE) is not None
    assert rule.check(_on_grid(slope, [(x / 2, y) for x, y in fine]), "v", "max", space=PLANE) is None
    # Too few completed trials: no judgement; without the space (no model): no judgement.
    assert rule.check(_on_grid(slope, grid[:9]), "v", "max", space=PLANE) is None
    assert rule.check(_on_grid(slope, grid), "v", "max") is None


def test_no_expected_improvement_ends_a_study_near_the_optimum_and_round_trips(db_url):
    crit = th.NoExpectedImprovement(min_improvement=1e-4, confirm_trials=5)
    study = th.Study.create(PLANE, "min", name="eistop", storage=db_url, seed=3, stop_when=crit)

    def bowl(trial):  # its minimum, 1, at (0.3, 0.7)
        return 1.0 + (trial.params["x"] - 0.3) ** 2 + (trial.params["y"] - 0.7) ** 2

    result = study.optimize(bowl, n_trials=100, progress=False)
    assert result.reason == "criterion" and "no expected improvement" in result.message, result
    assert len(study.trials) < 100 and study.best.value < 1.001
    loaded = th.Study.load("eistop", storage=db_url)
    assert [c.to_spec() for c in loaded.criteria] == [crit.to_spec()]
    assert th.Study.create(PLANE, "min", storage=db_url, stop_when={"name": "no_expected_improvement",
                                                                    "min_improvement": 0.01}).criteria[0] \
        == th.NoExpectedImprovement(min_improvement=0.01)


@pytest.mark.parametrize("make", [lambda: th.NoExpectedImprovement(min_improvement=0),
                                  lambda: th.NoExpectedImprovement(min_improvement=-0.1),
                                  lambda: th.NoExpectedImprovement(min_trials=2),
                                  lambda: th.NoExpectedImprovement(confirm_trials=-1),
                                  lambda: th.NoExpectedImprovement(relative="yes")])
def test_no_expected_improvement_refuses_bad_arguments(make):
    with pytest.raises(ValueError):
        make()
