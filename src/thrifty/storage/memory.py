"""In-process storage (``storage="memory"``): plain Python structures behind one lock.

It keeps every rule of the SQL storage (the storage contract suite, ``tests/storage/test_contract.py``,
runs both): dense trial numbers from a counter per study, each method one atomic step (the lock is
the transaction), the conditional start, budgets and the circuit breaker, reap and retry, typed stop reasons and stop
requests, the ledgers, the settle order. Where the rules are decisions (what a study has used,
whether a trial may start, when the breaker trips, what a reaped trial's error says) both call
:mod:`thrifty.storage.rules`. Stored values are copies (params and user attributes go through JSON,
as a database would store them), so no caller's object changes a trial afterwards.

It lives in this process only: gone when it ends, not shared with other processes
(``optimize(n_workers>1)`` needs a file or a server); threads of the process may share it.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from thrifty.cost.budget import Budget, BudgetStop, Usage
from thrifty.errors import DuplicateStudy, StudyNotFound, TrialNotRunning, ValidationError
from thrifty.storage import rules
from thrifty.storage.base import (
    AskLimits,
    CacheEntry,
    Conflict,
    RetryPolicy,
    Snapshot,
    StageRun,
    Started,
    StartRequest,
    Storage,
    StudyRecord,
    StudyStatus,
    StudySummary,
    TokenRecord,
)
from thrifty.trial import Measurement, StopKind, StopReason, Trial, TrialState
from thrifty.usage import ResourceUsage

_PENDING, _RUNNING, _PAUSED = TrialState.PENDING, TrialState.RUNNING, TrialState.PAUSED
#: The states that record why a trial stopped (see :meth:`Storage.finish`).
_STOP_KEEPS_REASON = (TrialState.STOPPED, TrialState.PAUSED)


def _json_copy(value: Any) -> Any:
    """``value`` as a database returns it: through JSON (a new object; tuples become lists)."""
    return json.loads(json.dumps(value, separators=(",", ":")))


class _TrialRow:
    """One stored trial (mutable under the storage's lock); :meth:`frozen` is its immutable view."""

    __slots__ = ("id", "study_id", "number", "state", "params", "metrics", "error", "created_at", "started_at",
                 "finished_at", "heartbeat_at", "worker_id", "run_tag", "retry_of", "attempt", "retried",
                 "stop_requested", "cost_usd", "elapsed_s", "gpu_s", "resources", "reason", "stop_kind", "stop_limit",
                 "finish_order",
                 "user_attrs", "parent", "start_step", "usage", "measurements", "_view")

    def __init__(self, trial_id: int, study_id: int, number: int, state: TrialState, params: dict[str, Any],
                 created_at: float) -> None:
        self.id, self.study_id, self.number, self.state, self.params = trial_id, study_id, number, state, params
        self.created_at = created_at
        self.metrics: dict[str, float] | None = None
        self.error: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.heartbeat_at: float | None = None
        self.worker_id: str | None = None
        self.run_tag: str | None = None
        self.retry_of: int | None = None
        self.attempt = 0
        self.retried = False
        self.stop_requested = False
        self.cost_usd = 0.0
        self.elapsed_s = 0.0
        self.gpu_s = 0.0
        self.resources: dict[str, float] | None = None
        #: Why it stopped or paused (or is asked to stop while it runs): words, the typed kind and,
        #: for a budget stop, the limit (see :class:`~thrifty.trial.StopReason`).
        self.reason: str | None = None
        self.stop_kind: StopKind | None = None
        self.stop_limit: str | None = None
        self.finish_order: int | None = None
        self.user_attrs: dict[str, Any] | None = None
        self.parent: int | None = None
        self.start_step: float | None = None
        self.usage: ResourceUsage | None = None
        self.measurements: list[Measurement] = []
        self._view: Trial | None = None

    def set_stop(self, stop: StopReason | None) -> None:
        """Record ``stop`` (words, kind, limit), or clear the stop reason with ``None``."""
        if stop is None:
            self.reason = self.stop_kind = self.stop_limit = None
        else:
            self.reason, self.stop_kind, self.stop_limit = stop.text, stop.kind, stop.limit

    def changed(self) -> None:
        """Forget the immutable view (call after every change)."""
        self._view = None

    def frozen(self, with_measurements: bool = True) -> Trial:
        """The trial as a :class:`Trial` record (cached until the next change)."""
        if with_measurements and self._view is not None:
            return self._view
        trial = Trial(
            id=self.id, number=self.number, state=self.state, params=self.params, metrics=self.metrics or {},
            measurements=tuple(self.measurements) if with_measurements else (), error=self.error,
            created_at=self.created_at, started_at=self.started_at, finished_at=self.finished_at,
            heartbeat_at=self.heartbeat_at, worker_id=self.worker_id, retry_of=self.retry_of, retried=self.retried,
            cost_usd=self.cost_usd, elapsed_s=self.elapsed_s, gpu_s=self.gpu_s, reason=self.reason,
            stop_kind=self.stop_kind, stop_limit=self.stop_limit, finish_order=self.finish_order, parent=self.parent, start_step=self.start_step,
            resources=self.resources or {}, user_attrs=self.user_attrs or {},
            usage=self.usage,
        )
        if with_measurements:
            self._view = trial
        return trial


@dataclass
class _StudyState:
    """One stored study: its record's fields, its counters and ledgers, and its trials."""

    id: int
    name: str
    space: Any
    objectives: Any
    strategy: Any
    scheduler: Any
    seed: int
    budget: Any
    settings: Any
    created_at: float
    next_number: int = 0
    n_started: int = 0
    spent_usd: float = 0.0
    gpu_s: float = 0.0
    n_running: int = 0
    active_s: float = 0.0
    active_since: float | None = None
    #: The circuit breaker's record (which hard limit, in words, and when), until the budget is set again.
    budget_stop: BudgetStop | None = None
    n_finished: int = 0
    #: Trials by number (dense: the index is the number).
    trials: list[_TrialRow] = field(default_factory=list)
    #: Unsettled trials (PENDING, RUNNING) by number.
    live: dict[int, _TrialRow] = field(default_factory=dict)
    #: Every settle, in order: (finish_order, trial). A resumed trial's old entry is skipped on reading.
    settles: list[tuple[int, _TrialRow]] = field(default_factory=list)
    counts: Counter[TrialState] = field(default_factory=Counter)
    #: Trials started under each run tag that count (not retried).
    run_counts: Counter[str] = field(default_factory=Counter)
    #: The parsed budget, kept with its stored form.
    parsed_budget: Budget = field(default_factory=Budget)

    def usage(self, now: float, added_usd: float = 0.0, added_gpu_s: float = 0.0) -> Usage:
        return rules.usage_of(self.n_started, self.spent_usd, self.gpu_s, self.n_running, self.active_s,
                               self.active_since, now, added_usd, added_gpu_s)

    def record(self) -> StudyRecord:
        return StudyRecord(
            id=self.id, name=self.name, space=_json_copy(self.space), objectives=_json_copy(self.objectives),
            strategy=_json_copy(self.strategy), scheduler=_json_copy(self.scheduler), seed=self.seed,
            budget=_json_copy(self.budget), settings=_json_copy(self.settings), created_at=self.created_at,
            n_started=self.n_started, spent_usd=self.spent_usd, gpu_s=self.gpu_s, n_running=self.n_running,
            active_s=self.active_s, active_since=self.active_since, budget_stop=self.budget_stop,
        )

    def status(self) -> StudyStatus:
        return StudyStatus(
            budget=self.parsed_budget, n_started=self.n_started, spent_usd=self.spent_usd, gpu_s=self.gpu_s,
            n_running=self.n_running, active_s=self.active_s, active_since=self.active_since,
            next_number=self.next_number, n_settled=self.n_finished, budget_stop=self.budget_stop,
        )


class MemoryStorage(Storage):
    """A study database that lives in this process's memory (see the module docstring)."""

    def __init__(self) -> None:
        self.url = "memory"
        #: Never read-only: a new in-memory database is empty and writable.
        self.read_only = False
        self._lock = threading.RLock()
        self._studies: dict[int, _StudyState] = {}
        self._by_name: dict[str, int] = {}
        self._trials: dict[int, _TrialRow] = {}
        self._next_study_id = 1
        self._next_trial_id = 1
        #: The memo cache's index: study id -> key -> entry; and each study's stage runs.
        self._cache: dict[int, dict[str, CacheEntry]] = {}
        self._stage_runs: dict[int, list[StageRun]] = {}
        #: The HTTP service's bearer tokens by public id (hashed: :class:`TokenRecord`).
        self._tokens: dict[str, TokenRecord] = {}

    # -- helpers (call with the lock held) ----------------------------------------------------
    def _study(self, study_id: int) -> _StudyState:
        st = self._studies.get(study_id)
        if st is None:
            raise StudyNotFound(f"study id {study_id} no longer exists in {self.url} (was it deleted?)")
        return st

    def _new_row(self, st: _StudyState, state: TrialState, params: Mapping[str, Any], now: float) -> _TrialRow:
        """Add a trial with the study's next number (it becomes PENDING or RUNNING or settled)."""
        row = _TrialRow(self._next_trial_id, st.id, st.next_number, state, _json_copy(dict(params)), now)
        self._next_trial_id += 1
        st.next_number += 1
        st.trials.append(row)
        self._trials[row.id] = row
        st.counts[state] += 1
        if not state.is_settled:
            st.live[row.number] = row
        return row

    def _set_state(self, st: _StudyState, row: _TrialRow, state: TrialState) -> None:
        st.counts[row.state] -= 1
        st.counts[state] += 1
        row.state = state
        if state.is_settled:
            st.live.pop(row.number, None)
        else:
            st.live[row.number] = row

    def _set_run_tag(self, st: _StudyState, row: _TrialRow, run_tag: str | None) -> None:
        if row.run_tag is not None and not row.retried:
            st.run_counts[row.run_tag] -= 1
        row.run_tag = run_tag
        if run_tag is not None and not row.retried:
            st.run_counts[run_tag] += 1

    def _count_started(self, st: _StudyState, now: float, new_trial: bool) -> None:
        if new_trial:
            st.n_started += 1
        if st.n_running == 0:
            st.active_since = now
        st.n_running += 1

    def _settle(self, st: _StudyState, row: _TrialRow, state: TrialState, now: float) -> None:
        """A RUNNING trial settles (finishes or pauses): it gets the next settle order, and the
        study's active wall time closes when it was the last one running."""
        self._set_state(st, row, state)
        st.n_finished += 1
        row.finish_order = st.n_finished
        st.settles.append((st.n_finished, row))
        if st.n_running == 1:
            st.active_s += now - (st.active_since if st.active_since is not None else now)
            st.active_since = None
        st.n_running -= 1

    def _maybe_break_circuit(self, st: _StudyState, usage: Usage, now: float) -> StopReason | None:
        """Trip the circuit breaker if ``usage`` (the ledgers with the measurement being recorded)
        reaches a hard limit: every RUNNING trial is asked to stop with that budget reason and the
        study records the stop (at ``now``). Returns the reason if it tripped now."""
        if st.budget_stop is not None:
            return None
        hit = rules.breaker_stop(st.parsed_budget, usage)
        if hit is None:
            return None
        stop = hit.stop_reason()
        for row in st.live.values():
            if row.state is _RUNNING:
                row.stop_requested = True
                row.set_stop(stop)
                row.changed()
        st.budget_stop = BudgetStop(hit.limit, hit.message, at=now)
        return stop

    def _running(self, trial_id: int, what: str) -> tuple[_StudyState, _TrialRow]:
        row = self._trials.get(trial_id)
        if row is None:
            raise TrialNotRunning(f"cannot {what}: trial id {trial_id} does not exist")
        if row.state is not _RUNNING:
            why = f" ({row.error})" if row.error else ""
            raise TrialNotRunning(f"cannot {what} trial {row.number}: it is already {row.state.value}{why}")
        return self._studies[row.study_id], row

    # -- studies ------------------------------------------------------------------------------
    def create_study(
        self,
        name: str,
        space: Mapping[str, Any],
        objectives: Mapping[str, str],
        strategy: Mapping[str, Any],
        scheduler: Mapping[str, Any],
        seed: int,
        budget: Mapping[str, Any],
        settings: Mapping[str, Any],
        load_if_exists: bool = False,
    ) -> tuple[StudyRecord, bool]:
        with self._lock:
            if name in self._by_name:
                if load_if_exists:
                    return self._studies[self._by_name[name]].record(), False
                raise DuplicateStudy(
                    f"a study named {name!r} already exists in {self.url}; load it with "
                    "Study.load(name, storage=...) or pass load_if_exists=True"
                )
            st = _StudyState(
                id=self._next_study_id, name=name, space=_json_copy(space), objectives=_json_copy(objectives),
                strategy=_json_copy(strategy), scheduler=_json_copy(scheduler), seed=int(seed),
                budget=_json_copy(budget), settings=_json_copy(settings), created_at=time.time(),
            )
            st.parsed_budget = Budget.from_dict(st.budget)
            self._next_study_id += 1
            self._studies[st.id] = st
            self._by_name[name] = st.id
            return st.record(), True

    def load_study(self, name: str) -> StudyRecord:
        with self._lock:
            sid = self._by_name.get(name)
            if sid is None:
                known = list(self._by_name)
                hint = f" (studies there: {', '.join(known[:10])})" if known else " (it holds no studies)"
                raise StudyNotFound(f"no study named {name!r} in {self.url}{hint}")
            return self._studies[sid].record()

    def study_status(self, study_id: int) -> StudyRecord:
        with self._lock:
            return self._study(study_id).record()

    def list_studies(self) -> list[StudySummary]:
        with self._lock:
            return [
                StudySummary(name=st.name, created_at=st.created_at, objectives=_json_copy(st.objectives),
                             counts={s.value: n for s, n in st.counts.items() if n}, spent_usd=st.spent_usd)
                for st in self._studies.values()
            ]

    def delete_study(self, name: str) -> None:
        with self._lock:
            sid = self._by_name.pop(name, None)
            if sid is None:
                raise StudyNotFound(f"no study named {name!r} in {self.url}")
            st = self._studies.pop(sid)
            for row in st.trials:
                del self._trials[row.id]
            self._cache.pop(sid, None)
            self._stage_runs.pop(sid, None)

    def update_study(
        self,
        study_id: int,
        *,
        budget: Mapping[str, Any] | None = None,
        strategy: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        with self._lock:
            st = self._study(study_id)
            parsed = Budget.from_dict(budget) if budget is not None else None  # refused before anything changes
            if strategy is not None:
                st.strategy = _json_copy(strategy)
            if scheduler is not None:
                st.scheduler = _json_copy(scheduler)
            if settings is not None:
                st.settings = {**st.settings, **_json_copy(settings)}
            if budget is not None and parsed is not None:
                # A new budget re-arms the circuit breaker; trials it had asked to stop may go on.
                st.budget, st.parsed_budget = _json_copy(budget), parsed
                st.budget_stop = None
                for row in st.live.values():
                    if row.state is _RUNNING and row.stop_kind is StopKind.BUDGET:
                        row.stop_requested = False
                        row.set_stop(None)
                        row.changed()

    # -- the ask protocol ---------------------------------------------------------------------
    def snapshot(self, study_id: int, since: int = 0, run_tag: str | None = None, *,
                 history: bool = True) -> Snapshot:
        with self._lock:
            st = self._study(study_id)
            if history:
                trials = self._delta(st, since)
            else:
                trials = sorted((r.frozen() for r in st.live.values() if r.state is _PENDING),
                                key=lambda t: t.number)
            return Snapshot(study_id, st.status(), tuple(trials),
                            st.run_counts[run_tag] if run_tag is not None else None)

    def _delta(self, st: _StudyState, since: int) -> list[Trial]:
        """Unsettled trials and those settled after ``since`` (still settled with that order), by number."""
        first = bisect.bisect_right(st.settles, since, key=lambda entry: entry[0])
        rows = [row for order, row in st.settles[first:] if row.finish_order == order]
        rows.extend(st.live.values())
        if len(rows) > 1:
            rows.sort(key=lambda row: row.number)
        return [row.frozen() for row in rows]

    def start(
        self,
        study_id: int,
        request: StartRequest,
        *,
        worker_id: str,
        now: float,
        limits: AskLimits = AskLimits(),
        resources: Mapping[str, float] | None = None,
        reap: RetryPolicy | None = None,
    ) -> Started | Conflict:
        with self._lock:
            st = self._study(study_id)
            if reap is not None:
                reaped = self._reap_locked(st, reap, now, None, None)
                if reaped:
                    return Conflict(f"trials {', '.join(map(str, reaped))} were reaped (their workers are lost)")
            run_started = st.run_counts[limits.run_tag] if limits.run_tag is not None else None
            rules.check_start(request.kind, st.parsed_budget, st.usage(now), limits, run_started)
            if request.kind == "resume":
                return self._resume(st, request.number, worker_id, limits.run_tag, now)
            if request.kind == "claim":
                return self._claim(st, request.number, worker_id, limits.run_tag, now, resources)
            assert request.params is not None
            pending = min((n for n, row in st.live.items() if row.state is _PENDING), default=None)
            if pending is not None:
                return Conflict(f"trial {pending} is enqueued: enqueued trials start first")
            params = request.params_for(st.next_number)
            if params is None:
                return Conflict(f"the next trial number is {st.next_number}, not {request.number}")
            if not request.exact or st.next_number != request.number:
                fresh = _json_copy(dict(params))
                if any(row.params == fresh for row in st.trials[request.number:]):
                    return Conflict("a trial with the same params started since the snapshot")
            row = self._new_row(st, _RUNNING, params, now)
            row.started_at = row.heartbeat_at = now
            row.worker_id = worker_id
            row.resources = dict(resources) if resources else None
            self._set_run_tag(st, row, limits.run_tag)
            self._count_started(st, now, new_trial=True)
            return Started(row.frozen())

    def _claim(self, st: _StudyState, number: int, worker_id: str, run_tag: str | None, now: float,
               resources: Mapping[str, float] | None) -> Started | Conflict:
        row = st.live.get(number)
        if row is None or row.state is not _PENDING:
            return Conflict(f"trial {number} is no longer enqueued")
        self._set_state(st, row, _RUNNING)
        row.worker_id, row.started_at, row.heartbeat_at = worker_id, now, now
        if not row.resources and resources:
            row.resources = dict(resources)
        self._set_run_tag(st, row, run_tag)
        self._count_started(st, now, new_trial=True)
        row.changed()
        return Started(row.frozen())

    def _resume(self, st: _StudyState, number: int, worker_id: str, run_tag: str | None,
                now: float) -> Started | Conflict:
        row = st.trials[number] if 0 <= number < len(st.trials) else None
        if row is None or row.state is not _PAUSED:
            return Conflict(f"trial {number} is no longer paused")
        steps = [m.step for m in row.measurements if m.step is not None]
        self._set_state(st, row, _RUNNING)
        row.worker_id, row.heartbeat_at = worker_id, now
        row.finish_order = row.finished_at = None
        row.set_stop(None)
        row.stop_requested = False
        row.start_step = max(steps) if steps else None
        self._set_run_tag(st, row, run_tag)
        self._count_started(st, now, new_trial=False)
        row.changed()
        return Started(row.frozen())

    # -- trials -------------------------------------------------------------------------------
    def enqueue(
        self,
        study_id: int,
        params: Mapping[str, Any],
        now: float,
        user_attrs: Mapping[str, Any] | None = None,
        resources: Mapping[str, float] | None = None,
        parent: int | None = None,
        start_step: float | None = None,
    ) -> Trial:
        with self._lock:
            st = self._study(study_id)
            row = self._enqueue_locked(st, params, now, None, 0, user_attrs, resources)
            row.parent, row.start_step = parent, start_step
            return row.frozen()

    def _enqueue_locked(self, st: _StudyState, params: Mapping[str, Any], now: float, retry_of: int | None,
                        attempt: int, user_attrs: Mapping[str, Any] | None,
                        resources: Mapping[str, float] | None) -> _TrialRow:
        row = self._new_row(st, _PENDING, params, now)
        row.retry_of, row.attempt = retry_of, attempt
        row.user_attrs = _json_copy(dict(user_attrs)) if user_attrs else None
        row.resources = dict(resources) if resources else None
        return row

    def add_trial(self, study_id: int, trial: Trial, now: float) -> Trial:
        """Insert a finished trial with known results: it gets the next number and a settle order,
        but it was not started here (no trial budget counts it, the ledger does not add its cost)."""
        if not trial.state.is_finished:
            raise ValidationError(f"add_trial: state {trial.state.value!r} is not a finished state")
        with self._lock:
            st = self._study(study_id)
            row = self._new_row(st, trial.state, trial.params, now)
            row.metrics = dict(trial.metrics)
            row.error, row.started_at, row.finished_at = trial.error, trial.started_at, now
            row.cost_usd, row.elapsed_s, row.gpu_s = trial.cost_usd, trial.elapsed_s, trial.gpu_s
            row.reason, row.stop_kind, row.stop_limit = trial.reason, trial.stop_kind, trial.stop_limit
            row.user_attrs = _json_copy(dict(trial.user_attrs)) if trial.user_attrs else None
            row.resources = dict(trial.resources) if trial.resources else None
            row.measurements = list(trial.measurements)
            row.usage = trial.usage
            st.n_finished += 1
            row.finish_order = st.n_finished
            st.settles.append((st.n_finished, row))
            return row.frozen()

    def report(self, study_id: int, trial_id: int, measurement: Measurement, now: float) -> StopReason | None:
        with self._lock:
            st, row = self._running(trial_id, "report to")
            row.cost_usd += measurement.cost_usd
            row.elapsed_s += measurement.elapsed_s
            row.gpu_s += measurement.gpu_s
            row.heartbeat_at = now
            # A request recorded before this measurement (the breaker may trip below and ask again).
            requested = (StopReason(row.stop_kind or StopKind.USER, row.reason or "stop requested", row.stop_limit)
                         if row.stop_requested else None)
            row.measurements.append(measurement)
            tripped = self._maybe_break_circuit(st, st.usage(now, measurement.cost_usd, measurement.gpu_s), now)
            st.spent_usd += measurement.cost_usd
            st.gpu_s += measurement.gpu_s
            row.changed()
            if requested is not None:
                return requested
            return tripped  # the breaker may have just tripped in this step

    def finish(
        self,
        study_id: int,
        trial_id: int,
        state: TrialState,
        metrics: Mapping[str, float] | None,
        measurement: Measurement | None,
        error: str | None,
        now: float,
        stop: StopReason | None = None,
        usage: ResourceUsage | None = None,
    ) -> Trial:
        with self._lock:
            st, row = self._running(trial_id, "finish")
            if usage is not None:
                row.usage = usage
            row.finished_at = row.heartbeat_at = now
            row.error = error
            row.metrics = dict(metrics) if metrics is not None else None
            if measurement is not None:
                row.cost_usd += measurement.cost_usd
                row.elapsed_s += measurement.elapsed_s
                row.gpu_s += measurement.gpu_s
            # Only a STOPPED or PAUSED trial keeps a stop reason: the one given, else the one
            # recorded while it ran (the breaker's, a user's request), else USER without words.
            if state not in _STOP_KEEPS_REASON:
                row.set_stop(None)
            elif stop is not None:
                row.set_stop(stop)
            elif row.stop_kind is None:
                row.stop_kind = StopKind.USER
            # The breaker judges the ledgers with this measurement and the study as it was before
            # this trial stopped running; the trial itself, settled, is not asked to stop.
            usage = st.usage(now, measurement.cost_usd if measurement else 0.0,
                             measurement.gpu_s if measurement else 0.0)
            self._settle(st, row, state, now)
            if measurement is not None:
                row.measurements.append(measurement)
                st.spent_usd += measurement.cost_usd
                st.gpu_s += measurement.gpu_s
            self._maybe_break_circuit(st, usage, now)
            row.changed()
            return row.frozen()

    def heartbeat(self, trial_ids: Sequence[int], now: float) -> None:
        with self._lock:
            for trial_id in trial_ids:
                row = self._trials.get(trial_id)
                if row is not None and row.state is _RUNNING:
                    row.heartbeat_at = now
                    row.changed()

    def record_usage(self, trial_id: int, usage: ResourceUsage) -> bool:
        """See :meth:`Storage.record_usage` (a RUNNING trial only; the record is immutable, kept as it is)."""
        with self._lock:
            row = self._trials.get(trial_id)
            if row is None or row.state is not _RUNNING:
                return False
            row.usage = usage
            row.changed()
            return True

    def reap(
        self, study_id: int, policy: RetryPolicy, now: float, worker_id: str | None = None, reason: str | None = None
    ) -> list[int]:
        with self._lock:
            return self._reap_locked(self._study(study_id), policy, now, worker_id, reason)

    def _reap_locked(self, st: _StudyState, policy: RetryPolicy, now: float, worker_id: str | None,
                     reason: str | None) -> list[int]:
        """Fail the stale RUNNING trials (those of ``worker_id`` if given, else those silent for
        longer than the grace period), re-enqueueing their params while retries are left."""
        if worker_id is not None:
            stale = [r for r in st.live.values() if r.state is _RUNNING and r.worker_id == worker_id]
        else:
            limit = now - policy.heartbeat_grace_s
            stale = [r for r in st.live.values()
                     if r.state is _RUNNING and r.heartbeat_at is not None and r.heartbeat_at < limit]
        failed = []
        for row in sorted(stale, key=lambda r: r.number):
            retry = row.attempt < policy.max_retries
            row.error = rules.reap_error(row.worker_id, worker_id is not None, reason,
                                          now - (row.heartbeat_at or now), policy.heartbeat_grace_s,
                                          st.next_number if retry else None, row.attempt, policy.max_retries)
            row.finished_at = now
            self._settle(st, row, TrialState.FAILED, now)
            if retry:  # the retry counts instead: as a started trial and in its run
                st.n_started -= 1
                if row.run_tag is not None:
                    st.run_counts[row.run_tag] -= 1
                row.retried = True
                self._enqueue_locked(st, row.params, now, row.number, row.attempt + 1, row.user_attrs, row.resources)
            row.changed()
            failed.append(row.number)
        return failed

    def request_stop(self, trial_id: int, reason: str = "user: stop requested") -> None:
        with self._lock:
            row = self._trials.get(trial_id)
            if row is not None and row.state is _RUNNING:
                row.stop_requested = True
                row.set_stop(StopReason(StopKind.USER, reason))
                row.changed()

    def stop_requested(self, trial_id: int) -> bool:
        with self._lock:
            row = self._trials.get(trial_id)
            return bool(row is not None and (row.stop_requested or row.state is not _RUNNING))

    def get_trial(self, trial_id: int) -> Trial:
        with self._lock:
            row = self._trials.get(trial_id)
            if row is None:
                raise TrialNotRunning(f"trial id {trial_id} does not exist")
            return row.frozen()

    def get_trials(
        self,
        study_id: int,
        states: Sequence[TrialState] | None = None,
        with_measurements: bool = True,
        offset: int = 0,
        limit: int | None = None,
        finished_after: int | None = None,
    ) -> list[Trial]:
        with self._lock:
            st = self._studies.get(study_id)
            if st is None:
                return []
            if finished_after is not None and not (states or offset or limit is not None) and with_measurements:
                return self._delta(st, finished_after)
            wanted = {TrialState.parse(s) for s in states} if states else None
            rows = [
                row for row in st.trials
                if (wanted is None or row.state in wanted)
                and (finished_after is None or row.finish_order is None or row.finish_order > finished_after)
            ]
            rows = rows[offset:] if limit is None else rows[offset:offset + limit]
            return [row.frozen(with_measurements) for row in rows]

    def count_trials(self, study_id: int) -> dict[TrialState, int]:
        with self._lock:
            st = self._studies.get(study_id)
            return {} if st is None else {s: n for s, n in st.counts.items() if n}

    def count_run(self, study_id: int, run_tag: str) -> int:
        """Trials started under ``run_tag`` (a retried trial counts once)."""
        with self._lock:
            st = self._studies.get(study_id)
            return 0 if st is None else st.run_counts[run_tag]

    # -- the memo cache's index ----------------------------------------------------------------
    def cache_put(self, study_id: int, entry: CacheEntry) -> None:
        with self._lock:
            self._study(study_id)
            self._cache.setdefault(study_id, {})[entry.key] = dataclasses.replace(
                entry, params=_json_copy(dict(entry.params)))

    def cache_entries(self, study_id: int) -> list[CacheEntry]:
        with self._lock:
            entries = self._cache.get(study_id, {}).values()
            return sorted(entries, key=lambda e: (e.stage, e.key))

    def cache_read(self, study_id: int, key: str, read_s: float, read_cost_usd: float) -> bool:
        with self._lock:
            index = self._cache.get(study_id, {})
            if key not in index:
                return False
            e = index[key]
            index[key] = dataclasses.replace(e, hits=e.hits + 1, read_s=float(read_s),
                                             read_cost_usd=float(read_cost_usd))
            return True

    def cache_forget(self, keys: Sequence[str]) -> int:
        with self._lock:
            removed = 0
            for index in self._cache.values():
                for key in keys:
                    removed += index.pop(key, None) is not None
            return removed

    def record_stage_runs(self, study_id: int, runs: Sequence[StageRun]) -> None:
        with self._lock:
            self._study(study_id)
            self._stage_runs.setdefault(study_id, []).extend(runs)

    def stage_runs(self, study_id: int) -> list[StageRun]:
        with self._lock:
            return sorted(self._stage_runs.get(study_id, []), key=lambda r: (r.trial_id, r.stage))

    # -- bearer tokens --------------------------------------------------------------------------
    def add_token(self, token: TokenRecord) -> None:
        with self._lock:
            if token.id in self._tokens:
                raise ValidationError(f"a token with id {token.id!r} exists already")
            self._tokens[token.id] = token

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self._lock:
            return self._tokens.get(token_id)

    def list_tokens(self, study: str | None = None) -> list[TokenRecord]:
        with self._lock:
            found = [t for t in self._tokens.values() if study is None or t.study == study]
        return sorted(found, key=lambda t: (t.created_at, t.id))

    def revoke_token(self, token_id: str, now: float) -> bool:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None or token.revoked_at is not None:
                return False
            self._tokens[token_id] = dataclasses.replace(token, revoked_at=float(now))
            return True

    def close(self) -> None:
        """Nothing to release: the data stays until this object is dropped."""
