"""SQL storage on SQLAlchemy: SQLite (the default, one machine) and PostgreSQL (many machines).

Concurrency model: every write transaction first takes the study's lock (``BEGIN IMMEDIATE`` on
SQLite, which serializes writers to the file; ``SELECT ... FOR UPDATE`` on the study row on
PostgreSQL). So "claim an enqueued trial or create a new one and check the limits" is one atomic
step on any number of processes and machines, trial numbers come from a counter on the study row
(unique and dense: a rolled-back transaction rolls the counter back too), and the study's ledger
(``spent_usd``) is updated in the same transaction as each measurement. Reads never block writers
(SQLite WAL mode, PostgreSQL MVCC).

Lost connections (PostgreSQL): a statement that fails because the server closed the connection
(``pg_terminate_backend``, a restart, a network cut) is retried on a new connection for up to
``reconnect_timeout_s``, then it is a one-line :class:`~thrifty.errors.StorageError`. A transaction
that had not reached COMMIT cannot have been applied, so it is simply run again. A COMMIT whose
answer was lost may or may not have been applied: the transaction's id (taken before COMMIT) is
looked up with ``txid_status`` on a new connection, and the transaction is run again only if the
server says it aborted. A tell on PostgreSQL is one statement outside a transaction (the study's
lock is then held only while the server runs it); a lost answer to it is resolved by running it
again, since a trial is ended only once (see ``_FINISH_AT_ONCE``). So a report or a finish is
applied exactly once.

The ask/tell path's statements are SQLAlchemy Core constants run on the driver's connection (see
:func:`_rows`); transactions are SQLAlchemy's. On PostgreSQL the planner's statistics are refreshed
as a study grows (:meth:`SQLStorage._refresh_statistics`).

Read-only opening (``read_only=True``, the CLI's read commands): nothing is ever created. A SQLite
file is opened with ``mode=ro``; a missing file is "no database at PATH", a file without thrifty's
tables is "PATH holds no thrifty studies"; PostgreSQL sessions are ``default_transaction_read_only``.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from thrifty.cost.budget import Budget, BudgetStop, Usage
from thrifty.errors import (
    DuplicateStudy,
    NoDatabase,
    StorageError,
    StudyNotFound,
    TrialNotRunning,
    ValidationError,
)
from thrifty import process
from thrifty.storage import _fork, _migrate, rules
from thrifty.storage.base import (
    SCHEMA_VERSION,
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

T = TypeVar("T")
log = logging.getLogger("thrifty")

metadata = sa.MetaData()

meta_table = sa.Table(
    "thrifty_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

studies = sa.Table(
    "thrifty_studies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("space", sa.Text, nullable=False),
    sa.Column("objectives", sa.Text, nullable=False),
    sa.Column("strategy", sa.Text, nullable=False),
    sa.Column("scheduler", sa.Text, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("budget", sa.Text, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("next_number", sa.Integer, nullable=False, default=0),
    sa.Column("n_started", sa.Integer, nullable=False, default=0),
    sa.Column("spent_usd", sa.Float, nullable=False, default=0.0),
    # The other ledgers: GPU-seconds held, and the study's active wall time (seconds during which
    # at least one trial ran: active_s closed periods plus, while n_running > 0, now - active_since).
    sa.Column("gpu_s", sa.Float, nullable=False, default=0.0),
    sa.Column("n_running", sa.Integer, nullable=False, default=0),
    sa.Column("active_s", sa.Float, nullable=False, default=0.0),
    sa.Column("active_since", sa.Float, nullable=True),
    # Set when a hard budget stopped the running trials (the circuit breaker): the message, which
    # limit ("usd", "gpu_hours", "wall_s"), when.
    sa.Column("budget_stop", sa.Text, nullable=True),
    sa.Column("budget_stop_at", sa.Float, nullable=True),
    sa.Column("budget_stop_limit", sa.String(16), nullable=True),
    # How many trials have finished: each finishing trial gets the next value as its finish_order,
    # so readers can fetch only what finished since they last looked.
    sa.Column("n_finished", sa.Integer, nullable=False, default=0),
)

trials = sa.Table(
    "thrifty_trials",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer, sa.ForeignKey("thrifty_studies.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("metrics", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("heartbeat_at", sa.Float, nullable=True),
    sa.Column("worker_id", sa.String(128), nullable=True),
    sa.Column("run_tag", sa.String(64), nullable=True),
    sa.Column("retry_of", sa.Integer, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("retried", sa.Boolean, nullable=False, default=False),
    sa.Column("stop_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("cost_usd", sa.Float, nullable=False, default=0.0),
    sa.Column("elapsed_s", sa.Float, nullable=False, default=0.0),
    sa.Column("gpu_s", sa.Float, nullable=False, default=0.0),
    sa.Column("resources", sa.Text, nullable=True),
    # Why a STOPPED or PAUSED trial stopped (or why a RUNNING one is asked to): words for people
    # (reason), the typed kind (a StopKind value) and, for a budget stop, the limit.
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("stop_kind", sa.String(16), nullable=True),
    sa.Column("stop_limit", sa.String(16), nullable=True),
    sa.Column("finish_order", sa.Integer, nullable=True),
    sa.Column("user_attrs", sa.Text, nullable=True),
    sa.Column("parent", sa.Integer, nullable=True),
    sa.Column("start_step", sa.Float, nullable=True),
    # What the trial's processes used while it ran (ResourceUsage.to_dict() as JSON; schema 4).
    sa.Column("usage", sa.Text, nullable=True),
    sa.UniqueConstraint("study_id", "number", name="uq_thrifty_trial_number"),
    sa.Index("ix_thrifty_trials_state", "study_id", "state", "number"),
    # The history's delta (unsettled trials and those settled since a finish_order): see _SEL_DELTA.
    sa.Index("ix_thrifty_trials_finish", "study_id", "finish_order"),
    sa.Index("ix_thrifty_trials_run", "study_id", "run_tag"),
)

measurements = sa.Table(
    "thrifty_measurements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("thrifty_trials.id"), nullable=False, index=True),
    sa.Column("step", sa.Float, nullable=True),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("elapsed_s", sa.Float, nullable=False),
    sa.Column("gpu_s", sa.Float, nullable=False, default=0.0),
    sa.Column("timestamp", sa.Float, nullable=False),
)

# The memo cache of pipeline studies (schema 5): the index of the stage outputs on disk (one row
# per study and key; the outputs are content-addressed, so several studies may list one key) and
# what each stage of each trial did.
cache_entries = sa.Table(
    "thrifty_cache_entries",
    metadata,
    sa.Column("study_id", sa.Integer, sa.ForeignKey("thrifty_studies.id"), primary_key=True),
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("run_s", sa.Float, nullable=False),
    sa.Column("run_cost_usd", sa.Float, nullable=False),
    sa.Column("read_s", sa.Float, nullable=False),
    sa.Column("read_cost_usd", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("hits", sa.Integer, nullable=False, default=0),
    sa.Index("ix_thrifty_cache_key", "key"),
)

stage_runs = sa.Table(
    "thrifty_stage_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer, sa.ForeignKey("thrifty_studies.id"), nullable=False, index=True),
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("thrifty_trials.id"), nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("miss", sa.Boolean, nullable=False),
    sa.Column("elapsed_s", sa.Float, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("saved_s", sa.Float, nullable=False),
    sa.Column("saved_usd", sa.Float, nullable=False),
)

# The HTTP service's bearer tokens (thrifty.server.tokens): the public id and the SHA-256 of the
# secret, never the token. A table older thrifty versions ignore, so it needs no schema version: it
# is created when a database is opened for writing (create_all), in a new or an existing database.
tokens = sa.Table(
    "thrifty_tokens",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("study", sa.String(255), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

#: The tables of schema version 1, which every thrifty database has (later ones are created, or
#: upgraded into, when a database is opened for writing).
_CORE_TABLES = ("thrifty_meta", "thrifty_studies", "thrifty_trials", "thrifty_measurements")

_PENDING = TrialState.PENDING.value
_RUNNING = TrialState.RUNNING.value

# Statements of the hot path (ask, report, tell), built once: building a SQLAlchemy construct costs
# several times more than executing a cached one. Bound parameters are prefixed with "p_".
_B = sa.bindparam
_SEL_STUDY = sa.select(
    studies.c.id, studies.c.n_started, studies.c.spent_usd, studies.c.next_number, studies.c.budget,
    studies.c.gpu_s, studies.c.n_running, studies.c.active_s, studies.c.active_since, studies.c.budget_stop,
    studies.c.budget_stop_at, studies.c.budget_stop_limit, studies.c.n_finished,
).where(studies.c.id == _B("p_sid"))
# The oldest enqueued trial's number (by ix_thrifty_trials_state), read with the study lock so a
# start needs no statement of its own for the rule "enqueued trials start first".
_PENDING_NUMBER = (
    sa.select(sa.func.min(trials.c.number))
    .where(trials.c.study_id == _B("p_sid"), trials.c.state == _PENDING)
    .scalar_subquery()
    .label("pending_number")
)
# Under the study lock on PostgreSQL, the transaction id comes with the locked row (see _attempt:
# it resolves a COMMIT whose answer was lost), so it costs no round trip of its own.
_XID_COLUMN = sa.func.txid_current().label("xid")
# The params of the trials numbered p_number or later (PostgreSQL; the duplicate rule of a start).
_PARAMS_SINCE = (
    sa.select(sa.func.array_agg(trials.c.params))
    .where(trials.c.study_id == _B("p_sid"), trials.c.number >= _B("p_number"))
    .scalar_subquery()
    .label("params_since")
)
_LOCK_STUDY = {"sqlite": _SEL_STUDY, "postgresql": _SEL_STUDY.add_columns(_XID_COLUMN).with_for_update()}
_LOCK_STUDY_TO_START = {
    "sqlite": _SEL_STUDY.add_columns(_PENDING_NUMBER),
    "postgresql": _SEL_STUDY.add_columns(_PENDING_NUMBER, _XID_COLUMN, _PARAMS_SINCE).with_for_update(of=studies),
}
_SEL_IN_STATE = sa.select(trials.c.id, trials.c.resources).where(
    trials.c.study_id == _B("p_sid"), trials.c.number == _B("p_number"), trials.c.state == _B("p_state"))
# Trials created since a snapshot whose next number was p_number (the duplicate rule of a start).
_SEL_PARAMS_SINCE = sa.select(trials.c.params).where(trials.c.study_id == _B("p_sid"),
                                                     trials.c.number >= _B("p_number"))
_CLAIM = (
    sa.update(trials)
    .where(trials.c.id == _B("p_tid"))
    .values(state=_RUNNING, worker_id=_B("p_worker"), started_at=_B("p_now"), heartbeat_at=_B("p_now"),
            run_tag=_B("p_run_tag"), resources=_B("p_resources"))
)
_ACTIVE_SINCE_ON_START = sa.case((studies.c.n_running == 0, _B("p_now")), else_=studies.c.active_since)
_COUNT_STARTED = (
    sa.update(studies)
    .where(studies.c.id == _B("p_sid"))
    .values(n_started=studies.c.n_started + 1, n_running=studies.c.n_running + 1,
            active_since=_ACTIVE_SINCE_ON_START)
)
_COUNT_NEW = (
    sa.update(studies)
    .where(studies.c.id == _B("p_sid"))
    .values(next_number=studies.c.next_number + 1, n_started=studies.c.n_started + 1,
            n_running=studies.c.n_running + 1, active_since=_ACTIVE_SINCE_ON_START)
)
# A trial stopped running: close the active period when it was the last one.
_COUNT_FINISHED = (
    sa.update(studies)
    .where(studies.c.id == _B("p_sid"))
    .values(
        n_running=studies.c.n_running - 1,
        n_finished=studies.c.n_finished + 1,
        active_s=sa.case(
            (studies.c.n_running == 1, studies.c.active_s + (_B("p_now") - sa.func.coalesce(studies.c.active_since, _B("p_now")))),
            else_=studies.c.active_s,
        ),
        active_since=sa.case((studies.c.n_running == 1, sa.null()), else_=studies.c.active_since),
    )
)
_NEW_TRIAL_COLUMNS = ("study_id", "number", "state", "params", "created_at", "started_at", "heartbeat_at", "worker_id",
                      "run_tag", "attempt", "retried", "stop_requested", "cost_usd", "elapsed_s", "gpu_s", "resources")
_INSERT_RUNNING = (sa.insert(trials).values({c: _B("p_" + c, type_=trials.c[c].type) for c in _NEW_TRIAL_COLUMNS})
                   .returning(trials.c.id))
# A new trial and its count in the study row: on PostgreSQL one statement (a round trip less while
# the study's lock is held).
_INSERT_NEW = {"sqlite": (_COUNT_NEW, _INSERT_RUNNING),
               "postgresql": (None, _INSERT_RUNNING.add_cte(_COUNT_NEW.cte("counted")))}
_INSERT_MEASUREMENT = sa.insert(measurements)
_ADD_USAGE = (
    sa.update(studies)
    .where(studies.c.id == _B("p_sid"))
    .values(spent_usd=studies.c.spent_usd + _B("p_cost"), gpu_s=studies.c.gpu_s + _B("p_gpu_s"))
)
# A report's first statement: the study's lock and the charge, returning the row after it.
_CHARGE_STUDY = {"sqlite": _ADD_USAGE.returning(*_SEL_STUDY.selected_columns),
                 "postgresql": _ADD_USAGE.returning(*_SEL_STUDY.selected_columns, _XID_COLUMN)}
_REPORT = (
    sa.update(trials)
    .where(trials.c.id == _B("p_tid"), trials.c.state == _RUNNING)
    .values(cost_usd=trials.c.cost_usd + _B("p_cost"), elapsed_s=trials.c.elapsed_s + _B("p_elapsed"),
            gpu_s=trials.c.gpu_s + _B("p_gpu_s"), heartbeat_at=_B("p_now"))
    .returning(trials.c.stop_requested, trials.c.reason, trials.c.stop_kind, trials.c.stop_limit)
)
_STOP_STATES = (TrialState.STOPPED, TrialState.PAUSED)
_KEEPS_STOP = _B("p_keeps_stop", type_=sa.Boolean)  # the new state is one of _STOP_STATES
_GIVEN_STOP = _B("p_kind", type_=sa.String).is_not(None)
_FINISH = (
    sa.update(trials)
    .where(trials.c.id == _B("p_tid"), trials.c.state == _RUNNING)
    .values(state=_B("p_state"), finished_at=_B("p_now"), error=_B("p_error"), heartbeat_at=_B("p_now"),
            metrics=_B("p_metrics"), cost_usd=trials.c.cost_usd + _B("p_cost"),
            elapsed_s=trials.c.elapsed_s + _B("p_elapsed"), gpu_s=trials.c.gpu_s + _B("p_gpu_s"),
            # Only a STOPPED or PAUSED trial keeps a stop reason: the one given, else the one
            # recorded while it ran (the breaker's, a user's request), else USER without words.
            reason=sa.case((sa.and_(_KEEPS_STOP, _GIVEN_STOP), _B("p_reason")),
                           (_KEEPS_STOP, trials.c.reason), else_=sa.null()),
            stop_kind=sa.case((sa.and_(_KEEPS_STOP, _GIVEN_STOP), _B("p_kind")),
                              (_KEEPS_STOP, sa.func.coalesce(trials.c.stop_kind, StopKind.USER.value)),
                              else_=sa.null()),
            stop_limit=sa.case((sa.and_(_KEEPS_STOP, _GIVEN_STOP), _B("p_limit")),
                               (_KEEPS_STOP, trials.c.stop_limit), else_=sa.null()),
            # The final resource use, else what record_usage stored while it ran.
            usage=sa.func.coalesce(_B("p_usage", type_=sa.Text), trials.c.usage))
    .returning(*trials.c)
)
# Tell on SQLite: the study row's counts and the last interval's charge (p_cost, p_gpu_s), then the
# trial, which gets the study's new n_finished (p_order) as its finish order. (The write lock is the
# file's, taken by BEGIN IMMEDIATE.)
_SETTLE_STUDY = _COUNT_FINISHED.values(spent_usd=studies.c.spent_usd + _B("p_cost"),
                                       gpu_s=studies.c.gpu_s + _B("p_gpu_s"))
_SETTLE = (_SETTLE_STUDY.returning(*_SEL_STUDY.selected_columns), _FINISH.values(finish_order=_B("p_order")))
_BREAK_CIRCUIT = (
    sa.update(trials)
    .where(trials.c.study_id == _B("p_sid"), trials.c.state == _RUNNING)
    .values(stop_requested=True, reason=_B("p_reason"), stop_kind=StopKind.BUDGET.value, stop_limit=_B("p_limit"))
)
_MARK_BUDGET_STOP = (
    sa.update(studies)
    .where(studies.c.id == _B("p_sid"))
    .values(budget_stop=_B("p_message"), budget_stop_limit=_B("p_limit"), budget_stop_at=_B("p_now"))
)
_SEL_TRIAL = sa.select(trials).where(trials.c.id == _B("p_tid"))
# Unsettled trials and those settled after p_after. Each side of the OR names the study, so both
# can use ix_thrifty_trials_finish and the read does not grow with the study's settled trials.
_SEL_DELTA = (
    sa.select(trials)
    .where(sa.or_(sa.and_(trials.c.study_id == _B("p_sid"), trials.c.finish_order.is_(None)),
                  sa.and_(trials.c.study_id == _B("p_sid"), trials.c.finish_order > _B("p_after"))))
    .order_by(trials.c.number)
)
_SEL_MEASUREMENTS_OF = (
    sa.select(measurements)
    .where(measurements.c.trial_id.in_(_B("p_tids", expanding=True)))
    .order_by(measurements.c.id)
)
# A running trial's resource use (record_usage): the trial row alone, no study lock.
_RECORD_USAGE = (
    sa.update(trials)
    .where(trials.c.id == _B("p_tid"), trials.c.state == _RUNNING)
    .values(usage=_B("p_usage"))
    .returning(trials.c.id)
)
_SEL_STOP = sa.select(trials.c.stop_requested, trials.c.state).where(trials.c.id == _B("p_tid"))
_SEL_TRIAL_MEASUREMENTS = (
    sa.select(measurements).where(measurements.c.trial_id == _B("p_tid")).order_by(measurements.c.id)
)
_COUNT_RUN = (
    sa.select(sa.func.count())
    .select_from(trials)
    .where(trials.c.study_id == _B("p_sid"), trials.c.run_tag == _B("p_run_tag"), trials.c.retried.is_(False))
)
# A snapshot in one statement (one round trip, consistent by itself: no transaction needed): the
# study row joined with the history's delta (each side of the union by ix_thrifty_trials_finish,
# so the read does not grow with the study's settled trials) and the delta's measurements, one
# row per measurement (a trial without any: one row with NULLs); the study's columns keep their
# names, the trial's are prefixed "t_", the measurement's "m_".
_DELTA_ROWS = sa.union_all(
    sa.select(trials).where(trials.c.study_id == _B("p_sid"), trials.c.finish_order.is_(None)),
    sa.select(trials).where(trials.c.study_id == _B("p_sid"), trials.c.finish_order > _B("p_after")),
).subquery("delta")
# The light snapshot's trials (``history=False``): only the enqueued ones.
_PENDING_ROWS = sa.select(trials).where(trials.c.study_id == _B("p_sid"), trials.c.finish_order.is_(None),
                                        trials.c.state == _PENDING).subquery("delta")


def _snapshot_statement(lateral: bool, delta: Any = _DELTA_ROWS) -> sa.Select[Any]:
    """The snapshot (see above) of the trials ``delta`` selects. ``lateral`` (PostgreSQL): the
    measurements are joined per delta trial (LATERAL), so the planner cannot read the whole
    measurements table to hash-join a delta it expects to be small."""
    taken: Any = measurements
    on = measurements.c.trial_id == delta.c.id
    if lateral:
        taken = sa.select(measurements).where(on).offset(0).lateral("taken")  # OFFSET 0: not flattened
        on = sa.true()
    return (
        sa.select(*_SEL_STUDY.selected_columns, *(c.label("t_" + c.name) for c in delta.c),
                  *(c.label("m_" + c.name) for c in taken.c))
        .select_from(studies.outerjoin(delta, sa.true()).outerjoin(taken, on))
        .where(studies.c.id == _B("p_sid"))
        .order_by(delta.c.number, taken.c.id)
    )


def _in_run(query: sa.Select[Any]) -> sa.Select[Any]:
    return query.add_columns(_COUNT_RUN.scalar_subquery().label("run_started"))


#: The snapshot statements by (dialect, history read, run tag given).
_SNAPSHOTS = {
    (dialect, history, tagged): (_in_run(q) if tagged else q)
    for dialect in ("sqlite", "postgresql")
    for history in (True, False)
    for tagged in (False, True)
    for q in [_snapshot_statement(dialect == "postgresql", _DELTA_ROWS if history else _PENDING_ROWS)]
}

# Tell on PostgreSQL: one statement, run outside a transaction (the server commits it as it ends), so
# the study row's lock is held only while the server runs it, never while a client waits for the
# CPU between two statements. Lock order study -> trial as everywhere: "locked" takes the study
# row's lock; "finished" ends the trial if it is RUNNING, with finish order n_finished + 1;
# "settled" updates the study's counts and ledgers only if the trial was ended (it reads
# "finished"); "measured" adds the last interval (if p_has_m). One row: the trial's columns and
# the study's after the charge (prefixed "s_"); none: the trial was not running, nothing changed.
# Ending a trial happens once (RUNNING -> finished under the trial row's lock), so running the
# statement again after a lost answer cannot apply it twice (see SQLStorage._finish_at_once).
_LOCKED = sa.select(studies.c.id, studies.c.n_finished).where(studies.c.id == _B("p_sid")).with_for_update().cte("locked")
_FINISHED = _FINISH.values(finish_order=_LOCKED.c.n_finished + 1).where(trials.c.study_id == _LOCKED.c.id).cte("finished")
_SETTLED = (_SETTLE_STUDY.where(studies.c.id == _FINISHED.c.study_id)
            .returning(*_SEL_STUDY.selected_columns).cte("settled"))
_MEASURED = sa.insert(measurements).from_select(
    ["trial_id", "step", "metrics", "cost_usd", "elapsed_s", "gpu_s", "timestamp"],
    sa.select(_FINISHED.c.id, _B("p_m_step", type_=sa.Float), _B("p_m_metrics", type_=sa.Text), _B("p_cost"),
              _B("p_elapsed"), _B("p_gpu_s"), _B("p_m_timestamp", type_=sa.Float))
    .where(_B("p_has_m", type_=sa.Boolean)),
).cte("measured")
# The trial's measurements before this statement (a statement sees the database as it was when it
# began: "measured" is not among them), as JSON [[step, metrics, cost_usd, elapsed_s, gpu_s,
# timestamp], ...] in the order they were taken: no round trip of their own.
_TAKEN_BEFORE = (
    sa.select(sa.func.json_agg(aggregate_order_by(
        sa.func.json_build_array(measurements.c.step, measurements.c.metrics, measurements.c.cost_usd,
                                 measurements.c.elapsed_s, measurements.c.gpu_s, measurements.c.timestamp),
        measurements.c.id)))
    .where(measurements.c.trial_id == _FINISHED.c.id)
    .scalar_subquery()
)
_FINISH_AT_ONCE = (
    sa.select(*_FINISHED.c, *(c.label("s_" + c.name) for c in _SETTLED.c), _TAKEN_BEFORE.label("taken_before"))
    .select_from(_FINISHED.join(_SETTLED, sa.true()))
    .add_cte(_MEASURED)
)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


#: Storage strings for the in-process database (:class:`~thrifty.storage.memory.MemoryStorage`).
MEMORY_URLS = ("memory", ":memory:", "sqlite:///:memory:")


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///PATH`` URL (its query string left out)."""
    return url[len("sqlite:///"):].split("?", 1)[0]


def normalize_url(url: str) -> str:
    """Turn a user's storage string into a SQLAlchemy URL (``memory`` and ``postgresql://``).

    The in-memory database is spelled ``memory``, ``:memory:`` or ``sqlite:///:memory:``. A SQLite
    URL without a file path (``sqlite://``, ``sqlite:///``) is an error, not a database in memory
    that silently vanishes: the user meant a file and left it out.
    """
    if not isinstance(url, str) or not url:
        raise StorageError(f"storage={url!r}: expected a URL such as sqlite:///thrifty.db or 'memory'")
    if url in MEMORY_URLS:
        return "sqlite://"
    if url == "sqlite://" or (url.startswith("sqlite:///") and not sqlite_path(url)):
        raise StorageError(
            f"storage={url!r} names no database file: give its path (e.g. sqlite:///thrifty.db), "
            "or 'memory' for a study kept in this process only and not saved"
        )
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///") or url.startswith("postgresql+"):
        return url
    raise StorageError(
        f"storage={url!r}: unsupported URL; use sqlite:///PATH, postgresql://USER@HOST:PORT/DB or 'memory'"
    )


class _CommitUnknown(Exception):
    """The connection was lost during COMMIT of the write transaction ``xid`` (PostgreSQL): it may
    or may not have been applied. ``result`` is what the transaction returned, valid if it was."""

    def __init__(self, xid: int, result: Any) -> None:
        super().__init__(xid)
        self.xid = xid
        self.result = result


# PostgreSQL: the id of the current transaction (NULL if it wrote nothing), and a transaction's fate.
_CURRENT_XID = "SELECT txid_current_if_assigned()"
# Where a study lock leaves its transaction's id for _attempt (the DBAPI connection's info dict).
_XID_KEY = "thrifty_xid"
_XID_STATUS = sa.text("SELECT txid_status(:xid)")


class SQLStorage(Storage):
    """Storage in a SQL database through SQLAlchemy (see the module docstring).

    ``read_only=True`` opens a database for reading only (the CLI's read commands): nothing is
    created, no file, no table, no schema upgrade. A missing SQLite file, or a database without
    thrifty's tables, raises :class:`~thrifty.errors.NoDatabase`; a write raises
    :class:`~thrifty.errors.StorageError`. (The in-memory database, ``memory``, starts empty.)
    ``reconnect_timeout_s``: how long a lost PostgreSQL connection is retried before an operation
    fails with a :class:`~thrifty.errors.StorageError`. ``pool_size``: PostgreSQL connections kept
    open (4 more are opened, and closed again, when more threads use the storage at once; a
    process serving many threads at once, ``thrifty serve``, keeps more).
    """

    def __init__(
        self, url: str, *, busy_timeout_s: float = 120.0, read_only: bool = False, reconnect_timeout_s: float = 30.0,
        pool_size: int = 2,
    ) -> None:
        self.url = url
        sa_url = normalize_url(url)
        self.dialect = "postgresql" if sa_url.startswith("postgresql") else "sqlite"
        self._memory = sa_url == "sqlite://"
        #: Writes are refused (set once the schema of an in-memory database exists).
        self.read_only = False
        self.reconnect_timeout_s = float(reconnect_timeout_s)
        # Until the database has been reached once, a refused connection is an error at once (a
        # wrong host or port), not a server restart to wait for.
        self._reached = False
        # One in-memory database is one connection shared by the threads of this process.
        self._lock: threading.RLock | None = threading.RLock() if self._memory else None
        read_only_file = read_only and not self._memory
        if read_only_file and self.dialect == "sqlite":
            path = sqlite_path(sa_url)
            if not os.path.isfile(path):
                raise NoDatabase(f"no database at {path}" + (" (it is a folder)" if os.path.isdir(path) else ""))
        try:
            if self.dialect == "sqlite":
                kwargs: dict[str, Any] = {
                    "connect_args": {"isolation_level": None, "check_same_thread": False, "timeout": busy_timeout_s}
                }
                if self._memory:
                    kwargs["poolclass"] = sa.pool.StaticPool
                elif read_only_file:
                    kwargs = {"creator": _read_only_sqlite(sqlite_path(sa_url), busy_timeout_s)}
                self.engine: Engine = sa.create_engine(sa_url, **kwargs)
                self._install_sqlite_hooks(busy_timeout_s, writable=not read_only_file)
            else:
                connect_args = {"options": "-c default_transaction_read_only=on"} if read_only_file else {}
                # No pre-ping (a round trip per transaction): a connection the server dropped fails its
                # first statement, is discarded, and _run retries on a new one.
                self.engine = sa.create_engine(sa_url, pool_size=pool_size, max_overflow=4,
                                               connect_args=connect_args)
            if not self._memory:
                _fork.GATE.register(self.engine)
        except ImportError as exc:
            raise StorageError(f"storage {url!r}: a database driver is missing ({exc}); pip install 'psycopg[binary]'") from None
        except sa.exc.ArgumentError as exc:
            raise StorageError(f"storage {url!r}: {exc}") from None
        if read_only_file:
            self.read_only = True
            self._check_schema()
        else:
            self._ensure_schema()
            self.read_only = read_only
        self._reached = True

    # -- engine set-up ------------------------------------------------------------------------
    def _install_sqlite_hooks(self, busy_timeout_s: float, writable: bool) -> None:
        memory = self._memory

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            if writable and not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            if mode is not None:  # None: autocommit, for a read that is one statement
                conn.exec_driver_sql(f"BEGIN {mode}")

    def _attempt(self, fn: Callable[[Connection], T], write: bool, isolation: str | None = None) -> T:
        """Run ``fn`` in one transaction and commit it. Write transactions on SQLite take the
        database's write lock first; on PostgreSQL their id is read before COMMIT, so that a lost
        answer to the COMMIT raises :class:`_CommitUnknown` (resolved by :meth:`_committed`)."""
        if self._lock is not None:
            self._lock.acquire()
        try:
            # A stop signal (SIGTERM, Ctrl-C) takes effect once the transaction has ended.
            with process.stop_signals_deferred(), _fork.GATE.transaction(), self.engine.connect() as conn:
                conn.info.pop(_XID_KEY, None)
                if self.dialect == "sqlite" and not write:
                    conn = conn.execution_options(sqlite_begin=None if isolation == "AUTOCOMMIT" else "DEFERRED")
                elif isolation is not None and self.dialect == "postgresql":
                    # psycopg opens the transaction with it ("BEGIN ISOLATION LEVEL ..."): no round trip
                    conn = conn.execution_options(isolation_level=isolation)
                trans = conn.begin()
                try:
                    result = fn(conn)
                    tracked = write and self.dialect == "postgresql" and isolation != "AUTOCOMMIT"
                    xid = conn.info.pop(_XID_KEY, None) if tracked else None
                    if tracked and xid is None:  # no study lock took it (see _lock_study)
                        xid = conn.exec_driver_sql(_CURRENT_XID).scalar()
                except BaseException:
                    trans.rollback()
                    raise
                try:
                    trans.commit()
                except DBAPIError as exc:
                    if xid is not None and self._failure(exc) == "connection":
                        raise _CommitUnknown(int(xid), result) from exc
                    raise
                return result
        finally:
            if self._lock is not None:
                self._lock.release()

    def _run(self, fn: Callable[[Connection], T], write: bool = True, isolation: str | None = None) -> T:
        """Run ``fn`` in a transaction, retrying transient conflicts (deadlocks, busy files) a few
        times and a lost connection for up to ``reconnect_timeout_s`` (see the module docstring:
        a transaction is never applied twice). Then a one-line :class:`StorageError`.
        ``isolation``: a PostgreSQL isolation level for this transaction (default READ COMMITTED);
        ``"AUTOCOMMIT"`` (both databases) for a read that is a single statement: no transaction
        around it, since one statement sees one state of the database."""
        if write and self.read_only:
            raise StorageError(f"storage {self.url} was opened read-only; it cannot be written through this object")
        delay = 0.01
        conflicts = 0
        lost_since: float | None = None
        while True:
            try:
                return self._attempt(fn, write, isolation)
            except _CommitUnknown as unknown:
                cause = unknown.__cause__
                assert isinstance(cause, DBAPIError)
                if self._committed(unknown.xid, cause):
                    return unknown.result  # type: ignore[no-any-return]
                exc, kind = cause, "connection"  # it was rolled back: run it again
            except DBAPIError as error:
                exc, kind = error, self._failure(error)
                if kind is None:
                    if isinstance(exc, OperationalError):
                        raise StorageError(f"storage {self.url}: {_one_line(exc)}") from exc
                    raise
            if kind == "conflict":
                conflicts += 1
                if conflicts >= 8:
                    raise StorageError(f"storage {self.url}: {_one_line(exc)}") from exc
            else:
                lost_since = time.monotonic() if lost_since is None else lost_since
                if time.monotonic() - lost_since >= self.reconnect_timeout_s:
                    raise self._lost(exc) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _committed(self, xid: int, cause: DBAPIError) -> bool:
        """Whether PostgreSQL applied the transaction ``xid`` whose COMMIT's answer was lost, asked
        on a new connection (retried for up to ``reconnect_timeout_s``)."""
        since = time.monotonic()
        delay = 0.02
        while True:
            try:
                with _fork.GATE.transaction(), self.engine.connect() as conn:
                    status = conn.execute(_XID_STATUS, {"xid": xid}).scalar()
                if status in ("committed", "aborted"):
                    return status == "committed"
                if status is None:  # too old to be known: cannot happen seconds after the commit
                    raise StorageError(f"storage {self.url}: the connection was lost during a commit and the "
                                       "server cannot tell whether it was applied")
                # "in progress": the server has not yet ended the transaction of the lost connection
            except DBAPIError as exc:
                if self._failure(exc) is None:
                    raise StorageError(f"storage {self.url}: {_one_line(exc)}") from exc
                cause = exc
            if time.monotonic() - since >= self.reconnect_timeout_s:
                raise self._lost(cause) from cause
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _failure(self, exc: DBAPIError) -> Literal["conflict", "connection"] | None:
        """What kind of transient failure ``exc`` is: a conflict with another transaction, a lost
        (or, once the database was reached, refused) connection, or none (a real error)."""
        return _failure_kind(exc, self.dialect == "postgresql", self._reached)

    def _lost(self, exc: DBAPIError) -> StorageError:
        return StorageError(
            f"storage {self.url}: lost the connection to the database and could not get it back within "
            f"{self.reconnect_timeout_s:g} s ({_one_line(exc)})"
        )

    def _open(self, fn: Callable[[Connection], None], write: bool) -> None:
        try:
            self._run(fn, write)
        except StorageError:
            raise
        except DBAPIError as exc:
            raise StorageError(f"storage {self.url}: cannot open the database: {_one_line(exc)}") from None

    def _ensure_schema(self) -> None:
        def create(conn: Connection) -> None:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7243902117)")
            metadata.create_all(conn)
            row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).first()
            if row is None:
                conn.execute(sa.insert(meta_table).values(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            found = int(row.value)
            if found < SCHEMA_VERSION:  # an older thrifty wrote it: upgrade in place (storage/_migrate.py)
                found = _migrate.upgrade(conn, found, (cache_entries, stage_runs))
                conn.execute(sa.update(meta_table).where(meta_table.c.key == "schema_version")
                             .values(value=str(found)))
            self._check_version(conn, found)

        self._open(create, write=True)

    def _check_schema(self) -> None:
        """Read-only opening: thrifty's tables must be there, in a version this thrifty reads."""
        def check(conn: Connection) -> None:
            where = sqlite_path(self.url) if self.dialect == "sqlite" else self.url
            inspector = sa.inspect(conn)
            row = None
            if all(inspector.has_table(name) for name in _CORE_TABLES):
                row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).first()
            if row is None:
                raise NoDatabase(f"{where} holds no thrifty studies (it has no thrifty tables); check the storage URL")
            found = int(row.value)
            if found < SCHEMA_VERSION:
                raise StorageError(
                    f"storage {self.url} has schema version {found}, written by an older thrifty; read commands "
                    "change nothing: open it once for writing (thrifty run, or Study.load in Python) to upgrade it"
                )
            self._check_version(conn, found)

        self._open(check, write=False)

    def _check_version(self, conn: Connection, found: int) -> None:
        if found == SCHEMA_VERSION:
            _check_columns(conn, self.url)
        if found > SCHEMA_VERSION:
            raise StorageError(
                f"storage {self.url} has schema version {found}, written by a newer thrifty; "
                f"this thrifty reads schema version {SCHEMA_VERSION} at most. Upgrade thrifty "
                "(pip install -U thrifty) or use another database."
            )

    def close(self) -> None:
        self.engine.dispose()

    # -- locking helpers ----------------------------------------------------------------------
    def _lock_study(self, conn: Connection, study_id: int, to_start: int | None = None) -> sa.Row[Any]:
        """Lock and read the study row (``_SEL_STUDY``'s columns; ``to_start``: also
        ``pending_number``, the oldest enqueued trial's). SQLite's ``BEGIN IMMEDIATE`` already holds
        the database's write lock; PostgreSQL takes the row's, and the row brings the transaction
        id along (see :meth:`_attempt`)."""
        if to_start is None:
            found = _rows(conn, _LOCK_STUDY[self.dialect], {"p_sid": study_id})
        else:
            found = _rows(conn, _LOCK_STUDY_TO_START[self.dialect], {"p_sid": study_id, "p_number": to_start})
        if not found:
            raise StudyNotFound(f"study id {study_id} no longer exists in {self.url} (was it deleted?)")
        row = found[0]
        if self.dialect == "postgresql":
            conn.info[_XID_KEY] = row.xid
        return row

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
        """Insert the study unless its name is taken; else load the existing one (``load_if_exists``)
        or raise :class:`DuplicateStudy`. Atomic on any number of processes: on SQLite the check and
        the insert are one ``BEGIN IMMEDIATE`` transaction; on PostgreSQL two transactions may both
        find the name free, and the unique index makes the later insert fail (once the first one has
        committed), which is then the same as finding the name taken."""
        now = time.time()
        taken = (
            f"a study named {name!r} already exists in {self.url}; load it with "
            "Study.load(name, storage=...) or pass load_if_exists=True"
        )

        def txn(conn: Connection) -> bool:
            if conn.execute(sa.select(studies.c.id).where(studies.c.name == name)).first() is not None:
                if load_if_exists:
                    return False
                raise DuplicateStudy(taken)
            conn.execute(
                sa.insert(studies).values(
                    name=name,
                    space=_dumps(space),
                    objectives=_dumps(objectives),
                    strategy=_dumps(strategy),
                    scheduler=_dumps(scheduler),
                    seed=seed,
                    budget=_dumps(budget),
                    settings=_dumps(settings),
                    created_at=now,
                    next_number=0,
                    n_started=0,
                    spent_usd=0.0,
                    gpu_s=0.0,
                    n_running=0,
                    active_s=0.0,
                    n_finished=0,
                )
            )
            return True

        for _ in range(3):  # a study that exists, then is deleted before it is loaded: try again
            try:
                created = self._run(txn)
            except IntegrityError:
                if not load_if_exists:
                    raise DuplicateStudy(taken) from None
                created = False
            try:
                return self.load_study(name), created
            except StudyNotFound:
                if created:
                    raise
        raise StorageError(f"storage {self.url}: study {name!r} was created and deleted again by others meanwhile")

    def _record(self, row: sa.Row[Any]) -> StudyRecord:
        return StudyRecord(
            id=row.id,
            name=row.name,
            space=json.loads(row.space),
            objectives=json.loads(row.objectives),
            strategy=json.loads(row.strategy),
            scheduler=json.loads(row.scheduler),
            seed=int(row.seed),
            budget=json.loads(row.budget),
            settings=json.loads(row.settings),
            created_at=row.created_at,
            n_started=row.n_started,
            spent_usd=row.spent_usd,
            gpu_s=row.gpu_s,
            n_running=row.n_running,
            active_s=row.active_s,
            active_since=row.active_since,
            budget_stop=_budget_stop(row),
        )

    def load_study(self, name: str) -> StudyRecord:
        def txn(conn: Connection) -> sa.Row[Any] | None:
            return conn.execute(sa.select(studies).where(studies.c.name == name)).first()

        row = self._run(txn, write=False)
        if row is None:
            known = [s.name for s in self.list_studies()]
            hint = f" (studies there: {', '.join(known[:10])})" if known else " (it holds no studies)"
            raise StudyNotFound(f"no study named {name!r} in {self.url}{hint}")
        return self._record(row)

    def study_status(self, study_id: int) -> StudyRecord:
        row = self._run(lambda c: c.execute(sa.select(studies).where(studies.c.id == study_id)).first(), write=False)
        if row is None:
            raise StudyNotFound(f"study id {study_id} no longer exists in {self.url} (was it deleted?)")
        return self._record(row)

    def list_studies(self) -> list[StudySummary]:
        def txn(conn: Connection) -> list[StudySummary]:
            rows = conn.execute(sa.select(studies).order_by(studies.c.id)).all()
            counts: dict[int, dict[str, int]] = {}
            q = sa.select(trials.c.study_id, trials.c.state, sa.func.count()).group_by(
                trials.c.study_id, trials.c.state
            )
            for sid, state, n in conn.execute(q):
                counts.setdefault(sid, {})[state] = n
            return [
                StudySummary(
                    name=r.name,
                    created_at=r.created_at,
                    objectives=json.loads(r.objectives),
                    counts=counts.get(r.id, {}),
                    spent_usd=r.spent_usd,
                )
                for r in rows
            ]

        return self._run(txn, write=False)

    def delete_study(self, name: str) -> None:
        def txn(conn: Connection) -> None:
            row = conn.execute(sa.select(studies.c.id).where(studies.c.name == name)).first()
            if row is None:
                raise StudyNotFound(f"no study named {name!r} in {self.url}")
            trial_ids = sa.select(trials.c.id).where(trials.c.study_id == row.id).scalar_subquery()
            conn.execute(sa.delete(cache_entries).where(cache_entries.c.study_id == row.id))
            conn.execute(sa.delete(stage_runs).where(stage_runs.c.study_id == row.id))
            conn.execute(sa.delete(measurements).where(measurements.c.trial_id.in_(trial_ids)))
            conn.execute(sa.delete(trials).where(trials.c.study_id == row.id))
            conn.execute(sa.delete(studies).where(studies.c.id == row.id))

        self._run(txn)

    def update_study(
        self,
        study_id: int,
        *,
        budget: Mapping[str, Any] | None = None,
        strategy: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        def txn(conn: Connection) -> None:
            self._lock_study(conn, study_id)
            values: dict[str, Any] = {}
            if strategy is not None:
                values["strategy"] = _dumps(strategy)
            if scheduler is not None:
                values["scheduler"] = _dumps(scheduler)
            if settings is not None:  # merged into the stored ones under the lock: no update is lost
                stored = conn.execute(sa.select(studies.c.settings).where(studies.c.id == study_id)).scalar_one()
                values["settings"] = _dumps({**json.loads(stored), **settings})
            if values:
                conn.execute(sa.update(studies).where(studies.c.id == study_id).values(**values))
            if budget is not None:
                # A new budget re-arms the circuit breaker; trials it had asked to stop may go on.
                conn.execute(
                    sa.update(studies)
                    .where(studies.c.id == study_id)
                    .values(budget=_dumps(budget), budget_stop=None, budget_stop_at=None, budget_stop_limit=None)
                )
                conn.execute(
                    sa.update(trials)
                    .where(trials.c.study_id == study_id, trials.c.state == _RUNNING,
                           trials.c.stop_kind == StopKind.BUDGET.value)
                    .values(stop_requested=False, reason=None, stop_kind=None, stop_limit=None)
                )

        self._run(txn)

    # -- trials -------------------------------------------------------------------------------
    def snapshot(self, study_id: int, since: int = 0, run_tag: str | None = None, *,
                 history: bool = True) -> Snapshot:
        """One statement (``_SNAPSHOTS``; on PostgreSQL without a transaction around it, so one
        round trip): the study row, the history's delta (unsettled trials and those settled after
        ``since``; ``history=False``: the enqueued trials only) with their measurements, and the
        trials started under ``run_tag``."""
        def txn(conn: Connection) -> Snapshot:
            params: dict[str, Any] = {"p_sid": study_id}
            if history:
                params["p_after"] = since
            if run_tag is not None:
                params["p_run_tag"] = run_tag
            rows = _rows(conn, _SNAPSHOTS[self.dialect, history, run_tag is not None], params)
            if not rows:
                raise StudyNotFound(f"study id {study_id} no longer exists in {self.url} (was it deleted?)")
            delta: dict[int, tuple[Any, list[Measurement]]] = {}  # in number order, as read
            for r in rows:
                if r.t_id is None:
                    continue
                entry = delta.get(r.t_id)
                if entry is None:
                    entry = delta[r.t_id] = (_prefixed(r, "t_"), [])
                if r.m_id is not None:
                    entry[1].append(_measurement(_prefixed(r, "m_")))
            trials_read = tuple(_trial_of(t, taken) for t, taken in delta.values())
            return Snapshot(study_id, _status(rows[0]), trials_read, rows[0].run_started if run_tag else None)

        return self._run(txn, write=False, isolation="AUTOCOMMIT")

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
        """See :meth:`Storage.start`: under the study lock, the reap (if asked), the limits, then
        the request's condition, and the trial is started or the answer is a conflict."""
        def txn(conn: Connection) -> Started | Conflict:
            st = self._lock_study(conn, study_id, to_start=request.number)
            if reap is not None:
                reaped = self._reap_locked(conn, st, study_id, reap, now, None, None)
                if reaped:
                    return Conflict(f"trials {', '.join(map(str, reaped))} were reaped (their workers are lost)")
            run_started = None
            if request.kind != "resume" and limits.run_tag is not None and limits.run_max_started is not None:
                run_started = conn.execute(_COUNT_RUN, {"p_sid": study_id, "p_run_tag": limits.run_tag}).scalar_one()
            rules.check_start(request.kind, _budget(st), _usage(st, now), limits, run_started)
            if request.kind == "resume":
                return self._resume_locked(conn, study_id, request.number, worker_id, limits.run_tag, now)
            if request.kind == "claim":
                return self._claim_locked(conn, study_id, request.number, worker_id, limits.run_tag, now, resources)
            assert request.params is not None
            if st.pending_number is not None:
                return Conflict(f"trial {st.pending_number} is enqueued: enqueued trials start first")
            params = request.params_for(st.next_number)
            if params is None:
                return Conflict(f"the next trial number is {st.next_number}, not {request.number}")
            if st.next_number != request.number:  # else no trial was created since: none can be a duplicate
                if self.dialect == "postgresql":  # read with the lock
                    since = st.params_since or ()
                else:
                    since = [r.params for r in conn.execute(_SEL_PARAMS_SINCE, {"p_sid": study_id,
                                                                                "p_number": request.number})]
                if any(json.loads(taken) == params for taken in since):
                    return Conflict("a trial with the same params started since the snapshot")
            return Started(self._insert_running(conn, st, study_id, dict(params), worker_id, limits.run_tag,
                                                now, resources))

        result = self._run(txn)
        if (self.dialect == "postgresql" and request.kind == "new" and isinstance(result, Started)
                and _grown(result.trial.number)):
            self._refresh_statistics()
        return result

    def _refresh_statistics(self) -> None:
        """``ANALYZE`` the trials and measurements (PostgreSQL), run as a study's trial count
        reaches 32, 64, 128, ...: a prepared statement keeps the plan it was given while the table
        was small, and in a study of fast trials autovacuum may not analyze it for minutes (a
        snapshot's plan scanned every trial of the study at 5,000 trials, read 400 pages and grew
        linearly). New statistics make PostgreSQL plan them again. A failure (a user who does not
        own the tables: a warning only) is logged and the study goes on."""
        try:
            with process.stop_signals_deferred(), _fork.GATE.transaction(), self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    f"ANALYZE {trials.name}, {measurements.name}")
        except DBAPIError as exc:
            log.warning("storage %s: could not refresh the planner's statistics: %s", self.url, _one_line(exc))

    def _insert_running(
        self, conn: Connection, st: sa.Row[Any], study_id: int, params: dict[str, Any], worker_id: str,
        run_tag: str | None, now: float, resources: Mapping[str, float] | None,
    ) -> Trial:
        """Insert a new RUNNING trial with the study's next number (counted as started)."""
        number = st.next_number
        count, insert = _INSERT_NEW[self.dialect]
        if count is not None:
            _rows(conn, count, {"p_sid": study_id, "p_now": now})
        values = {
            "study_id": study_id, "number": number, "state": _RUNNING, "params": _dumps(params), "created_at": now,
            "started_at": now, "heartbeat_at": now, "worker_id": worker_id, "run_tag": run_tag, "attempt": 0,
            "retried": False, "stop_requested": False, "cost_usd": 0.0, "elapsed_s": 0.0, "gpu_s": 0.0,
            "resources": _dumps(dict(resources)) if resources else None,
        }
        (inserted,) = _rows(conn, insert, {"p_sid": study_id, "p_now": now, **{"p_" + k: v for k, v in values.items()}})
        return Trial(
            id=int(inserted[0]), number=number, state=TrialState.RUNNING, params=params,
            created_at=now, started_at=now, heartbeat_at=now, worker_id=worker_id, resources=resources or {},
        )

    def _claim_locked(
        self, conn: Connection, study_id: int, number: int, worker_id: str, run_tag: str | None, now: float,
        resources: Mapping[str, float] | None,
    ) -> Started | Conflict:
        """Start the PENDING trial ``number`` (its own resources, else ``resources``)."""
        row = conn.execute(_SEL_IN_STATE, {"p_sid": study_id, "p_number": number, "p_state": _PENDING}).first()
        if row is None:
            return Conflict(f"trial {number} is no longer enqueued")
        res_json = row.resources or (_dumps(dict(resources)) if resources else None)
        conn.execute(_CLAIM, {"p_tid": row.id, "p_worker": worker_id, "p_now": now, "p_run_tag": run_tag,
                              "p_resources": res_json})
        conn.execute(_COUNT_STARTED, {"p_sid": study_id, "p_now": now})
        return Started(self._select_trials(conn, None, trial_id=row.id)[0])

    def _resume_locked(
        self, conn: Connection, study_id: int, number: int, worker_id: str, run_tag: str | None, now: float
    ) -> Started | Conflict:
        """Start the PAUSED trial ``number`` again from its last step (``start_step``); a resumed
        trial is not a new trial: the trial count does not change."""
        row = conn.execute(_SEL_IN_STATE, {"p_sid": study_id, "p_number": number,
                                           "p_state": TrialState.PAUSED.value}).first()
        if row is None:
            return Conflict(f"trial {number} is no longer paused")
        last = conn.execute(sa.select(sa.func.max(measurements.c.step)).where(measurements.c.trial_id == row.id)
                            ).scalar_one()
        conn.execute(
            sa.update(trials).where(trials.c.id == row.id).values(
                state=_RUNNING, worker_id=worker_id, heartbeat_at=now, run_tag=run_tag, finish_order=None,
                finished_at=None, reason=None, stop_kind=None, stop_limit=None, stop_requested=False,
                start_step=last,
            )
        )
        conn.execute(
            sa.update(studies).where(studies.c.id == study_id).values(
                n_running=studies.c.n_running + 1,
                active_since=sa.case((studies.c.n_running == 0, now), else_=studies.c.active_since),
            )
        )
        return Started(self._select_trials(conn, None, trial_id=row.id)[0])

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
        def txn(conn: Connection) -> Trial:
            st = self._lock_study(conn, study_id)
            return self._insert_pending(conn, study_id, st.next_number, params, now, None, 0, user_attrs, resources,
                                        parent, start_step)

        return self._run(txn)

    def add_trial(self, study_id: int, trial: Trial, now: float) -> Trial:
        """Insert a finished trial with known results (warm starts, results obtained elsewhere):
        it gets the next number and a settle order, but it was not started here, so it counts
        against no trial budget and its cost is not added to the study's ledger."""
        if not trial.state.is_finished:
            raise ValidationError(f"add_trial: state {trial.state.value!r} is not a finished state")

        def txn(conn: Connection) -> Trial:
            st = self._lock_study(conn, study_id)
            number = st.next_number
            conn.execute(sa.update(studies).where(studies.c.id == study_id).values(
                next_number=studies.c.next_number + 1, n_finished=studies.c.n_finished + 1))
            res = conn.execute(sa.insert(trials).values(
                study_id=study_id, number=number, state=trial.state.value, params=_dumps(dict(trial.params)),
                metrics=_dumps(dict(trial.metrics)), error=trial.error, created_at=now, started_at=trial.started_at,
                finished_at=now, attempt=0, retried=False, stop_requested=False, cost_usd=trial.cost_usd,
                elapsed_s=trial.elapsed_s, gpu_s=trial.gpu_s, reason=trial.reason, stop_kind=_kind(trial.stop_kind),
                stop_limit=trial.stop_limit, finish_order=st.n_finished + 1,
                user_attrs=_dumps(dict(trial.user_attrs)) if trial.user_attrs else None,
                resources=_dumps(dict(trial.resources)) if trial.resources else None,
                usage=_dumps(trial.usage.to_dict()) if trial.usage is not None else None,
            ))
            trial_id = int(res.inserted_primary_key[0])
            for m in trial.measurements:
                conn.execute(_INSERT_MEASUREMENT, {
                    "trial_id": trial_id, "step": m.step, "metrics": _dumps(dict(m.metrics)), "cost_usd": m.cost_usd,
                    "elapsed_s": m.elapsed_s, "gpu_s": m.gpu_s, "timestamp": m.timestamp})
            return self._select_trials(conn, None, trial_id=trial_id)[0]

        return self._run(txn)

    def add_trials(self, study_id: int, records: Sequence[Trial], now: float) -> int:
        """`add_trial` for many trials in one transaction (batched inserts): a study of
        100,000 known results is written in seconds."""
        for t in records:
            if not t.state.is_finished:
                raise ValidationError(f"add_trials: state {t.state.value!r} is not a finished state")
        if not records:
            return 0

        def txn(conn: Connection) -> int:
            st = self._lock_study(conn, study_id)
            first, settled = st.next_number, st.n_finished
            conn.execute(sa.update(studies).where(studies.c.id == study_id).values(
                next_number=studies.c.next_number + len(records), n_finished=studies.c.n_finished + len(records)))
            rows = [dict(
                study_id=study_id, number=first + i, state=t.state.value, params=_dumps(dict(t.params)),
                metrics=_dumps(dict(t.metrics)), error=t.error, created_at=now, started_at=t.started_at,
                finished_at=now, attempt=0, retried=False, stop_requested=False, cost_usd=t.cost_usd,
                elapsed_s=t.elapsed_s, gpu_s=t.gpu_s, reason=t.reason, stop_kind=_kind(t.stop_kind),
                stop_limit=t.stop_limit, finish_order=settled + i + 1,
                user_attrs=_dumps(dict(t.user_attrs)) if t.user_attrs else None,
                resources=_dumps(dict(t.resources)) if t.resources else None,
                usage=_dumps(t.usage.to_dict()) if t.usage is not None else None,
            ) for i, t in enumerate(records)]
            conn.execute(sa.insert(trials), rows)
            if any(t.measurements for t in records):
                ids = dict(conn.execute(sa.select(trials.c.number, trials.c.id).where(
                    trials.c.study_id == study_id, trials.c.number >= first)).all())
                conn.execute(_INSERT_MEASUREMENT, [
                    {"trial_id": ids[first + i], "step": m.step, "metrics": _dumps(dict(m.metrics)),
                     "cost_usd": m.cost_usd, "elapsed_s": m.elapsed_s, "gpu_s": m.gpu_s, "timestamp": m.timestamp}
                    for i, t in enumerate(records) for m in t.measurements])
            return len(records)

        return self._run(txn)

    def _insert_pending(
        self,
        conn: Connection,
        study_id: int,
        number: int,
        params: Mapping[str, Any],
        now: float,
        retry_of: int | None,
        attempt: int,
        user_attrs: Mapping[str, Any] | None,
        resources: Mapping[str, float] | None = None,
        parent: int | None = None,
        start_step: float | None = None,
    ) -> Trial:
        conn.execute(
            sa.update(studies).where(studies.c.id == study_id).values(next_number=studies.c.next_number + 1)
        )
        res = conn.execute(
            sa.insert(trials).values(
                study_id=study_id, number=number, state=_PENDING, params=_dumps(dict(params)), created_at=now,
                retry_of=retry_of, attempt=attempt, retried=False, stop_requested=False, cost_usd=0.0,
                elapsed_s=0.0, gpu_s=0.0, user_attrs=_dumps(dict(user_attrs)) if user_attrs else None,
                resources=_dumps(dict(resources)) if resources else None, parent=parent, start_step=start_step,
            )
        )
        return Trial(
            id=int(res.inserted_primary_key[0]), number=number, state=TrialState.PENDING, params=params,
            created_at=now, retry_of=retry_of, user_attrs=user_attrs or {}, resources=resources or {},
            parent=parent, start_step=start_step,
        )

    def _not_running(self, conn: Connection, trial_id: int, what: str) -> TrialNotRunning:
        row = conn.execute(sa.select(trials.c.number, trials.c.state, trials.c.error).where(trials.c.id == trial_id)).first()
        if row is None:
            return TrialNotRunning(f"cannot {what}: trial id {trial_id} does not exist")
        why = f" ({row.error})" if row.error else ""
        return TrialNotRunning(f"cannot {what} trial {row.number}: it is already {row.state}{why}")

    def _maybe_break_circuit(self, conn: Connection, st: Any, study_id: int, now: float) -> StopReason | None:
        """Trip the breaker if the guard says a limit is reached by the study as it is now (``st``:
        its row after this transaction's charge): returns the reason if it tripped now."""
        if st.budget_stop is not None:
            return None
        hit = rules.breaker_stop(_budget(st), _usage(st, now))
        if hit is None:
            return None
        stop = hit.stop_reason()
        conn.execute(_BREAK_CIRCUIT, {"p_sid": study_id, "p_reason": stop.text, "p_limit": hit.limit})
        conn.execute(_MARK_BUDGET_STOP, {"p_sid": study_id, "p_message": hit.message, "p_limit": hit.limit,
                                         "p_now": now})
        return stop

    def report(self, study_id: int, trial_id: int, measurement: Measurement, now: float) -> StopReason | None:
        def txn(conn: Connection) -> StopReason | None:
            params = {"p_sid": study_id, "p_tid": trial_id, "p_cost": measurement.cost_usd,
                      "p_elapsed": measurement.elapsed_s, "p_gpu_s": measurement.gpu_s, "p_now": now}
            # The study's lock and its ledgers in one statement, returning the row after the charge.
            st = conn.execute(_CHARGE_STUDY[self.dialect], params).first()
            if st is None:
                raise StudyNotFound(f"study id {study_id} no longer exists in {self.url} (was it deleted?)")
            if self.dialect == "postgresql":
                conn.info[_XID_KEY] = st.xid
            row = conn.execute(_REPORT, params).first()
            if row is None:  # the rollback undoes the charge
                raise self._not_running(conn, trial_id, "report to")
            conn.execute(_INSERT_MEASUREMENT, _measurement_values(trial_id, measurement))
            # The breaker: trip it if a hard budget is now reached (in this same transaction).
            tripped = self._maybe_break_circuit(conn, st, study_id, now)
            if row.stop_requested:
                return StopReason(StopKind(row.stop_kind or StopKind.USER.value), row.reason or "stop requested",
                                  row.stop_limit)
            return tripped  # the breaker may have just tripped in this transaction

        return self._run(txn)

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
        m = measurement
        params = {
            "p_sid": study_id, "p_tid": trial_id, "p_state": state.value, "p_keeps_stop": state in _STOP_STATES,
            "p_now": now, "p_error": error, "p_metrics": _dumps(dict(metrics)) if metrics is not None else None,
            "p_cost": m.cost_usd if m is not None else 0.0, "p_elapsed": m.elapsed_s if m is not None else 0.0,
            "p_gpu_s": m.gpu_s if m is not None else 0.0,
            "p_reason": stop.text if stop is not None else None, "p_kind": _kind(stop.kind) if stop is not None else None,
            "p_limit": stop.limit if stop is not None else None,
            "p_usage": _dumps(usage.to_dict()) if usage is not None else None,
        }
        if self.dialect == "postgresql":
            return self._finish_at_once(study_id, trial_id, params, m, now)

        def txn(conn: Connection) -> Trial:
            # Before the lock: the trial's measurements so far (only its own worker adds any).
            taken = [_measurement(r) for r in _rows(conn, _SEL_TRIAL_MEASUREMENTS, {"p_tid": trial_id})]
            settle, finish = _SETTLE  # the study's lock, then the trial's
            found = _rows(conn, settle, params)
            if not found:
                raise StudyNotFound(f"study id {study_id} no longer exists in {self.url} (was it deleted?)")
            st = found[0]
            found = _rows(conn, finish, {**params, "p_order": st.n_finished})
            if not found:  # nothing was written that this rollback does not undo
                raise self._not_running(conn, trial_id, "finish")
            row = found[0]
            if m is not None:
                _rows(conn, _INSERT_MEASUREMENT, _measurement_values(trial_id, m))
                taken.append(m)
            # The breaker, from the study as it is now (this charge included).
            self._maybe_break_circuit(conn, st, study_id, now)
            return _trial_of(row, taken)

        return self._run(txn)

    def _finish_at_once(
        self, study_id: int, trial_id: int, params: dict[str, Any], m: Measurement | None, now: float
    ) -> Trial:
        """PostgreSQL's tell: ``_FINISH_AT_ONCE``, one statement without a transaction around it,
        then the breaker (in a transaction of its own, only when the charge reached a hard limit:
        until it trips, the next report or start sees the limit reached as well).

        A lost connection leaves unknown whether the statement was applied; it is run again. A
        trial is ended only once, so a second run finds it not running: if it is ended as this
        call ends it (state, time, metrics, error), the first run was applied and its trial is the
        answer; else :class:`TrialNotRunning`."""
        params = {**params, "p_has_m": m is not None, "p_m_step": m.step if m is not None else None,
                  "p_m_metrics": _dumps(dict(m.metrics)) if m is not None else None,
                  "p_m_timestamp": m.timestamp if m is not None else None}
        runs = 0

        def txn(conn: Connection) -> tuple[Trial, Any]:
            nonlocal runs
            runs += 1
            found = _rows(conn, _FINISH_AT_ONCE, params)
            if found:
                row = found[0]
                taken = [_measurement(_TakenBefore._make(e)) for e in (row.taken_before or ())]
                return _trial_of(row, taken + ([m] if m is not None else [])), _prefixed(row, "s_")
            self._lock_study(conn, study_id)  # a deleted study says so
            taken = [_measurement(r) for r in _rows(conn, _SEL_TRIAL_MEASUREMENTS, {"p_tid": trial_id})]
            if runs > 1:  # perhaps the first run's answer was lost
                done = conn.execute(_SEL_TRIAL, {"p_tid": trial_id}).first()
                if done is not None and (done.state, done.finished_at, done.metrics, done.error) == (
                        params["p_state"], params["p_now"], params["p_metrics"], params["p_error"]):
                    st = conn.execute(_SEL_STUDY, {"p_sid": study_id}).first()
                    return _trial_of(done, taken), st
            raise self._not_running(conn, trial_id, "finish")

        trial, st = self._run(txn, isolation="AUTOCOMMIT")
        if st.budget_stop is None and rules.breaker_stop(_budget(st), _usage(st, now)) is not None:
            self._run(lambda conn: self._maybe_break_circuit(conn, self._lock_study(conn, study_id), study_id, now))
        return trial

    def heartbeat(self, trial_ids: Sequence[int], now: float) -> None:
        if not trial_ids:
            return
        self._run(
            lambda c: c.execute(
                sa.update(trials)
                .where(trials.c.id.in_(list(trial_ids)), trials.c.state == _RUNNING)
                .values(heartbeat_at=now)
            )
        )

    def record_usage(self, trial_id: int, usage: ResourceUsage) -> bool:
        """See :meth:`Storage.record_usage`: one UPDATE of the trial's row while it is RUNNING (on
        PostgreSQL without a transaction around it: run again after a lost answer, it writes the
        same; the trial's row is its only lock)."""
        text = _dumps(usage.to_dict())
        return bool(self._run(lambda c: _rows(c, _RECORD_USAGE, {"p_tid": trial_id, "p_usage": text}),
                              isolation="AUTOCOMMIT"))

    def reap(
        self, study_id: int, policy: RetryPolicy, now: float, worker_id: str | None = None, reason: str | None = None
    ) -> list[int]:
        def txn(conn: Connection) -> list[int]:
            # Cheap check first, without the study lock: usually nothing is stale.
            if conn.execute(sa.select(trials.c.id).where(*_stale(study_id, policy, now, worker_id)).limit(1)
                            ).first() is None:
                return []
            st = self._lock_study(conn, study_id)
            return self._reap_locked(conn, st, study_id, policy, now, worker_id, reason)

        return self._run(txn)

    def _reap_locked(
        self, conn: Connection, st: sa.Row[Any], study_id: int, policy: RetryPolicy, now: float,
        worker_id: str | None, reason: str | None,
    ) -> list[int]:
        """Fail the stale RUNNING trials (see :meth:`reap`) under the study lock ``st``, re-enqueueing
        their params while retries are left. Returns the failed trials' numbers."""
        rows = conn.execute(
            sa.select(trials.c.id, trials.c.number, trials.c.params, trials.c.attempt, trials.c.heartbeat_at,
                      trials.c.worker_id, trials.c.user_attrs, trials.c.resources)
            .where(*_stale(study_id, policy, now, worker_id))
            .order_by(trials.c.number)
        ).all()
        next_number = st.next_number
        order = st.n_finished
        failed = []
        for r in rows:
            order += 1
            retry = r.attempt < policy.max_retries
            why = rules.reap_error(r.worker_id, worker_id is not None, reason, now - (r.heartbeat_at or now),
                                    policy.heartbeat_grace_s, next_number if retry else None, r.attempt,
                                    policy.max_retries)
            conn.execute(
                sa.update(trials)
                .where(trials.c.id == r.id)
                .values(state=TrialState.FAILED.value, error=why, finished_at=now, retried=retry,
                        finish_order=order)
            )
            conn.execute(_COUNT_FINISHED, {"p_sid": study_id, "p_now": now})
            if retry:
                conn.execute(
                    sa.update(studies).where(studies.c.id == study_id).values(n_started=studies.c.n_started - 1)
                )
                attrs = json.loads(r.user_attrs) if r.user_attrs else None
                self._insert_pending(conn, study_id, next_number, json.loads(r.params), now, r.number,
                                     r.attempt + 1, attrs, json.loads(r.resources) if r.resources else None)
                next_number += 1
            failed.append(r.number)
        return failed

    def request_stop(self, trial_id: int, reason: str = "user: stop requested") -> None:
        self._run(
            lambda c: c.execute(
                sa.update(trials)
                .where(trials.c.id == trial_id, trials.c.state == _RUNNING)
                .values(stop_requested=True, reason=reason, stop_kind=StopKind.USER.value, stop_limit=None)
            )
        )

    def stop_requested(self, trial_id: int) -> bool:
        row = self._run(lambda c: c.execute(_SEL_STOP, {"p_tid": trial_id}).first(), write=False)
        return bool(row is not None and (row.stop_requested or row.state != _RUNNING))

    def get_trial(self, trial_id: int) -> Trial:
        def txn(conn: Connection) -> list[Trial]:
            return self._select_trials(conn, None, trial_id=trial_id)

        found = self._run(txn, write=False)
        if not found:
            raise TrialNotRunning(f"trial id {trial_id} does not exist")
        return found[0]

    def get_trials(
        self,
        study_id: int,
        states: Sequence[TrialState] | None = None,
        with_measurements: bool = True,
        offset: int = 0,
        limit: int | None = None,
        finished_after: int | None = None,
    ) -> list[Trial]:
        return self._run(
            lambda c: self._select_trials(c, study_id, states, with_measurements, offset, limit,
                                          finished_after=finished_after),
            write=False,
        )

    def _select_trials(
        self,
        conn: Connection,
        study_id: int | None,
        states: Sequence[TrialState] | None = None,
        with_measurements: bool = True,
        offset: int = 0,
        limit: int | None = None,
        trial_id: int | None = None,
        finished_after: int | None = None,
    ) -> list[Trial]:
        by_trial: dict[int, list[Measurement]] = {}
        if trial_id is not None:  # the hot path of tell: prebuilt statements
            rows = conn.execute(_SEL_TRIAL, {"p_tid": trial_id}).all()
            if with_measurements and rows:
                by_trial[trial_id] = [
                    _measurement(m) for m in conn.execute(_SEL_TRIAL_MEASUREMENTS, {"p_tid": trial_id})
                ]
        elif finished_after is not None and not (states or offset or limit is not None):  # the history's delta
            rows = conn.execute(_SEL_DELTA, {"p_sid": study_id, "p_after": finished_after}).all()
            if with_measurements and rows:
                for m in conn.execute(_SEL_MEASUREMENTS_OF, {"p_tids": [r.id for r in rows]}):
                    by_trial.setdefault(m.trial_id, []).append(_measurement(m))
        else:
            q = sa.select(trials).order_by(trials.c.number).where(trials.c.study_id == study_id)
            if finished_after is not None:  # unfinished trials and those that finished later
                q = q.where(sa.or_(trials.c.finish_order.is_(None), trials.c.finish_order > finished_after))
            if states:
                q = q.where(trials.c.state.in_([TrialState.parse(s).value for s in states]))
            if offset:
                q = q.offset(offset)
            if limit is not None:
                q = q.limit(limit)
            rows = conn.execute(q).all()
            if with_measurements and rows:
                mq = sa.select(measurements).order_by(measurements.c.id)
                if offset or limit is not None or states or finished_after is not None:
                    mq = mq.where(measurements.c.trial_id.in_([r.id for r in rows]))
                else:
                    mq = mq.where(
                        measurements.c.trial_id.in_(sa.select(trials.c.id).where(trials.c.study_id == study_id))
                    )
                for m in conn.execute(mq):
                    by_trial.setdefault(m.trial_id, []).append(_measurement(m))
        return [_trial_of(r, by_trial.get(r.id, ())) for r in rows]

    def count_run(self, study_id: int, run_tag: str) -> int:
        """Trials started under ``run_tag`` (a retried trial counts once)."""
        return int(self._run(lambda c: c.execute(_COUNT_RUN, {"p_sid": study_id, "p_run_tag": run_tag}).scalar_one(),
                             write=False))

    # -- the memo cache's index (schema 5): short transactions of their own, no study lock -------
    def cache_put(self, study_id: int, entry: CacheEntry) -> None:
        values = {"study_id": study_id, "key": entry.key, "stage": entry.stage, "params": _dumps(dict(entry.params)),
                  "size_bytes": int(entry.size_bytes), "run_s": float(entry.run_s),
                  "run_cost_usd": float(entry.run_cost_usd), "read_s": float(entry.read_s),
                  "read_cost_usd": float(entry.read_cost_usd), "created_at": float(entry.created_at),
                  "hits": int(entry.hits)}

        insert = (postgresql_insert if self.dialect == "postgresql" else sqlite_insert)(cache_entries).values(values)
        # One statement, so two workers indexing one key at once both succeed (the last one wins).
        upsert = insert.on_conflict_do_update(index_elements=["study_id", "key"],
                                              set_={k: v for k, v in values.items() if k not in ("study_id", "key")})

        def txn(conn: Connection) -> None:
            if conn.execute(sa.select(studies.c.id).where(studies.c.id == study_id)).first() is None:
                raise StudyNotFound(f"study id {study_id} no longer exists in {self.url} (was it deleted?)")
            conn.execute(upsert)

        self._run(txn)

    def cache_entries(self, study_id: int) -> list[CacheEntry]:
        def txn(conn: Connection) -> list[CacheEntry]:
            rows = conn.execute(sa.select(cache_entries).where(cache_entries.c.study_id == study_id)
                                .order_by(cache_entries.c.stage, cache_entries.c.key)).all()
            return [_cache_entry(r) for r in rows]

        return self._run(txn, write=False)

    def cache_read(self, study_id: int, key: str, read_s: float, read_cost_usd: float) -> bool:
        return bool(self._run(lambda conn: conn.execute(
            sa.update(cache_entries).where(cache_entries.c.study_id == study_id, cache_entries.c.key == key)
            .values(hits=cache_entries.c.hits + 1, read_s=float(read_s), read_cost_usd=float(read_cost_usd)))
            .rowcount))

    def cache_forget(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        return int(self._run(lambda conn: conn.execute(
            sa.delete(cache_entries).where(cache_entries.c.key.in_(list(keys)))).rowcount))

    def record_stage_runs(self, study_id: int, runs: Sequence[StageRun]) -> None:
        if not runs:
            return
        rows = [{"study_id": study_id, "trial_id": r.trial_id, "stage": r.stage, "name": r.name,
                 "outcome": r.outcome, "miss": bool(r.miss), "elapsed_s": float(r.elapsed_s),
                 "cost_usd": float(r.cost_usd), "saved_s": float(r.saved_s), "saved_usd": float(r.saved_usd)}
                for r in runs]
        self._run(lambda conn: conn.execute(sa.insert(stage_runs), rows))

    def stage_runs(self, study_id: int) -> list[StageRun]:
        def txn(conn: Connection) -> list[StageRun]:
            rows = conn.execute(sa.select(stage_runs).where(stage_runs.c.study_id == study_id)
                                .order_by(stage_runs.c.trial_id, stage_runs.c.stage)).all()
            return [StageRun(trial_id=r.trial_id, stage=r.stage, name=r.name, outcome=r.outcome, miss=bool(r.miss),
                             elapsed_s=r.elapsed_s, cost_usd=r.cost_usd, saved_s=r.saved_s, saved_usd=r.saved_usd)
                    for r in rows]

        return self._run(txn, write=False)

    # -- bearer tokens: short transactions of their own, no study lock --------------------------
    def add_token(self, token: TokenRecord) -> None:
        def txn(conn: Connection) -> None:
            if conn.execute(sa.select(tokens.c.id).where(tokens.c.id == token.id)).first() is not None:
                raise ValidationError(f"a token with id {token.id!r} exists already")
            conn.execute(sa.insert(tokens).values(id=token.id, study=token.study, role=token.role,
                                                  digest=token.digest, created_at=float(token.created_at),
                                                  revoked_at=token.revoked_at))

        self._run(txn)

    def get_token(self, token_id: str) -> TokenRecord | None:
        def txn(conn: Connection) -> TokenRecord | None:
            row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
            return None if row is None else _token(row)

        return self._run(txn, write=False)

    def list_tokens(self, study: str | None = None) -> list[TokenRecord]:
        def txn(conn: Connection) -> list[TokenRecord]:
            query = sa.select(tokens).order_by(tokens.c.created_at, tokens.c.id)
            if study is not None:
                query = query.where(tokens.c.study == study)
            return [_token(r) for r in conn.execute(query)]

        return self._run(txn, write=False)

    def revoke_token(self, token_id: str, now: float) -> bool:
        def txn(conn: Connection) -> bool:
            done = conn.execute(sa.update(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                                .values(revoked_at=float(now)))
            return bool(done.rowcount)

        return self._run(txn)

    def count_trials(self, study_id: int) -> dict[TrialState, int]:
        rows = self._run(
            lambda c: c.execute(
                sa.select(trials.c.state, sa.func.count()).where(trials.c.study_id == study_id).group_by(trials.c.state)
            ).all(),
            write=False,
        )
        return {TrialState(s): n for s, n in rows}


def _token(r: Any) -> TokenRecord:
    return TokenRecord(id=r.id, study=r.study, role=r.role, digest=r.digest, created_at=r.created_at,
                       revoked_at=r.revoked_at)


def _cache_entry(r: Any) -> CacheEntry:
    return CacheEntry(key=r.key, stage=r.stage, params=json.loads(r.params), size_bytes=r.size_bytes, run_s=r.run_s,
                      run_cost_usd=r.run_cost_usd, read_s=r.read_s, read_cost_usd=r.read_cost_usd,
                      created_at=r.created_at, hits=r.hits)


def _check_columns(conn: Connection, url: str) -> None:
    """Refuse a database whose tables lack columns this version writes (e.g. one made by a
    development build with the same schema version), with a clear message instead of SQL errors."""
    inspector = sa.inspect(conn)
    for table in (studies, trials, measurements, cache_entries, stage_runs):
        present = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in present]
        if missing:
            raise StorageError(
                f"storage {url}: table {table.name} lacks column(s) {', '.join(missing)}; the database was written "
                "by an incompatible (development) version of thrifty. Use a new database, or export the studies "
                "with the thrifty that wrote them."
            )


def _usage(st: Any, now: float) -> Usage:
    """What the study (a locked study row) has consumed."""
    return rules.usage_of(st.n_started, st.spent_usd, st.gpu_s, st.n_running, st.active_s, st.active_since, now)


def _status(st: sa.Row[Any]) -> StudyStatus:
    """A study row (``_SEL_STUDY``) as a snapshot's status."""
    return StudyStatus(
        budget=_budget(st), n_started=st.n_started, spent_usd=st.spent_usd, gpu_s=st.gpu_s, n_running=st.n_running,
        active_s=st.active_s, active_since=st.active_since, next_number=st.next_number, n_settled=st.n_finished,
        budget_stop=_budget_stop(st),
    )


def _stale(study_id: int, policy: RetryPolicy, now: float, worker_id: str | None) -> list[Any]:
    """The condition of the RUNNING trials a reap fails: those of ``worker_id`` if given (known
    dead), else those whose heartbeat is older than the grace period."""
    cond = [trials.c.study_id == study_id, trials.c.state == _RUNNING]
    if worker_id is not None:
        cond.append(trials.c.worker_id == worker_id)
    else:
        cond.append(trials.c.heartbeat_at < now - policy.heartbeat_grace_s)
    return cond


def _budget_stop(row: sa.Row[Any]) -> BudgetStop | None:
    """The circuit breaker's record of a study row (the whole row or ``_SEL_STUDY``), typed."""
    if row.budget_stop is None or row.budget_stop_limit is None:
        return None
    return BudgetStop(limit=row.budget_stop_limit, message=row.budget_stop, at=row.budget_stop_at)


def _kind(kind: StopKind | None) -> str | None:
    return None if kind is None else kind.value


def _budget(st: sa.Row[Any]) -> Budget:
    return _budget_of(st.budget)


@functools.lru_cache(maxsize=256)
def _budget_of(text: str | None) -> Budget:
    """A study row's budget column (JSON) as a :class:`Budget` (a frozen value: one object is
    shared by every row that stores the same text; it is read in every transaction)."""
    return Budget.from_dict(json.loads(text) if text else None)


def _prefixed(row: sa.Row[Any], prefix: str) -> Any:
    """The columns of ``row`` whose names start with ``prefix``, as a named tuple whose fields are
    their names without it (attribute access at tuple speed: a snapshot reads ~40 columns a row)."""
    fields = row._fields
    view = _VIEWS.get((fields, prefix))
    if view is None:
        picked = [i for i, name in enumerate(fields) if name.startswith(prefix)]
        cls = collections.namedtuple("_Columns", [fields[i][len(prefix):] for i in picked])  # type: ignore[misc]
        pick = operator.itemgetter(*picked) if len(picked) > 1 else (lambda r, i=picked[0]: (r[i],))
        view = _VIEWS[(fields, prefix)] = (cls._make, pick)
    make, pick = view
    return make(pick(row))


#: The named tuple maker and column picker of ``_prefixed`` per (row layout, prefix).
_VIEWS: dict[tuple[tuple[str, ...], str], tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {}


def _measurement_values(trial_id: int, m: Measurement) -> dict[str, Any]:
    """The parameters of ``_INSERT_MEASUREMENT``."""
    return {"trial_id": trial_id, "step": m.step, "metrics": _dumps(dict(m.metrics)), "cost_usd": m.cost_usd,
            "elapsed_s": m.elapsed_s, "gpu_s": m.gpu_s, "timestamp": m.timestamp}


def _trial_of(r: Any, taken: Iterable[Measurement]) -> Trial:
    """A trial row (every column of ``trials``) with its measurements as a :class:`Trial`."""
    return Trial(
        id=r.id, number=r.number, state=TrialState(r.state), params=json.loads(r.params),
        metrics=json.loads(r.metrics) if r.metrics else {}, measurements=tuple(taken),
        error=r.error, created_at=r.created_at, started_at=r.started_at, finished_at=r.finished_at,
        heartbeat_at=r.heartbeat_at, worker_id=r.worker_id, retry_of=r.retry_of, retried=bool(r.retried),
        cost_usd=r.cost_usd, elapsed_s=r.elapsed_s, gpu_s=r.gpu_s, reason=r.reason,
        stop_kind=StopKind(r.stop_kind) if r.stop_kind else None, stop_limit=r.stop_limit,
        finish_order=r.finish_order, parent=r.parent,
        start_step=r.start_step, resources=json.loads(r.resources) if r.resources else {},
        user_attrs=json.loads(r.user_attrs) if r.user_attrs else {},
        usage=_usage_of(r.usage),
    )


def _usage_of(text: str | None) -> ResourceUsage | None:
    """A trial row's ``usage`` column (JSON) as a :class:`ResourceUsage` (``None``: none stored)."""
    return ResourceUsage.from_dict(json.loads(text)) if text else None


#: An entry of ``_TAKEN_BEFORE``'s JSON array, with the column names ``_measurement`` reads.
_TakenBefore = collections.namedtuple("_TakenBefore", ["step", "metrics", "cost_usd", "elapsed_s", "gpu_s", "timestamp"])


def _measurement(row: Any) -> Measurement:
    return Measurement(step=row.step, metrics=json.loads(row.metrics), cost_usd=row.cost_usd,
                       elapsed_s=row.elapsed_s, gpu_s=row.gpu_s, timestamp=row.timestamp)


def _grown(number: int) -> bool:
    """Whether a study that has just started trial ``number`` reached 32, 64, 128, ... trials."""
    count = number + 1
    return count >= 32 and count & (count - 1) == 0


def _rows(conn: Connection, stmt: Any, params: Mapping[str, Any]) -> list[Any]:
    """``conn.execute(stmt, params).all()``, for the statements of the ask/tell path: the rows,
    columns by name as attributes.

    The statement (a module-level constant: compiled once per dialect and set of parameter names)
    runs on a cursor of the DBAPI connection itself (through the dialect's ``do_execute``), inside
    the transaction SQLAlchemy began (or none, in autocommit); its rows are named tuples.
    SQLAlchemy's per-statement work (parameters, result set-up: psycopg builds a column
    description per execution, ~50 columns for a snapshot) was a
    sixth of an ask+tell on SQLite and a third of the client's time on PostgreSQL. A driver error is
    raised as SQLAlchemy's :class:`~sqlalchemy.exc.DBAPIError`, as from ``conn.execute``; a
    connection that broke is invalidated (the pool drops it). Booleans read on SQLite are 0/1."""
    dialect = conn.dialect
    names = tuple(params)
    key = (id(stmt), dialect.name, names)
    plan = _PLANS.get(key)
    if plan is None or plan.stmt is not stmt:
        plan = _PLANS[key] = _Plan(stmt, dialect, names)
    args = plan.args(params)
    driver = conn.connection.driver_connection
    try:
        cursor = driver.cursor()  # type: ignore[union-attr]
        dialect.do_execute(cursor, plan.sql, args, None)
        found = cursor.fetchall() if plan.returns_rows else []
        if found and plan.row is None:
            plan.row = collections.namedtuple("_Row", [d[0] for d in cursor.description], rename=True)._make  # type: ignore[misc]
        cursor.close()
    except plan.errors as exc:
        broken = dialect.is_disconnect(exc, driver, None)
        if broken:
            conn.invalidate(exc)
        raise DBAPIError.instance(plan.sql, args, exc, plan.errors, connection_invalidated=broken) from exc
    if not found:
        return found
    assert plan.row is not None
    return [plan.row(r) for r in found]


class _Plan:
    """A statement compiled for one dialect (see :func:`_rows`): its SQL, and for each of its
    parameters where the value comes from (the caller's name, else the statement's own constant)
    and SQLAlchemy's conversion of it, if any."""

    __slots__ = ("_named", "_slots", "errors", "returns_rows", "row", "sql", "stmt")

    def __init__(self, stmt: Any, dialect: Any, names: tuple[str, ...]) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(names))
        self.stmt, self.sql = stmt, str(compiled)
        if "POSTCOMPILE" in self.sql:
            raise AssertionError("_rows takes no expanding parameters")
        #: Positional parameters (SQLite's "?") or named ones (psycopg's "%(name)s").
        self._named = compiled.positiontup is None
        given = set(names)
        #: Per parameter: its name in the SQL, the caller's name (None: the statement's own value),
        #: that value, and the conversion SQLAlchemy applies to it (None: none).
        self._slots = []
        in_sql = sorted(set(compiled.bind_names.values())) if self._named else compiled.positiontup
        for key in in_sql:
            bind = compiled.binds[key]
            self._slots.append((key, key if key in given else None, bind.effective_value,
                                bind.type.bind_processor(dialect)))
        self.returns_rows = len(stmt.exported_columns) > 0  # a SELECT, or RETURNING
        self.errors: type[Exception] = dialect.loaded_dbapi.Error
        self.row: Callable[[Any], Any] | None = None

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = []
        for _key, name, own, convert in self._slots:
            value = own if name is None else params[name]
            values.append(convert(value) if convert is not None and value is not None else value)
        if self._named:
            return {slot[0]: v for slot, v in zip(self._slots, values, strict=True)}
        return tuple(values)


#: The compiled statements of :func:`_rows`, by (id of the statement, dialect, parameter names).
_PLANS: dict[tuple[int, str, tuple[str, ...]], _Plan] = {}


_CONFLICTS = ("database is locked", "deadlock detected", "could not serialize", "database is busy")
# A connection the server (or the network) closed: the statement did not run, or its transaction
# ended with the connection. SQLSTATE class 08 and 57P01-57P03 (shutdown, crash, starting up).
_DROPPED = ("server closed the connection", "connection reset", "terminating connection", "connection is closed",
            "connection is lost", "consuming input failed", "could not receive data", "ssl connection has been closed",
            "the database system is", "broken pipe")
# The server cannot be reached (yet): during a restart, once it had been reached.
_UNREACHABLE = ("connection refused", "connection failed", "could not connect", "no route to host",
                "timeout expired", "server is not accepting")


def _failure_kind(exc: DBAPIError, postgresql: bool, reached: bool) -> Literal["conflict", "connection"] | None:
    """Classify a database error: ``"conflict"`` (deadlock, busy file: run the transaction again),
    ``"connection"`` (PostgreSQL: the connection was lost, or refused after the server had been
    reached: reconnect and run it again) or ``None`` (a real error)."""
    text = str(exc.orig).lower()
    if any(s in text for s in _CONFLICTS):
        return "conflict"
    if not postgresql:
        return None
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    if (exc.connection_invalidated or sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")
            or any(s in text for s in _DROPPED)):
        return "connection"
    if reached and any(s in text for s in _UNREACHABLE):
        return "connection"
    return None


def _one_line(exc: BaseException) -> str:
    """A database error's message on one line (drivers' messages span several)."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


def _read_only_sqlite(path: str, busy_timeout_s: float) -> Callable[[], sqlite3.Connection]:
    """Connections to the SQLite file ``path`` that cannot write (``mode=ro``) nor create it.

    A WAL database needs its ``-shm`` file to be read; in a folder this process may not write,
    SQLite cannot create it. Then, if no ``-wal`` file shows a writer at work, the file is opened
    ``immutable`` (read as it is, without the WAL machinery).
    """
    uri = "file:" + quote(os.path.abspath(path)) + "?mode=ro"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            conn.close()
            code = getattr(exc, "sqlite_errorname", "")
            if not code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) or os.path.exists(path + "-wal"):
                raise
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
        return conn

    return connect
