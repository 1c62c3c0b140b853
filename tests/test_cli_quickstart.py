"""What a new user meets first, driven as real processes: the run's summary tells the cost story
(budget left, what early stopping saved, the next commands), `--version`, and the read commands
finding the storage in a config file or $THRIFTY_STORAGE; `delete` takes the artifacts too."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from _cli import thrifty

import thrifty as th

WORKLOAD = '''
def objective(trial):
    x = trial.params["x"]
    (trial.artifact_dir / "log.txt").write_text("trained")
    for step in range(1, 6):
        trial.report({"score": x * step / 5}, step=step, cost_usd=0.01)
        if trial.should_stop():
            return None
    return {"score": x}
'''


def _project(tmp_path: Path, extra: str = "", strategy: str = "random") -> tuple[Path, str, Path]:
    (tmp_path / "qs_workload.py").write_text(WORKLOAD)
    url = f"sqlite:///{tmp_path / 'qs.db'}"
    config = tmp_path / "qs.yaml"
    config.write_text(textwrap.dedent(f"""\
        name: qs
        storage: {url}
        workload: qs_workload:objective
        objective: {{score: max}}
        strategy: {strategy}
        seed: 3
        budget: {{usd: 5.0}}
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
        """) + extra)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return config, url, cwd


def test_the_summary_tells_the_cost_story(tmp_path: Path) -> None:
    config, url, cwd = _project(tmp_path)
    p = thrifty("run", config, "--n-trials", "30", "--no-progress", cwd=cwd)
    study = th.Study.load("qs", storage=url)
    left = 5.0 - study.cost_usd
    assert f"of a $5.00 budget, ${left:,.4f} left" in p.stdout
    n_stopped = sum(1 for t in study.trials if t.state is th.TrialState.STOPPED)
    assert n_stopped > 0 and f"{n_stopped} trials stopped early saved about $" in p.stdout
    assert f"thrifty report qs --storage {url}" in p.stdout and f"thrifty dashboard --storage {url}" in p.stdout
    assert "run ended" in p.stdout
    p = thrifty("run", config, "--n-trials", "1", "--no-progress", cwd=cwd)
    assert "1 trial in" in p.stdout  # not "1 trials"


def test_the_summary_says_what_auto_chose_and_why(tmp_path: Path) -> None:
    config, _, cwd = _project(tmp_path, strategy="auto")
    p = thrifty("run", config, "--n-trials", "4", "--no-progress", cwd=cwd)
    said = " ".join(line.strip("│ ") for line in p.stdout.splitlines())  # the table's cells, unwrapped
    assert "auto chose gp from trial 0: a small unconditional space (1 dimension)" in said
    # Once a trial has reported steps, the resource-aware model takes over, and the summary says so.
    assert "auto chose mfgp from trial 1: trials report a resource (steps)" in said


def test_version() -> None:
    p = thrifty("--version", cwd=Path.cwd())
    assert p.stdout.strip() == f"thrifty {th.__version__}"


def test_read_commands_find_the_storage_in_the_config_or_the_environment(tmp_path: Path) -> None:
    config, url, cwd = _project(tmp_path)
    thrifty("run", config, "--n-trials", "3", "--no-progress", cwd=cwd)
    best = th.Study.load("qs", storage=url).best
    assert f"trial {best.number}: score=" in thrifty("best", "qs", "-c", config, cwd=cwd).stdout
    assert "study qs: trials" in thrifty("trials", "qs", "--config", config, cwd=cwd).stdout
    assert f"studies in {url}" in thrifty("studies", "-c", config, cwd=cwd).stdout
    os.environ["THRIFTY_STORAGE"] = url  # the helper's subprocess inherits it
    try:
        p = thrifty("report", "qs", cwd=cwd)
    finally:
        del os.environ["THRIFTY_STORAGE"]
    assert "cost report: study qs" in p.stdout
    assert not (cwd / "thrifty.db").exists()  # the default was never touched


def test_delete_removes_the_artifacts_folder(tmp_path: Path) -> None:
    config, _, cwd = _project(tmp_path, "artifact_root: arts\n")
    thrifty("run", config, "--n-trials", "2", "--no-progress", cwd=cwd)
    folder = cwd / "arts" / "qs"
    assert folder.is_dir()
    p = thrifty("delete", "qs", "--yes", "-c", config, cwd=cwd)
    assert "deleted its artifacts folder" in p.stdout
    assert not folder.exists() and (cwd / "arts").is_dir()


def test_a_pipe_gets_one_line_per_finished_trial(tmp_path: Path) -> None:
    config, url, cwd = _project(tmp_path)
    p = thrifty("run", config, "--n-trials", "8", cwd=cwd)  # stdout is a pipe here
    study = th.Study.load("qs", storage=url)
    lines = [line for line in p.stdout.splitlines() if line.startswith("trial ")]
    assert len(lines) == 8
    for t in study.trials:
        [line] = [x for x in lines if x.startswith(f"trial {t.number} ")]
        assert line.startswith(f"trial {t.number} {t.state.value}") and f"${t.cost_usd:,.4f}" in line
        if t.state is th.TrialState.STOPPED:
            assert f"({t.reason})" in line
    p = thrifty("run", config, "--n-trials", "2", "--no-progress", cwd=cwd)
    assert not [line for line in p.stdout.splitlines() if line.startswith("trial ")]


def test_the_studies_table_fits_80_columns(tmp_path: Path) -> None:
    import subprocess
    import sys

    config, url, cwd = _project(tmp_path)
    thrifty("run", config, "--n-trials", "2", "--no-progress", cwd=cwd)
    env = {**os.environ, "COLUMNS": "80"}
    p = subprocess.run([sys.executable, "-m", "thrifty", "studies", "--storage", url], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=120, check=True)
    lines = p.stdout.rstrip("\n").splitlines()
    assert max(len(line.rstrip()) for line in lines[1:]) <= 80  # the first: "studies in URL", unfolded
    row = next(line for line in lines if line.startswith("qs "))
    assert "max score" in row and row.rstrip().endswith(f"{th.Study.load('qs', storage=url).cost_usd:,.4f}")
    assert "…" not in p.stdout  # nothing cut short
