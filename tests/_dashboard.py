"""``thrifty dashboard`` as a real process for the tests: started on a storage URL, on a free port,
stopped at the end."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def dashboard(url: str) -> Iterator[str]:
    """The base URL of a ``thrifty dashboard`` serving ``url`` (it answers ``/api/studies``)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "thrifty", "dashboard", "--storage", url, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/api/studies", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the dashboard did not start: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.2)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
