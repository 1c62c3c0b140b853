"""The public contract of ``th.Study``: create/load, optimize, ask/tell, best, budgets, the ledger."""

from __future__ import annotations

import math

import pytest

import thrifty as th

SPACE = th.Space({"x": th.Float(0.0, 1.0), "n": th.Int(1, 100), "c": th.Categorical(["a", "b", "c"])})
COMPLETED, STOPPED, FAILED, INFEASIBLE, RUNNING = (
    th.TrialState.COMPLETED, th.TrialState.STOPPED, th.TrialState.FAILED, th.TrialState.INFEASIBLE,
    th.TrialState.RUNNING,
)


def make(objective="max", **kw):
    kw.setdefault("storage", "memory")
    return th.Study.create(SPACE, objective, **kw)


def told(study, value=None, **kw):
    """Start a trial and finish it at once (ask/tell)."""
    return study.tell(study.ask(), value, **kw)


# -- create and objectives ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        ("max", {"value": "max"}),
        ("min", {"value": "min"}),
        ("maximize", {"value": "max"}),
        ("maximise", {"value": "max"}),
        ("Maximise", {"value": "max"}),
        ({"loss": "minimise"}, {"loss": "min"}),
        ({"loss": "MIN"}, {"loss": "min"}),
        ({"val_acc": "max"}, {"val_acc": "max"}),
        ({"acc": "max", "latency": "minimize"}, {"acc": "max", "latency": "min"}),
    ],
)
def test_create_parses_objectives(objective, expected):
    study = make(objective, name="s")
    assert study.objectives == expected
    assert study.is_multi_objective is (len(expected) > 1)
    assert study.name == "s"
    assert study.trials == []
    assert study.cost_usd == 0.0


def test_optimize_reports_and_return_value():
    seen = []

    def objective(trial):
        assert not trial.should_stop()
        for step in (1, 2, 3):
            trial.report(trial.params["x"] * step / 3, step=step)
        seen.append(dict(trial.params))
        return trial.params["x"]

    study = make("max", seed=1)
    result = study.optimize(objective, n_trials=5, progress=False)
    assert result.reason == "n_trials" and result.n_trials == 5
    assert result.best is not None and result.best.number == study.best.number
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert all(t.state is COMPLETED for t in trials)
    assert [dict(t.params) for t in trials] == seen
    for t in trials:
        assert t.value == t.params["x"]
        assert dict(t.metrics) == {"value": t.params["x"]}
        assert [m.step for m in t.measurements[:3]] == [1.0, 2.0, 3.0]
        assert t.last_step == 3.0
        assert t.error is None and t.started_at is not None and t.finished_at is not None
    assert study.best.value == max(t.params["x"] for t in trials)


def test_objective_named_metric_gets_a_plain_number():
    study = make({"val_acc": "max"})
    study.optimize(lambda t: t.params["x"], n_trials=3, progress=False)
    for t in study.trials:
        assert t.state is COMPLETED
        assert dict(t.metrics) == {"val_acc": t.params["x"]}
        assert t.value == t.params["x"]
    assert study.best.value == max(t.params["x"] for t in study.trials)


def test_objective_returning_a_dict_keeps_every_metric():
    study = make({"val_acc": "max"})
    study.optimize(lambda t: {"val_acc": t.params["x"], "loss": 1 - t.params["x"]}, n_trials=3, progress=False)
    for t in study.trials:
        assert t.state is COMPLETED
        assert t.metrics["val_acc"] == t.params["x"]
        assert t.metrics["loss"] == pytest.approx(1 - t.params["x"])


def test_multi_objective_optimize_and_best_points_to_pareto_front():
    study = make({"acc": "max", "latency": "min"})
    study.optimize(lambda t: {"acc": t.params["x"], "latency": t.params["n"]}, n_trials=4, progress=False)
    assert [t.state for t in study.trials] == [COMPLETED] * 4
    with pytest.raises(th.ThriftyError, match="pareto_front"):
        study.best
    front = study.pareto_front()
    assert front
    for f in front:  # nothing on the front is dominated
        for t in study.trials:
            assert not (t.metrics["acc"] >= f.metrics["acc"] and t.metrics["latency"] <= f.metrics["latency"]
                        and (t.metrics["acc"] > f.metrics["acc"] or t.metrics["latency"] < f.metrics["latency"]))


def test_returning_none_after_reports_is_stopped_with_the_last_report():
    def objective(trial):
        trial.report({"value": 0.1, "aux": 1.0}, step=1)
        if trial.number == 1:
            trial.study.stop_trial(trial.number)
        trial.report({"value": 0.2, "aux": 2.0}, step=2)
        if trial.should_stop():
            return None
        return 0.9

    study = make()
    study.optimize(objective, n_trials=3, progress=False)
    trials = study.trials
    assert [t.state for t in trials] == [COMPLETED, STOPPED, COMPLETED]
    stopped = trials[1]
    assert dict(stopped.metrics) == {"value": 0.2, "aux": 2.0}
    assert stopped.error is None
    assert study.best.number == 0, "a STOPPED trial never counts as best"


def test_returning_none_without_reports_fails_with_a_clear_error():
    study = make()
    study.optimize(lambda t: None, n_trials=2, max_consecutive_failures=None, progress=False)
    for t in study.trials:
        assert t.state is FAILED
        assert "returned None without reporting" in t.error


def test_exception_fails_the_trial_with_its_traceback_and_the_study_goes_on():
    def objective(trial):
        if trial.number == 1:
            raise RuntimeError("boom in trial one")
        return trial.params["x"]

    study = make()
    study.optimize(objective, n_trials=4, progress=False)
    trials = study.trials
    assert [t.state for t in trials] == [COMPLETED, FAILED, COMPLETED, COMPLETED]
    assert "Traceback (most recent call last)" in trials[1].error
    assert "RuntimeError: boom in trial one" in trials[1].error
    assert trials[1].metrics == {}


def test_too_many_consecutive_failures():
    def objective(trial):
        raise ValueError("always broken")

    study = make()
    with pytest.raises(th.TooManyFailures, match="always broken"):
        study.optimize(objective, n_trials=50, max_consecutive_failures=3, progress=False)
    assert [t.state for t in study.trials] == [FAILED] * 3


def test_a_success_resets_the_consecutive_failure_count():
    study = make()
    study.optimize(lambda t: 1 / (t.number % 2), n_trials=8, max_consecutive_failures=2, progress=False)
    assert [t.state for t in study.trials] == [FAILED, COMPLETED] * 4


def test_returned_dict_without_the_objective_metric_fails_naming_it():
    study = make({"val_acc": "max"})
    study.optimize(lambda t: {"loss": 0.5}, n_trials=2, max_consecutive_failures=None, progress=False)
    for t in study.trials:
        assert t.state is FAILED
        assert "val_acc" in t.error and "loss" in t.error


@pytest.mark.parametrize("bad", ["0.5", [0.5], {"value": "high"}, True])
def test_returning_a_non_number_fails_the_trial(bad):
    study = make()
    study.optimize(lambda t: bad, n_trials=1, progress=False)
    (t,) = study.trials
    assert t.state is FAILED and "invalid result" in t.error


# -- best ---------------------------------------------------------------------------------------
def test_best_max_and_min_ignore_nan_inf_and_unfinished_trials():
    values = [0.3, float("nan"), 0.8, float("inf"), float("-inf"), 0.1, 0.8]
    for direction, winner in (("max", 2), ("min", 5)):
        study = make(direction)
        for v in values:
            told(study, v)
        told(study, state="stopped", value=100.0 if direction == "max" else -100.0)
        told(study, state="failed", error="x")
        told(study, state="infeasible", error="y")
        study.ask()  # still running
        best = study.best
        assert best.number == winner, direction  # ties: the earliest
        assert best.state is COMPLETED
        assert math.isfinite(best.value)


def test_best_without_a_completed_trial_is_a_clear_error():
    study = make(name="empty")
    with pytest.raises(th.ThriftyError, match="no completed trial"):
        study.best
    told(study, float("nan"))
    told(study, state="stopped", value=0.5)
    with pytest.raises(th.ThriftyError, match="'empty' has no completed trial with a finite"):
        study.best


def test_pareto_front_on_a_hand_built_set():
    study = make({"acc": "max", "cost": "min"})
    a = told(study, {"acc": 0.9, "cost": 10.0})
    b = told(study, {"acc": 0.8, "cost": 5.0})
    told(study, {"acc": 0.7, "cost": 7.0})  # dominated by b
    told(study, {"acc": 0.9, "cost": 12.0})  # dominated by a
    told(study, {"acc": 0.99, "cost": float("nan")})  # not finite: never on the front
    told(study, state="stopped", value={"acc": 1.0, "cost": 0.0})  # stopped: never counts
    e = told(study, {"acc": 0.5, "cost": 1.0})
    d = told(study, {"acc": 0.8, "cost": 5.0})  # equal to b: neither dominates the other
    assert sorted(t.number for t in study.pareto_front()) == sorted([a.number, b.number, e.number, d.number])


# -- ask / tell ---------------------------------------------------------------------------------
def test_tell_value_and_cost(db_url):
    study = make(storage=db_url, name="asktell")
    t = study.ask()
    assert t.number == 0 and study.counts() == {RUNNING: 1}
    assert SPACE.contains(t.params)
    done = study.tell(t, 0.93, cost_usd=0.2)
    assert done.state is COMPLETED and done.value == 0.93 and done.number == 0
    assert done.cost_usd == pytest.approx(0.2)
    assert study.cost_usd == pytest.approx(0.2)
    with pytest.raises(th.TrialNotRunning, match="already completed"):
        study.tell(t, 0.5)
    assert study.trials[0].value == 0.93


def test_tell_failed_and_infeasible():
    study = make()
    failed = study.tell(study.ask(), state="failed", error="CUDA OOM", cost_usd=0.05)
    assert failed.state is FAILED and failed.error == "CUDA OOM" and failed.metrics == {}
    assert failed.cost_usd == pytest.approx(0.05)
    inf = study.tell(study.ask(), state="infeasible", error="needs 2 GPUs")
    assert inf.state is INFEASIBLE and inf.error == "needs 2 GPUs"
    plain = study.tell(study.ask(), state="infeasible")
    assert plain.state is INFEASIBLE and plain.error
    assert study.cost_usd == pytest.approx(0.05)
    for t in (failed, inf):
        with pytest.raises(th.TrialNotRunning):
            study.tell(t, 1.0)
    with pytest.raises(th.TrialNotRunning):
        study.tell(failed.number, 1.0)


def test_tell_needs_a_value_or_a_state():
    study = make()
    t = study.ask()
    with pytest.raises(th.ValidationError, match="give a value"):
        study.tell(t)
    with pytest.raises(th.ValidationError):
        study.tell(t, state="running")
    with pytest.raises(th.ValidationError):
        study.tell(t, 0.5, error="only for failed trials")
    assert study.trials[0].state is RUNNING
    assert study.tell(t.number, 0.5).state is COMPLETED  # by number


@pytest.mark.parametrize("bad", [-0.01, float("nan"), float("inf"), "abc", None, True])
def test_bad_costs_are_rejected_and_nothing_is_written(bad):
    study = make()
    t = study.ask()
    t.report(0.1, step=1, cost_usd=0.25)
    with pytest.raises(th.ValidationError, match="cost"):
        study.tell(t, 0.5, cost_usd=bad)
    with pytest.raises(th.ValidationError, match="cost"):
        study.tell(t, state="failed", error="x", cost_usd=bad)
    with pytest.raises(th.ValidationError, match="cost"):
        t.report(0.2, step=2, cost_usd=bad)
    (snap,) = study.trials
    assert snap.state is RUNNING
    assert len(snap.measurements) == 1
    assert snap.cost_usd == pytest.approx(0.25) and study.cost_usd == pytest.approx(0.25)
    assert study.tell(t, 0.5, cost_usd=0.5).state is COMPLETED  # the trial is still usable
    assert study.cost_usd == pytest.approx(0.75)


def test_ledger_adds_up(db_url):
    study = make(storage=db_url, name="ledger")

    def objective(trial):
        for step in range(1, 4):
            trial.report(trial.params["x"], step=step, cost_usd=0.01 * step)
        if trial.number == 2:
            raise RuntimeError("failed after spending")
        return trial.params["x"]

    study.optimize(objective, n_trials=4, progress=False)
    t = study.ask()
    t.report(0.5, step=1, cost_usd=0.125)
    study.tell(t, 0.6, cost_usd=0.375)
    study.tell(study.ask(), state="failed", error="OOM", cost_usd=0.5)

    trials = study.trials
    assert [x.state for x in trials] == [COMPLETED, COMPLETED, FAILED, COMPLETED, COMPLETED, FAILED]
    for x in trials:
        assert x.cost_usd == pytest.approx(math.fsum(m.cost_usd for m in x.measurements), abs=1e-12)
    assert [x.cost_usd for x in trials[:4]] == pytest.approx([0.06] * 4)
    assert trials[4].cost_usd == pytest.approx(0.5) and trials[5].cost_usd == pytest.approx(0.5)
    assert study.cost_usd == pytest.approx(math.fsum(x.cost_usd for x in trials), abs=1e-12)
    assert study.cost_usd == pytest.approx(4 * 0.06 + 1.0)
    reloaded = th.Study.load("ledger", storage=db_url)
    assert reloaded.cost_usd == pytest.approx(study.cost_usd)


def test_report_checks_steps_and_metrics():
    study = make()
    t = study.ask()
    t.report(0.1, step=2)
    with pytest.raises(th.ValidationError, match="must not decrease"):
        t.report(0.2, step=1)
    with pytest.raises(th.ValidationError):
        t.report("good")
    assert len(study.trials[0].measurements) == 1


# -- enqueue ------------------------------------------------------------------------------------
def test_enqueued_trial_runs_first_with_exactly_its_params():
    study = make(seed=3)
    queued = study.enqueue({"x": 0.25, "n": 7, "c": "b"})
    assert queued.state is th.TrialState.PENDING and queued.number == 0
    seen = []
    study.optimize(lambda t: seen.append(dict(t.params)) or 0.0, n_trials=2, progress=False)
    assert seen[0] == {"x": 0.25, "n": 7, "c": "b"}
    assert seen[1] != seen[0]
    assert dict(study.trials[0].params) == {"x": 0.25, "n": 7, "c": "b"}
    assert [t.state for t in study.trials] == [COMPLETED, COMPLETED]


@pytest.mark.parametrize(
    "params",
    [{"x": 1.5, "n": 7, "c": "b"}, {"x": 0.5, "n": 7}, {"x": 0.5, "n": 7, "c": "z"}, {"x": 0.5, "n": 7, "c": "a", "y": 1},
     {"x": "high", "n": 7, "c": "a"}, [0.5, 7, "a"]],
)
def test_enqueue_rejects_invalid_params(params):
    study = make()
    with pytest.raises(th.SpaceError):
        study.enqueue(params)
    assert study.trials == []


# -- budgets ------------------------------------------------------------------------------------
def test_trial_budget_stops_optimize_and_ask():
    study = make(budget=th.Budget(trials=3))
    study.optimize(lambda t: t.params["x"], progress=False)  # no n_trials: the budget stops it
    assert len(study.trials) == 3
    with pytest.raises(th.StudyExhausted) as info:
        study.ask()
    assert info.value.reason == "trials"
    study.optimize(lambda t: t.params["x"], n_trials=5, progress=False)
    assert len(study.trials) == 3


def test_usd_budget_stops_starting_trials_once_spent():
    study = make(budget=th.Budget(usd=1.0))

    def objective(trial):
        trial.report(0.5, step=1, cost_usd=0.25)
        return 0.5

    study.optimize(objective, n_trials=20, progress=False)
    assert len(study.trials) == 4  # 4 x $0.25 reaches $1.00 exactly: no fifth trial
    assert study.cost_usd == pytest.approx(1.0)
    with pytest.raises(th.StudyExhausted) as info:
        study.ask()
    assert info.value.reason == "usd"


def test_a_dollar_budget_set_or_lifted_elsewhere_applies_to_the_next_ask(db_url):
    """A cheap strategy reads a light snapshot while the study has no dollar budget: one set from
    another object (process) still stops the next ask, and lifting it lets asks go on."""
    study = make(storage=db_url, name="usd-elsewhere", strategy="random")
    study.tell(study.ask(), 0.1, cost_usd=0.5)
    other = th.Study.load("usd-elsewhere", storage=db_url)
    other.set_budget(th.Budget(usd=0.5))
    with pytest.raises(th.StudyExhausted) as info:
        study.ask()
    assert info.value.reason == "usd"
    other.set_budget(th.Budget(usd=None, trials=3))
    study.tell(study.ask(), 0.2)
    assert len(study.trials) == 2


def test_set_budget_lets_the_study_continue(db_url):
    study = make(storage=db_url, name="budget", budget=th.Budget(trials=2))
    study.optimize(lambda t: t.params["x"], progress=False)
    assert len(study.trials) == 2
    study.set_budget(th.Budget(trials=4))
    study.optimize(lambda t: t.params["x"], progress=False)
    assert len(study.trials) == 4
    # A budget raised through another Study object (another process) applies at once.
    other = th.Study.load("budget", storage=db_url)
    assert other.budget == th.Budget(trials=4)
    other.set_budget({"trials": 5})
    study.tell(study.ask(), 0.1)
    assert len(study.trials) == 5
    with pytest.raises(th.StudyExhausted):
        study.ask()


@pytest.mark.parametrize("bad", [{"trials": 0}, {"usd": -1}, {"usd": float("nan")}, {"epochs": 3}, "lots"])
def test_invalid_budgets(bad):
    with pytest.raises(th.ValidationError):
        make(budget=bad)
    study = make()
    with pytest.raises(th.ValidationError):
        study.set_budget(bad)


# -- create / load ------------------------------------------------------------------------------
def test_duplicate_name_and_load_if_exists(db_url):
    first = make(storage=db_url, name="dup", seed=5)
    told(first, 0.5)
    with pytest.raises(th.DuplicateStudy, match="'dup' already exists"):
        make(storage=db_url, name="dup")
    again = make(storage=db_url, name="dup", load_if_exists=True)
    assert again.name == "dup" and again.seed == 5
    assert [t.value for t in again.trials] == [0.5]
    loaded = th.Study.load("dup", storage=db_url)
    assert loaded.space == SPACE and loaded.objectives == {"value": "max"}


def test_duplicate_in_memory_through_the_same_storage():
    first = make(name="dup")
    with pytest.raises(th.DuplicateStudy):
        make(name="dup", storage=first.storage)
    assert make(name="dup", storage=first.storage, load_if_exists=True).name == "dup"


def test_load_missing_study_names_the_storage(db_url):
    make(storage=db_url, name="present")
    with pytest.raises(th.StudyNotFound) as info:
        th.Study.load("absent", storage=db_url)
    msg = str(info.value)
    assert "'absent'" in msg and db_url in msg and "present" in msg
    with pytest.raises(th.StudyNotFound, match="no study named 'absent' in memory"):
        th.Study.load("absent", storage="memory")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"objective": "up"}, "direction 'up' must be one of max, maximize, maximise, min, minimize, minimise$"),
        ({"objective": {"acc": True}}, "'acc': direction True must be one of max, "),
        ({"objective": {"acc": "bigger"}}, "'acc': direction 'bigger'"),
        ({"objective": {}}, "objective="),
        ({"strategy": "annealing"}, "unknown strategy 'annealing'; known: .*grid.*random"),
        ({"seed": "x"}, "seed='x': expected an integer"),
        ({"seed": 1.5}, "seed=1.5"),
        ({"max_retries": -1}, "max_retries=-1: expected an integer >= 0"),
        ({"heartbeat_grace_s": 0}, "heartbeat_grace_s=0: expected a number of seconds > 0"),
        ({"heartbeat_grace_s": float("nan")}, "heartbeat_grace_s=nan"),
        ({"name": ""}, "name='': a study name must be a non-empty string"),
        ({"name": "   "}, "a study name must be a non-empty string"),
        ({"scheduler": "asha-does-not-exist"}, "unknown scheduler"),
    ],
)
def test_invalid_constructor_arguments(kwargs, match, sqlite_url):
    kwargs = {"storage": sqlite_url, **kwargs}
    objective = kwargs.pop("objective", "max")
    with pytest.raises(th.ValidationError, match=match):
        th.Study.create(SPACE, objective, **kwargs)
    # Nothing was written.
    assert th.Study.create(SPACE, name="probe", storage=sqlite_url).storage.list_studies()[0].name == "probe"
    assert len(th.Study.create(SPACE, name="probe2", storage=sqlite_url).storage.list_studies()) == 2


def test_invalid_optimize_arguments():
    study = make()
    for kw in ({"n_trials": 0}, {"n_workers": 0}, {"timeout_s": -1}, {"max_consecutive_failures": 0}):
        with pytest.raises(th.ValidationError):
            study.optimize(lambda t: 0.0, progress=False, **kw)
    with pytest.raises(th.ValidationError, match="function"):
        study.optimize("not callable", n_trials=1, progress=False)
    assert study.trials == []


# -- determinism --------------------------------------------------------------------------------
def _params_sequence(strategy, seed, n=8):
    study = make(strategy=strategy, seed=seed)
    study.optimize(lambda t: 0.0, n_trials=n, progress=False)
    return [dict(t.params) for t in study.trials]


@pytest.mark.parametrize("strategy", ["random", "sobol"])
def test_same_seed_same_params_different_seed_different_params(strategy):
    a = _params_sequence(strategy, 42)
    b = _params_sequence(strategy, 42)
    c = _params_sequence(strategy, 43)
    assert a == b
    assert a != c
    assert len({p["x"] for p in a}) == len(a), "every trial gets a new point"
    assert all(SPACE.contains(p) for p in a + c)


# -- stop requests ------------------------------------------------------------------------------
def test_stop_trial_makes_should_stop_true_for_that_trial_only():
    study = make()
    a, b = study.ask(), study.ask()
    assert not a.should_stop() and not b.should_stop()
    study.stop_trial(a.number)
    assert a.should_stop()
    assert not b.should_stop()
    a.report(0.4, step=1)
    assert study.tell(a, state="stopped").metrics["value"] == 0.4
    with pytest.raises(th.TrialNotRunning):
        study.stop_trial(a.number)
    with pytest.raises(th.TrialNotRunning):
        study.stop_trial(99)


def test_constraints_are_validated_and_infeasible_trials_are_never_best():
    space = {"x": th.Float(0, 1)}
    for bad, fragment in [({"size": ("<", 1)}, "op"), ({"size": ("<=", float("nan"))}, "finite"),
                          ({"size": 3}, "(op, bound)"), ([("size", "<=", 1)], "expected")]:
        with pytest.raises(th.ValidationError, match=fragment):
            th.Study.create(space, storage="memory", constraints=bad)
    with pytest.raises(th.ValidationError, match="keep_checkpoints"):
        th.Study.create(space, storage="memory", keep_checkpoints=-1)
    study = th.Study.create(space, {"acc": "max"}, storage="memory", constraints={"size_mb": ("<=", 100)})
    study.tell(study.ask(), {"acc": 0.99, "size_mb": 150.0})  # the most accurate, but too big
    study.tell(study.ask(), {"acc": 0.90, "size_mb": 80.0})
    study.tell(study.ask(), {"acc": 0.95})  # the constrained metric missing: infeasible
    assert study.best.metrics["acc"] == 0.90
    assert th.Study.load(study.name, storage=study.storage).constraints == {"size_mb": ("<=", 100.0)}


def test_two_workers_proposing_from_one_snapshot_never_run_the_same_point(sqlite_url):
    """A slow (model-based) strategy proposes before the ask transaction. If another worker
    starts the same point between that snapshot and the transaction, the proposal is made again
    from the history as it is then. The interleaving is made deterministic: worker b's strategy
    lets worker a ask while b is proposing."""
    from thrifty.strategies.base import Strategy

    centre, other = {"x": 0.5, "y": 0.5}, {"x": 0.25, "y": 0.25}

    class CentreFirst(Strategy):  # proposes the centre until some trial has it
        name = "centre-first"
        needs_history = True
        slow = True

        def __init__(self, rival=None):
            self.rival, self.rival_trial = rival, None

        def propose(self, space, history, *, seed, number, n=1):
            taken = any(dict(t.params) == centre for t in history)
            if self.rival is not None and self.rival_trial is None:
                self.rival_trial = self.rival.ask()  # worker a starts the centre meanwhile
            return [dict(other if taken else centre)]

    space = {"x": th.Float(0, 1), "y": th.Float(0, 1)}
    a = th.Study.create(space, {"v": "min"}, name="dup", storage=sqlite_url)
    b = th.Study.load("dup", storage=sqlite_url)
    a.strategy, b.strategy = CentreFirst(), CentreFirst(rival=a)
    tb = b.ask()
    ta = b.strategy.rival_trial
    assert dict(ta.params) == centre and dict(tb.params) == other
    assert sorted(t.number for t in a.trials) == [0, 1]
