"""open_storage(url, read_only=True): reads a study database and never creates or changes
anything (no file, no table, no schema upgrade, no write)."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

import thrifty as th
from thrifty.storage import open_storage

SPACE = th.Space({"x": th.Float(0.0, 1.0)})


def _tables(url: str) -> list[str]:
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
        conn.close()
        return [r[0] for r in rows]
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                            "ORDER BY table_name").fetchall()
    return [r[0] for r in rows]


def test_a_missing_sqlite_file_is_not_created(tmp_path):
    path = tmp_path / "typo.db"
    with pytest.raises(th.NoDatabase, match=f"^no database at {path}$"):
        open_storage(f"sqlite:///{path}", read_only=True)
    with pytest.raises(th.NoDatabase, match="it is a folder"):
        open_storage(f"sqlite:///{tmp_path}", read_only=True)
    assert list(tmp_path.iterdir()) == []


def test_a_database_without_thrifty_tables_is_refused_and_left_alone(db_url):
    if db_url.startswith("sqlite:///"):
        with sqlite3.connect(db_url[len("sqlite:///"):]) as conn:
            conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
        conn.close()
    with pytest.raises(th.NoDatabase, match="holds no thrifty studies"):
        open_storage(db_url, read_only=True)
    assert _tables(db_url) == (["users"] if db_url.startswith("sqlite") else [])


def test_reads_work_and_writes_are_refused(db_url):
    study = th.Study.create(SPACE, name="s", storage=db_url, strategy="random")
    study.tell(study.ask(), 0.5, cost_usd=0.25)
    study.close()
    store = open_storage(db_url, read_only=True)
    ro = th.Study.load("s", storage=store)
    assert [t.value for t in ro.trials] == [0.5] and ro.cost_usd == 0.25 and ro.best.value == 0.5
    assert [s.name for s in store.list_studies()] == ["s"]
    for write in (ro.ask, lambda: ro.enqueue({"x": 0.1}), lambda: ro.set_budget({"trials": 3}),
                  lambda: store.delete_study("s"), lambda: th.Study.create(SPACE, name="t", storage=store)):
        with pytest.raises(th.StorageError, match="opened read-only"):
            write()
    if db_url.startswith("postgresql"):  # the server refuses writes too, whatever the caller does
        with pytest.raises(sa.exc.InternalError, match="read-only transaction"), store.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM thrifty_measurements"))
    store.close()
    again = th.Study.load("s", storage=db_url)
    assert [t.value for t in again.trials] == [0.5] and [s.name for s in again.storage.list_studies()] == ["s"]


def test_an_old_schema_is_not_upgraded_by_a_read(tmp_path):
    url = f"sqlite:///{tmp_path / 'v1.db'}"
    th.Study.create(SPACE, name="old", storage=url).close()
    with sqlite3.connect(tmp_path / "v1.db") as conn:
        conn.execute("UPDATE thrifty_meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(th.StorageError, match="schema version 1.*read commands change nothing"):
        open_storage(url, read_only=True)
    with sqlite3.connect(tmp_path / "v1.db") as conn:
        assert conn.execute("SELECT value FROM thrifty_meta").fetchone()[0] == "1"
    conn.close()
