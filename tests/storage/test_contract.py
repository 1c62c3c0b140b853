"""The storage contract: every storage (in-process memory, a SQLite file, PostgreSQL) keeps the
same rules, method by method. A new storage passes this suite before anything else uses it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from thrifty.errors import DuplicateStudy, StudyExhausted, StudyNotFound, TrialNotRunning, ValidationError
from thrifty.storage import AskLimits, RetryPolicy, Storage, open_storage
from thrifty.storage.base import CacheEntry, Conflict, StageRun, Started, StartRequest
from thrifty.cost.budget import BudgetStop
from thrifty.trial import Measurement, StopKind, StopReason, Trial, TrialState
from thrifty.usage import ResourceUsage

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
T0 = 1_000_000.0  # a fixed clock: seconds since the epoch


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'contract.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(url: str) -> Iterator[Storage]:
    storage = open_storage(url)
    yield storage
    storage.close()


def _study(store: Storage, name: str = "s", budget: dict[str, Any] | None = None) -> int:
    record, created = store.create_study(name, SPACE, {"value": "max"}, {"name": "random"}, {"name": "none"}, 7,
                                         budget or {}, {"max_retries": 1})
    assert created
    return record.id


def _new(store: Storage, sid: int, x: float, *, worker: str = "w1", now: float = T0,
         limits: AskLimits = AskLimits(), resources: dict[str, float] | None = None) -> Trial:
    """Start a new trial from a fresh snapshot (no one else is writing)."""
    number = store.snapshot(sid).status.next_number
    result = store.start(sid, StartRequest.new({"x": x}, number), worker_id=worker, now=now, limits=limits,
                         resources=resources)
    assert isinstance(result, Started), result
    return result.trial


def _m(step: float | None, value: float, cost_usd: float = 0.0, gpu_s: float = 0.0) -> Measurement:
    return Measurement(step=step, metrics={"value": value}, cost_usd=cost_usd, elapsed_s=1.0, gpu_s=gpu_s,
                       timestamp=T0)


def _finish(store: Storage, sid: int, trial: Trial, value: float, state: TrialState = TrialState.COMPLETED,
            cost_usd: float = 0.0, now: float = T0 + 1) -> Trial:
    assert trial.id is not None
    return store.finish(sid, trial.id, state, {"value": value}, _m(None, value, cost_usd), None, now)


# -- studies ------------------------------------------------------------------------------------
def test_create_load_list_delete(store: Storage) -> None:
    sid = _study(store, "a")
    with pytest.raises(DuplicateStudy, match="already exists"):
        _study(store, "a")
    again, created = store.create_study("a", {}, {}, {}, {}, 0, {}, {}, load_if_exists=True)
    assert not created and again.id == sid and again.space == SPACE and again.seed == 7
    loaded = store.load_study("a")
    assert (loaded.id, loaded.objectives, loaded.strategy, loaded.settings) == (
        sid, {"value": "max"}, {"name": "random"}, {"max_retries": 1})
    with pytest.raises(StudyNotFound, match="no study named 'b'"):
        store.load_study("b")
    trial = _new(store, sid, 0.5)
    _finish(store, sid, trial, 1.0, cost_usd=0.25)
    _study(store, "b")
    summaries = {s.name: s for s in store.list_studies()}
    assert set(summaries) == {"a", "b"}
    assert summaries["a"].counts == {"completed": 1} and summaries["a"].spent_usd == pytest.approx(0.25)
    store.delete_study("a")
    assert [s.name for s in store.list_studies()] == ["b"]
    with pytest.raises(StudyNotFound):
        store.delete_study("a")
    assert trial.id is not None
    with pytest.raises(TrialNotRunning, match="does not exist"):
        store.get_trial(trial.id)


def test_update_study_merges_settings_and_replaces_specs(store: Storage) -> None:
    sid = _study(store)
    store.update_study(sid, settings={"heartbeat_grace_s": 5.0}, strategy={"name": "tpe"}, budget={"trials": 3})
    record = store.study_status(sid)
    assert record.settings == {"max_retries": 1, "heartbeat_grace_s": 5.0}
    assert record.strategy == {"name": "tpe"} and record.scheduler == {"name": "none"}
    assert record.budget == {"trials": 3}


# -- the conditional start ----------------------------------------------------------------------
def test_new_trial_is_a_compare_and_swap_on_the_next_number(store: Storage) -> None:
    sid = _study(store)
    snap = store.snapshot(sid)
    assert snap.status.next_number == 0 and snap.trials == () and snap.pending is None
    first = store.start(sid, StartRequest.new({"x": 0.1}, 0), worker_id="w1", now=T0, resources={"gpu": 1.0})
    assert isinstance(first, Started)
    t = first.trial
    assert (t.number, t.state, dict(t.params), t.worker_id, dict(t.resources)) == (
        0, TrialState.RUNNING, {"x": 0.1}, "w1", {"gpu": 1.0})
    # A second worker decided from the same snapshot: the number is taken, nothing is written.
    stale = store.start(sid, StartRequest.new({"x": 0.2}, 0), worker_id="w2", now=T0)
    assert isinstance(stale, Conflict) and "next trial number is 1" in stale.reason
    assert store.snapshot(sid).status.next_number == 1 and store.study_status(sid).n_started == 1


def test_model_proposal_starts_at_any_number_but_never_duplicates(store: Storage) -> None:
    sid = _study(store)
    _new(store, sid, 0.1)
    # Decided when the next number was 0; trial 0 (x=0.1) started since: the same params conflict.
    dup = store.start(sid, StartRequest.new({"x": 0.1}, 0, exact=False), worker_id="w2", now=T0)
    assert isinstance(dup, Conflict) and "same params" in dup.reason
    other = store.start(sid, StartRequest.new({"x": 0.3}, 0, exact=False), worker_id="w2", now=T0)
    assert isinstance(other, Started) and other.trial.number == 1
    # Params of trials that existed at the snapshot (numbers below the request's) are not compared.
    again = store.start(sid, StartRequest.new({"x": 0.1}, 2, exact=False), worker_id="w3", now=T0)
    assert isinstance(again, Started) and again.trial.number == 2


def test_enqueued_trials_go_first_and_are_claimed_once(store: Storage) -> None:
    sid = _study(store)
    enq = store.enqueue(sid, {"x": 0.9}, T0, user_attrs={"why": "expert"})
    assert (enq.number, enq.state, dict(enq.user_attrs)) == (0, TrialState.PENDING, {"why": "expert"})
    snap = store.snapshot(sid)
    assert snap.pending is not None and snap.pending.number == 0 and snap.status.next_number == 1
    refused = store.start(sid, StartRequest.new({"x": 0.1}, 1), worker_id="w1", now=T0)
    assert isinstance(refused, Conflict) and "enqueued" in refused.reason
    claimed = store.start(sid, StartRequest.claim(0), worker_id="w1", now=T0, resources={"cpu": 2.0})
    assert isinstance(claimed, Started)
    t = claimed.trial
    assert (t.number, t.state, dict(t.params), t.worker_id, dict(t.resources)) == (
        0, TrialState.RUNNING, {"x": 0.9}, "w1", {"cpu": 2.0})
    again = store.start(sid, StartRequest.claim(0), worker_id="w2", now=T0)
    assert isinstance(again, Conflict) and "no longer enqueued" in again.reason
    assert store.study_status(sid).n_started == 1


def test_resume_continues_a_paused_trial_from_its_last_step(store: Storage) -> None:
    sid = _study(store, budget={"trials": 1})
    t = _new(store, sid, 0.5)
    assert t.id is not None
    store.report(sid, t.id, _m(3.0, 0.7), T0 + 1)
    paused = store.finish(sid, t.id, TrialState.PAUSED, {"value": 0.7}, None, None, T0 + 2,
                          stop=StopReason(StopKind.SCHEDULER, "rung 3"))
    assert paused.state is TrialState.PAUSED and paused.stop == StopReason(StopKind.SCHEDULER, "rung 3")
    assert paused.finish_order == 1
    # The trial budget is used up, but a resumed trial is not a new trial.
    with pytest.raises(StudyExhausted, match="budget of 1 trials"):
        _new(store, sid, 0.6)
    resumed = store.start(sid, StartRequest.resume(0), worker_id="w2", now=T0 + 3)
    assert isinstance(resumed, Started)
    r = resumed.trial
    assert (r.state, r.start_step, r.worker_id, r.finish_order, r.reason) == (TrialState.RUNNING, 3.0, "w2", None, None)
    assert (r.stop_kind, r.stop_limit, r.stop) == (None, None, None), "a resumed trial's stop reason is cleared"
    assert len(r.measurements) == 1
    status = store.study_status(sid)
    assert status.n_started == 1 and status.n_running == 1
    again = store.start(sid, StartRequest.resume(0), worker_id="w3", now=T0 + 3)
    assert isinstance(again, Conflict) and "no longer paused" in again.reason
    assert isinstance(store.start(sid, StartRequest.resume(7), worker_id="w3", now=T0 + 3), Conflict)


def test_resume_is_refused_once_the_dollars_are_spent(store: Storage) -> None:
    sid = _study(store, budget={"usd": 1.0, "hard": False})
    t = _new(store, sid, 0.5)
    assert t.id is not None
    store.report(sid, t.id, _m(1.0, 0.5, cost_usd=1.5), T0 + 1)
    store.finish(sid, t.id, TrialState.PAUSED, None, None, None, T0 + 2)
    with pytest.raises(StudyExhausted) as info:
        store.start(sid, StartRequest.resume(0), worker_id="w2", now=T0 + 3)
    assert info.value.reason == "usd"
    assert store.get_trial(t.id).state is TrialState.PAUSED


def test_numbers_stay_dense_under_concurrent_starts(url: str) -> None:
    """Threads, each with its own storage object (its own connections), start trials at once;
    each retries on conflicts. Every trial gets a distinct number and none is skipped."""
    setup = open_storage(url)
    sid = _study(setup)
    n_threads, per_thread = 4, 12
    numbers: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    shared = setup if url == "memory" else None  # the in-process store is one object per process

    def work(k: int) -> None:
        store = shared or open_storage(url)
        try:
            for i in range(per_thread):
                while True:
                    n = store.snapshot(sid).status.next_number
                    result = store.start(sid, StartRequest.new({"x": k + i / 100}, n), worker_id=f"w{k}", now=T0)
                    if isinstance(result, Started):
                        with lock:
                            numbers.append(result.trial.number)
                        break
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            if shared is None:
                store.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for th_ in threads:
        th_.start()
    for th_ in threads:
        th_.join(timeout=120)
    assert not errors, errors
    total = n_threads * per_thread
    assert sorted(numbers) == list(range(total))
    assert setup.study_status(sid).n_started == total
    assert [t.number for t in setup.get_trials(sid)] == list(range(total))
    setup.close()


# -- budgets and limits -------------------------------------------------------------------------
def test_trial_budget_and_run_limit_refuse_before_anything_is_written(store: Storage) -> None:
    sid = _study(store, budget={"trials": 3})
    run = AskLimits(run_tag="run-1", run_max_started=2)
    _new(store, sid, 0.1, limits=run)
    _new(store, sid, 0.2, limits=run)
    assert store.count_run(sid, "run-1") == 2 and store.snapshot(sid, run_tag="run-1").run_started == 2
    with pytest.raises(StudyExhausted) as info:
        _new(store, sid, 0.3, limits=run)
    assert info.value.reason == "n_trials"
    _new(store, sid, 0.3)
    with pytest.raises(StudyExhausted) as info:
        _new(store, sid, 0.4)
    assert info.value.reason == "trials" and "budget of 3 trials" in str(info.value)
    assert store.snapshot(sid).status.next_number == 3


def test_hard_dollar_budget_trips_the_breaker_in_the_reports_transaction(store: Storage) -> None:
    sid = _study(store, budget={"usd": 1.0})
    a, b = _new(store, sid, 0.1), _new(store, sid, 0.2)
    assert a.id is not None and b.id is not None
    assert store.report(sid, a.id, _m(1.0, 0.5, cost_usd=0.6), T0 + 1) is None
    reason = store.report(sid, a.id, _m(2.0, 0.6, cost_usd=0.5), T0 + 2)
    assert reason is not None and (reason.kind, reason.limit) == (StopKind.BUDGET, "usd")
    assert reason.text is not None and "$1.00" in reason.text
    status = store.study_status(sid)
    assert status.budget_stop is not None and (status.budget_stop.limit, status.budget_stop.at) == ("usd", T0 + 2)
    assert status.budget_stop.stop_reason() == reason
    assert store.snapshot(sid).status.budget_stop == status.budget_stop, "the snapshot carries the same breaker"
    assert status.spent_usd == pytest.approx(1.1)
    # The other running trial learns it at its next report (which is still recorded).
    assert store.stop_requested(b.id)
    assert store.report(sid, b.id, _m(1.0, 0.1, cost_usd=0.1), T0 + 3) == reason
    assert store.study_status(sid).spent_usd == pytest.approx(1.2)
    with pytest.raises(StudyExhausted) as info:
        _new(store, sid, 0.3)
    assert info.value.reason == "usd"
    stopped = store.finish(sid, b.id, TrialState.STOPPED, {"value": 0.1}, None, None, T0 + 4)
    assert stopped.stop == reason
    # A new budget re-arms the breaker: the running trial may go on.
    store.update_study(sid, budget={"usd": 5.0})
    assert store.study_status(sid).budget_stop is None
    assert not store.stop_requested(a.id)
    _new(store, sid, 0.3)


def test_a_finishing_measurement_can_trip_the_breaker(store: Storage) -> None:
    sid = _study(store, budget={"usd": 1.0})
    a, b = _new(store, sid, 0.1), _new(store, sid, 0.2)
    assert a.id is not None and b.id is not None
    done = _finish(store, sid, a, 1.0, cost_usd=1.0)
    assert (done.reason, done.stop) == (None, None)  # a completed trial keeps no stop reason
    assert store.stop_requested(b.id)
    assert store.study_status(sid).budget_stop is not None


# -- report, finish, the ledger -----------------------------------------------------------------
def test_report_and_finish_keep_the_ledgers(store: Storage) -> None:
    sid = _study(store)
    t = _new(store, sid, 0.5, now=T0)
    assert t.id is not None
    assert store.report(sid, t.id, _m(1.0, 0.3, cost_usd=0.2, gpu_s=10.0), T0 + 5) is None
    store.report(sid, t.id, _m(2.0, 0.4, cost_usd=0.3, gpu_s=10.0), T0 + 6)
    live = store.get_trial(t.id)
    assert live.heartbeat_at == T0 + 6 and live.cost_usd == pytest.approx(0.5) and live.last_step == 2.0
    done = _finish(store, sid, t, 0.9, cost_usd=0.1, now=T0 + 10)
    assert (done.state, dict(done.metrics), done.finished_at, done.finish_order) == (
        TrialState.COMPLETED, {"value": 0.9}, T0 + 10, 1)
    assert done.cost_usd == pytest.approx(0.6) and done.gpu_s == pytest.approx(20.0)
    assert [m.step for m in done.measurements] == [1.0, 2.0, None]
    status = store.study_status(sid)
    assert status.spent_usd == pytest.approx(0.6) and status.gpu_s == pytest.approx(20.0)
    assert (status.n_running, status.active_since) == (0, None) and status.active_s == pytest.approx(10.0)
    with pytest.raises(TrialNotRunning, match="already completed"):
        _finish(store, sid, t, 1.0)
    with pytest.raises(TrialNotRunning, match="report to trial 0"):
        store.report(sid, t.id, _m(3.0, 1.0), T0 + 11)
    assert store.stop_requested(t.id), "a finished trial should stop"


def test_add_trial_counts_against_no_budget(store: Storage) -> None:
    sid = _study(store, budget={"trials": 1})
    known = Trial(number=0, state=TrialState.COMPLETED, params={"x": 0.3}, metrics={"value": 2.0}, cost_usd=9.0)
    added = store.add_trial(sid, known, T0)
    assert (added.number, added.state, added.finish_order, dict(added.params)) == (0, TrialState.COMPLETED, 1,
                                                                                    {"x": 0.3})
    status = store.study_status(sid)
    assert (status.n_started, status.spent_usd) == (0, 0.0)
    assert _new(store, sid, 0.4).number == 1
    with pytest.raises(ValidationError, match="not a finished state"):
        store.add_trial(sid, Trial(number=0, state=TrialState.RUNNING, params={"x": 0.1}), T0)


def test_add_trials_writes_all_in_order_or_none(store: Storage) -> None:
    sid = _study(store, budget={"trials": 1})
    first = store.add_trial(sid, Trial(number=0, state=TrialState.COMPLETED, params={"x": 0.1},
                                       metrics={"value": 1.0}), T0)
    many = [Trial(number=0, state=TrialState.COMPLETED if i % 3 else TrialState.INFEASIBLE, params={"x": i / 10},
                  metrics={"value": float(i)}, error=None if i % 3 else "broke a constraint",
                  measurements=(_m(1.0, float(i)),) if i == 2 else ()) for i in range(5)]
    assert store.add_trials(sid, many, T0 + 1) == 5
    got = store.get_trials(sid)
    assert [t.number for t in got] == [0, 1, 2, 3, 4, 5] and first.number == 0
    assert [t.finish_order for t in got] == [1, 2, 3, 4, 5, 6]
    assert [t.metrics["value"] for t in got[1:]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [t.state for t in got[1:]] == [TrialState.INFEASIBLE] + [TrialState.COMPLETED] * 2 + \
        [TrialState.INFEASIBLE, TrialState.COMPLETED]
    assert [len(t.measurements) for t in got] == [0, 0, 0, 1, 0, 0]
    status = store.study_status(sid)
    assert (status.n_started, status.spent_usd) == (0, 0.0)  # not run here: no budget counts them
    assert _new(store, sid, 0.4).number == 6
    bad = [Trial(number=0, state=TrialState.COMPLETED, params={"x": 0.5}, metrics={"value": 1.0}),
           Trial(number=0, state=TrialState.RUNNING, params={"x": 0.6})]
    with pytest.raises(ValidationError, match="not a finished state"):
        store.add_trials(sid, bad, T0 + 2)
    assert len(store.get_trials(sid)) == 7  # nothing of the refused batch was written
    assert store.add_trials(sid, [], T0 + 3) == 0


def test_reads_filter_and_count(store: Storage) -> None:
    sid = _study(store)
    for i in range(4):
        t = _new(store, sid, i / 10)
        if i % 2 == 0:
            _finish(store, sid, t, float(i))
    store.enqueue(sid, {"x": 0.99}, T0)
    assert store.count_trials(sid) == {TrialState.COMPLETED: 2, TrialState.RUNNING: 2, TrialState.PENDING: 1}
    assert [t.number for t in store.get_trials(sid, [TrialState.COMPLETED])] == [0, 2]
    assert [t.number for t in store.get_trials(sid, offset=1, limit=2)] == [1, 2]
    light = store.get_trials(sid, with_measurements=False)
    assert [len(t.measurements) for t in light] == [0] * 5
    assert [len(t.measurements) for t in store.get_trials(sid)] == [1, 0, 1, 0, 0]


# -- reap and retry -----------------------------------------------------------------------------
def test_reap_fails_silent_trials_and_retries_them(store: Storage) -> None:
    sid = _study(store)
    policy = RetryPolicy(max_retries=1, heartbeat_grace_s=60.0)
    lost = _new(store, sid, 0.5, worker="w1", limits=AskLimits(run_tag="r"))
    alive = _new(store, sid, 0.6, worker="w2")
    assert lost.id is not None and alive.id is not None
    assert store.reap(sid, policy, T0 + 30) == []
    store.heartbeat([alive.id], T0 + 50)
    assert store.reap(sid, policy, T0 + 61) == [0]
    failed = store.get_trial(lost.id)
    assert failed.state is TrialState.FAILED and failed.retried and failed.finish_order == 1
    assert failed.error == ("worker lost: no heartbeat from worker w1 for 61.0 s (grace period 60 s); "
                            "re-enqueued as trial 2 (retry 1 of 1)")
    retry = store.get_trials(sid, [TrialState.PENDING])[0]
    assert (retry.number, retry.retry_of, dict(retry.params)) == (2, 0, {"x": 0.5})
    # The retry counts as the started trial, once, in the study and in the run.
    assert store.study_status(sid).n_started == 1 and store.count_run(sid, "r") == 0
    claimed = store.start(sid, StartRequest.claim(2), worker_id="w3", now=T0 + 62, limits=AskLimits(run_tag="r"))
    assert isinstance(claimed, Started) and claimed.trial.retry_of == 0
    assert store.study_status(sid).n_started == 2 and store.count_run(sid, "r") == 1
    # Its own retries are used up: a second loss fails it for good.
    assert claimed.trial.id is not None
    assert store.reap(sid, policy, T0 + 62, worker_id="w3", reason="worker lost: killed") == [2]
    assert store.get_trial(claimed.trial.id).error == "worker lost: killed"
    assert store.count_trials(sid)[TrialState.FAILED] == 2


def test_a_due_reap_rides_in_the_start_and_makes_it_a_conflict(store: Storage) -> None:
    sid = _study(store)
    policy = RetryPolicy(max_retries=1, heartbeat_grace_s=60.0)
    _new(store, sid, 0.5, worker="w1")
    snap = store.snapshot(sid)
    result = store.start(sid, StartRequest.new({"x": 0.7}, snap.status.next_number), worker_id="w2",
                         now=T0 + 100, reap=policy)
    assert isinstance(result, Conflict) and "reaped" in result.reason
    # The reap was written; the snapshot now shows the retry to claim first.
    snap = store.snapshot(sid)
    assert store.count_trials(sid)[TrialState.FAILED] == 1 and snap.pending is not None and snap.pending.number == 1
    # Nothing stale: the reap finds nothing and the start goes through.
    claimed = store.start(sid, StartRequest.claim(1), worker_id="w2", now=T0 + 101, reap=policy)
    assert isinstance(claimed, Started)


# -- stop requests ------------------------------------------------------------------------------
def test_stop_requests_reach_the_trial(store: Storage) -> None:
    sid = _study(store)
    t = _new(store, sid, 0.5)
    assert t.id is not None
    assert not store.stop_requested(t.id)
    store.request_stop(t.id, "user: enough")
    assert store.stop_requested(t.id)
    assert store.report(sid, t.id, _m(1.0, 0.1), T0 + 1) == StopReason(StopKind.USER, "user: enough")
    stopped = store.finish(sid, t.id, TrialState.STOPPED, {"value": 0.1}, None, None, T0 + 2)
    assert stopped.stop == StopReason(StopKind.USER, "user: enough")


# -- typed stop reasons -------------------------------------------------------------------------
def test_finish_records_the_given_stop_else_the_one_recorded_while_running_else_user(store: Storage) -> None:
    sid = _study(store)
    given, recorded, plain, paused, completed = (_new(store, sid, x) for x in (0.1, 0.2, 0.3, 0.4, 0.5))
    for t in (given, recorded, completed):
        assert t.id is not None
        store.request_stop(t.id, "user: enough")
    assert given.id is not None and recorded.id is not None and plain.id is not None
    assert paused.id is not None and completed.id is not None
    rung = StopReason(StopKind.SCHEDULER, "scheduler: asha: rung 1")
    # A stop reason given to finish wins over a request recorded while the trial ran.
    assert store.finish(sid, given.id, TrialState.STOPPED, None, None, None, T0 + 1, stop=rung).stop == rung
    # None given: the request recorded while it ran.
    kept = store.finish(sid, recorded.id, TrialState.STOPPED, None, None, None, T0 + 1)
    assert kept.stop == StopReason(StopKind.USER, "user: enough")
    # Neither: USER, without words (STOPPED and PAUSED alike).
    for t, state in ((plain, TrialState.STOPPED), (paused, TrialState.PAUSED)):
        assert t.id is not None
        done = store.finish(sid, t.id, state, None, None, None, T0 + 1)
        assert (done.stop_kind, done.stop_limit, done.reason) == (StopKind.USER, None, None)
    # Other states record no stop reason, even with a request recorded or a reason given.
    done = store.finish(sid, completed.id, TrialState.COMPLETED, {"value": 1.0}, None, None, T0 + 1, stop=rung)
    assert (done.stop, done.reason, done.stop_kind, done.stop_limit) == (None, None, None, None)
    by_number = {t.number: t.stop for t in store.get_trials(sid)}
    assert by_number == {0: rung, 1: StopReason(StopKind.USER, "user: enough"), 2: StopReason(StopKind.USER),
                         3: StopReason(StopKind.USER), 4: None}, "what finish returned is what is stored"


def test_the_breaker_is_typed_and_a_new_budget_clears_only_budget_stops(store: Storage) -> None:
    sid = _study(store, budget={"gpu_hours": 0.01})  # 36 GPU-seconds, hard by default
    a, b, c = _new(store, sid, 0.1), _new(store, sid, 0.2), _new(store, sid, 0.3)
    assert a.id is not None and b.id is not None and c.id is not None
    assert store.report(sid, a.id, _m(1.0, 0.5, gpu_s=20.0), T0 + 1) is None
    tripped = store.report(sid, a.id, _m(2.0, 0.5, gpu_s=20.0), T0 + 2)
    assert tripped is not None and (tripped.kind, tripped.limit) == (StopKind.BUDGET, "gpu_hours")
    breaker = store.study_status(sid).budget_stop
    assert isinstance(breaker, BudgetStop) and (breaker.limit, breaker.at) == ("gpu_hours", T0 + 2)
    assert "GPU-hours" in breaker.message and tripped == breaker.stop_reason()
    assert store.snapshot(sid).status.budget_stop == breaker
    for t in (b, c):
        assert t.id is not None
        live = store.get_trial(t.id)
        assert (live.stop_kind, live.stop_limit, live.reason) == (StopKind.BUDGET, "gpu_hours", tripped.text)
    # A person's request afterwards replaces the budget's on that trial.
    store.request_stop(c.id, "user: enough")
    assert store.report(sid, c.id, _m(1.0, 0.1), T0 + 3) == StopReason(StopKind.USER, "user: enough")
    # A new budget clears the breaker and the budget's requests, by kind; the person's stays.
    store.update_study(sid, budget={"gpu_hours": 1.0})
    assert store.study_status(sid).budget_stop is None and store.snapshot(sid).status.budget_stop is None
    for t in (a, b):
        assert t.id is not None
        live = store.get_trial(t.id)
        assert not store.stop_requested(t.id) and (live.stop_kind, live.stop_limit, live.reason) == (None, None, None)
        assert store.report(sid, t.id, _m(3.0, 0.5), T0 + 4) is None
    assert store.stop_requested(c.id) and store.get_trial(c.id).stop == StopReason(StopKind.USER, "user: enough")
    # A trial the breaker asked to stop, finished without a reason, records the budget's.
    store.update_study(sid, budget={"gpu_hours": 0.01})
    again = store.report(sid, a.id, _m(4.0, 0.5, gpu_s=1.0), T0 + 5)
    assert again is not None and (again.kind, again.limit) == (StopKind.BUDGET, "gpu_hours")
    stopped = store.finish(sid, b.id, TrialState.STOPPED, None, None, None, T0 + 6)
    assert (stopped.stop_kind, stopped.stop_limit) == (StopKind.BUDGET, "gpu_hours")


def test_a_soft_budget_never_trips_the_breaker_but_refuses_new_trials(store: Storage) -> None:
    sid = _study(store, budget={"usd": 1.0, "hard": False})
    t = _new(store, sid, 0.5)
    assert t.id is not None
    assert store.report(sid, t.id, _m(1.0, 0.5, cost_usd=2.0), T0 + 1) is None
    assert store.study_status(sid).budget_stop is None and not store.stop_requested(t.id)
    with pytest.raises(StudyExhausted) as info:
        _new(store, sid, 0.6)
    assert info.value.reason == "usd" and "$1.00" in str(info.value)


def test_add_trial_keeps_a_typed_stop_reason(store: Storage) -> None:
    sid = _study(store)
    why = StopReason(StopKind.BUDGET, "budget: the budget of $1.00 is used up ($1.0000 spent)", "usd")
    added = store.add_trial(sid, Trial(number=0, state=TrialState.STOPPED, params={"x": 0.2},
                                       metrics={"value": 0.4}, reason=why.text, stop_kind=why.kind,
                                       stop_limit=why.limit), T0)
    assert added.stop == why and store.get_trial(added.id or 0).stop == why


# -- resource use -------------------------------------------------------------------------------
def _usage(rss_mb: float, idle_share: float | None = None) -> ResourceUsage:
    gpu = {} if idle_share is None else {"gpus": 1, "gpu_util_percent_mean": 40.0, "gpu_memory_mb_max": 900.0,
                                         "gpu_idle_share": idle_share}
    return ResourceUsage(samples=3, interval_s=1.0, duration_s=2.5, cpu_percent_mean=80.0, cpu_percent_max=99.0,
                         rss_mb_max=rss_mb, **gpu)


def test_usage_is_recorded_while_a_trial_runs_and_kept_when_it_finishes(store: Storage) -> None:
    sid = _study(store)
    t = _new(store, sid, 0.5)
    assert t.id is not None and t.usage is None
    assert store.record_usage(t.id, _usage(100.0))
    assert store.record_usage(t.id, _usage(250.0, idle_share=0.75)), "a later record replaces the earlier one"
    live = store.get_trial(t.id)
    assert live.usage == _usage(250.0, idle_share=0.75) and live.usage.gpu_idle
    assert live.heartbeat_at == T0, "recording usage is not a heartbeat"
    assert [x.usage for x in store.snapshot(sid).trials] == [live.usage]
    done = _finish(store, sid, t, 0.9)
    assert done.usage == live.usage, "finished without a usage: it keeps the one recorded"
    assert not store.record_usage(t.id, _usage(999.0)), "a finished trial never changes"
    assert [x.usage for x in store.get_trials(sid, with_measurements=False)] == [live.usage]
    # The final usage goes with the finish, in its transaction (both ways a finish is written).
    for state, at in ((TrialState.COMPLETED, T0 + 2), (TrialState.PAUSED, T0 + 3)):
        other = _new(store, sid, 0.1 + at - T0)
        assert other.id is not None and store.record_usage(other.id, _usage(10.0))
        ended = store.finish(sid, other.id, state, None, _m(1.0, 0.2), None, at, usage=_usage(320.0, 0.1))
        assert ended.usage == _usage(320.0, 0.1) == store.get_trial(other.id).usage
    pending = store.enqueue(sid, {"x": 0.1}, T0)
    assert pending.id is not None and not store.record_usage(pending.id, _usage(1.0))
    assert not store.record_usage(987654, _usage(1.0)), "no such trial"
    added = store.add_trial(sid, Trial(number=0, state=TrialState.COMPLETED, params={"x": 0.2},
                                       metrics={"value": 0.4}, usage=_usage(50.0).to_dict()), T0)
    assert added.usage == _usage(50.0) and store.get_trial(added.id or 0).usage == _usage(50.0)


# -- snapshot deltas ----------------------------------------------------------------------------
def test_snapshot_returns_what_changed_since_the_last_one(store: Storage) -> None:
    sid = _study(store)
    a, b = _new(store, sid, 0.1), _new(store, sid, 0.2)
    store.enqueue(sid, {"x": 0.3}, T0)
    first = store.snapshot(sid)
    assert [(t.number, t.state) for t in first.trials] == [
        (0, TrialState.RUNNING), (1, TrialState.RUNNING), (2, TrialState.PENDING)]
    assert store.count_trials(sid) == {TrialState.RUNNING: 2, TrialState.PENDING: 1}
    assert first.status.n_settled == 0 and first.status.next_number == 3
    assert b.id is not None
    store.report(sid, b.id, _m(1.0, 0.5), T0 + 1)
    store.finish(sid, b.id, TrialState.PAUSED, None, None, None, T0 + 2)
    _finish(store, sid, a, 1.0, now=T0 + 3)
    second = store.snapshot(sid, since=first.status.n_settled)
    assert [(t.number, t.state, t.finish_order) for t in second.trials] == [
        (0, TrialState.COMPLETED, 2), (1, TrialState.PAUSED, 1), (2, TrialState.PENDING, None)]
    assert second.status.n_settled == 2
    third = store.snapshot(sid, since=second.status.n_settled)
    assert [t.number for t in third.trials] == [2], "settled trials already read are not read again"
    # A resumed trial is live again, and comes back once more when it settles anew.
    store.start(sid, StartRequest.resume(1), worker_id="w1", now=T0 + 4)
    fourth = store.snapshot(sid, since=third.status.n_settled)
    assert [(t.number, t.state) for t in fourth.trials] == [(1, TrialState.RUNNING), (2, TrialState.PENDING)]
    assert fourth.trials[0].measurements[0].step == 1.0, "a snapshot's trials carry their measurements"
    store.finish(sid, b.id, TrialState.COMPLETED, {"value": 0.8}, None, None, T0 + 5)
    fifth = store.snapshot(sid, since=fourth.status.n_settled)
    assert [(t.number, t.state, t.finish_order) for t in fifth.trials] == [
        (1, TrialState.COMPLETED, 3), (2, TrialState.PENDING, None)]
    assert store.count_trials(sid) == {TrialState.COMPLETED: 2, TrialState.PENDING: 1}


def test_light_snapshot_reads_the_status_and_only_the_enqueued_trials(store: Storage) -> None:
    sid = _study(store)
    a = _new(store, sid, 0.1)
    _new(store, sid, 0.2)
    _finish(store, sid, a, 1.0, now=T0 + 1)
    store.enqueue(sid, {"x": 0.4}, T0)
    store.enqueue(sid, {"x": 0.3}, T0)
    full, light = store.snapshot(sid), store.snapshot(sid, history=False)
    assert light.status == full.status
    assert [(t.number, t.state, t.params) for t in light.trials] == [
        (2, TrialState.PENDING, {"x": 0.4}), (3, TrialState.PENDING, {"x": 0.3})]
    assert light.pending == full.pending and light.pending is not None and light.pending.number == 2
    assert store.snapshot(sid, since=99, history=False).trials == light.trials, "since does not apply"
    assert store.snapshot(sid, run_tag="none", history=False).run_started == 0


def test_unknown_study_is_an_error_everywhere(store: Storage) -> None:
    with pytest.raises(StudyNotFound):
        store.snapshot(999)
    with pytest.raises(StudyNotFound):
        store.start(999, StartRequest.new({"x": 0.1}, 0), worker_id="w", now=T0)
    with pytest.raises(StudyNotFound):
        store.study_status(999)


# -- the memo cache's index (schema 5) ------------------------------------------------------------
def _entry(key: str, stage: int = 0, **changes: Any) -> CacheEntry:
    values: dict[str, Any] = {"key": key, "stage": stage, "params": {"x": 0.5, "name": "a"}, "size_bytes": 100,
                              "run_s": 10.0, "run_cost_usd": 0.01, "read_s": 0.5, "read_cost_usd": 0.0005,
                              "created_at": T0, "hits": 0}
    values.update(changes)
    return CacheEntry(**values)


def test_cache_index_put_replace_read_forget(store: Storage) -> None:
    sid, other = _study(store, "a"), _study(store, "b")
    assert store.cache_entries(sid) == []
    store.cache_put(sid, _entry("k2", stage=1, params={"x": 0.25, "y": 3}))
    store.cache_put(sid, _entry("k1"))
    store.cache_put(other, _entry("k1"))
    assert [(e.stage, e.key) for e in store.cache_entries(sid)] == [(0, "k1"), (1, "k2")]
    assert store.cache_entries(sid)[1] == _entry("k2", stage=1, params={"x": 0.25, "y": 3})
    # A second write of one key replaces the record (a recomputed prefix).
    store.cache_put(sid, _entry("k1", run_cost_usd=0.02))
    assert [e.run_cost_usd for e in store.cache_entries(sid)] == [0.02, 0.01]
    # A read: one more hit and the measured read; another study's record is its own.
    assert store.cache_read(sid, "k1", 0.25, 0.0001)
    assert not store.cache_read(sid, "missing", 0.25, 0.0001)
    k1 = store.cache_entries(sid)[0]
    assert (k1.hits, k1.read_s, k1.read_cost_usd) == (1, 0.25, 0.0001)
    assert store.cache_entries(other)[0].hits == 0
    # Forgetting a key (its output was evicted) removes it from every study's index.
    assert store.cache_forget(["k1", "nothing"]) == 2
    assert [e.key for e in store.cache_entries(sid)] == ["k2"] and store.cache_entries(other) == []
    assert store.cache_forget([]) == 0
    with pytest.raises(StudyNotFound):
        store.cache_put(12345, _entry("k"))


def test_stage_runs_are_kept_per_study_and_go_with_it(store: Storage) -> None:
    sid, other = _study(store, "a"), _study(store, "b")
    t, u = _new(store, sid, 0.5), _new(store, other, 0.5)
    assert t.id is not None and u.id is not None
    runs = [StageRun(t.id, 1, "train", "run", True, 20.0, 0.02),
            StageRun(t.id, 0, "prep", "hit", False, 0.5, 0.0005, saved_s=9.5, saved_usd=0.0095)]
    store.record_stage_runs(sid, runs)
    store.record_stage_runs(other, [StageRun(u.id, 0, "prep", "run", True, 10.0, 0.01)])
    store.record_stage_runs(sid, [])
    assert store.stage_runs(sid) == [runs[1], runs[0]], "by trial, then stage"
    store.cache_put(sid, _entry("k"))
    store.delete_study("a")
    assert store.stage_runs(other) == [StageRun(u.id, 0, "prep", "run", True, 10.0, 0.01)]
    assert store.cache_entries(sid) == []
