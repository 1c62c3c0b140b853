"""Schema version 4 (the trials' resource use) upgrades a version-3 database in place: the
column ``usage`` is added, the trials already there read with none, new ones record it."""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa

import thrifty as th
from thrifty.storage.base import SCHEMA_VERSION
from thrifty.usage import ResourceUsage


def _make_version_3(url: str) -> None:
    """A database as the thrifty of schema version 3 left it: written by this one, then the
    ``usage`` column dropped and the version set back (the way test_schema.py builds version 1)."""
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, "max", name="old", storage=url)
    study.tell(study.ask(), 0.5)
    study.tell(study.ask(), state="failed", error="boom")
    study.close()
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            conn.execute("ALTER TABLE thrifty_trials DROP COLUMN usage")
            conn.execute("UPDATE thrifty_meta SET value = '3' WHERE key = 'schema_version'")
        return
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE thrifty_trials DROP COLUMN usage")
        conn.exec_driver_sql("UPDATE thrifty_meta SET value = '3' WHERE key = 'schema_version'")
    engine.dispose()


def _columns_and_version(url: str) -> tuple[set[str], str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("thrifty_trials")}
        version = conn.exec_driver_sql("SELECT value FROM thrifty_meta WHERE key = 'schema_version'").scalar_one()
    engine.dispose()
    return columns, str(version)


def test_a_version_3_database_gains_usage_and_its_trials_read_without_any(db_url: str) -> None:
    _make_version_3(db_url)
    columns, version = _columns_and_version(db_url)
    assert "usage" not in columns and version == "3"
    study = th.Study.load("old", storage=db_url)
    assert [(t.state, t.usage) for t in study.trials] == [(th.TrialState.COMPLETED, None),
                                                          (th.TrialState.FAILED, None)]
    columns, version = _columns_and_version(db_url)
    assert "usage" in columns and version == str(SCHEMA_VERSION)
    handle = study.ask()
    used = ResourceUsage(samples=1, interval_s=1.0, duration_s=0.2, cpu_percent_mean=10.0, cpu_percent_max=10.0,
                         rss_mb_max=64.0)
    assert study.storage.record_usage(handle.id, used)
    assert study.tell(handle, 0.7).usage == used
    study.close()
    again = th.Study.load("old", storage=db_url)
    assert [t.usage for t in again.trials] == [None, None, used]
    again.close()
