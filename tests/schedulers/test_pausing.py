"""Schedulers that pause, resume and clone trials (ASHA promotion, synchronous Hyperband, PBT),
against hand-computed decisions on small fixed histories."""

from __future__ import annotations

import numpy as np
import pytest
from builders import curve_trial, pending, running

import thrifty as th
from thrifty.schedulers import AskPlan, Decision
from thrifty.schedulers.asha import ASHA
from thrifty.schedulers.budget_aware import cannot_finish
from thrifty.schedulers.hyperband import Hyperband
from thrifty.schedulers.pbt import PBT, schedule

MAX = {"value": "max"}

# -- ASHA, promotion variant ----------------------------------------------------------------------
def test_asha_promotion_pauses_the_losers_of_a_rung_instead_of_stopping_them():
    rule = ASHA(min_resource=1, max_resource=9, reduction_factor=3, mode="promotion", check_rungs=False)
    # Rung 1: values 0.9 (trial 0, went on), 0.5, 0.4 (paused). A fourth trial arrives with 0.45:
    # 4 trials at the rung, top floor(4/3) = 1 -> only trial 0 is in the top: pause.
    history = [curve_trial(0, [0.9, 0.9, 0.95]), curve_trial(1, [0.5], state="paused"),
               curve_trial(2, [0.4], state="paused")]
    newcomer = curve_trial(3, [0.45])
    assert rule.decide(newcomer, history + [newcomer], MAX) is Decision.PAUSE
    best = curve_trial(3, [0.95])
    assert rule.decide(best, history + [best], MAX) is Decision.CONTINUE
    # The stopping variant stops the same loser.
    assert ASHA(1, 9, 3, check_rungs=False).decide(newcomer, history + [newcomer], MAX) is Decision.STOP

def test_asha_promotion_plan_resumes_the_best_paused_trial_of_the_highest_rung_first():
    rule = ASHA(min_resource=1, max_resource=27, reduction_factor=3, mode="promotion", check_rungs=False)
    history = [
        # Rung 1 (step 1) has 6 trials: top floor(6/3) = 2 are trials 0 (0.9) and 4 (0.8).
        curve_trial(0, [0.9, 0.9, 0.92], state="paused"),  # reached rung 3 (0.92) and paused there
        curve_trial(1, [0.3], state="paused"),
        curve_trial(2, [0.2], state="completed"),
        curve_trial(3, [0.1], state="paused"),
        curve_trial(4, [0.8], state="paused"),  # in the top 2 of rung 1, paused at it: promotable
        curve_trial(5, [0.7, 0.71] + [0.99] * 7, state="running"),  # at rung 3 (0.99), past 9
        curve_trial(6, [0.6, 0.6, 0.5]),  # at rung 3 with 0.5
    ]
    # Rung 3: trials 0 (0.92), 5 (0.99), 6 (0.5): top floor(3/3) = 1 is trial 5 (running): nothing.
    # Rung 1: top 2 are trials 0 (already past rung 1: not promotable from it) and 4.
    assert rule.plan(history, MAX) == AskPlan(resume=(4,))
    # A fourth trial at rung 3 beating trial 5's rung-3 value makes the top 1 there... still 1: add two more.
    more = [curve_trial(7, [0.65, 0.65, 0.93], state="paused"), curve_trial(8, [0.64, 0.64, 0.1], state="paused"),
            curve_trial(9, [0.63, 0.63, 0.1], state="paused")]
    # Rung 3 now has 6 trials: top 2 are 5 (0.99) and 7 (0.93): trial 7 is paused at rung 3 ->
    # resumed before trial 4 (higher rung first). Rung 1 (9 trials, top 3): 0, 4, 5.
    assert rule.plan(history + more, MAX).resume == (7, 4)
    assert ASHA(1, 27, 3, check_rungs=False).plan(history, MAX) == AskPlan()  # the stopping variant resumes nothing

def test_asha_promotion_asks_for_checkpoints_at_the_rungs():
    rule = ASHA(min_resource=1.5, max_resource=27, reduction_factor=3, mode="promotion", check_rungs=False)  # rungs 1.5, 4.5, 13.5
    assert [s for s in range(1, 28) if rule.checkpoint_at(s)] == [2, 5, 14]
    assert not any(ASHA(1, 27, 3, check_rungs=False).checkpoint_at(s) for s in range(1, 28))
    with pytest.raises(ValueError, match="mode"):
        ASHA(1, 27, 3, mode="eager", check_rungs=False)

# -- synchronous Hyperband ---------------------------------------------------------------------
def test_synchronous_hyperband_brackets_take_trials_in_order():
    hb = Hyperband(min_resource=1, max_resource=9, reduction_factor=3, synchronous=True)
    # s_max = 2; bracket sizes ceil(3/(s+1) * 3**s): s=2: 9 trials from step 1, s=1: 5 from step 3,
    # s=0: 3 from step 9 (no rung).
    history = [curve_trial(i, [0.5]) for i in range(20)]
    brackets = hb.sync_brackets(history)
    assert brackets[(0, 2)] == list(range(9))
    assert brackets[(0, 1)] == list(range(9, 14))
    assert brackets[(0, 0)] == [14, 15, 16]
    assert brackets[(1, 2)] == [17, 18, 19]
    assert hb.sync_levels(2) == [1, 3] and hb.sync_levels(1) == [3] and hb.sync_levels(0) == []
    # A retry belongs to the bracket of the trial it retries.
    retry = running(20, retry_of=3)
    assert 20 in hb.sync_brackets(history + [retry])[(0, 2)]

def test_synchronous_hyperband_pauses_at_every_rung_and_promotes_when_the_rung_is_complete():
    hb = Hyperband(min_resource=1, max_resource=9, reduction_factor=3, synchronous=True)
    values = [0.1, 0.9, 0.3, 0.8, 0.2, 0.7, 0.4, 0.6, 0.5]  # bracket (0, 2): 9 trials starting at step 1
    paused = [curve_trial(i, [v], state="paused") for i, v in enumerate(values)]
    # Every trial pauses when it reaches a rung of its bracket, even the best.
    assert hb.decide(paused[1], paused, MAX) is Decision.PAUSE
    # Rung 1 incomplete while trial 8 runs without a report: nothing to resume.
    waiting = paused[:8] + [curve_trial(8, [])]
    assert hb.plan(waiting, MAX) == AskPlan()
    # Complete: the top floor(9/3) = 3 (trials 1, 3, 5) are resumed, best first.
    assert hb.plan(paused, MAX).resume == (1, 3, 5)
    # Trial 1 resumed and reached rung 3; 3 and 5 not yet: rung 3 waits, nothing new from rung 1.
    progressed = list(paused)
    progressed[1] = curve_trial(1, [0.9, 0.91, 0.92], state="paused")
    assert hb.plan(progressed, MAX).resume == (3, 5)
    # A failed member counts as the worst: the rung completes without it.
    failed = paused[:8] + [curve_trial(8, [], state="failed")]
    assert hb.plan(failed, MAX).resume == (1, 3, 5)

# -- PBT -------------------------------------------------------------------------------------------
SPACE = th.Space({"lr": th.Float(1e-4, 1.0, log=True), "layers": th.Int(1, 8), "act": th.Categorical(["relu", "tanh"])})

def pbt(**kw):
    rule = PBT(population_size=4, perturbation_interval=4, max_resource=16, seed=kw.pop("seed", 3), **kw)
    rule.bind(SPACE)
    return rule

def population(values_at_4):
    params = [{"lr": 0.01 * (i + 1), "layers": 2 + i, "act": "relu"} for i in range(4)]
    return [curve_trial(i, [v] * 4, params=params[i]) for i, v in enumerate(values_at_4)]

def test_pbt_exploits_at_the_interval_from_the_bottom_quantile():
    members = population([0.5, 0.9, 0.2, 0.7])  # quantile 0.25 of 4 -> 1 member each end
    rule = pbt()
    assert rule.decide(members[2], members, MAX) is Decision.STOP  # the worst, at step 4
    assert rule.decide(members[0], members, MAX) is Decision.CONTINUE  # in the middle
    before = [curve_trial(2, [0.2] * 3, params=members[2].params)]  # at step 3: not an interval
    assert rule.decide(before[0], members[:2] + before + members[3:], MAX) is Decision.CONTINUE
    nan = curve_trial(0, [0.5, float("nan")])
    assert rule.decide(nan, [nan] + members[1:], MAX) is Decision.STOP  # divergence

def test_pbt_successor_clones_a_top_member_and_perturbs_its_params():
    members = population([0.5, 0.9, 0.2, 0.7])
    rule = pbt(resample_probability=0.0)
    succ = rule.successor(members[2], members, MAX)
    assert succ is not None and succ.parent == 1  # the only top-quantile member
    assert succ.start_step == 4  # the parent's latest checkpoint (it saves at multiples of 4)
    parent = members[1].params
    assert succ.params["lr"] == pytest.approx(parent["lr"] * 0.8) or succ.params["lr"] == pytest.approx(parent["lr"] * 1.2)
    assert succ.params["layers"] in (round(parent["layers"] * 0.8), round(parent["layers"] * 1.2))
    assert succ.params["act"] == parent["act"]  # categoricals are only resampled
    # Deterministic: every worker computes the same successor.
    assert pbt(resample_probability=0.0).successor(members[2], members, MAX) == succ
    # With resampling always on, categoricals and numbers are drawn afresh, within their ranges.
    draws = [pbt(resample_probability=1.0, seed=s).successor(members[2], members, MAX).params for s in range(30)]
    assert {d["act"] for d in draws} == {"relu", "tanh"}
    assert all(1e-4 <= d["lr"] <= 1.0 and 1 <= d["layers"] <= 8 for d in draws)

def test_pbt_clips_perturbations_to_the_range_and_closes_the_population():
    rule = pbt(resample_probability=0.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = rule.perturb({"lr": 1.0, "layers": 8, "act": "tanh"}, rng)
        assert out["lr"] <= 1.0 and out["layers"] <= 8
    founders = [curve_trial(i, [0.1]) for i in range(4)]
    assert rule.plan(founders[:3], MAX) == AskPlan()
    assert not rule.plan(founders, MAX).new
    clone = pending(4, parent=1, start_step=4)
    assert not rule.plan(founders + [clone], MAX).new  # clones are not founders
    assert [s for s in range(1, 17) if rule.checkpoint_at(s)] == [4, 8, 12]

@pytest.mark.parametrize("kwargs", [
    {"population_size": 1}, {"perturbation_interval": 0}, {"perturbation_interval": 20, "max_resource": 16},
    {"quantile": 0.7}, {"resample_probability": 1.5}, {"factors": (0.8,)}, {"seed": "x"},
])
def test_pbt_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="PBT"):
        PBT(**kwargs)

def test_schedule_of_a_lineage():
    root = curve_trial(0, [0.1] * 8, params={"lr": 0.1}, state="stopped")
    child = curve_trial(5, [0.2] * 4, start=5, params={"lr": 0.12}, parent=0, start_step=4, state="stopped")
    leaf = curve_trial(9, [0.3] * 4, start=9, params={"lr": 0.096}, parent=5, start_step=8, state="completed")
    assert schedule([root, child, leaf]) == [(0.0, 4.0, {"lr": 0.1}), (4.0, 8.0, {"lr": 0.12}),
                                            (8.0, 12.0, {"lr": 0.096})]

# -- budget-aware rule -------------------------------------------------------------------------
def test_budget_aware_rule_stops_a_trial_that_cannot_finish_within_its_share():
    t = curve_trial(0, [0.5] * 4, step_cost_usd=1.0)  # $1 per step, 4 steps: $4 spent; 6 more steps to 10 cost $6
    assert cannot_finish(t, max_resource=10, dollars_left=5.9, n_running=1)
    assert not cannot_finish(t, max_resource=10, dollars_left=6.1, n_running=1)
    assert cannot_finish(t, max_resource=10, dollars_left=10.0, n_running=2)  # $5 each
    done = curve_trial(0, [0.5] * 10, step_cost_usd=1.0)
    assert not cannot_finish(done, max_resource=10, dollars_left=0.0, n_running=1)
    # A clone paid only from its start step: 2 steps for $2 -> $1 per step.
    clone = curve_trial(3, [0.5] * 2, start=5, step_cost_usd=1.0, parent=0, start_step=4)
    assert cannot_finish(clone, max_resource=10, dollars_left=3.9, n_running=1)
    assert not cannot_finish(clone, max_resource=10, dollars_left=4.1, n_running=1)
    assert ASHA(1, 9, 3, budget_aware=True, check_rungs=False).to_spec()["budget_aware"] is True

def test_a_budget_aware_study_stops_the_trial_that_cannot_finish():
    """Through the study: $1 per step, 10 steps to finish, a $12 budget. After one finished trial
    ($10) the next cannot finish in the $2 left once it has started, so it stops at its first
    report with the budget-aware reason, well before the hard limit."""
    study = th.Study.create({"x": th.Float(0, 1)}, "max", storage="memory", budget=th.Budget(usd=12.0),
                            scheduler=ASHA(1, 10, 3, budget_aware=True, check_rungs=False))
    first = study.ask()
    for step in range(1, 11):
        first.report(0.5, step=step, cost_usd=1.0, elapsed_s=0.0)
    study.tell(first, 0.5, elapsed_s=0.0)
    t = study.ask()
    t.report(0.9, step=1, cost_usd=1.0, elapsed_s=0.0)  # the best at rung 1: ASHA alone would continue
    assert t.should_stop()
    assert "budget-aware" in t.stop_reason and study.cost_usd == 11.0

# -- adaptive successive halving -------------------------------------------------------------------
def test_adaptive_stops_nobody_until_the_rungs_predict_the_end():
    from thrifty.schedulers.adaptive import AdaptiveASHA

    rule = AdaptiveASHA(min_resource=1, max_resource=9, reduction_factor=3, min_complete=5)
    # Five completed trials whose step-1 ranks are the reverse of their final ranks (rho = -1),
    # and whose step-3 ranks equal their final ranks (rho = 1).
    done = [curve_trial(i, [0.1 * (5 - i)] + [0.0] + [0.1 * i] * 7, state="completed") for i in range(5)]
    rhos = rule.correlations(done, MAX)
    assert rhos[1.0] == pytest.approx(-1.0) and rhos[3.0] == pytest.approx(1.0)
    assert rule.keep_fraction(rhos[1.0]) == 1.0 and rule.keep_fraction(rhos[3.0]) == pytest.approx(1 / 3)
    assert rule.keep_fraction(0.75) == pytest.approx(1 / 3 + (2 / 3) * 0.5)
    low_at_1 = curve_trial(9, [0.0])  # the worst at rung 1, but rung 1 predicts nothing: go on
    assert rule.decide(low_at_1, done + [low_at_1], MAX) is Decision.CONTINUE
    low_at_3 = curve_trial(9, [0.5, 0.5, 0.01])  # the worst at rung 3, which predicts the end: stop
    assert rule.decide(low_at_3, done + [low_at_3], MAX) is Decision.STOP
    good_at_3 = curve_trial(9, [0.5, 0.5, 0.45])  # best at rung 3 (values there 0..0.4): continue
    assert rule.decide(good_at_3, done + [good_at_3], MAX) is Decision.CONTINUE
    # Too few completed trials: no evidence, no stopping.
    assert rule.decide(low_at_3, done[:4] + [low_at_3], MAX) is Decision.CONTINUE
    with pytest.raises(ValueError, match="min_complete"):
        AdaptiveASHA(min_complete=2)
