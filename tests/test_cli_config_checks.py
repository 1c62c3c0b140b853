"""`thrifty run` refuses a config it would misread, before any study is created, and runs the
conditional command and metric rules of ScriptObjective end to end (real processes)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from conftest import HELPERS

from _cli import assert_one_line_error, thrifty

TRAIN = f"{sys.executable} {HELPERS}/train_script.py"
CONDITIONAL = f"{sys.executable} {HELPERS}/conditional_script.py"


def write(tmp_path, body: str):
    config = tmp_path / "tune.yaml"
    config.write_text(f"storage: sqlite:///{tmp_path / 'tune.db'}\nartifact_root: {tmp_path / 'art'}\n"
                      + textwrap.dedent(body))
    return config


def trials(tmp_path):
    p = thrifty("export", "tune", "--format", "json", "--storage", f"sqlite:///{tmp_path / 'tune.db'}", cwd=tmp_path)
    return json.loads(p.stdout)["trials"]


@pytest.mark.parametrize("body, fragments", [
    # A typo in a placeholder used to fail every trial, 20 of them, before the run gave up.
    ("""\
     command: python train.py --alpha={alhpa}
     metrics: {acc: {regex: 'acc=([0-9.]+)', goal: max}}
     space: {alpha: {type: float, low: 0.0, high: 1.0}}
     """, ["command: unknown placeholder {alhpa} (did you mean {alpha}?); the parameters are alpha and"]),
    # log: "false" (quoted) was truthy: a log-scaled search nobody asked for.
    ("""\
     command: python train.py --lr={lr}
     metrics: {acc: {regex: 'acc=([0-9.]+)', goal: max}}
     space: {lr: {type: float, low: 0.001, high: 0.1, log: "false"}}
     """, ["parameter 'lr': Float log='false': expected a boolean", "write log: false unquoted"]),
    # 'max' names the metric 'value', which no regex reads: each trial ran, then failed in tell.
    ("""\
     command: python train.py --lr={lr}
     metrics: {acc: {regex: 'acc=([0-9.]+)'}}
     objective: max
     space: {lr: {type: float, low: 0.001, high: 0.1}}
     """, ["objective 'value' is not one of the metrics read from the program's output (acc)"]),
])
def test_a_misread_config_is_refused_before_anything_is_written(tmp_path, body, fragments):
    config = write(tmp_path, body + "n_trials: 1\n")
    assert_one_line_error(thrifty("run", config, "--no-progress", cwd=tmp_path, check_rc=None), *fragments)
    assert not (tmp_path / "tune.db").exists() and not (tmp_path / "art").exists()


def test_inactive_parameters_are_left_out_and_british_goals_are_read(tmp_path):
    # momentum exists only for sgd: `--momentum={momentum}` disappears for adam (its trials used to
    # fail); `maximise` used to be refused.
    config = write(tmp_path, f"""\
        command: {CONDITIONAL} --opt={{opt}} --momentum={{momentum}} --lr={{lr}}
        metrics: {{val_acc: {{regex: 'val_acc=([0-9.]+)', goal: maximise}}}}
        strategy: grid
        space:
          opt: [adam, sgd]
          momentum: {{type: fixed, value: 0.5, when: {{opt: sgd}}}}
          lr: 0.05
        """)
    thrifty("run", config, "--no-progress", cwd=tmp_path)
    done = {t["params"]["opt"]: t for t in trials(tmp_path)}
    assert {o: t["state"] for o, t in done.items()} == {"adam": "completed", "sgd": "completed"}, done
    assert done["adam"]["metrics"]["val_acc"] == pytest.approx(0.05)
    assert done["sgd"]["metrics"]["val_acc"] == pytest.approx(0.55)


def test_a_metric_that_never_matches_stops_the_trial_at_metrics_timeout_s(tmp_path):
    # The program would run 50 x 0.2 s = 10 s; the regex has a typo.
    config = write(tmp_path, f"""\
        command: {TRAIN} --lr {{lr}} --epochs {{max_resource}} --mode slow
        metrics: {{val_acc: {{regex: 'val_accuracy=([0-9.]+)', goal: max}}, epoch: 'epoch=(\\d+)'}}
        max_resource: 50
        metrics_timeout_s: 1
        grace_s: 2
        n_trials: 1
        max_consecutive_failures: 1
        space: {{lr: {{type: float, low: 0.01, high: 0.1}}}}
        """)
    p = thrifty("run", config, "--no-progress", cwd=tmp_path, check_rc=None)
    assert "never matched" in p.stderr + p.stdout
    (t,) = trials(tmp_path)
    assert t["state"] == "failed" and t["error"].startswith("metric 'val_acc' never matched its regex")
    assert "in the first 1 s of output" in t["error"] and t["elapsed_s"] < 4
