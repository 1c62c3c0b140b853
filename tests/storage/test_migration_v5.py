"""Schema version 5 (the memo cache of pipeline studies) upgrades a version-4 database in place:
the tables ``thrifty_cache_entries`` and ``thrifty_stage_runs`` are created empty, nothing else
changes; a read-only opening of a version-4 database says it is older instead of "no studies"."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import thrifty as th
from thrifty.storage import open_storage
from thrifty.storage.base import SCHEMA_VERSION, CacheEntry

NEW_TABLES = ("thrifty_cache_entries", "thrifty_stage_runs")


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def _make_version_4(url: str) -> None:
    """A database as the thrifty of schema version 4 left it: written by this one, then the new
    tables dropped and the version set back."""
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, "max", name="old", storage=url)
    study.tell(study.ask(), 0.5)
    study.close()
    engine = _engine(url)
    with engine.begin() as conn:
        for table in NEW_TABLES:
            conn.exec_driver_sql(f"DROP TABLE {table}")
        conn.exec_driver_sql("UPDATE thrifty_meta SET value = '4' WHERE key = 'schema_version'")
    engine.dispose()


def _tables_and_version(url: str) -> tuple[set[str], str]:
    engine = _engine(url)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        version = conn.exec_driver_sql("SELECT value FROM thrifty_meta WHERE key = 'schema_version'").scalar_one()
    engine.dispose()
    return tables, str(version)


def test_a_version_4_database_gains_the_cache_tables(db_url: str) -> None:
    _make_version_4(db_url)
    tables, version = _tables_and_version(db_url)
    assert not set(NEW_TABLES) & tables and version == "4"
    with pytest.raises(th.StorageError, match="schema version 4, written by an older thrifty"):
        open_storage(db_url, read_only=True)
    study = th.Study.load("old", storage=db_url)
    assert [t.value for t in study.trials] == [0.5]
    tables, version = _tables_and_version(db_url)
    assert set(NEW_TABLES) <= tables and version == str(SCHEMA_VERSION) == "5"
    entry = CacheEntry(key="k", stage=0, params={"x": 0.5}, size_bytes=1, run_s=1.0, run_cost_usd=0.001,
                       read_s=0.1, read_cost_usd=0.0001, created_at=1.0)
    study.storage.cache_put(study.id, entry)
    assert study.storage.cache_entries(study.id) == [entry]
    study.close()
