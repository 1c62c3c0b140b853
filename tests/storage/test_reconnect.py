"""PostgreSQL connections that the server drops (``pg_terminate_backend``, a restart, a network
cut) are retried transparently, and no write is lost or applied twice; an outage longer than
``reconnect_timeout_s`` is a one-line StorageError."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event

import thrifty as th
from conftest import HELPERS
from thrifty.storage.sql import SQLStorage

SPACE = th.Space({"x": th.Float(0.0, 1.0)})


def _terminate(admin_url: str, database: str, pid: int | None = None) -> int:
    """Terminate the server processes of ``database`` (or the one ``pid``); wait until they are
    gone. Returns how many were terminated."""
    import psycopg

    where = "pid = %s" if pid is not None else "datname = %s AND pid <> pg_backend_pid()"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(f"SELECT pid FROM pg_stat_activity WHERE {where}", (pid or database,))]
        for p in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (p,))
        deadline = time.time() + 10
        while pids and time.time() < deadline:
            if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone():
                break
            time.sleep(0.01)
    return len(pids)


def test_workers_survive_their_connections_being_terminated(pg_url, postgres_server):
    """Two worker processes run 80 trials while another session terminates every connection to
    the database every 0.2 s: no traceback, every trial completed once, every report counted once."""
    study = th.Study.create(SPACE, name="killed", storage=pg_url, strategy="random", seed=1)
    study.close()
    worker = subprocess.Popen(
        [sys.executable, os.path.join(HELPERS, "optimize_worker.py"), pg_url, "killed", "normal", os.devnull,
         "2", "80"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    database = pg_url.rsplit("/", 1)[1]
    kills = 0
    while worker.poll() is None:
        time.sleep(0.2)
        kills += _terminate(postgres_server, database)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "Traceback" not in err + out
    assert kills >= 5, f"only {kills} connections were terminated: the test proved little"
    study = th.Study.load("killed", storage=pg_url)
    trials = study.trials
    assert len(trials) == 80 and all(t.state is th.TrialState.COMPLETED for t in trials), study.counts()
    for t in trials:
        # The three reports, then the final result at the last step: each recorded once.
        assert [(m.step, m.cost_usd) for m in t.measurements] == [(1, 0.01), (2, 0.01), (3, 0.01), (3, 0.0)]
        assert t.cost_usd == pytest.approx(0.03)
    assert study.cost_usd == pytest.approx(math.fsum(t.cost_usd for t in trials)) == pytest.approx(80 * 0.03)


def _lose_next_commit(monkeypatch, storage: SQLStorage, admin_url: str, applied: bool) -> dict:
    """Make the next COMMIT lose its connection: after the server applied it (``applied``; the
    client cannot know it was), or before it reached the server. Real dropped connections: the
    session's server process is terminated."""
    dialect = storage.engine.dialect
    real_commit = dialect.do_commit
    state = {"armed": True, "fired": False}

    def do_commit(dbapi_conn):
        if not state["armed"]:
            return real_commit(dbapi_conn)
        state.update(armed=False, fired=True)
        if applied:
            real_commit(dbapi_conn)
        raw = dbapi_conn.dbapi_connection  # the psycopg connection under SQLAlchemy's pool wrapper
        _terminate(admin_url, "", pid=raw.info.backend_pid)
        if applied:
            raw.execute("SELECT 1")  # the client learns of the drop now: no answer to its COMMIT
        return real_commit(dbapi_conn)

    monkeypatch.setattr(dialect, "do_commit", do_commit)
    return state


def _lose_next_tell(monkeypatch, storage: SQLStorage, admin_url: str, applied: bool) -> dict:
    """Make the next tell's statement (on PostgreSQL one statement, committed by the server as it
    ends) lose its connection: after the server applied it (``applied``), or before it ran."""
    dialect = storage.engine.dialect
    real_execute = dialect.do_execute
    state = {"armed": True, "fired": False, "runs": 0}

    def do_execute(cursor, statement, parameters, context=None):
        if "finished AS" in statement:
            state["runs"] += 1
        if not state["armed"] or "finished AS" not in statement:
            return real_execute(cursor, statement, parameters, context)
        state.update(armed=False, fired=True)
        if applied:
            real_execute(cursor, statement, parameters, context)  # applied; its answer never arrives
        _terminate(admin_url, "", pid=cursor.connection.info.backend_pid)
        return real_execute(cursor, statement, parameters, context)  # fails: the connection is gone

    monkeypatch.setattr(dialect, "do_execute", do_execute)
    return state


@pytest.mark.parametrize("applied", [True, False], ids=["committed", "not-committed"])
def test_a_write_whose_answer_is_lost_is_applied_exactly_once(applied, pg_url, postgres_server, monkeypatch):
    """A report (a transaction: its COMMIT's answer is lost) and a tell (one statement: its answer
    is lost), each either applied or not by the server: each is recorded once."""
    study = th.Study.create(SPACE, name="once", storage=pg_url, strategy="random")
    storage = study.storage
    assert isinstance(storage, SQLStorage)
    handle = study.ask()
    state = _lose_next_commit(monkeypatch, storage, postgres_server, applied)
    # A lost commit is looked up on a new connection (PostgreSQL's txid_status): seen here
    # through SQLAlchemy's public event hook on the storage's engine.
    lookups = []

    def seen(_conn, _cursor, statement, *_args):
        if "txid_status" in statement:
            lookups.append(statement)

    event.listen(storage.engine, "before_cursor_execute", seen)
    handle.report(0.5, step=1, cost_usd=0.25)
    assert state["fired"] and len(lookups) == 1, "the lost commit was looked up"
    state["armed"] = False
    told = _lose_next_tell(monkeypatch, storage, postgres_server, applied)
    trial = study.tell(handle, 0.75, cost_usd=0.5)
    assert told["fired"] and told["runs"] == 2, "the tell's statement ran again on a new connection"
    assert trial.state is th.TrialState.COMPLETED and trial.value == 0.75
    event.remove(storage.engine, "before_cursor_execute", seen)
    again = th.Study.load("once", storage=pg_url)
    (trial,) = again.trials
    assert trial.state is th.TrialState.COMPLETED and trial.value == 0.75
    # The report and the final result (at the last step): each recorded once, and paid for once.
    assert [(m.step, m.cost_usd) for m in trial.measurements] == [(1, 0.25), (1, 0.5)]
    assert trial.cost_usd == pytest.approx(0.75) and again.cost_usd == pytest.approx(0.75)
    status = again.storage.study_status(again.id)
    assert status.n_running == 0 and trial.finish_order == 1


class _Proxy:
    """A TCP proxy in front of the PostgreSQL server: ``cut()`` closes every connection and stops
    listening (the server is gone), ``restore()`` listens again on the same port (it is back)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            if listener is not None:
                try:  # wakes the accepting thread (a close alone leaves the socket listening on Linux)
                    listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                listener.close()
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def proxied(pg_url):
    parts = urlsplit(pg_url)
    proxy = _Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    yield proxy, pg_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    proxy.cut()


def test_a_server_restart_is_waited_for_and_a_long_outage_is_one_clear_error(proxied):
    proxy, url = proxied
    study = th.Study.create(SPACE, name="restart", storage=url, strategy="random")
    study.tell(study.ask(), 0.5)

    # The server goes away for 0.8 s (every connection closed, connections refused): transparent.
    handle = study.ask()
    proxy.cut()
    threading.Timer(0.8, proxy.restore).start()
    handle.report(0.25, step=1, cost_usd=0.5)
    study.tell(handle, 0.75)
    assert [t.value for t in study.trials] == [0.5, 0.75]

    # It stays away longer than reconnect_timeout_s: a one-line StorageError, nothing written.
    study.storage.reconnect_timeout_s = 2.0  # type: ignore[attr-defined]
    proxy.cut()
    started = time.monotonic()
    with pytest.raises(th.StorageError) as info:
        study.ask()
    assert 2.0 <= time.monotonic() - started < 10.0
    message = str(info.value)
    assert "lost the connection to the database" in message and "within 2 s" in message
    assert "\n" not in message
    proxy.restore()
    assert len(study.trials) == 2 and study.cost_usd == pytest.approx(0.5)


def test_an_unreachable_server_is_an_error_at_once(postgres_server):
    """A wrong port is not a restart to wait for: the first connection's failure is reported at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(th.StorageError, match=f"port {port} failed: Connection refused"):
        th.Study.create(SPACE, storage=f"postgresql://postgres@127.0.0.1:{port}/test")
    assert time.monotonic() - started < 5.0


@pytest.mark.slow
def test_workers_ride_out_a_real_server_restart(throwaway_cluster):
    """``pg_ctl restart`` of a throwaway cluster while two workers run: nothing is lost."""
    url = throwaway_cluster.url
    study = th.Study.create(SPACE, name="restarted", storage=url, strategy="random")
    worker = subprocess.Popen(
        [sys.executable, os.path.join(HELPERS, "optimize_worker.py"), url, "restarted", "normal", os.devnull, "2",
         "200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 60
    while study.counts().get(th.TrialState.COMPLETED, 0) < 10 and time.time() < deadline:
        time.sleep(0.05)  # the workers are under way
    study.close()
    down = time.time()
    throwaway_cluster.restart()
    up = time.time()
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert "Traceback" not in err + out
    study = th.Study.load("restarted", storage=url)
    trials = study.trials
    assert len(trials) == 200 and all(t.state is th.TrialState.COMPLETED for t in trials), study.counts()
    assert any(t.finished_at < down for t in trials) and any(t.finished_at > up for t in trials), \
        "the workers ran before and after the restart"
    assert all(t.cost_usd == pytest.approx(0.03) for t in trials)
    assert study.cost_usd == pytest.approx(200 * 0.03)
    study.close()
