"""The ask/tell path's statements run on the driver's connection (see ``storage/sql.py``'s
``_rows``): a failure there is still the one-line storage error, and on PostgreSQL the planner's
statistics are refreshed as a study grows, so its plans do not stay those of an empty table."""

from __future__ import annotations

import sqlite3

import pytest

import thrifty as th
from thrifty.errors import StorageError

SPACE = th.Space({"x": th.Float(0.0, 1.0)})


def test_a_failing_statement_on_the_ask_path_is_a_one_line_storage_error(tmp_path) -> None:
    path = tmp_path / "study.db"
    study = th.Study.create(SPACE, "max", name="s", storage=f"sqlite:///{path}", strategy="random")
    study.tell(study.ask(), 0.5)
    with sqlite3.connect(path) as other:  # another program breaks the database under the study
        other.execute("PRAGMA foreign_keys=OFF")
        other.execute("DROP TABLE thrifty_measurements")
    with pytest.raises(StorageError) as caught:
        study.ask()
    message = str(caught.value)
    assert "no such table: thrifty_measurements" in message and "\n" not in message


def test_postgresql_statistics_are_refreshed_as_the_study_grows(pg_url: str) -> None:
    import psycopg

    study = th.Study.create(SPACE, "max", name="grows", storage=pg_url, strategy="random")

    def analyzed() -> int:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'thrifty_trials'").fetchone()
        assert row is not None
        return int(row[0])

    for _ in range(31):
        study.tell(study.ask(), 0.5)
    assert analyzed() == 0
    study.tell(study.ask(), 0.5)  # the 32nd trial
    assert analyzed() == 1
    for _ in range(32):
        study.tell(study.ask(), 0.5)
    assert analyzed() == 2  # the 64th
