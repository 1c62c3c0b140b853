"""Spending a dollar budget well: the admission proposes something cheaper instead of ending the
study, no unproven trial eats the budget, and a budgeted study ends holding a trained model.

Real studies in memory with the default strategy and scheduler; every trial reports its steps and
their dollars, as a training loop does.
"""

from __future__ import annotations

import math

import pytest

import thrifty as th
from thrifty.cost.spend import UNPROVEN_SHARE

SPACE = th.Space({"width": th.Float(0.0, 1.0), "lr": th.Float(1e-4, 1e-1, log=True)})
STEPS = 10


def step_cost_usd(params) -> float:
    """Dollars per step: 1.5 cents for the narrowest model, 20 times that for the widest."""
    return 0.015 * math.exp(3.0 * params["width"])


def accuracy(params, step: int) -> float:
    """A learning curve whose end is best at lr = 1e-2 and mildly better for wider models."""
    end = 0.9 - 0.1 * (math.log10(params["lr"]) + 2.0) ** 2 + 0.05 * params["width"]
    return end * (1.0 - math.exp(-step / 3.0)) / (1.0 - math.exp(-STEPS / 3.0))


def run(study: th.Study, max_trials: int = 400) -> str:
    """Run trials until the study ends itself; the reason it gave."""
    for _ in range(max_trials):
        try:
            t = study.ask()
        except th.StudyExhausted as exc:
            return str(exc)
        for step in range(1, STEPS + 1):
            t.report({"acc": accuracy(t.params, step)}, step=step, cost_usd=step_cost_usd(t.params))
            if step == STEPS:
                study.tell(t, {"acc": accuracy(t.params, step)})
            elif t.should_stop():
                study.tell(t, state="stopped")
                break
    raise AssertionError(f"the study did not end in {max_trials} trials")


def median_full_cost_usd() -> float:
    return STEPS * step_cost_usd({"width": 0.5})


@pytest.mark.parametrize("seed", [0, 1])
def test_a_budgeted_study_ends_with_less_than_one_full_training_unspent(seed):
    budget = 12 * median_full_cost_usd()
    study = th.Study.create(SPACE, {"acc": "max"}, storage="memory", seed=seed, budget={"usd": budget})
    why = run(study)
    left = budget - study.cost_usd
    assert left < median_full_cost_usd(), (left, why)
    assert study.cost_usd <= budget * 1.05, why  # the breaker's overshoot: at most one step of one trial
    assert any(t.state is th.TrialState.COMPLETED for t in study.get_trials()), why


def test_a_first_proposal_costlier_than_the_whole_budget_still_ends_with_a_trained_model():
    probe = th.Study.create(SPACE, {"acc": "max"}, storage="memory", seed=4)
    first = probe.ask().params
    first_full = STEPS * step_cost_usd(first)
    # The budget buys 80% of the first proposal's full training, and several cheap ones.
    budget = 0.8 * first_full
    assert budget > 4 * STEPS * step_cost_usd({"width": 0.0}), "the seed's first proposal must be an expensive one"
    study = th.Study.create(SPACE, {"acc": "max"}, storage="memory", seed=4, budget={"usd": budget})
    why = run(study)
    trials = study.get_trials()
    assert trials[0].params == first
    assert trials[0].state is th.TrialState.STOPPED
    spent_first = math.fsum(m.cost_usd for m in trials[0].measurements)
    # Stopped once it spent its unproven share (plus the step that crossed the line).
    assert spent_first <= UNPROVEN_SHARE * budget + step_cost_usd(first) + 1e-9
    assert "spending rule" in (trials[0].reason or ""), trials[0].reason
    assert any(t.state is th.TrialState.COMPLETED for t in trials), why


def test_a_refused_proposal_gives_way_to_an_affordable_one_and_the_study_says_why_it_ended():
    budget = 6 * median_full_cost_usd()
    study = th.Study.create(SPACE, {"acc": "max"}, storage="memory", seed=0, budget={"usd": budget})
    why = run(study)
    # The study ended on the dollars left, naming the cheapest configuration it could find.
    assert "left of the" in why or "budget" in why, why
    left = budget - study.cost_usd
    if "the cheapest" in why:
        cheapest = float(why.rsplit("$", 1)[1].rstrip(")").replace(",", ""))
        assert cheapest > left
    assert left < median_full_cost_usd(), (left, why)
