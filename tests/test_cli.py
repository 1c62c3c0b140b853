"""The ``thrifty`` command line, driven as a real process (``python -m thrifty``)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import thrifty as th

WORKLOAD_MODULE = "thrifty_cli_test_workload"
WORKLOAD = f'''
def objective(trial):
    trial.report({{"score": trial.params["x"] / 2}}, step=1, cost_usd=0.01)
    return {{"score": trial.params["x"] + (0.1 if trial.params["opt"] == "adam" else 0.0)}}
'''


from _cli import assert_one_line_error, thrifty  # noqa: E402


@pytest.fixture
def project(tmp_path):
    """A config folder with a workload module, and a separate working folder to run from."""
    cfg_dir = tmp_path / "experiment"
    cfg_dir.mkdir()
    (cfg_dir / f"{WORKLOAD_MODULE}.py").write_text(WORKLOAD)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    config = cfg_dir / "tune.yaml"
    config.write_text(textwrap.dedent(f"""\
        name: clistudy
        storage: {url}
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
          opt: [adam, sgd]
        objective: {{score: max}}
        workload: {WORKLOAD_MODULE}:objective
        strategy: sobol
        seed: 3
        n_trials: 6
        n_workers: 2
        """))
    cwd = tmp_path / "elsewhere"  # not the config's folder: `thrifty run` must add that to sys.path
    cwd.mkdir()
    return cfg_dir, config, url, cwd


def _table_numbers(stdout: str) -> list[int]:
    """Trial numbers in the first column of a rich table."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("│"):
            out.append(int(line.split("│")[1].strip()))
    return out


def test_run_list_inspect_export_resume_delete(project, tmp_path):
    cfg_dir, config, url, cwd = project

    # run: 6 trials with 2 worker processes
    p = thrifty("run", config, cwd=cwd)
    assert "created study clistudy" in p.stdout and "2 workers" in p.stdout
    assert "6 completed" in p.stdout
    study = th.Study.load("clistudy", storage=url)
    trials = study.trials
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state is th.TrialState.COMPLETED for t in trials)
    assert study.objectives == {"score": "max"} and study.strategy.name == "sobol" and study.seed == 3
    assert study.cost_usd == pytest.approx(0.06)

    # studies (table and JSON), with --storage before and after the subcommand
    for args in (("studies", "--storage", url), ("--storage", url, "studies")):
        p = thrifty(*args, cwd=cwd)
        assert "clistudy" in p.stdout and url in p.stdout
    p = thrifty("studies", "--json", "--storage", url, cwd=cwd)
    (entry,) = json.loads(p.stdout)
    assert entry["name"] == "clistudy"
    assert entry["objectives"] == {"score": "max"}
    assert entry["counts"] == {"completed": 6}
    assert entry["spent_usd"] == pytest.approx(0.06)

    # trials, paged
    p = thrifty("trials", "clistudy", "--per-page", "2", "--page", "2", "--storage", url, cwd=cwd)
    assert _table_numbers(p.stdout) == [2, 3]
    assert "page 2 of 3" in p.stdout
    hint = next(line for line in p.stdout.splitlines() if line.startswith("next page:"))
    assert hint == f"next page: thrifty trials clistudy --page 3 --per-page 2 --storage {url}"
    p = thrifty("trials", "clistudy", "--per-page", "2", "--page", "3", "--storage", url, cwd=cwd)
    assert _table_numbers(p.stdout) == [4, 5]
    assert "next page" not in p.stdout
    p = thrifty("trials", "clistudy", "--storage", url, cwd=cwd)
    assert _table_numbers(p.stdout) == list(range(6))

    # best: matches the API
    best = study.best
    p = thrifty("best", "clistudy", "--storage", url, cwd=cwd)
    assert p.stdout.splitlines()[0].startswith(f"trial {best.number}: score=")
    assert f"opt = {best.params['opt']}" in p.stdout
    p = thrifty("best", "clistudy", "--json", "--storage", url, cwd=cwd)
    (b,) = json.loads(p.stdout)
    assert b["number"] == best.number and b["params"] == dict(best.params)
    assert b["metrics"]["score"] == pytest.approx(best.value)
    assert b["state"] == "completed"

    # export: CSV and JSON files
    csv_path, json_path = tmp_path / "out.csv", tmp_path / "out.json"
    thrifty("export", "clistudy", "--format", "csv", "-o", csv_path, "--storage", url, cwd=cwd)
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    assert [int(r["number"]) for r in rows] == list(range(6))
    for r, t in zip(rows, trials):
        assert r["state"] == "completed"
        assert float(r["param_x"]) == t.params["x"] and r["param_opt"] == t.params["opt"]
        assert float(r["metric_score"]) == t.value
        assert float(r["cost_usd"]) == pytest.approx(0.01)
    thrifty("export", "clistudy", "--format", "json", "--output", json_path, "--storage", url, cwd=cwd)
    data = json.loads(json_path.read_text())
    assert data["study"] == "clistudy" and data["objectives"] == {"score": "max"}
    assert len(data["trials"]) == 6
    assert [t["params"] for t in data["trials"]] == [dict(t.params) for t in trials]
    assert all(len(t["measurements"]) == 2 for t in data["trials"])
    p = thrifty("export", "clistudy", "--format", "json", "--storage", url, cwd=cwd)  # to stdout
    assert len(json.loads(p.stdout)["trials"]) == 6

    # run again: the study resumes (the sobol sequence goes on) up to 12 trials
    p = thrifty("run", config, cwd=cwd)
    assert "resuming study clistudy" in p.stdout
    again = th.Study.load("clistudy", storage=url).trials
    assert [t.number for t in again] == list(range(12))
    assert [dict(t.params) for t in again[:6]] == [dict(t.params) for t in trials]
    assert len({t.params["x"] for t in again}) == 12
    assert th.Study.load("clistudy", storage=url).cost_usd == pytest.approx(0.12)

    # delete: refuses without --yes when there is no terminal; then deletes
    p = thrifty("delete", "clistudy", "--storage", url, cwd=cwd, check_rc=None, stdin=subprocess.DEVNULL)
    assert_one_line_error(p, "--yes")
    assert len(th.Study.load("clistudy", storage=url).trials) == 12
    p = thrifty("delete", "clistudy", "--yes", "--storage", url, cwd=cwd)
    assert "deleted" in p.stdout
    p = thrifty("studies", "--json", "--storage", url, cwd=cwd)
    assert json.loads(p.stdout) == []
    p = thrifty("studies", "--storage", url, cwd=cwd)
    assert "clistudy" not in p.stdout and "no studies" in p.stdout
    with pytest.raises(th.StudyNotFound):
        th.Study.load("clistudy", storage=url)


def test_errors_are_one_line_without_traceback(project, tmp_path):
    cfg_dir, config, url, cwd = project
    empty = f"sqlite:///{tmp_path / 'empty.db'}"

    p = thrifty("run", tmp_path / "nope.yaml", cwd=cwd, check_rc=None)
    assert_one_line_error(p, "nope.yaml", "does not exist")

    unknown_key = cfg_dir / "unknown.yaml"
    unknown_key.write_text(config.read_text() + "n_epochs: 3\n")
    p = thrifty("run", unknown_key, cwd=cwd, check_rc=None)
    assert_one_line_error(p, "unknown key(s) n_epochs")

    bad_workload = cfg_dir / "badworkload.yaml"
    bad_workload.write_text(config.read_text().replace(f"{WORKLOAD_MODULE}:objective", "nomodule:fn"))
    p = thrifty("run", bad_workload, cwd=cwd, check_rc=None)
    assert_one_line_error(p, "nomodule")

    no_fn = cfg_dir / "nofn.yaml"
    no_fn.write_text(config.read_text().replace(f"{WORKLOAD_MODULE}:objective", f"{WORKLOAD_MODULE}:nothing"))
    p = thrifty("run", no_fn, cwd=cwd, check_rc=None)
    assert_one_line_error(p, "has no function 'nothing'")

    p = thrifty("best", "nosuch", "--storage", empty, cwd=cwd, check_rc=None)
    assert_one_line_error(p, "no study named 'nosuch'", empty)

    for args in (("studies", "--storage", "mysql://x"), ("--storage", "mysql://x", "studies"),
                 ("best", "s", "--storage", "mysql://x")):
        p = thrifty(*args, cwd=cwd, check_rc=None)
        assert_one_line_error(p, "mysql://x", "sqlite:///")

    bad_storage = cfg_dir / "badstorage.yaml"
    bad_storage.write_text(config.read_text().replace(url, "mysql://x"))
    p = thrifty("run", bad_storage, cwd=cwd, check_rc=None)
    assert_one_line_error(p, "mysql://x")

    # The failed runs stopped before opening the config's storage.
    assert not (tmp_path / "cli.db").exists()

    # --debug (before or after the subcommand) shows the traceback.
    for args in (("best", "nosuch", "--storage", empty, "--debug"), ("--debug", "best", "nosuch", "--storage", empty)):
        p = thrifty(*args, cwd=cwd, check_rc=None)
        assert p.returncode != 0
        assert "Traceback (most recent call last)" in p.stderr
        assert "StudyNotFound" in p.stderr


def test_bad_usage_exits_2(tmp_path):
    p = thrifty("frobnicate", cwd=tmp_path, check_rc=None)
    assert p.returncode == 2 and "invalid choice" in p.stderr
    p = thrifty("trials", cwd=tmp_path, check_rc=None)
    assert p.returncode == 2


def test_run_a_command_config_with_asha_promotion_resumes_programs_from_checkpoints(tmp_path):
    """`thrifty run` with `command:` and `metrics:` (no Python workload): the script runner, with a
    scheduler that pauses and resumes the programs."""
    import json as _json

    script = Path(__file__).resolve().parent / "helpers" / "resumable_script.py"
    config = tmp_path / "cmd.yaml"
    config.write_text(f"""
name: cmd
storage: sqlite:///{tmp_path / 'cmd.db'}
command: {sys.executable} {script} --lr {{lr}} --epochs {{max_resource}}
metrics:
  val_acc: {{regex: 'val_acc=([0-9.]+)', goal: max}}
  epoch: {{regex: 'epoch=(\\d+)'}}
  trained: {{regex: 'trained=(\\d+)'}}
max_resource: 9
scheduler: {{name: asha, min_resource: 1, max_resource: 9, reduction_factor: 3, mode: promotion}}
n_trials: 9
n_workers: 2
artifact_root: {tmp_path / 'art'}
space:
  lr: {{type: float, low: 0.1, high: 1.0}}
""")
    thrifty("run", config, "--no-progress", cwd=tmp_path)
    p = thrifty("export", "cmd", "--format", "json", "--storage", f"sqlite:///{tmp_path / 'cmd.db'}", cwd=tmp_path)
    trials = _json.loads(p.stdout)["trials"]
    states = {t["state"] for t in trials}
    assert "running" not in states and {"completed", "paused"} <= states, states
    reports = [m for t in trials for m in t["measurements"] if "trained" in m["metrics"]]
    assert reports and all(m["metrics"]["trained"] == m["step"] for m in reports)
    assert any(m["step"] > 1 for t in trials if t["state"] == "completed" for m in t["measurements"])


def test_a_command_config_needs_metrics_and_not_both_kinds_of_workload(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("command: python x.py\nspace: {x: {type: float, low: 0, high: 1}}\n")
    assert_one_line_error(thrifty("run", bad, cwd=tmp_path, check_rc=None), "'command' needs 'metrics'")
    bad.write_text("command: python x.py\nworkload: m:f\nmetrics: {a: 'a=(.*)'}\nspace: {x: [1, 2]}\n")
    assert_one_line_error(thrifty("run", bad, cwd=tmp_path, check_rc=None), "not both")
    bad.write_text("workload: m:f\nmax_resource: 3\nspace: {x: [1, 2]}\n")
    assert_one_line_error(thrifty("run", bad, cwd=tmp_path, check_rc=None), "only apply with 'command'")
