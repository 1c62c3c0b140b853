"""The budget guard: which limit, if any, stops the study at a given moment (one function)."""

from __future__ import annotations

import pytest

import thrifty as th
from thrifty.cost.budget import BudgetGuard, BudgetStop, Moment

START, RESUME, MEASUREMENT = Moment.START, Moment.RESUME, Moment.MEASUREMENT
NOTHING = th.Usage()


def _check(budget: th.Budget, moment: Moment, **usage: float) -> BudgetStop | None:
    return BudgetGuard(budget).check(th.Usage(**usage), moment)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit, value, used, message", [
    ("trials", 3, 3, "the budget of 3 trials is used up (3 started)"),
    ("usd", 2.0, 2.5, "the budget of $2.00 is used up ($2.5000 spent)"),
    ("gpu_hours", 1.5, 1.5, "the budget of 1.5 GPU-hours is used up (1.500 used)"),
    ("wall_s", 60.0, 61.0, "the budget of 60 s of wall time is used up (61.0 s active)"),
])
def test_each_limit_stops_a_new_trial_once_reached_and_not_before(limit: str, value: float, used: float,
                                                                   message: str) -> None:
    budget = th.Budget(**{limit: value})
    below = used - 1 if limit == "trials" else value * 0.999
    assert _check(budget, START, **{limit: below}) is None
    stop = _check(budget, START, **{limit: used})
    assert stop == BudgetStop(limit, message)
    assert stop.kind is th.StopKind.BUDGET and stop.reason == f"budget: {message}" and stop.at is None
    assert stop.stop_reason() == th.StopReason(th.StopKind.BUDGET, f"budget: {message}", limit)


@pytest.mark.parametrize("limit, value", [("usd", 2.0), ("gpu_hours", 1.0), ("wall_s", 60.0)])
def test_a_hard_budget_trips_the_breaker_at_a_measurement_and_a_soft_one_does_not(limit: str, value: float) -> None:
    hard, soft = th.Budget(**{limit: value}), th.Budget(**{limit: value}, hard=False)
    assert _check(hard, MEASUREMENT, **{limit: value}) == _check(hard, START, **{limit: value})
    assert _check(hard, MEASUREMENT, **{limit: value}).limit == limit  # type: ignore[union-attr]
    assert _check(soft, MEASUREMENT, **{limit: value}) is None
    assert _check(soft, START, **{limit: value}).limit == limit  # type: ignore[union-attr]


def test_the_trial_count_never_trips_the_breaker_nor_refuses_a_resumed_trial() -> None:
    budget = th.Budget(trials=2, usd=10.0)
    assert _check(budget, START, trials=2).limit == "trials"  # type: ignore[union-attr]
    assert _check(budget, RESUME, trials=2) is None, "a resumed trial is not a new trial"
    assert _check(budget, MEASUREMENT, trials=2) is None
    assert _check(budget, RESUME, trials=2, usd=10.0).limit == "usd"  # type: ignore[union-attr]


def test_a_soft_budget_still_refuses_to_resume_a_trial_once_spent() -> None:
    assert _check(th.Budget(usd=1.0, hard=False), RESUME, usd=1.0).limit == "usd"  # type: ignore[union-attr]


def test_the_first_limit_reached_wins_in_a_fixed_order() -> None:
    everything = th.Budget(trials=1, usd=1.0, gpu_hours=1.0, wall_s=1.0)
    used = {"trials": 1, "usd": 1.0, "gpu_hours": 1.0, "wall_s": 1.0}
    assert _check(everything, START, **used).limit == "trials"  # type: ignore[union-attr]
    assert _check(everything, MEASUREMENT, **used).limit == "usd"  # type: ignore[union-attr]
    assert _check(everything, MEASUREMENT, gpu_hours=1.0, wall_s=1.0).limit == "gpu_hours"  # type: ignore[union-attr]


def test_no_budget_never_stops_anything() -> None:
    huge = th.Usage(trials=10**6, usd=1e9, gpu_hours=1e6, wall_s=1e9)
    for moment in Moment:
        assert BudgetGuard(th.Budget()).check(huge, moment) is None
    assert BudgetGuard(th.Budget(usd=1.0)).check(NOTHING, START) is None


def test_a_budget_stop_names_a_known_limit() -> None:
    with pytest.raises(th.ValidationError, match="BudgetStop.limit='dollars'"):
        BudgetStop("dollars", "spent")
