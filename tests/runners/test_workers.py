"""Pull workers (issue 16, item 2): ``thrifty worker --storage URL --study NAME`` runs a study that
``thrifty run CONFIG`` created, with nothing but the storage URL: the objective is the one the study
stores. SIGTERM hands the running trial back for retry, and the retry starts from its checkpoint.

Real processes, real signals, a real SQLite file or PostgreSQL database (``pg_url``: in CI a
missing PostgreSQL is a failure, not a skip).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _cli import assert_one_line_error, thrifty

import thrifty as th
from thrifty.cli import worker_stop_bound_s
from thrifty.errors import ValidationError
from thrifty.runners.stored import RUNNER_KEY, check_runner, runner_of_config

#: A workload that checkpoints every step (the step it saved, written atomically into
#: ``trial.checkpoint_dir``) and resumes from what it finds there; it logs the step it starts from.
WORKLOAD = '''
import json, os, time

def objective(trial):
    ck = trial.checkpoint_dir / "state.json"
    start = json.loads(ck.read_text())["step"] if ck.exists() else 0
    with open(os.environ["WT_LOG"], "a") as fh:
        fh.write(f"start {trial.number} {trial.retry_of} {start} {os.getpid()}\\n")
    for step in range(start + 1, 7):
        time.sleep(float(os.environ.get("WT_STEP_S", "0.02")))
        tmp = ck.with_suffix(".tmp")
        tmp.write_text(json.dumps({"step": step}))
        os.replace(tmp, ck)
        trial.report(trial.params["x"] * step, step=step)
    with open(os.environ["WT_LOG"], "a") as fh:
        fh.write(f"done {trial.number} {os.getpid()}\\n")
    return trial.params["x"]
'''


def _config(tmp: Path, url: str, trials: int, max_retries: int = 1) -> Path:
    (tmp / "wt_workload.py").write_text(WORKLOAD)
    config = tmp / "wt.yaml"
    config.write_text(textwrap.dedent(f"""\
        name: wt
        storage: {url}
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
        workload: wt_workload:objective
        strategy: random
        scheduler: none
        max_retries: {max_retries}
        budget: {{trials: {trials}}}
        """))
    return config


def _env(tmp: Path, step_s: float = 0.02, **more: str) -> dict[str, str]:
    return {**os.environ, "WT_LOG": str(tmp / "trials.log"), "WT_STEP_S": str(step_s), "COLUMNS": "200", **more}


def _create(tmp: Path, url: str, trials: int, max_retries: int = 1) -> None:
    """Create the study as a user would: `thrifty run CONFIG` (one trial here, stored runner)."""
    config = _config(tmp, url, trials, max_retries)
    p = subprocess.run([sys.executable, "-m", "thrifty", "run", str(config), "--n-trials", "1", "--no-progress"],
                       cwd=tmp, env=_env(tmp), capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, (p.stdout, p.stderr)


def _worker(tmp: Path, url: str, *more: str, step_s: float = 0.02, cwd: Path | None = None) -> subprocess.Popen:
    """A worker started in another folder than the config's: the stored runner finds the workload."""
    elsewhere = cwd or tmp / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "thrifty", "worker", "--storage", url, "--study", "wt", *more],
                            cwd=elsewhere, env=_env(tmp, step_s), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _log(tmp: Path) -> list[list[str]]:
    path = tmp / "trials.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _wait(cond, timeout_s: float, what: str) -> None:
    end = time.time() + timeout_s
    while not cond():
        assert time.time() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def _checkpoint_step(tmp: Path, number: int) -> int:
    # The workers run in tmp/elsewhere: artifact_root (thrifty_artifacts) is relative to their folder.
    path = tmp / "elsewhere" / "thrifty_artifacts" / "wt" / f"trial-{number:05d}" / "checkpoint" / "state.json"
    try:
        return int(json.loads(path.read_text())["step"])
    except (OSError, ValueError):
        return 0


def test_two_workers_complete_a_postgresql_study_with_no_trial_run_twice(tmp_path, pg_url):
    _create(tmp_path, pg_url, trials=12)
    record = th.Study.load("wt", storage=pg_url).storage.load_study("wt")
    assert record.settings[RUNNER_KEY] == {"version": 1, "workload": "wt_workload:objective",
                                           "config_dir": str(tmp_path)}
    workers = [_worker(tmp_path, pg_url, step_s=0.05) for _ in range(2)]
    outs = [w.communicate(timeout=60) for w in workers]
    for w, (out, err) in zip(workers, outs):
        assert w.returncode == 0, (out, err)
        assert "Traceback" not in err
        assert "worker done: the budget of 12 trials is used up" in out, out
    starts = [e for e in _log(tmp_path) if e[0] == "start"]
    numbers = [int(e[1]) for e in starts]
    assert sorted(numbers) == list(range(12)), numbers  # each trial ran once, none twice
    assert len({e[4] for e in starts[1:]}) == 2, starts  # both workers ran trials
    trials = th.Study.load("wt", storage=pg_url).trials
    assert [t.state for t in trials] == [th.TrialState.COMPLETED] * 12


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_sigtermed_worker_hands_its_trial_back_and_the_retry_resumes_from_its_checkpoint(tmp_path, request,
                                                                                          backend):
    url = f"sqlite:///{tmp_path / 'wt.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    _create(tmp_path, url, trials=2)
    first = _worker(tmp_path, url, step_s=0.4)  # trial 1: six steps of 0.4 s, a checkpoint before each report
    _wait(lambda: _checkpoint_step(tmp_path, 1) >= 2, 30, "trial 1's checkpoint at step 2")
    signalled = time.time()
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=30)
    took = time.time() - signalled
    assert first.returncode == 143, (out, err)
    assert took < worker_stop_bound_s({"workload": "wt_workload:objective"}), took
    assert "Traceback" not in err
    said = out.strip().splitlines()[-1]
    assert said.startswith("thrifty: worker stopped by SIGTERM: trial 1 handed back for retry as trial 2"), out
    saved = _checkpoint_step(tmp_path, 1)
    assert 2 <= saved < 6

    second = _worker(tmp_path, url, "--idle-exit", "5")
    out, err = second.communicate(timeout=30)
    assert second.returncode == 0, (out, err)
    starts = {int(e[1]): e for e in _log(tmp_path) if e[0] == "start"}
    assert starts[2][2:4] == ["1", str(saved)], starts  # the retry of trial 1 started from its checkpoint
    trials = {t.number: t for t in th.Study.load("wt", storage=url).trials}
    assert trials[1].state is th.TrialState.FAILED and "interrupted by SIGTERM" in trials[1].error
    assert trials[1].retried
    retry = trials[2]
    assert retry.state is th.TrialState.COMPLETED and retry.retry_of == 1
    assert dict(retry.params) == dict(trials[1].params)
    assert next(m.step for m in retry.measurements if m.metrics) == saved + 1  # no step run twice
    assert len(trials) == 3


def test_idle_exit_leaves_while_another_workers_trial_runs(tmp_path, sqlite_url):
    _create(tmp_path, sqlite_url, trials=2)
    busy = _worker(tmp_path, sqlite_url, step_s=1.0)  # the last trial the budget allows: about 6 s
    try:
        _wait(lambda: any(e[0] == "start" and e[1] == "1" for e in _log(tmp_path)), 30, "trial 1 to start")
        started = time.time()
        idle = _worker(tmp_path, sqlite_url, "--idle-exit", "1")
        out, err = idle.communicate(timeout=30)
        took = time.time() - started
        assert idle.returncode == 0, (out, err)
        assert "worker done: nothing to run for 1 s (idle_exit_s)" in out, out
        assert "this worker's trials: none" in out
        assert took < 10, took  # start-up plus one idle second, not the other worker's trial
        assert busy.poll() is None  # it left while the other worker's trial was still running
    finally:
        busy.send_signal(signal.SIGTERM)
        busy.communicate(timeout=30)


def test_a_study_without_a_stored_objective_is_one_line_saying_what_to_do(tmp_path, sqlite_url):
    th.Study.create({"x": th.Float(0.0, 1.0)}, "max", name="api", storage=sqlite_url).close()
    env_storage = {"THRIFTY_STORAGE": sqlite_url}  # as for the other commands
    p = subprocess.run([sys.executable, "-m", "thrifty", "worker", "--study", "api"], cwd=tmp_path,
                       env={**os.environ, **env_storage}, capture_output=True, text=True, timeout=60, check=False)
    assert_one_line_error(p, "study 'api' stores no objective to run", "thrifty run CONFIG --n-trials 1")


def test_an_unknown_study_is_one_line_and_creates_nothing(tmp_path, sqlite_url):
    _create(tmp_path, sqlite_url, trials=1)
    p = thrifty("worker", "--storage", sqlite_url, "--study", "nope", cwd=tmp_path, check_rc=None)
    assert_one_line_error(p, "no study named 'nope'")
    missing = tmp_path / "missing.db"
    p = thrifty("worker", "--storage", f"sqlite:///{missing}", "--study", "wt", cwd=tmp_path, check_rc=None)
    assert_one_line_error(p, "no study named 'wt'")
    assert not missing.exists()
    p = thrifty("worker", "--storage", sqlite_url, "--study", "wt", "--idle-exit", "-1", cwd=tmp_path,
                check_rc=None)
    assert_one_line_error(p, "idle_exit_s=-1.0", "--idle-exit")


def test_a_worker_runs_a_stored_command(tmp_path, sqlite_url):
    (tmp_path / "prog.py").write_text(textwrap.dedent("""\
        import sys
        x = float(sys.argv[1])
        for epoch in range(1, 3):
            print(f"epoch={epoch} score={x * epoch}", flush=True)
        """))
    config = tmp_path / "cmd.yaml"
    config.write_text(textwrap.dedent(f"""\
        name: wt
        storage: {sqlite_url}
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
        command: "{sys.executable} prog.py {{x}}"
        metrics:
          score: {{regex: "score=([0-9.]+)", goal: max}}
          epoch: {{regex: "epoch=(\\\\d+)"}}
        grace_s: 3
        strategy: random
        scheduler: none
        budget: {{trials: 3}}
        """))
    thrifty("run", config, "--n-trials", "1", "--no-progress", cwd=tmp_path)
    record = th.Study.load("wt", storage=sqlite_url).storage.load_study("wt")
    runner = record.settings[RUNNER_KEY]
    assert runner["step_metric"] == "epoch" and runner["grace_s"] == 3 and runner["config_dir"] == str(tmp_path)
    assert worker_stop_bound_s(runner) == 3 + 10
    p = _worker(tmp_path, sqlite_url)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, (out, err)
    assert "(command " in out.splitlines()[0] and "exits within 13 s" in out.splitlines()[0], out
    trials = th.Study.load("wt", storage=sqlite_url).trials
    assert [t.state for t in trials] == [th.TrialState.COMPLETED] * 3
    assert all(t.value == pytest.approx(2 * t.params["x"], abs=1e-5) for t in trials)


def test_the_stored_runner_is_checked_and_old_studies_load_without_it(tmp_path, sqlite_url):
    spec = runner_of_config({"workload": "m:f", "trial_timeout_s": 30}, "/srv/app")
    assert spec == {"version": 1, "workload": "m:f", "config_dir": "/srv/app", "trial_timeout_s": 30}
    assert runner_of_config({"pipeline": []}, "/srv/app") is None
    for bad, words in (({**spec, "version": 2}, "newer thrifty"), ({**spec, "workload": "nocolon"}, "module:function"),
                       ({**spec, "surprise": 1}, "unknown key(s) surprise"), ({**spec, "trial_timeout_s": 0}, "> 0"),
                       ({"version": 1, "command": "x", "config_dir": "/a"}, "'metrics'")):
        with pytest.raises(ValidationError, match=words.replace("(", r"\(").replace(")", r"\)")):
            check_runner(bad)
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, "max", name="old", storage=sqlite_url)
    study.storage.update_study(study.id, settings={RUNNER_KEY: spec})  # an extra settings key: still loads
    assert th.Study.load("old", storage=sqlite_url).settings.comparable() == study.settings.comparable()


def test_a_retry_gets_its_trials_checkpoint_which_cleanup_keeps_until_the_retry_has_run(tmp_path, sqlite_url):
    from thrifty.checkpoints import checkpoint_dir, clean_checkpoints

    study = th.Study.create({"x": th.Float(0.0, 1.0)}, "max", name="ck", storage=sqlite_url, strategy="random",
                            max_retries=1, keep_checkpoints=0, artifact_root=str(tmp_path / "art"))
    first = study.ask()
    (first.checkpoint_dir / "state").write_text("step 3")
    assert study.reap(worker_id=study.worker_id, reason="interrupted by SIGTERM") == [first.number]
    assert clean_checkpoints(study, 0) == []  # its retry has not run: the checkpoint stays
    retry = study.ask()
    assert retry.retry_of == first.number
    assert (retry.checkpoint_dir / "state").read_text() == "step 3"
    study.tell(retry, 0.5)  # keep_checkpoints=0: now both go
    assert not checkpoint_dir(study, first.number).exists() and not checkpoint_dir(study, retry.number).exists()


def test_every_run_stores_the_configs_objective_for_the_workers(tmp_path, sqlite_url):
    _create(tmp_path, sqlite_url, trials=3)
    (tmp_path / "wt_other.py").write_text(WORKLOAD)
    config = tmp_path / "wt.yaml"
    config.write_text(config.read_text().replace("wt_workload:objective", "wt_other:objective"))
    p = subprocess.run([sys.executable, "-m", "thrifty", "run", str(config), "--n-trials", "1", "--no-progress"],
                       cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, (p.stdout, p.stderr)
    record = th.Study.load("wt", storage=sqlite_url).storage.load_study("wt")
    assert record.settings[RUNNER_KEY]["workload"] == "wt_other:objective"  # the latest config wins
