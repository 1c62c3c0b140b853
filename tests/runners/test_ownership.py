"""Processes are owned (issue 11, items 1, 2, 5): no connection crosses a fork, workers die with
their parent, SIGTERM is a clean stop, crash loops and hung trials end with the true reason.

Every test runs real processes against a real SQLite file (PostgreSQL where the rule concerns it).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import thrifty as th
from _cli import thrifty  # noqa: F401  (keeps the helper importable from here)

SPACE = th.Space({"x": th.Float(0.0, 1.0)})

WORKLOAD = '''
import os, time

def objective(trial):
    log = os.environ["OWN_TEST_LOG"]
    with open(log, "a") as fh:
        fh.write(f"start {trial.number} {time.time()}\\n")
    for step in range(1, 6):
        time.sleep(float(os.environ.get("OWN_TEST_STEP_S", "0.05")))
        trial.report(trial.params["x"] * step, step=step)
    with open(log, "a") as fh:
        fh.write(f"done {trial.number}\\n")
    return trial.params["x"]
'''


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait(cond, timeout_s: float, what: str) -> None:
    end = time.time() + timeout_s
    while not cond():
        assert time.time() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def _log(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def project(tmp_path):
    (tmp_path / "own_workload.py").write_text(WORKLOAD)
    db = tmp_path / "own.db"
    config = tmp_path / "own.yaml"
    config.write_text(textwrap.dedent(f"""\
        name: own
        storage: sqlite:///{db}
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
        workload: own_workload:objective
        strategy: random
        scheduler: none
        max_retries: 1
        n_trials: 400
        n_workers: 2
        """))
    env = {**os.environ, "OWN_TEST_LOG": str(tmp_path / "trials.log"), "COLUMNS": "200"}
    return tmp_path, config, f"sqlite:///{db}", env


def _start_run(project, step_s: float = 0.05) -> subprocess.Popen:
    tmp, config, _, env = project
    env = {**env, "OWN_TEST_STEP_S": str(step_s)}
    return subprocess.Popen([sys.executable, "-m", "thrifty", "run", str(config), "--no-progress"], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _reader_loop(path: str, stop_at: float) -> None:
    """Another program reading the study file, opening and closing connections (as `thrifty trials`)."""
    while time.time() < stop_at:
        con = sqlite3.connect(path)
        con.execute("SELECT count(*) FROM thrifty_trials").fetchone()
        con.close()
        time.sleep(0.02)


# -- item 1: no connection crosses a fork ------------------------------------------------------------
def _forked_writer(url: str, n: int) -> None:
    study = th.Study.load("fork", storage=url)
    for _ in range(n):
        t = study.ask()
        time.sleep(0.01)
        study.tell(t, 0.5)
    os._exit(0)


def test_a_forked_writer_loses_nothing_when_its_parent_closes_and_a_reader_comes(tmp_path):
    """The parent has pooled connections when it forks; the child writes; the parent closes its
    connections and another program reads. Every write of the child must be in the file."""
    path = tmp_path / "fork.db"
    url = f"sqlite:///{path}"
    study = th.Study.create(SPACE, "max", name="fork", storage=url, strategy="random")
    study.tell(study.ask(), 0.1)  # the parent's pool now holds an open connection
    child = mp.get_context("fork").Process(target=_forked_writer, args=(url, 60))
    child.start()
    time.sleep(0.2)
    study.close()  # the parent lets go of the file, as a parent that exits does
    reader = mp.get_context("spawn").Process(target=_reader_loop, args=(str(path), time.time() + 2.0))
    reader.start()
    child.join(timeout=60)
    reader.join(timeout=60)
    assert child.exitcode == 0
    con = sqlite3.connect(path)
    n = con.execute("SELECT count(*) FROM thrifty_trials WHERE state = 'completed'").fetchone()[0]
    con.close()
    assert n == 61


# -- item 1: SIGTERM is a clean stop; workers die with their parent -------------------------------------
def test_sigterm_to_thrifty_run_stops_cleanly_and_loses_no_trial(project):
    tmp, _, url, _ = project
    p = _start_run(project)
    study_file = str(tmp / "own.db")
    _wait(lambda: len([e for e in _log(tmp / "trials.log") if e[0] == "done"]) >= 8, 60, "eight trials")
    workers = _children(p.pid)
    assert len(workers) >= 2
    reader = mp.get_context("spawn").Process(target=_reader_loop, args=(study_file, time.time() + 1.0))
    reader.start()
    time.sleep(0.5)
    signalled = time.time()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    reader.join(timeout=30)
    assert p.returncode == 143, (out, err)
    assert "interrupted by SIGTERM" in out and "study own" in out  # the summary was printed
    assert "Traceback" not in err
    _wait(lambda: not any(_alive(w) for w in workers), 10, "the workers to exit")

    study = th.Study.load("own", storage=url)
    trials = {t.number: t for t in study.trials}
    assert not [t for t in trials.values() if t.state is th.TrialState.RUNNING]
    done = {int(e[1]) for e in _log(tmp / "trials.log") if e[0] == "done"}
    for number in done:  # every trial a worker finished is in the database
        t = trials[number]
        assert t.state is th.TrialState.COMPLETED or "interrupted by SIGTERM" in (t.error or ""), t
    interrupted = [t for t in trials.values() if t.state is th.TrialState.FAILED]
    assert 1 <= len(interrupted) <= 2
    assert all("interrupted by SIGTERM" in t.error and "re-enqueued" in t.error for t in interrupted)
    late = [e for e in _log(tmp / "trials.log") if e[0] == "start" and float(e[2]) > signalled + 0.05]
    assert not late, f"trials started after SIGTERM: {late}"

    # The study resumes: the interrupted trials' retries run first.
    p = _start_run(project)
    _wait(lambda: all(trials_now.state is not th.TrialState.PENDING
                      for trials_now in th.Study.load("own", storage=url).trials), 60, "the retries to run")
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)


def test_sigint_to_the_parent_alone_starts_no_new_trial(project):
    tmp, _, url, _ = project
    p = _start_run(project, step_s=0.2)
    _wait(lambda: len([e for e in _log(tmp / "trials.log") if e[0] == "start"]) >= 3, 60, "three trials")
    signalled = time.time()
    p.send_signal(signal.SIGINT)  # to the parent only, not to its process group
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, (out, err)
    late = [e for e in _log(tmp / "trials.log") if e[0] == "start" and float(e[2]) > signalled + 0.05]
    assert not late, f"trials started after SIGINT: {late}"
    trials = th.Study.load("own", storage=url).trials
    assert not [t for t in trials if t.state is th.TrialState.RUNNING]


def test_workers_die_with_a_killed_parent_and_their_trials_are_retried(project):
    tmp, _, url, _ = project
    p = _start_run(project, step_s=0.5)
    _wait(lambda: len(_children(p.pid)) >= 2 and len(_log(tmp / "trials.log")) >= 2, 60, "two running trials")
    workers = _children(p.pid)
    p.kill()  # SIGKILL: the parent cannot do anything about it
    p.communicate(timeout=30)
    _wait(lambda: not any(_alive(w) for w in workers), 10, "the orphaned workers to exit")
    trials = th.Study.load("own", storage=url).trials
    assert not [t for t in trials if t.state is th.TrialState.RUNNING]
    orphaned = [t for t in trials if t.state is th.TrialState.FAILED]
    assert orphaned and all("supervisor process" in t.error and "re-enqueued" in t.error for t in orphaned)
    assert len([t for t in trials if t.state is th.TrialState.PENDING]) == len(orphaned)


# -- item 2: crash loops ---------------------------------------------------------------------------------
def _always_dies(trial):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_crash_loop_ends_with_the_true_reason(sqlite_url):
    study = th.Study.create(SPACE, "max", name="loop", storage=sqlite_url, strategy="random", max_retries=1)
    started = time.time()
    with pytest.raises(th.WorkersKeepDying, match=r"workers keep dying: 4 exits in a row .*signal 9 \(SIGKILL\) "
                                                   r"in trial \d+"):
        study.optimize(_always_dies, n_trials=20, n_workers=2, max_worker_deaths=4, progress=False)
    assert time.time() - started < 30
    assert not [t for t in study.trials if t.state is th.TrialState.RUNNING]


def _dies_on_first_attempt_of_odd_trials(trial):
    if trial.retry_of is None and trial.number % 2 == 1 and trial.number < 16:
        os.kill(os.getpid(), signal.SIGKILL)
    trial.report(trial.params["x"], step=1)
    return trial.params["x"]


def test_workers_that_die_now_and_then_are_replaced_until_the_run_is_done(sqlite_url):
    """Five or more deaths with two workers: more than the old fixed allowance of 2 x workers
    replacements, after which the old supervisor gave up and left a retry PENDING."""
    study = th.Study.create(SPACE, "max", name="flaky", storage=sqlite_url, strategy="random", max_retries=1)
    result = study.optimize(_dies_on_first_attempt_of_odd_trials, n_trials=16, n_workers=2, progress=False)
    assert result.reason == "n_trials", result
    trials = study.trials
    states = [t.state for t in trials]
    assert th.TrialState.PENDING not in states and th.TrialState.RUNNING not in states
    killed = [t for t in trials if t.state is th.TrialState.FAILED]
    assert len(killed) >= 5
    for t in killed:
        retry = next(r for r in trials if r.retry_of == t.number)
        assert retry.state is th.TrialState.COMPLETED


# -- item 5: hung trials and time limits -------------------------------------------------------------
def _first_trial_hangs(trial):
    if trial.number == 0:
        time.sleep(600)
    return trial.params["x"]


def test_a_hung_python_trial_is_ended_by_its_trial_timeout(sqlite_url):
    study = th.Study.create(SPACE, "max", name="hang", storage=sqlite_url, strategy="random", max_retries=1)
    started = time.time()
    result = study.optimize(_first_trial_hangs, n_trials=3, trial_timeout_s=1.0, progress=False)
    assert time.time() - started < 20
    trials = study.trials
    hung = trials[0]
    assert hung.state is th.TrialState.FAILED and "timeout after 1 s" in hung.error and hung.retried
    retry = next(t for t in trials if t.retry_of == 0)  # a new number: this one does not hang
    assert retry.state is th.TrialState.COMPLETED and dict(retry.params) == dict(hung.params)
    assert [t.state for t in trials].count(th.TrialState.COMPLETED) == 3
    assert result.n_trials == 3


def _hangs(trial):
    time.sleep(600)


def _hangs_ignoring_sigterm(trial):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)


@pytest.mark.parametrize("n_workers,objective", [(1, _hangs), (2, _hangs_ignoring_sigterm)])
def test_optimize_returns_within_its_timeout_plus_the_grace(sqlite_url, n_workers, objective):
    study = th.Study.create(SPACE, "max", name="late", storage=sqlite_url, strategy="random")
    started = time.time()
    result = study.optimize(objective, n_workers=n_workers, timeout_s=1.0, stop_grace_s=1.0, progress=False)
    took = time.time() - started
    assert took < 1.0 + 1.0 + 5.0 + 4.0, took  # timeout + grace + SIGKILL delay + process start-up
    assert result.reason == "timeout"
    trials = study.trials
    assert len(trials) == n_workers
    assert all(t.state is th.TrialState.FAILED and "timeout_s=1 s" in t.error for t in trials)


def test_trial_timeout_s_in_a_workload_config_ends_a_hung_trial(tmp_path):
    (tmp_path / "hang_workload.py").write_text(textwrap.dedent("""\
        import time

        def objective(trial):
            if trial.number == 0:
                time.sleep(600)
            return trial.params["x"]
        """))
    config = tmp_path / "hang.yaml"
    config.write_text(textwrap.dedent(f"""\
        name: hang
        storage: sqlite:///{tmp_path / 'hang.db'}
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
        workload: hang_workload:objective
        strategy: random
        n_trials: 2
        trial_timeout_s: 1
        """))
    p = subprocess.run([sys.executable, "-m", "thrifty", "run", str(config), "--no-progress"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    trials = th.Study.load("hang", storage=f"sqlite:///{tmp_path / 'hang.db'}").trials
    assert trials[0].state is th.TrialState.FAILED and "timeout after 1 s" in trials[0].error
    assert trials[1].state is th.TrialState.COMPLETED


# -- item 6: a worker's error is one line, once ---------------------------------------------------------
def test_a_study_deleted_mid_run_gives_one_clear_line(project):
    tmp, _, url, _ = project
    p = _start_run(project, step_s=0.1)
    _wait(lambda: len(_log(tmp / "trials.log")) >= 4, 60, "trials")
    th.Study.load("own", storage=url).storage.delete_study("own")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("thrifty: error: "), err
