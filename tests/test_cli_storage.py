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


# -- read commands never write -------------------------------------------------------------------
READ_COMMANDS = [("studies",), ("trials", "s"), ("best", "s"), ("export", "s"), ("report", "s")]


def test_read_commands_on_a_missing_file_create_nothing(tmp_path):
    path = tmp_path / "typo.db"
    for args in READ_COMMANDS:
        p = thrifty(*args, "--storage", f"sqlite:///{path}", cwd=tmp_path, check_rc=None)
        assert_one_line_error(p, f"no database at {path}")
        assert not path.exists() and _files(tmp_path) == []
    p = thrifty("studies", cwd=tmp_path, check_rc=None)  # the default storage, thrifty.db
    assert_one_line_error(p, "no database at thrifty.db")
    assert _files(tmp_path) == []


def test_read_commands_leave_another_applications_file_alone(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.close()
    content = path.read_bytes()
    for args in READ_COMMANDS:
        p = thrifty(*args, "--storage", f"sqlite:///{path}", cwd=tmp_path, check_rc=None)
        assert_one_line_error(p, f"{path} holds no thrifty studies")
    assert path.read_bytes() == content, "the file is unchanged"
    assert _files(tmp_path) == ["app.db"], "and nothing was created beside it"


def test_read_commands_create_no_tables_in_postgresql(pg_url, tmp_path):
    import psycopg

    for args in READ_COMMANDS:
        p = thrifty(*args, "--storage", pg_url, cwd=tmp_path, check_rc=None)
        assert_one_line_error(p, "holds no thrifty studies")
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT table_name FROM information_schema.tables "
                              "WHERE table_schema = 'public'").fetchall()
    assert tables == []


def _as_other_user() -> list[str]:
    """A prefix that runs a command as a user who cannot write where root can (root bypasses
    file permissions, so a chmod alone proves nothing when the tests run as root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot test a folder this process may not write")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def test_read_commands_work_in_a_read_only_folder(tmp_path):
    """A study database (WAL mode, closed: no -wal/-shm file) in a folder the command's user may
    not write: every read command works and the folder is unchanged."""
    prefix = _as_other_user()
    root = tempfile.mkdtemp()  # not under pytest's tmp_path, which only root may enter
    try:
        os.chmod(root, 0o755)
        folder = os.path.join(root, "results")
        os.mkdir(folder)
        url = f"sqlite:///{folder}/study.db"
        study = th.Study.create({"x": th.Float(0.0, 1.0)}, {"score": "max"}, name="s", storage=url)
        for x in (0.25, 0.75):
            study.enqueue({"x": x})
            study.tell(study.ask(), {"score": x}, cost_usd=0.01)
        study.close()
        assert sorted(os.listdir(folder)) == ["study.db"]
        os.chmod(folder, 0o555)
        env = {**os.environ, "COLUMNS": "200", "HOME": root}
        for args in (("studies",), ("trials", "s"), ("report", "s"), ("export", "s", "--format", "json")):
            p = subprocess.run([*prefix, sys.executable, "-m", "thrifty", *args, "--storage", url], cwd=root, env=env,
                               capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, (args, p.stdout, p.stderr)
        assert sorted(os.listdir(folder)) == ["study.db"]
        assert '"score"' in p.stdout and p.stdout.count('"number"') == 2
    finally:
        os.chmod(os.path.join(root, "results"), 0o755)
        shutil.rmtree(root)


def test_delete_on_a_missing_file_creates_nothing(tmp_path):
    p = thrifty("delete", "nope", "--yes", "--storage", f"sqlite:///{tmp_path / 'typo.db'}", cwd=tmp_path, check_rc=1)
    assert_one_line_error(p, "no database at")
    assert list(tmp_path.iterdir()) == []
