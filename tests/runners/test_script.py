"""The script runner on real programs (tests/helpers/train_script.py)."""

from __future__ import annotations

import os
import sys
import time

import pytest

import thrifty as th
from conftest import HELPERS

SCRIPT = os.path.join(HELPERS, "train_script.py")
METRICS = {"val_acc": {"regex": r"val_acc=([0-9.eE+-]+)", "goal": "max"},
           "train_loss": {"regex": r"train_loss=([0-9.eE+-]+)"},
           "epoch": {"regex": r"epoch=(\d+)"}}


def make(tmp_path, mode, epochs=5, **kw):
    objective = th.ScriptObjective(
        [sys.executable, SCRIPT, "--lr", "{lr}", "--epochs", "{max_resource}", "--mode", mode],
        METRICS, step_metric="epoch", max_resource=epochs, grace_s=2, **kw)
    study = th.Study.create({"lr": th.Float(0.01, 0.1)}, {"val_acc": "max"}, storage="memory",
                            artifact_root=str(tmp_path / "artifacts"), pricing={"local": 36.0})
    return study, objective


def run_one(study, objective, lr=0.05):
    study.enqueue({"lr": lr})
    study.optimize(objective, n_trials=1, progress=False, max_consecutive_failures=None)
    return study.trials[-1]


def test_interleaved_output_becomes_reports(tmp_path):
    study, objective = make(tmp_path, "normal")
    t = run_one(study, objective, lr=0.05)
    assert t.state is th.TrialState.COMPLETED
    assert t.metrics["val_acc"] == pytest.approx(0.25)
    assert [m.step for m in t.measurements][:5] == [1, 2, 3, 4, 5]
    assert [round(m.metrics["val_acc"], 6) for m in t.measurements[:5]] == [0.05, 0.1, 0.15, 0.2, 0.25]
    assert t.measurements[2].metrics["train_loss"] == pytest.approx(1 / 3, abs=1e-4)
    folder = tmp_path / "artifacts" / study.name / "trial-00000"
    assert "loading batch 3" in (folder / "stdout.log").read_text()
    assert "grad_norm" in (folder / "stderr.log").read_text()
    assert (folder / "params.json").exists() and (folder / "checkpoint").is_dir()


def test_stop_mid_run_kills_the_program_and_charges_up_to_the_stop(tmp_path):
    study, objective = make(tmp_path, "slow", epochs=50)
    study.enqueue({"lr": 0.05})

    def stop_after_two(trial):
        # Stop the trial from outside once it has reported twice.
        import threading

        def watcher():
            while len(trial.snapshot().measurements) < 2:
                time.sleep(0.05)
            study.stop_trial(trial.number)

        threading.Thread(target=watcher, daemon=True).start()
        return objective(trial)

    started = time.monotonic()
    study.optimize(stop_after_two, n_trials=1, progress=False)
    wall = time.monotonic() - started
    t = study.trials[0]
    assert t.state is th.TrialState.STOPPED and t.reason.startswith("user")
    assert 2 <= t.last_step < 50
    pid = int((tmp_path / "artifacts" / study.name / "trial-00000" / "checkpoint" / "pid.txt").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the program is really gone
    # $36/h = $0.01/s: charged for the time it ran, not for 50 epochs.
    assert 0.01 * (t.elapsed_s - 0.05) <= t.cost_usd <= 0.01 * wall + 1e-9
    assert t.elapsed_s < 5


def test_non_zero_exit_is_failed_with_stderr_tail(tmp_path):
    study, objective = make(tmp_path, "fail")
    t = run_one(study, objective)
    assert t.state is th.TrialState.FAILED
    assert "exited with status 3" in t.error and "exploding loss" in t.error
    assert t.cost_usd > 0  # failures cost money too


def test_out_of_memory_pattern_is_infeasible(tmp_path):
    study, objective = make(tmp_path, "oom", infeasible_patterns=["CUDA out of memory"])
    started = time.monotonic()
    t = run_one(study, objective)
    assert t.state is th.TrialState.INFEASIBLE and "CUDA out of memory" in t.error
    assert time.monotonic() - started < 30  # the hanging program was killed


def test_timeout_kills_and_fails(tmp_path):
    study, objective = make(tmp_path, "hang", timeout_s=1.5)
    started = time.monotonic()
    t = run_one(study, objective)
    assert t.state is th.TrialState.FAILED and "timeout" in t.error
    assert time.monotonic() - started < 20


def test_a_preempted_program_is_restarted_within_the_trial(tmp_path):
    study, objective = make(tmp_path, "preempt")
    t = run_one(study, objective)
    assert t.state is th.TrialState.COMPLETED
    assert t.metrics["val_acc"] == pytest.approx(0.25)
    # Epochs 1 and 2 of the restarted run repeat what was reported: no duplicate reports (the last
    # measurement is the final tell, at the last step).
    assert [m.step for m in t.measurements[:-1]] == [1, 2, 3, 4, 5]
    log = (tmp_path / "artifacts" / study.name / "trial-00000" / "stderr.log").read_text()
    assert "restart 1 of 2" in log


def test_preemptions_beyond_the_limit_fail(tmp_path):
    study, objective = make(tmp_path, "preempt", max_preemptions=0)
    t = run_one(study, objective)
    assert t.state is th.TrialState.FAILED and "preempted" in t.error


def test_bad_configuration_is_rejected():
    with pytest.raises(th.ValidationError, match="needs a \\(group\\)"):
        th.ScriptObjective("python x.py", {"acc": {"regex": "acc=[0-9.]+"}})
    with pytest.raises(th.ValidationError, match="step_metric"):
        th.ScriptObjective("python x.py", {"acc": "acc=([0-9.]+)"}, step_metric="epoch")
    with pytest.raises(th.ValidationError, match="empty"):
        th.ScriptObjective("  ", {"acc": "acc=([0-9.]+)"})
    with pytest.raises(th.ValidationError, match="goal"):
        th.ScriptObjective("python x.py", {"acc": {"regex": "acc=([0-9.]+)", "goal": "up"}})
