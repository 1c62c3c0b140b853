"""The command line and its storage: URLs without a file, `thrifty run` started twice at once,
read commands that must never write (missing files, other applications' files, read-only
folders, PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import thrifty as th
from _cli import assert_one_line_error, thrifty
from conftest import HELPERS

WORKLOAD_MODULE = "thrifty_cli_storage_workload"
WORKLOAD = '''
def objective(trial):
    trial.report({"score": trial.params["x"]}, step=1, cost_usd=0.01)
    return {"score": trial.params["x"]}
'''


def _config(folder, url: str | None, n_trials: int = 2, n_workers: int = 1):
    folder.mkdir(exist_ok=True)
    (folder / f"{WORKLOAD_MODULE}.py").write_text(WORKLOAD)
    config = folder / "tune.yaml"
    config.write_text(textwrap.dedent(f"""\
        name: s
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
        objective: {{score: max}}
        workload: {WORKLOAD_MODULE}:objective
        strategy: random
        n_trials: {n_trials}
        n_workers: {n_workers}
        """) + (f"storage: {url}\n" if url else ""))
    return config


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts)


# -- a SQLite URL without a file ------------------------------------------------------------------
@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://"])
def test_a_sqlite_url_without_a_file_is_a_one_line_error(url, tmp_path):
    cfg = tmp_path / "cfg"
    config = _config(cfg, url, n_workers=2)
    before = _files(tmp_path)
    p = thrifty("run", config, cwd=cfg, check_rc=None)
    assert_one_line_error(p, repr(url), "sqlite:///thrifty.db", "'memory'")
    p = thrifty("run", _config(cfg, None, n_workers=1), "--storage", url, cwd=cfg, check_rc=None)
    assert_one_line_error(p, repr(url), "names no database file")
    assert _files(tmp_path) == before, "nothing was written"
    with pytest.raises(th.StorageError, match="names no database file"):
        th.Study.create({"x": th.Float(0, 1)}, storage=url)


# -- `thrifty run` started twice at once ----------------------------------------------------------
def _run_together(n: int, args: list, cwd) -> list[subprocess.CompletedProcess]:
    """Start ``n`` ``thrifty ARGS`` processes and let them go at the same instant."""
    sync = tempfile.mkdtemp(dir=cwd)
    go = os.path.join(sync, "go")
    procs = [
        subprocess.Popen([sys.executable, os.path.join(HELPERS, "cli_together.py"), os.path.join(sync, f"ready{i}"),
                          go, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "COLUMNS": "200"})
        for i in range(n)
    ]
    deadline = time.time() + 60
    while not all(os.path.exists(os.path.join(sync, f"ready{i}")) for i in range(n)) and time.time() < deadline:
        time.sleep(0.01)
    open(go, "w").close()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    shutil.rmtree(sync)
    return out


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_runs_of_one_config_started_together_on_a_new_database_all_run(backend, tmp_path, request):
    n, rounds = 2, 2
    for round_ in range(rounds):
        url = (f"sqlite:///{tmp_path / f'round{round_}.db'}" if backend == "sqlite"
               else request.getfixturevalue("pg_url") if round_ == 0 else None)
        if url is None:  # a second new PostgreSQL database
            import _postgres

            url = _postgres.create_database(request.getfixturevalue("postgres_server"))
            request.addfinalizer(lambda u=url: _postgres.drop_database(u))
        config = _config(tmp_path / f"cfg{round_}", url)
        runs = _run_together(n, ["run", config, "--no-progress"], cwd=tmp_path / f"cfg{round_}")
        for p in runs:
            assert p.returncode == 0, f"round {round_}: rc={p.returncode}\n{p.stdout}\n{p.stderr}"
            assert "Traceback" not in p.stderr
        assert sum("created study s" in p.stdout for p in runs) == 1
        assert sum("resuming study s" in p.stdout for p in runs) == n - 1
        study = th.Study.load("s", storage=url)
        assert len(study.trials) == 2 * n and study.cost_usd == pytest.approx(0.02 * n)
        assert [s.name for s in study.storage.list_studies()] == ["s"]
        study.close()
