"""The Ray backend against a real Ray cluster on this machine: a head node and a second worker
node (``ray start``, 2 CPUs each), started once for the module and ended at its end with every
process it started. Without Ray the tests skip locally and fail in CI (``CI=true``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import assert_one_line_error, thrifty
from conftest import missing
from ray_cluster import ENV, LocalCluster
from ray_objectives import one_second, read_log, silent, stepping

import thrifty as th
from thrifty.errors import ValidationError
from thrifty.trial import StopKind, TrialState

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[LocalCluster]:
    try:
        import ray
    except ImportError:
        missing("Ray is not installed: pip install -e '.[ray]'")
    for key in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED"):
        os.environ.setdefault(key, ENV[key])
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    began = time.time()
    cluster = LocalCluster.start(temp_dir)
    print(f"ray cluster up in {time.time() - began:.1f} s at {cluster.address} ({temp_dir})")
    try:
        yield cluster
    finally:
        ray.shutdown()
        left = cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes still alive after stop: {left}"
        assert not cluster.pids(), "Ray processes of the test cluster are still running"


def _study(storage: str, tmp_path: Path, **kw) -> th.Study:
    return th.Study.create({"x": th.Float(0.0, 1.0)}, "max", storage=storage, name="r",
                           artifact_root=str(tmp_path / "art"), **kw)


def test_a_postgres_study_on_two_ray_nodes_stops_trials_early_and_holds_its_dollar_budget(ray_cluster, pg_url, tmp_path):
    # $1 per trial-second: ten 0.05 s steps cost about $0.5 a trial; $3 lasts ~6 full trials.
    study = _study(pg_url, tmp_path, strategy="random", pricing={"local": 3600.0}, budget={"usd": 3.0},
                   scheduler={"name": "threshold", "value": 0.5, "min_resource": 3}, resources={"cpu": 2})
    began = time.time()
    result = study.optimize(stepping, n_trials=40, n_workers=2, backend="ray", address=ray_cluster.address,
                            progress=False)
    print(f"{result}; {time.time() - began:.1f} s; counts {study.counts()}")
    trials = study.trials
    for t in trials:
        print(t.number, t.state.value, t.stop_kind, t.reason, t.last_step, round(t.params["x"], 3), t.cost_usd)
    assert result.reason == "usd", result
    assert all(t.worker_id and t.worker_id.startswith(study.worker_id + "/r") for t in trials)
    by_threshold = [t for t in trials if t.stop_kind is StopKind.SCHEDULER and "threshold" in (t.reason or "")]
    assert by_threshold and all(t.params["x"] < 0.5 and t.last_step == 3 for t in by_threshold)
    assert any(t.state is TrialState.COMPLETED and t.params["x"] >= 0.5 for t in trials)
    # The in-flight bound: beyond the limit, at most one reporting interval of each running trial.
    interval = max(m.cost_usd for t in trials for m in t.measurements)
    assert study.cost_usd <= 3.0 + 2 * interval, (study.cost_usd, interval)
    runs = read_log(tmp_path)
    starts = Counter(int(w[1]) for w in runs if w[0] == "start")
    assert set(starts) == {t.number for t in trials} and set(starts.values()) == {1}
    nodes = {w[3] for w in runs}
    assert len(nodes) == 2, f"each trial holds a whole 2-CPU node, so both nodes run trials: {nodes}"


def test_a_trial_that_does_not_report_is_cancelled_after_a_stop_request(ray_cluster, tmp_path):
    storage = f"sqlite:///{tmp_path / 'r.db'}"  # the whole cluster is this machine: SQLite is allowed
    study = _study(storage, tmp_path, pricing={"local": 36.0})

    def stop_when_running() -> None:
        other = th.Study.load("r", storage=storage)
        while not other.get_trials([TrialState.RUNNING]) or not read_log(tmp_path):
            time.sleep(0.1)
        other.stop_trial(other.get_trials([TrialState.RUNNING])[0].number)
        other.close()

    stopper = threading.Thread(target=stop_when_running, daemon=True)
    stopper.start()
    began = time.time()
    result = study.optimize(silent, n_trials=1, backend="ray", address=ray_cluster.address, stop_grace_s=1.0,
                            progress=False)
    print(f"{result}; {time.time() - began:.1f} s")
    (trial,) = study.trials
    assert trial.state is TrialState.STOPPED and trial.stop_kind is StopKind.USER, trial
    assert trial.elapsed_s > 0 and trial.cost_usd > 0, "the time it ran is charged"
    (start,) = read_log(tmp_path)
    pid = int(start[2])
    for _ in range(100):  # its worker process is killed by ray.cancel(force=True)
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), f"the cancelled trial's process {pid} still runs"


def test_a_killed_driver_is_resumed_by_a_new_one_and_nothing_runs_twice(ray_cluster, tmp_path):
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    study = _study(storage, tmp_path, budget={"trials": 6}, max_retries=1, heartbeat_grace_s=2.0)
    driver = subprocess.Popen([sys.executable, str(HERE / "ray_objectives.py"), storage, "r", ray_cluster.address],
                              cwd=tmp_path, env={**ENV, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        while len([w for w in read_log(tmp_path) if w[0] == "start"]) < 4:  # 2 done, 2 running
            assert driver.poll() is None, "the driver ended before it could be killed"
            time.sleep(0.05)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
    finally:
        if driver.poll() is None:
            driver.kill()
    runs = read_log(tmp_path)
    ended = {w[1] for w in runs if w[0] == "end"}
    orphans = {int(w[2]) for w in runs if w[0] == "start" and w[1] not in ended}
    assert orphans, "some trials were running when the driver died"
    for _ in range(150):  # Ray ends the tasks of a driver that is gone
        if not any(Path(f"/proc/{p}").exists() for p in orphans):
            break
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() for p in orphans), "the dead driver's tasks still run"
    result = study.optimize(one_second, n_workers=2, backend="ray", address=ray_cluster.address, progress=False)
    print(result, study.counts())
    trials = study.trials
    runs = read_log(tmp_path)
    starts = Counter(w[1] for w in runs if w[0] == "start")
    assert set(starts.values()) == {1}, f"a trial ran twice: {starts}"
    completed = [t for t in trials if t.state is TrialState.COMPLETED]
    failed = [t for t in trials if t.state is TrialState.FAILED]
    assert len(completed) == 6 and len(failed) == len(orphans), study.counts()
    assert sorted(t.retry_of for t in completed if t.retry_of is not None) == sorted(t.number for t in failed)
    assert {str(t.number) for t in completed} == {w[1] for w in runs if w[0] == "end"}


def test_memory_storage_is_refused_in_one_line_before_ray_is_touched(tmp_path):
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, "max", storage="memory")
    with pytest.raises(ValidationError) as err:
        study.optimize(one_second, n_trials=1, backend="ray")
    assert len(str(err.value).splitlines()) == 1 and "PostgreSQL" in str(err.value)
    assert study.trials == []
    with pytest.raises(ValidationError, match="backend='nope'"):
        study.optimize(one_second, backend="nope")


CONFIG = """
space: {x: {type: float, low: 0.0, high: 1.0}}
objective: max
workload: ray_objectives:one_second
artifact_root: ART
backend: ray
"""


def test_thrifty_run_backend_ray_runs_on_the_cluster_and_a_bad_address_is_one_line(ray_cluster, tmp_path,
                                                                                    monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.replace("ART", str(tmp_path / "art")))
    monkeypatch.setenv("PYTHONPATH", str(HERE))  # the workload's module
    db = f"sqlite:///{tmp_path / 'c.db'}"
    p = thrifty("run", config, "--address", "127.0.0.1:1", "--storage", db, "--n-trials", "1", cwd=tmp_path,
                check_rc=None)
    assert_one_line_error(p, "address='127.0.0.1:1'", "ray start --head")
    assert not (tmp_path / "c.db").exists(), "a refused run writes nothing"
    p = thrifty("run", config, "--address", ray_cluster.address, "--storage", db, "--n-trials", "3", "--workers",
                "2", "--no-progress", cwd=tmp_path)
    study = th.Study.load("c", storage=db)
    assert study.counts() == {TrialState.COMPLETED: 3}, p.stdout
    assert all(t.worker_id and "/r" in t.worker_id for t in study.trials)
    assert len([w for w in read_log(tmp_path) if w[0] == "end"]) == 3


def test_sigterm_to_thrifty_run_fails_the_running_trial_with_that_reason_and_ends_its_task(ray_cluster, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.replace("ART", str(tmp_path / "art")).replace("one_second", "silent"))
    db = f"sqlite:///{tmp_path / 'c.db'}"
    run = subprocess.Popen([sys.executable, "-m", "thrifty", "run", str(config), "--address", ray_cluster.address,
                            "--storage", db, "--n-trials", "1", "--no-progress"], cwd=tmp_path,
                           env={**ENV, "PYTHONPATH": str(HERE)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        while not read_log(tmp_path):
            assert run.poll() is None, run.communicate()[0]
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        out = run.communicate(timeout=60)[0]
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143, out
    (trial,) = th.Study.load("c", storage=db).trials
    assert trial.state is TrialState.FAILED and trial.error == "interrupted by SIGTERM", trial
    pid = int(read_log(tmp_path)[0][2])
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), f"the trial's process {pid} still runs"
