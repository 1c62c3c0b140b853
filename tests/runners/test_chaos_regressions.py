"""Bugs the chaos harness (tests/helpers/chaos.py, benchmarks/faults.py) found, each reduced to a
deterministic test that failed before its fix."""

from __future__ import annotations

import logging
import time

import pytest

import thrifty as th
from thrifty.errors import StorageError

SPACE = th.Space({"x": th.Float(0.0, 1.0)})


def _storage_of_w0_fails(trial):
    """Worker w0's storage fails (as on a full disk) when its trial ends; the others run on."""
    study = trial.study
    if study.worker_id.endswith("/w0"):
        deadline = time.time() + 20
        while study.counts().get(th.TrialState.RUNNING, 0) < 3 and time.time() < deadline:
            time.sleep(0.05)  # the others are in their trials

        def full(*_args, **_kwargs):
            raise StorageError("storage sqlite:///x.db: database or disk is full")

        study.storage.finish = full
        return trial.params["x"]
    time.sleep(30)
    return trial.params["x"]


def test_a_worker_error_with_other_workers_running_is_the_runs_error(sqlite_url):
    """Once stop_all had ended the other workers, _collect_exits went on over its snapshot of them
    and raised KeyError (a traceback instead of the worker's one line)."""
    study = th.Study.create(SPACE, "max", name="err", storage=sqlite_url, strategy="random", max_retries=1)
    started = time.time()
    with pytest.raises(th.WorkerError, match=r"^storage sqlite:///x.db: database or disk is full$"):
        study.optimize(_storage_of_w0_fails, n_trials=10, n_workers=3, progress=False)
    assert time.time() - started < 25
    trials = study.trials
    assert not [t for t in trials if t.state is th.TrialState.RUNNING]
    failed = [t for t in trials if t.state is th.TrialState.FAILED]
    assert len(failed) == 3 and all(t.retried for t in failed)
    assert sum("the worker stopped on an error: storage sqlite:///x.db" in t.error for t in failed) == 1


STOPPED_WHILE_REPORTING = '''
import os, signal, sys
import thrifty as th
from thrifty.errors import StorageError


class Full(StorageError):
    """A full disk. Its one line is made while the worker reports its error to the supervisor,
    and the supervisor's SIGTERM lands right then (as when it stops the other workers)."""

    def __str__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100_000):
            pass
        return "storage sqlite:///x.db: database or disk is full"


def objective(trial):
    def full(*_args, **_kwargs):
        raise Full()

    trial.study.storage.finish = full
    return trial.params["x"]


study = th.Study.load("err", storage=sys.argv[1])
study.optimize(objective, n_trials=1, trial_timeout_s=60, progress=False)  # in a worker process
'''


def test_a_worker_stopped_while_it_reports_its_error_exits_without_a_traceback(sqlite_url, tmp_path):
    """All workers hit the same error (a full disk); the supervisor stops the others while they
    send theirs: StopSignal escaped the worker's error branch and printed a traceback per worker.
    The worker now exits with its error status, and says nothing more."""
    import subprocess
    import sys

    from thrifty.runners.local import EXIT_WORKER_ERROR

    th.Study.create(SPACE, "max", name="err", storage=sqlite_url, strategy="random", max_retries=0)
    script = tmp_path / "worker.py"
    script.write_text(STOPPED_WHILE_REPORTING)
    p = subprocess.run([sys.executable, str(script), sqlite_url], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in p.stderr, p.stderr
    assert f"exited with status {EXIT_WORKER_ERROR}" in p.stderr, p.stderr


def _storage_fails(trial):
    def full(*_args, **_kwargs):
        raise StorageError("storage sqlite:///x.db: database or disk is full")

    trial.study.storage.finish = full
    return trial.params["x"]


def test_a_full_disk_is_said_once_not_once_per_worker(sqlite_url, caplog):
    """When the supervisor cannot record the end of its workers' trials either (the disk is full
    for everyone), it said so once per worker: eight lines with the same cause."""
    study = th.Study.create(SPACE, "max", name="full", storage=sqlite_url, strategy="random", max_retries=1,
                            heartbeat_grace_s=1.0)
    real_reap = study.storage.reap

    def reap(*args, **kwargs):
        if kwargs.get("worker_id") is not None:
            raise StorageError("storage sqlite:///x.db: database or disk is full")
        return real_reap(*args, **kwargs)

    study.storage.reap = reap
    with caplog.at_level(logging.WARNING, logger="thrifty"), pytest.raises(th.WorkerError):
        study.optimize(_storage_fails, n_trials=10, n_workers=4, progress=False)
    said = [r.getMessage() for r in caplog.records if "could not record" in r.getMessage()]
    assert len(said) == 1, said
    assert "database or disk is full" in said[0] and "heartbeat" in said[0]
    study.storage.reap = real_reap
    # The space is back: the trials are failed (and retried) on the next look, once their last
    # heartbeats are older than the grace (a reaper whose clock reads 1.1 s later: no sleeping).
    running = sorted(t.number for t in study.trials if t.state is th.TrialState.RUNNING)
    later = th.Study.load("full", storage=sqlite_url, clock=th.ManualClock(start_s=time.time() + 1.1))
    assert sorted(later.reap(force=True)) == running
    assert not [t for t in study.trials if t.state is th.TrialState.RUNNING]


def test_a_killed_postgresql_connection_is_reconnected_not_the_runs_end(pg_url):
    """pg_terminate_backend (a DBA, a failover, a pooler restart) in the middle of a transaction:
    'terminating connection due to administrator command' was not a transient error, so the ask,
    report or tell failed (a trial FAILED for nothing, or the whole run stopped). A transaction on
    a connection that broke is retried on a new one."""
    import psycopg
    from sqlalchemy import event

    study = th.Study.create(SPACE, "max", name="kill", storage=pg_url, strategy="random")
    engine = study.storage.engine
    killed = []

    @event.listens_for(engine, "before_cursor_execute")
    def kill_own_backend(conn, cursor, statement, *_args):
        if not killed and statement.lstrip().upper().startswith("UPDATE THRIFTY_TRIALS"):
            pid = conn.connection.dbapi_connection.info.backend_pid
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            killed.append(pid)
            time.sleep(0.2)  # the backend is gone before the statement is sent

    t = study.ask()
    t.report(0.5, step=1, cost_usd=0.25)  # killed in this transaction, then retried
    done = study.tell(t, 0.5)
    assert killed
    assert done.state is th.TrialState.COMPLETED
    assert study.cost_usd == 0.25 and len(done.measurements) == 2


STOPPED_WHILE_STARTING = '''
import os, sys, time
import thrifty as th

marker = sys.argv[2]

def slow_start():  # in each new worker, before multiprocessing hands it to thrifty
    open(marker, "a").close()
    time.sleep(3)

os.register_at_fork(after_in_child=slow_start)
study = th.Study.load("starting", storage=sys.argv[1])
try:
    study.optimize(lambda trial: trial.params["x"], n_trials=4, n_workers=2, progress=False)
except th.StopSignal as exc:
    print("stopped:", exc.reason)
    sys.exit(143)
'''


def test_a_worker_stopped_while_it_starts_exits_without_a_traceback(sqlite_url, tmp_path):
    """A forked worker ran with the supervisor's signal handler until multiprocessing called
    thrifty's code: SIGTERM then (the run stopped while a worker was being replaced) raised
    StopSignal inside multiprocessing's bootstrap, a traceback per worker."""
    import signal
    import subprocess
    import sys

    th.Study.create(SPACE, "max", name="starting", storage=sqlite_url, strategy="random")
    script, marker = tmp_path / "driver.py", tmp_path / "forked"
    script.write_text(STOPPED_WHILE_STARTING)
    p = subprocess.Popen([sys.executable, str(script), sqlite_url, str(marker)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not marker.exists():
        assert time.time() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, (out, err)
    assert "Traceback" not in err, err


@pytest.mark.parametrize("when", ["before_cursor_execute", "after_cursor_execute"])
# The report's first statement (the study's lock and its charge) and a later one.
@pytest.mark.parametrize("statement", ["UPDATE THRIFTY_STUDIES", "UPDATE THRIFTY_TRIALS"])
def test_a_stop_signal_inside_a_transaction_leaves_the_database_usable(sqlite_url, statement, when):
    """SIGTERM landing inside a storage transaction raised StopSignal there; SQLAlchemy dropped the
    connection as dead, and a SQLite connection dropped with a statement still active keeps the
    write lock. The worker's stop path (record its trial, the StopSignal still alive) then waited
    for its own lock (busy timeout 120 s, 8 tries) ignoring SIGTERM and its parent's death: an
    orphan that blocked every process of the study (found by benchmarks/faults.py). The signal now
    takes effect when the transaction has ended."""
    import os
    import signal

    from sqlalchemy import event

    from thrifty import process
    from thrifty.storage import RetryPolicy
    from thrifty.storage.sql import SQLStorage

    study = th.Study.create(SPACE, "max", name="tx", storage=sqlite_url, strategy="random", max_retries=1)
    handle = study.ask()
    other = SQLStorage(sqlite_url, busy_timeout_s=0.5)  # the stop path's own connection

    sent = []

    def sigterm_here(conn, cursor, text, *_args):
        text = text.upper()
        if not sent and text.startswith(statement):
            sent.append(text)
            os.kill(os.getpid(), signal.SIGTERM)

    event.listen(study.storage.engine, when, sigterm_here)
    try:
        with process.stop_signals_raise():
            handle.report(0.5, step=1, cost_usd=0.25)
        pytest.fail("no StopSignal")
    except th.StopSignal:  # as a worker's stop path: the exception (and its frames) still alive
        started = time.time()
        policy = RetryPolicy(max_retries=study.max_retries, heartbeat_grace_s=study.heartbeat_grace_s)
        failed = other.reap(study.id, policy, time.time(), worker_id=study.worker_id, reason="interrupted by SIGTERM")
        assert time.time() - started < 2 and failed == [handle.number]
    trial = study.trials[0]
    assert trial.state is th.TrialState.FAILED and study.cost_usd == trial.cost_usd == 0.25  # the report committed
    other.close()


def test_a_connection_killed_while_it_opens_is_retried(pg_url):
    """pg_terminate_backend of a session that is still being opened (benchmarks/faults.py: a
    driver stopped on it): no connection to call invalidated yet, so the error was not taken as
    transient. The SQLSTATE says it: 57P01 (admin shutdown), class 08 (connection exception)."""
    import psycopg
    from sqlalchemy import event

    study = th.Study.create(SPACE, "max", name="connect", storage=pg_url, strategy="random")
    engine = study.storage.engine
    engine.dispose()  # the next transaction opens a new connection
    refused = []

    @event.listens_for(engine, "do_connect")
    def killed_while_opening(*_args):
        if not refused:
            refused.append(1)
            raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")

    study.tell(study.ask(), 0.5)
    assert refused and study.trials[0].state is th.TrialState.COMPLETED
