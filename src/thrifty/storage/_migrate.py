"""In-place upgrades of a thrifty database written by an older schema version.

Each step adds what its version introduced and is idempotent (a column already there is kept), so
an upgrade interrupted and run again, or a database whose version was set back by hand, ends the
same. Run by the SQL storage inside its schema transaction (under PostgreSQL's advisory lock).

- 1 -> 2: the trial columns ``parent`` and ``start_step`` (lineage, resume from a step).
- 2 -> 3: typed stop reasons: the trial columns ``stop_kind`` and ``stop_limit`` and the study
  column ``budget_stop_limit``. Version 2 kept only words (``"budget: the budget of $1.00 is used
  up ..."``, ``"scheduler: asha"``, ``"user: stop requested"``); they are read here, once, into the
  typed columns. This is the only place where thrifty reads meaning from a reason's words.
- 3 -> 4: the trial column ``usage`` (what a trial's processes used, :mod:`thrifty.usage`); the
  trials already there have none (``Trial.usage`` reads ``None``).
- 4 -> 5: the memo cache of pipeline studies: the tables ``thrifty_cache_entries`` (the index of
  stage outputs on disk) and ``thrifty_stage_runs`` (what each stage of a trial did). They are new
  tables, created empty (by the storage's ``create_all`` before the upgrade runs, and here again
  if missing); no existing row changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from thrifty.trial import StopKind, TrialState

_TRIALS = "thrifty_trials"
_STUDIES = "thrifty_studies"
_BUDGET_PREFIX = "budget: "


def upgrade(conn: Connection, found: int, new_tables: Sequence[sa.Table] = ()) -> int:
    """Upgrade the schema from version ``found`` to the newest step by step; returns the version
    reached (``found`` itself if it has no upgrade here). ``new_tables``: the tables version 5
    added, as the storage defines them (created if missing)."""
    if found == 1:
        _add_columns(conn, _TRIALS, (("parent", "INTEGER"), ("start_step", "FLOAT")))
        found = 2
    if found == 2:
        _add_columns(conn, _TRIALS, (("stop_kind", "VARCHAR(16)"), ("stop_limit", "VARCHAR(16)")))
        _add_columns(conn, _STUDIES, (("budget_stop_limit", "VARCHAR(16)"),))
        _type_trial_reasons(conn)
        _type_breaker_records(conn)
        found = 3
    if found == 3:
        _add_columns(conn, _TRIALS, (("usage", "TEXT"),))
        found = 4
    if found == 4:
        for table in new_tables:  # the storage's definitions (sql.py), created if missing
            table.create(conn, checkfirst=True)
        found = 5
    return found


def _columns(conn: Connection, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def _add_columns(conn: Connection, table: str, columns: tuple[tuple[str, str], ...]) -> None:
    present = _columns(conn, table)
    for name, kind in columns:
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def legacy_budget_limit(text: str) -> str | None:
    """The budget limit a version-2 breaker message names (``None`` if it names none): the words
    version 2's ``Budget.exhausted`` wrote for dollars, GPU-hours and wall time."""
    if "budget of $" in text:
        return "usd"
    if "GPU-hours" in text:
        return "gpu_hours"
    if "wall time" in text:
        return "wall_s"
    return None


def legacy_stop(state: str, reason: str | None, stop_requested: bool) -> tuple[str | None, str | None]:
    """``(stop_kind, stop_limit)`` of a version-2 trial from its state and reason words.

    A STOPPED or PAUSED trial always gets a kind: ``"budget: ..."`` naming a limit is BUDGET,
    ``"scheduler: ..."`` SCHEDULER, anything else (``"user: ..."``, a person's own words, none)
    USER. A RUNNING trial asked to stop keeps the kind of that request; others get none.
    """
    settled_stop = state in (TrialState.STOPPED.value, TrialState.PAUSED.value)
    if not settled_stop and not (state == TrialState.RUNNING.value and stop_requested and reason):
        return None, None
    text = reason or ""
    if text.startswith(_BUDGET_PREFIX):
        limit = legacy_budget_limit(text)
        if limit is not None:
            return StopKind.BUDGET.value, limit
    if text.startswith(StopKind.SCHEDULER.value + ":"):
        return StopKind.SCHEDULER.value, None
    return StopKind.USER.value, None


def _type_trial_reasons(conn: Connection) -> None:
    if not {"state", "reason", "stop_requested"} <= _columns(conn, _TRIALS):
        return  # not a table thrifty wrote: the storage refuses it with the columns it lacks
    rows = conn.execute(sa.text(
        f"SELECT id, state, reason, stop_requested FROM {_TRIALS} WHERE stop_kind IS NULL "
        "AND (state IN ('stopped', 'paused') OR (state = 'running' AND stop_requested AND reason IS NOT NULL))"
    )).all()
    updates = []
    for r in rows:
        kind, limit = legacy_stop(r.state, r.reason, bool(r.stop_requested))
        if kind is not None:
            updates.append({"p_id": r.id, "p_kind": kind, "p_limit": limit})
    if updates:
        conn.execute(sa.text(f"UPDATE {_TRIALS} SET stop_kind = :p_kind, stop_limit = :p_limit WHERE id = :p_id"),
                     updates)


def _type_breaker_records(conn: Connection) -> None:
    """Version 2 recorded the breaker as ``"budget: <message>"``; version 3 keeps the message and
    the limit apart (a record naming no limit it can tell is cleared: the breaker re-arms)."""
    if not {"budget_stop", "budget_stop_at"} <= _columns(conn, _STUDIES):
        return  # not a table thrifty wrote: the storage refuses it with the columns it lacks
    rows = conn.execute(sa.text(
        f"SELECT id, budget_stop FROM {_STUDIES} WHERE budget_stop IS NOT NULL AND budget_stop_limit IS NULL"
    )).all()
    for r in rows:
        text = str(r.budget_stop)
        limit = legacy_budget_limit(text)
        message = text[len(_BUDGET_PREFIX):] if text.startswith(_BUDGET_PREFIX) else text
        if limit is None:
            conn.execute(sa.text(f"UPDATE {_STUDIES} SET budget_stop = NULL, budget_stop_at = NULL WHERE id = :p_id"),
                         {"p_id": r.id})
        else:
            conn.execute(sa.text(f"UPDATE {_STUDIES} SET budget_stop = :p_msg, budget_stop_limit = :p_limit "
                                 "WHERE id = :p_id"), {"p_id": r.id, "p_msg": message, "p_limit": limit})
