"""``thrifty dashboard`` as a real process for the tests: started on a storage URL, on a free port,
stopped at the end."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _net import free_port


@contextmanager
def http_process(args: list[str], probe: str, what: str, cwd: str | None = None) -> Iterator[str]:
    """Start ``thrifty ARGS --port PORT`` on a free port, wait until ``probe`` (a path) answers,
    yield the base URL; SIGTERM at the end (SIGKILL if it is still there after 20 s)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "thrifty", *args, "--port", str(port)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + probe, timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{what} did not start: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.1)
    try:
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def dashboard(url: str) -> Iterator[str]:
    """The base URL of a ``thrifty dashboard`` serving ``url`` (it answers ``/api/studies``)."""
    with http_process(["dashboard", "--storage", url], "/api/studies", "the dashboard") as base:
        yield base
