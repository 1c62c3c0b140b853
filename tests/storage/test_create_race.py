"""Create-or-load is atomic: processes creating one study at once on a new database (SQLite file,
PostgreSQL) all get the same study, exactly one of them creates it, none fails."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest
import sqlalchemy as sa

import _postgres
import thrifty as th
from thrifty.storage import open_storage
from thrifty.storage.sql import normalize_url

SPACE = th.Space({"x": th.Float(0.0, 1.0)})
N_PROCESSES = 6
NAMES = 3


def _create(url: str, name: str, open_first: bool, barrier, results) -> None:
    # open_first: the database is opened before the race (its tables exist), so the processes
    # race on the study alone, not also on creating the tables (which staggers them).
    storage = open_storage(url) if open_first else url
    barrier.wait()  # all processes start creating at the same instant
    try:
        study = th.Study.create(SPACE, name=name, storage=storage, strategy="random", load_if_exists=True)
        results.put(("ok", study.id, study.created))
        study.close()
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        results.put(("error", f"{type(exc).__name__}: {exc}", None))


def _race(url: str, name: str, open_first: bool) -> list[tuple]:
    # Import what creating a study needs before forking, so the processes race on the database,
    # not on importing.
    th.Study.create(SPACE, storage="memory", strategy="random").close()
    sa.create_engine(normalize_url(url)).dispose()  # the database driver (no connection is made)
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(N_PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_create, args=(url, name, open_first, barrier, results)) for _ in range(N_PROCESSES)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return got


def _n_studies(url: str) -> int:
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            return conn.execute("SELECT count(*) FROM thrifty_studies").fetchone()[0]
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM thrifty_studies").fetchone()[0]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_creating_one_study_at_once_all_get_it(backend, tmp_path, request):
    """On each of two new databases, three studies are raced for: the first race includes
    opening the database and creating its tables, the others race on the study row alone."""
    rounds = {}
    for db in range(2):
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / f'db{db}.db'}"
        else:
            url = _postgres.create_database(request.getfixturevalue("postgres_server"))
        try:
            for i in range(NAMES):
                rounds[(db, i)] = _race(url, f"race{i}", open_first=i > 0)
            assert _n_studies(url) == NAMES
        finally:
            if backend == "postgresql":
                _postgres.drop_database(url)
    errors = {k: [g[1] for g in got if g[0] == "error"] for k, got in rounds.items()}
    assert not any(errors.values()), errors
    for got in rounds.values():
        assert len({g[1] for g in got}) == 1, "every process has the same study"
        assert sorted(bool(g[2]) for g in got) == [False] * (N_PROCESSES - 1) + [True], "one created it"


def test_load_if_exists_loads_the_stored_study(db_url):
    first = th.Study.create(SPACE, name="once", storage=db_url, seed=1, load_if_exists=True)
    again = th.Study.create(th.Space({"y": th.Int(0, 3)}), name="once", storage=db_url, seed=2, load_if_exists=True)
    assert first.created and not again.created
    assert again.space == SPACE and again.seed == 1, "the stored study, the new arguments ignored"
    with pytest.raises(th.DuplicateStudy, match="already exists"):
        th.Study.create(SPACE, name="once", storage=db_url)
