"""Scheduler decisions against hand-computed answers on small fixed histories."""

from __future__ import annotations

import math

import pytest
from builders import curve_trial

import thrifty as th
from thrifty.schedulers import Decision, make_scheduler
from thrifty.schedulers.asha import ASHA
from thrifty.schedulers.hyperband import Hyperband
from thrifty.schedulers.patience import Patience
from thrifty.schedulers.percentile import Median, Percentile
from thrifty.schedulers.threshold import Threshold

MAX = {"value": "max"}
MIN = {"value": "min"}


def completed(number, values):
    return curve_trial(number, values, state="completed")


# -- median / percentile ------------------------------------------------------------------------
HISTORY = [completed(i, vals) for i, vals in enumerate([
    [0.1, 0.2, 0.3], [0.2, 0.4, 0.5], [0.3, 0.5, 0.6], [0.4, 0.6, 0.8], [0.5, 0.7, 0.9],
])]


def test_median_stops_below_the_median_of_completed_best_so_far():
    # At step 2 the completed trials' best-so-far are 0.2, 0.4, 0.5, 0.6, 0.7: median 0.5.
    below = curve_trial(9, [0.45, 0.49])
    above = curve_trial(9, [0.45, 0.51])
    assert Median(min_trials=5).decide(below, HISTORY + [below], MAX) is Decision.STOP
    assert Median(min_trials=5).decide(above, HISTORY + [above], MAX) is Decision.CONTINUE


def test_median_waits_for_min_trials_and_min_resource():
    t = curve_trial(9, [0.0, 0.0])
    assert Median(min_trials=6).decide(t, HISTORY + [t], MAX) is Decision.CONTINUE
    assert Median(min_trials=5, min_resource=3).decide(t, HISTORY + [t], MAX) is Decision.CONTINUE


def test_median_with_running_average_and_minimization():
    # Minimizing: signed values are negated. Running means at step 2: 0.15, 0.3, 0.4, 0.5, 0.6 -> median 0.4.
    good = curve_trial(9, [0.3, 0.45])  # mean 0.375 < 0.4: better when minimizing
    bad = curve_trial(9, [0.4, 0.5])  # mean 0.45 > 0.4
    rule = Median(min_trials=5, statistic="mean")
    assert rule.decide(good, HISTORY + [good], MIN) is Decision.CONTINUE
    assert rule.decide(bad, HISTORY + [bad], MIN) is Decision.STOP


def test_percentile_cutoff_is_the_qth_percentile():
    # Best-so-far at step 1: 0.1 .. 0.5; the 25th percentile (linear) is 0.2.
    assert Percentile(q=25, min_trials=5).decide(curve_trial(9, [0.19]), HISTORY, MAX) is Decision.STOP
    assert Percentile(q=25, min_trials=5).decide(curve_trial(9, [0.21]), HISTORY, MAX) is Decision.CONTINUE


def test_percentile_nan_only_trial_is_stopped():
    t = curve_trial(9, [math.nan])
    assert Median(min_trials=5).decide(t, HISTORY + [t], MAX) is Decision.STOP


@pytest.mark.parametrize("kwargs", [{"q": 0}, {"q": 100}, {"q": "x"}, {"min_trials": 0}, {"statistic": "max"},
                                    {"min_resource": -1}, {"resource": "epochs"}])
def test_percentile_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        Percentile(**kwargs)


# -- threshold and patience ---------------------------------------------------------------------
def test_threshold_stops_divergence_immediately_and_low_values_after_grace():
    assert Threshold().decide(curve_trial(0, [0.5, math.inf]), [], MAX) is Decision.STOP
    assert Threshold().decide(curve_trial(0, [0.5, math.nan]), [], MAX) is Decision.STOP
    assert Threshold().decide(curve_trial(0, [0.5, 0.4]), [], MAX) is Decision.CONTINUE
    rule = Threshold(value=0.3, min_resource=3)
    assert rule.decide(curve_trial(0, [0.1, 0.2]), [], MAX) is Decision.CONTINUE  # still in the grace period
    assert rule.decide(curve_trial(0, [0.1, 0.2, 0.25]), [], MAX) is Decision.STOP
    assert Threshold(value=1.0).decide(curve_trial(0, [2.0]), [], MIN) is Decision.STOP  # minimizing: above is worse
    with pytest.raises(ValueError):
        Threshold(value=None, stop_on_nonfinite=False)


def test_patience_counts_resource_since_the_last_real_improvement():
    rule = Patience(patience=3, min_delta=0.01)
    # Improvements at steps 1 and 2; steps 3-5 stay within min_delta of the best (0.2).
    assert rule.decide(curve_trial(0, [0.1, 0.2, 0.203, 0.206]), [], MAX) is Decision.CONTINUE  # 2 steps since
    assert rule.decide(curve_trial(0, [0.1, 0.2, 0.203, 0.206, 0.209]), [], MAX) is Decision.STOP  # 3 steps since
    # Small gains add up against the best, not the previous report: 0.215 beats 0.2 by 0.015.
    assert rule.decide(curve_trial(0, [0.1, 0.2, 0.205, 0.21, 0.215]), [], MAX) is Decision.CONTINUE


def test_adaptive_patience_grows_with_the_step_of_the_last_improvement():
    values = [i * 0.1 for i in range(1, 21)] + [2.0] * 6  # improves until step 20, flat for 6 steps
    assert Patience(patience=5).decide(curve_trial(0, values), [], MAX) is Decision.STOP
    assert Patience(patience=5, adaptive=True, growth=0.5).decide(curve_trial(0, values), [], MAX) is Decision.CONTINUE
    values += [2.0] * 4  # 10 flat steps = 0.5 * 20
    assert Patience(patience=5, adaptive=True, growth=0.5).decide(curve_trial(0, values), [], MAX) is Decision.STOP


# -- ASHA -----------------------------------------------------------------------------------------
def test_asha_rungs():
    assert ASHA(min_resource=1, max_resource=27, reduction_factor=3, check_rungs=False).rungs == [1, 3, 9]
    assert ASHA(min_resource=2, max_resource=50, reduction_factor=2, check_rungs=False).rungs == [2, 4, 8, 16, 32]


def test_asha_keeps_the_top_third_at_a_rung():
    # Rung at step 3: five earlier trials reached it with 0.1..0.5 (value of the report at step 3).
    others = [curve_trial(i, [0.0, 0.0, v, 0.0]) for i, v in enumerate([0.1, 0.2, 0.3, 0.4, 0.5])]
    rule = ASHA(min_resource=1, max_resource=27, reduction_factor=3, check_rungs=False)
    # With the new one there are 6 values: keep floor(6/3) = 2, so it must be among the top 2.
    second = curve_trial(9, [0.9, 0.9, 0.45])
    third = curve_trial(9, [0.9, 0.9, 0.35])
    assert rule.decide(second, others + [second], MAX) is Decision.CONTINUE
    assert rule.decide(third, others + [third], MAX) is Decision.STOP


def test_asha_judges_once_per_rung():
    others = [curve_trial(i, [0.0, 0.0, 0.9]) for i in range(5)]
    rule = ASHA(min_resource=1, max_resource=27, reduction_factor=3, check_rungs=False)
    # The trial passed rung 3 long ago (the history then was empty); at step 5 no rung is crossed.
    t = curve_trial(9, [0.1, 0.1, 0.1, 0.1, 0.1])
    assert rule.decide(t, others + [t], MAX) is Decision.CONTINUE


def test_asha_first_trial_at_a_rung_continues_and_dollar_rungs_work():
    rule = ASHA(min_resource=1.0, max_resource=10.0, reduction_factor=2, resource="cost_usd", check_rungs=False)
    t = curve_trial(0, [0.1, 0.2], step_cost_usd=0.6)  # cumulative cost 0.6, 1.2: crosses the $1 rung at the 2nd report
    assert rule.decide(t, [t], MAX) is Decision.CONTINUE
    better = curve_trial(1, [0.5, 0.9], step_cost_usd=0.6)
    worse = curve_trial(2, [0.5, 0.1], step_cost_usd=0.6)
    assert rule.decide(worse, [t, better, worse], MAX) is Decision.STOP


def test_asha_rejects_bad_arguments():
    for kwargs in ({"reduction_factor": 1}, {"min_resource": 0}, {"min_resource": 10, "max_resource": 5},
                   {"max_resource": math.inf}, {"check_rungs": "yes"}, {"min_complete": 2},
                   {"min_complete": 5.0}, {"rho_min": 1.0}, {"rho_min": True}):
        with pytest.raises(ValueError):
            ASHA(**kwargs)


# Measured rungs (the default): rungs 1, 3, 9 with max_resource 27.
def _completed_with(rung1: list[float], rung3: list[float], finals: list[float]):
    """Completed trials reporting value a at step 1, b at steps 2..3 and f at step 27."""
    return [curve_trial(i, [a, b, f, f], steps=[1, 3, 9, 27], state="completed")
            for i, (a, b, f) in enumerate(zip(rung1, rung3, finals, strict=True))]


def test_measured_asha_lets_everyone_through_the_lowest_rung_while_calibrating():
    rule = ASHA(min_resource=1, max_resource=27, reduction_factor=3)
    # Four completed trials (< min_complete=5): rung 1 is open, rung 3 judges as classic ASHA.
    history = _completed_with([0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.7, 0.6])
    assert rule.open_rungs(history, MAX) == [1]
    low_at_1 = curve_trial(9, [0.1])
    assert rule.decide(low_at_1, history + [low_at_1], MAX) is Decision.CONTINUE
    assert ASHA(1, 27, 3, check_rungs=False).decide(low_at_1, history + [low_at_1], MAX) is Decision.STOP
    low_at_3 = curve_trial(9, [0.95, 0.1, 0.1])  # 5 values at rung 3, keep floor(5/3) = 1: only the best goes on
    assert rule.decide(low_at_3, history + [low_at_3], MAX) is Decision.STOP


def test_measured_asha_closes_a_rung_that_does_not_predict_the_end():
    # Five completed trials: at rung 1 the ranks are reversed (Spearman -1 with the final value),
    # at rung 3 they agree (Spearman 1), at rung 9 the value is the final one.
    finals = [0.5, 0.6, 0.7, 0.8, 0.9]
    history = _completed_with([0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5], finals)
    rule = ASHA(min_resource=1, max_resource=27, reduction_factor=3)
    assert rule.open_rungs(history, MAX) == [1]
    newcomer = curve_trial(9, [0.0])  # the worst at rung 1 of 6: classic ASHA would stop it
    assert rule.decide(newcomer, history + [newcomer], MAX) is Decision.CONTINUE
    at_3 = curve_trial(9, [0.0, 0.3, 0.3])  # 6 values at rung 3 (0.1..0.5 and 0.3): keep 2, two are better
    assert rule.decide(at_3, history + [at_3], MAX) is Decision.STOP
    # A weak but positive correlation: rung 1 ranks 2,1,3,4,5 against the final 1..5 (rho = 0.9).
    mild = _completed_with([0.6, 0.5, 0.7, 0.8, 0.9], [0.1, 0.2, 0.3, 0.4, 0.5], finals)
    assert ASHA(1, 27, 3).open_rungs(mild, MAX) == []
    assert ASHA(1, 27, 3, rho_min=0.95).open_rungs(mild, MAX) == [1]


def test_measured_asha_promotion_releases_trials_paused_at_a_rung_that_closed():
    finals = [0.5, 0.6, 0.7, 0.8, 0.9]
    history = _completed_with([0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5], finals)
    paused = curve_trial(7, [0.05], state="paused")  # paused at rung 1 before the data showed rung 1 does not predict
    rule = ASHA(1, 27, 3, mode="promotion")
    assert rule.plan(history + [paused], MAX).resume == (7,)
    assert ASHA(1, 27, 3, mode="promotion", check_rungs=False).plan(history + [paused], MAX).resume == ()


# -- Hyperband ------------------------------------------------------------------------------------
def test_hyperband_brackets_are_deterministic_and_weighted_towards_aggressive_ones():
    hb = Hyperband(min_resource=1, max_resource=27, reduction_factor=3, seed=0)
    assert hb.s_max == 3
    assert [hb.bracket_rungs(s) for s in range(4)] == [[1, 3, 9], [3, 9], [9], []]
    brackets = [hb.bracket_of(n) for n in range(4000)]
    assert brackets == [Hyperband(max_resource=27, seed=0).bracket_of(n) for n in range(4000)]
    counts = [brackets.count(s) for s in range(4)]
    # Hyperband's bracket sizes for eta=3, s_max=3: 27, 12, 6, 4 (proportions 27/49, ...).
    for s, expected in enumerate([27, 12, 6, 4]):
        assert counts[s] / 4000 == pytest.approx(expected / 49, abs=0.03)


def test_hyperband_compares_only_within_a_bracket():
    hb = Hyperband(min_resource=1, max_resource=27, reduction_factor=3, seed=0)
    agg = [n for n in range(200) if hb.bracket_of(n) == 0]
    other = [n for n in range(200) if hb.bracket_of(n) == 3]
    # Strong trials in the non-stopping bracket do not count against a bracket-0 trial at rung 1.
    strong = [curve_trial(n, [0.99]) for n in other[:5]]
    t = curve_trial(agg[0], [0.1])
    assert hb.decide(t, strong + [t], MAX) is Decision.CONTINUE
    rivals = [curve_trial(n, [0.9]) for n in agg[1:6]]
    assert hb.decide(t, rivals + [t], MAX) is Decision.STOP


def test_schedulers_by_name_and_spec():
    assert isinstance(make_scheduler("median"), Median)
    assert make_scheduler({"name": "asha", "max_resource": 9}).rungs == [1, 3]
    with pytest.raises(th.ValidationError):
        make_scheduler({"name": "asha", "reduction_factor": 0.5})
