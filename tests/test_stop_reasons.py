"""Typed stop reasons, end to end through the public API on SQLite and PostgreSQL: every way a
trial stops or pauses records who stopped it (``stop_kind``), which budget limit (``stop_limit``)
and the words for people (``reason``); the budget-aware rule is a scheduler wrapper."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

import thrifty as th
from thrifty.schedulers import BudgetSnapshot, Decision, Scheduler, Verdict, make_scheduler
from thrifty.schedulers.asha import ASHA
from thrifty.schedulers.budget_aware import BudgetAware
from thrifty.schedulers.threshold import Threshold

SPACE = {"x": th.Float(0.0, 1.0)}
S, K = th.TrialState, th.StopKind


def _steps(values: Sequence[float], cost_usd: float = 0.0):  # type: ignore[no-untyped-def]
    def objective(trial: th.TrialHandle) -> float | None:
        for step, value in enumerate(values, start=1):
            trial.report(value, step=step, cost_usd=cost_usd, elapsed_s=0.0)
            if trial.should_stop():
                return None
        return values[-1]

    return objective


def test_a_scheduler_stop_is_typed(db_url: str) -> None:
    study = th.Study.create(SPACE, "max", storage=db_url, scheduler=Threshold(value=0.5, min_resource=2))
    study.optimize(_steps([0.1, 0.2, 0.3]), n_trials=1, progress=False)
    [t] = study.trials
    assert (t.state, t.stop_kind, t.stop_limit, t.reason) == (S.STOPPED, K.SCHEDULER, None, "scheduler: threshold")
    assert t.stop == th.StopReason(K.SCHEDULER, "scheduler: threshold")
    assert t.last_step == 2 and t.metrics["value"] == 0.2  # stopped at step 2, its last report kept


def test_the_breaker_types_every_trial_it_stops(db_url: str) -> None:
    study = th.Study.create(SPACE, "max", storage=db_url, budget=th.Budget(usd=1.0))
    bystander = study.ask()
    bystander.report(0.1, step=1, cost_usd=0.1, elapsed_s=0.0)
    spender = study.ask()
    with pytest.raises(th.TrialStopped):
        spender.report(0.2, step=1, cost_usd=1.0, elapsed_s=0.0)
    assert spender.stop is not None and spender.stop.kind is K.BUDGET and spender.stop.limit == "usd"
    assert bystander.should_stop()
    stopped = study.tell(spender, state="stopped", elapsed_s=0.0)
    # The bystander ends its own way: told stopped without words, it keeps the breaker's reason.
    by = study.tell(bystander, state="stopped", elapsed_s=0.0)
    for t in (stopped, by):
        assert (t.stop_kind, t.stop_limit) == (K.BUDGET, "usd")
        assert t.reason == f"budget: {study.budget_stop.message}"  # type: ignore[union-attr]
    assert study.budget_stop is not None and study.budget_stop.limit == "usd" and study.budget_stop.at is not None


def test_a_trial_that_completes_after_a_stop_request_has_no_stop_reason(db_url: str) -> None:
    study = th.Study.create(SPACE, "max", storage=db_url)
    t = study.ask()
    study.stop_trial(t.number)
    assert t.should_stop()
    done = study.tell(t, 0.5, elapsed_s=0.0)
    assert (done.state, done.stop_kind, done.stop_limit, done.reason) == (S.COMPLETED, None, None, None)


def test_user_stops_are_typed_with_or_without_words(db_url: str) -> None:
    study = th.Study.create(SPACE, "max", storage=db_url)
    requested = study.ask()
    study.stop_trial(requested.number)
    requested.report(0.1, step=1, elapsed_s=0.0)
    assert requested.stop == th.StopReason(K.USER, "user: stop requested")
    a = study.tell(requested, state="stopped", elapsed_s=0.0)
    own_words = study.ask()
    own_words.report(0.2, step=1, elapsed_s=0.0)
    b = study.tell(own_words, state="stopped", reason="enough for today", elapsed_s=0.0)
    silent = study.ask()
    silent.report(0.3, step=1, elapsed_s=0.0)
    c = study.tell(silent, state="stopped", elapsed_s=0.0)
    paused = study.ask()
    paused.report(0.4, step=1, elapsed_s=0.0)
    d = study.tell(paused, state="paused", elapsed_s=0.0)
    assert [(t.state, t.stop_kind, t.reason) for t in (a, b, c, d)] == [
        (S.STOPPED, K.USER, "user: stop requested"), (S.STOPPED, K.USER, "enough for today"),
        (S.STOPPED, K.USER, None), (S.PAUSED, K.USER, None)]
    assert [t.stop_kind for t in th.Study.load(study.name, storage=db_url).trials] == [K.USER] * 4


def test_words_given_to_a_budget_stopped_trial_keep_its_kind(db_url: str) -> None:
    study = th.Study.create(SPACE, "max", storage=db_url, budget=th.Budget(gpu_hours=1.0),
                            resources={"gpu": 2})
    t = study.ask()
    with pytest.raises(th.TrialStopped) as info:
        t.report(0.5, step=1, elapsed_s=1800.0)  # 2 GPUs for half an hour
    done = study.tell(t, state="stopped", reason=f"caught: {info.value.reason}", elapsed_s=0.0)
    assert (done.stop_kind, done.stop_limit) == (K.BUDGET, "gpu_hours")
    assert done.reason is not None and done.reason.startswith("caught: ")


# -- the budget-aware rule as a scheduler wrapper ----------------------------------------------------
def test_budget_aware_true_builds_the_wrapper_and_its_spec_round_trips(db_url: str) -> None:
    asha = ASHA(1, 10, 3, budget_aware=True, check_rungs=False)
    wrapped = make_scheduler(asha)
    assert isinstance(wrapped, BudgetAware) and wrapped.inner is asha and wrapped.name == "asha"
    assert wrapped.to_spec() == asha.to_spec() and wrapped.to_spec()["budget_aware"] is True
    assert isinstance(make_scheduler(asha.to_spec()), BudgetAware)
    assert not isinstance(make_scheduler(ASHA(1, 10, 3)), BudgetAware)
    explicit = BudgetAware(ASHA(1, 10, 3, check_rungs=False))
    assert explicit.to_spec() == asha.to_spec() and make_scheduler(explicit) is explicit
    study = th.Study.create(SPACE, "max", storage=db_url, name="ba", scheduler=explicit,
                            budget={"usd": 10.0})
    loaded = th.Study.load("ba", storage=db_url)
    assert isinstance(loaded.scheduler, BudgetAware) and loaded.scheduler.to_spec() == asha.to_spec()
    study.close()
    loaded.close()


def test_budget_aware_needs_a_scheduler_with_a_max_resource() -> None:
    with pytest.raises(th.ValidationError, match="needs a scheduler that runs trials to a max_resource"):
        BudgetAware(Threshold(value=0.5))
    with pytest.raises(th.ValidationError, match="expected a scheduler"):
        BudgetAware("asha")  # type: ignore[arg-type]


def test_the_wrapper_decides_from_the_snapshot_it_is_given() -> None:
    """No study, no storage: the trial, the history and a budget snapshot decide."""
    study = th.Study.create(SPACE, "max", storage="memory")
    t = study.ask()
    for step in range(1, 5):
        t.report(0.5, step=step, cost_usd=1.0, elapsed_s=0.0)  # $1 a step, 4 of 10 steps: $6 to go
    trial = study.trials[0]
    rule = BudgetAware(ASHA(1, 10, 3, check_rungs=False))
    objectives = {"value": "max"}
    assert rule.verdict(trial, [trial], objectives, None) == Verdict(Decision.CONTINUE)
    assert rule.verdict(trial, [trial], objectives, BudgetSnapshot(usd_left=None, n_running=1)).note is None
    alone = BudgetSnapshot(usd_left=6.5, n_running=1)
    assert rule.verdict(trial, [trial], objectives, alone).decision is Decision.CONTINUE
    stop = rule.verdict(trial, [trial], objectives, BudgetSnapshot(usd_left=6.5, n_running=2))  # $3.25 each
    assert stop == Verdict(Decision.STOP, note="budget-aware: cannot reach 10 within its share of the $6.5000 left")
    assert rule.decide(trial, [trial], objectives) is Decision.CONTINUE, "without a snapshot: the inner decision"


class _AlwaysStop(Scheduler):
    name = "always"

    def decide(self, trial: th.Trial, history: Sequence[th.Trial], objectives: Mapping[str, str]) -> Decision:
        return Decision.STOP


def test_a_scheduler_without_the_rule_is_not_given_a_snapshot() -> None:
    assert not _AlwaysStop.needs_budget and BudgetAware.needs_budget
    assert _AlwaysStop().verdict(None, [], {}, None) == Verdict(Decision.STOP)  # type: ignore[arg-type]


def test_a_budget_aware_study_records_a_typed_scheduler_stop(db_url: str) -> None:
    study = th.Study.create(SPACE, "max", storage=db_url, budget=th.Budget(usd=12.0),
                            scheduler=ASHA(1, 10, 3, budget_aware=True, check_rungs=False))
    # The first trial spends $2.50, under the quarter of the budget an unproven trial may spend
    # (thrifty.cost.spend), so it completes; the second then needs $9 more with $8.50 left.
    study.optimize(_steps([0.5] * 10, cost_usd=0.25), n_trials=1, progress=False)
    t = study.ask()
    t.report(0.9, step=1, cost_usd=1.0, elapsed_s=0.0)  # the best at rung 1: ASHA alone would continue
    assert t.should_stop()
    stopped = study.tell(t, state="stopped", elapsed_s=0.0)
    assert (stopped.stop_kind, stopped.stop_limit) == (K.SCHEDULER, None)
    assert stopped.reason == "scheduler: asha: budget-aware: cannot reach 10 within its share of the $8.5000 left"
