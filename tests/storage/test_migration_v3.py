"""Schema version 3 (typed stop reasons) upgrades a version-2 database in place.

The version-2 databases under ``tests/data/`` were written by the thrifty before version 3 (see
``tests/helpers/make_v2_database.py``): a SQLite file, and a ``pg_dump`` of a PostgreSQL database,
restored here into a fresh database. Opening either for writing adds the columns ``stop_kind``,
``stop_limit`` and ``budget_stop_limit`` and fills them from the old reason words once; every
other field reads as it did.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import thrifty as th
from thrifty.analysis.report import cost_report
from thrifty.cost.budget import BudgetStop
from thrifty.storage.base import SCHEMA_VERSION

DATA = Path(__file__).resolve().parent.parent / "data"
BREAKER = "the budget of $1.00 is used up ($1.3000 spent)"
S, K = th.TrialState, th.StopKind
#: number -> (state, reason words, stop_kind, stop_limit) after the upgrade.
EXPECTED = {
    0: (S.COMPLETED, None, None, None),
    1: (S.STOPPED, "scheduler: asha", K.SCHEDULER, None),
    2: (S.PAUSED, "scheduler: asha: paused at step 1", K.SCHEDULER, None),
    3: (S.STOPPED, "user: stop requested", K.USER, None),
    4: (S.FAILED, None, None, None),
    5: (S.STOPPED, None, K.USER, None),
    6: (S.RUNNING, f"budget: {BREAKER}", K.BUDGET, "usd"),
    7: (S.STOPPED, f"budget: {BREAKER}", K.BUDGET, "usd"),
}
#: The version-2 columns of a trial and the Trial field each one reads into.
V2_FIELDS = ("state", "params", "metrics", "error", "created_at", "started_at", "finished_at", "heartbeat_at",
             "worker_id", "retry_of", "retried", "cost_usd", "elapsed_s", "gpu_s", "reason", "finish_order",
             "parent", "start_step")


@pytest.fixture(params=["sqlite", "postgresql"])
def v2_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A version-2 database written by the thrifty before version 3, in a place of this test's."""
    if request.param == "sqlite":
        path = tmp_path / "v2.db"
        shutil.copyfile(DATA / "schema_v2.db", path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute((DATA / "schema_v2_postgresql.sql").read_text())  # type: ignore[arg-type]
    return url


def _raw(url: str, sql: str) -> list[dict[str, Any]]:
    """Rows read with the plain driver, as they are stored."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql)]
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute(sql))  # type: ignore[arg-type]


def _schema_version(url: str) -> str:
    return str(_raw(url, "SELECT value FROM thrifty_meta WHERE key = 'schema_version'")[0]["value"])


def test_a_version_2_database_is_upgraded_in_place(v2_url: str) -> None:
    assert _schema_version(v2_url) == "2"
    before = {r["number"]: r for r in _raw(v2_url, "SELECT * FROM thrifty_trials ORDER BY number")}
    costs: dict[int, list[float]] = {}
    for m in _raw(v2_url, "SELECT t.number, m.cost_usd FROM thrifty_measurements m JOIN thrifty_trials t "
                          "ON t.id = m.trial_id ORDER BY m.id"):
        costs.setdefault(m["number"], []).append(m["cost_usd"])
    [study_row] = _raw(v2_url, "SELECT * FROM thrifty_studies")
    assert study_row["budget_stop"] == f"budget: {BREAKER}"

    study = th.Study.load("mixed", storage=v2_url)
    assert _schema_version(v2_url) == str(SCHEMA_VERSION)  # 2 -> 3 -> ... -> the newest, step by step
    trials = {t.number: t for t in study.trials}
    assert sorted(trials) == sorted(EXPECTED)
    for number, (state, reason, kind, limit) in EXPECTED.items():
        t = trials[number]
        assert (t.state, t.reason, t.stop_kind, t.stop_limit) == (state, reason, kind, limit), number
        assert t.stop == (None if kind is None else th.StopReason(kind, reason, limit))
        old = before[number]
        for name in V2_FIELDS:  # every version-2 field reads as it was stored
            stored = old[name]
            if name in ("params", "metrics"):
                stored = json.loads(stored) if stored else {}
            elif name == "state":
                stored = th.TrialState(stored)
            elif name == "retried":
                stored = bool(stored)
            assert getattr(t, name) == stored, (number, name)
        assert [m.cost_usd for m in t.measurements] == costs.get(number, []), number
        assert t.usage is None, number  # schema 4's resource use: none was recorded

    # The study's breaker record: the limit typed, the words and the moment kept.
    assert study.budget_stop == BudgetStop("usd", BREAKER, at=study_row["budget_stop_at"])
    assert study.budget_stop.reason == study_row["budget_stop"]
    assert study.cost_usd == pytest.approx(1.3)
    report = cost_report(study)
    assert report.budget.breaker_tripped and report.budget.breaker_limit == "usd"
    assert report.budget.breaker_message == f"budget: {BREAKER}" and report.budget.exhausted == BREAKER
    assert report.trials[7].note == f"budget: {BREAKER}"

    # The migrated budget stop request is typed: raising the budget clears it by its kind.
    t6 = trials[6]
    assert t6.id is not None and study.storage.stop_requested(t6.id)
    study.set_budget(th.Budget(usd=5.0))
    assert study.budget_stop is None and not study.storage.stop_requested(t6.id)
    t6_now = study.storage.get_trial(t6.id)
    assert (t6_now.state, t6_now.reason, t6_now.stop_kind, t6_now.stop_limit) == (S.RUNNING, None, None, None)

    # New trials are written with the new columns.
    handle = study.ask()
    study.stop_trial(handle.number)
    assert handle.should_stop()
    done = study.tell(handle, state="stopped")
    assert (done.stop_kind, done.reason) == (K.USER, "user: stop requested")
    study.close()

    # Opening it again changes nothing.
    again = th.Study.load("mixed", storage=v2_url)
    assert _schema_version(v2_url) == str(SCHEMA_VERSION)
    settled = [n for n, e in EXPECTED.items() if e[0] is not S.RUNNING]
    assert [(t.stop_kind, t.stop_limit) for t in again.trials if t.number in settled] == [
        (EXPECTED[n][2], EXPECTED[n][3]) for n in settled]
    again.close()


def test_read_only_opening_refuses_a_version_2_database_and_changes_nothing(v2_url: str) -> None:
    from thrifty.storage.sql import SQLStorage

    with pytest.raises(th.StorageError, match="schema version 2.*open it once for writing"):
        SQLStorage(v2_url, read_only=True)
    assert _schema_version(v2_url) == "2"
