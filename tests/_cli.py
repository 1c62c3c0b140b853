"""Helpers for the CLI tests: run the real command in a subprocess and check one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys


def thrifty(*args, cwd, check_rc=0, **kw):
    env = {**os.environ, "COLUMNS": "200"}  # rich tables: no folded cells
    p = subprocess.run([sys.executable, "-m", "thrifty", *map(str, args)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=120, **kw)
    if check_rc is not None:
        assert p.returncode == check_rc, f"rc={p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def assert_one_line_error(p, *fragments):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("thrifty: error: "), lines[0]
    assert "Traceback" not in p.stderr + p.stdout
    for f in fragments:
        assert f in lines[0], (f, lines[0])
