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
