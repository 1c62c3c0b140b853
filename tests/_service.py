"""``thrifty serve`` as a real process for the tests (started on a storage URL and a free port,
waited for until it answers, stopped with SIGTERM at the end), tokens made by ``thrifty token
create`` as a user makes them, and one HTTP call of the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from _dashboard import http_process


@contextmanager
def serve(storage: str, *, no_auth: bool = False, cwd: str | None = None) -> Iterator[str]:
    """The base URL (``http://127.0.0.1:PORT``) of a ``thrifty serve`` on ``storage``."""
    args = ["serve", "--storage", storage] + (["--no-auth"] if no_auth else [])
    with http_process(args, "/openapi.json", "thrifty serve", cwd=cwd) as base:
        yield base


def token(storage: str, study: str, role: str) -> str:
    """A new token printed by ``thrifty token create``."""
    out = subprocess.run([sys.executable, "-m", "thrifty", "token", "create", "--storage", storage, "--study", study,
                          "--role", role], capture_output=True, text=True, check=True, env={**os.environ})
    return out.stdout.strip()


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None,
         raw: bytes | None = None) -> tuple[int, Any]:
    """One HTTP call of the API (``path`` under ``/api/v1``): status and decoded JSON answer."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(base + "/api/v1" + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, text.decode(errors="replace")
