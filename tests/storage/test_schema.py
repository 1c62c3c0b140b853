"""Opening storages: schema versions, bad URLs, SQLite's WAL mode, deleted studies, memory limits."""

from __future__ import annotations

import sqlite3

import pytest

import thrifty as th
from thrifty.storage.base import SCHEMA_VERSION

SPACE = th.Space({"x": th.Float(0.0, 1.0)})


def _set_schema_version(url: str, version: int) -> None:
    """Write the schema version with the plain database driver, as a newer thrifty would."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            n = conn.execute("UPDATE thrifty_meta SET value = ? WHERE key = 'schema_version'", (str(version),)).rowcount
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            n = conn.execute(
                "UPDATE thrifty_meta SET value = %s WHERE key = 'schema_version'", (str(version),)
            ).rowcount
    assert n == 1, "thrifty_meta holds the schema version"


def test_newer_schema_is_refused(db_url):
    study = th.Study.create(SPACE, name="old", storage=db_url)
    study.tell(study.ask(), 0.5)
    study.close()
    th.Study.load("old", storage=db_url).close()  # schema version 1 opens fine
    _set_schema_version(db_url, 99)
    with pytest.raises(th.StorageError, match="newer thrifty") as info:
        th.Study.load("old", storage=db_url)
    assert "99" in str(info.value)
    with pytest.raises(th.StorageError, match="newer thrifty"):
        th.Study.create(SPACE, name="new", storage=db_url)
    # Nothing was changed by the refused opens.
    _set_schema_version(db_url, 1)
    assert [t.value for t in th.Study.load("old", storage=db_url).trials] == [0.5]


@pytest.mark.parametrize("url", ["mysql://x", "", 42, None, "sqlite:/relative.db", "thrifty.db"])
def test_unsupported_urls(url):
    with pytest.raises(th.StorageError, match=r"sqlite:///") as info:
        th.Study.create(SPACE, storage=url)
    assert repr(url) in str(info.value)
    with pytest.raises(th.StorageError, match=r"sqlite:///"):
        th.Study.load("any", storage=url)


def test_unopenable_sqlite_file_is_a_storage_error(tmp_path):
    with pytest.raises(th.StorageError, match="no-such-dir"):
        th.Study.create(SPACE, storage=f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")


def test_sqlite_file_is_in_wal_mode(tmp_path):
    path = tmp_path / "wal.db"
    study = th.Study.create(SPACE, name="wal", storage=f"sqlite:///{path}")
    study.tell(study.ask(), 1.0)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        version = conn.execute("SELECT value FROM thrifty_meta WHERE key = 'schema_version'").fetchone()[0]
    assert version == str(SCHEMA_VERSION)


def test_study_deleted_under_a_study_object(db_url):
    study = th.Study.create(SPACE, name="doomed", storage=db_url)
    running = study.ask()
    study.tell(study.ask(), 0.5)
    other = th.Study.load("doomed", storage=db_url)
    other.storage.delete_study("doomed")

    for action in (study.ask, lambda: study.cost_usd, lambda: study.enqueue({"x": 0.5}),
                   lambda: study.tell(running, 0.1), lambda: study.set_budget({"trials": 5})):
        with pytest.raises(th.StudyNotFound, match=r"no longer exists in .* \(was it deleted\?\)"):
            action()
    with pytest.raises(th.StudyNotFound, match="no longer exists"):
        study.optimize(lambda t: 0.0, n_trials=1, progress=False)
    with pytest.raises(th.StudyNotFound, match="'doomed'"):
        th.Study.load("doomed", storage=db_url)
    with pytest.raises(th.StudyNotFound):
        other.storage.delete_study("doomed")
    # The name is free again.
    fresh = th.Study.create(SPACE, name="doomed", storage=db_url)
    assert fresh.trials == [] and fresh.cost_usd == 0.0


@pytest.mark.parametrize("storage", ["memory", ":memory:", "sqlite:///:memory:"])
def test_memory_storage_cannot_have_worker_processes(storage):
    study = th.Study.create(SPACE, storage=storage)
    with pytest.raises(th.ValidationError, match="sqlite") as info:
        study.optimize(lambda t: 0.0, n_trials=2, n_workers=2, progress=False)
    assert "memory" in str(info.value)
    assert study.trials == []


def test_a_database_missing_columns_is_refused_clearly(tmp_path):
    import sqlite3

    path = tmp_path / "dev.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE thrifty_studies (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE thrifty_meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO thrifty_meta VALUES ('schema_version', '1')")
    with pytest.raises(th.StorageError, match=r"thrifty_studies lacks column\(s\) space.*incompatible"):
        th.Study.create({"x": th.Float(0, 1)}, storage=f"sqlite:///{path}")


def test_a_version_1_database_is_migrated_in_place(tmp_path):
    """Version 2 added the trial columns parent and start_step: a version-1 file gains them and
    keeps its studies."""
    path = tmp_path / "v1.db"
    study = th.Study.create(SPACE, name="old", storage=f"sqlite:///{path}")
    study.tell(study.ask(), 1.0)
    study.close()
    with sqlite3.connect(path) as conn:  # make it what session-1 thrifty wrote
        conn.execute("ALTER TABLE thrifty_trials DROP COLUMN parent")
        conn.execute("ALTER TABLE thrifty_trials DROP COLUMN start_step")
        conn.execute("UPDATE thrifty_meta SET value = '1' WHERE key = 'schema_version'")
    again = th.Study.load("old", storage=f"sqlite:///{path}")
    assert [t.value for t in again.trials] == [1.0]
    again.tell(again.ask(), 2.0)
    assert again.best.value == 2.0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM thrifty_meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION)
