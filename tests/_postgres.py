"""Find a PostgreSQL server for the tests, or start a throwaway one where ``pg_ctl`` exists.

Order: ``THRIFTY_TEST_POSTGRES`` (a URL), then the machine's server on 127.0.0.1:5432 (user
postgres, database test), then a throwaway cluster in a temporary folder (``initdb`` +
``pg_ctl``; as root it runs as the ``postgres`` user, since PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass

from _net import free_port

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def can_connect(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001
        return False


def _bindir() -> str | None:
    pg_ctl = shutil.which("pg_ctl")
    candidates = []
    if pg_ctl:
        candidates.append(os.path.dirname(os.path.realpath(pg_ctl)))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
        except subprocess.CalledProcessError:
            pass
    base = "/usr/lib/postgresql"
    if os.path.isdir(base):
        candidates += [os.path.join(base, v, "bin") for v in sorted(os.listdir(base), reverse=True)]
    for d in candidates:
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return d
    return None


def pg_ctl_available() -> bool:
    return _bindir() is not None


@dataclass
class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary folder, on a free port, trust auth."""

    datadir: str
    port: int
    bindir: str
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _cmd(self, args: list[str]) -> list[str]:
        if self.run_as:
            return ["runuser", "-u", self.run_as, "--", *args]
        return args

    @classmethod
    def start(cls) -> ThrowawayCluster:
        bindir = _bindir()
        if bindir is None:
            raise RuntimeError("pg_ctl/initdb not found")
        run_as = None
        root = tempfile.mkdtemp(prefix="thrifty-pg-")
        if os.geteuid() == 0:
            run_as = "postgres"
            pw = pwd.getpwnam(run_as)
            os.chown(root, pw.pw_uid, pw.pw_gid)
        datadir = os.path.join(root, "data")
        port = free_port()
        cluster = cls(datadir, port, bindir, run_as)
        subprocess.run(
            cluster._cmd([os.path.join(bindir, "initdb"), "-D", datadir, "-U", "postgres", "--auth=trust",
                          "--no-sync", "-E", "UTF8"]),
            check=True, capture_output=True,
        )
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            cluster._cmd([os.path.join(bindir, "pg_ctl"), "-D", datadir, "-o", opts, "-l",
                          os.path.join(root, "log"), "-w", "-t", "60", "start"]),
            check=True, capture_output=True,
        )
        deadline = time.time() + 30
        while not can_connect(cluster.url):
            if time.time() > deadline:
                raise RuntimeError(f"throwaway PostgreSQL did not accept connections on port {port}")
            time.sleep(0.2)
        return cluster

    def restart(self) -> None:
        """Stop the server (fast: sessions are ended) and start it again, as an upgrade would."""
        log = os.path.join(os.path.dirname(self.datadir), "log")  # the server must not hold our pipes
        subprocess.run(
            self._cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", "fast", "-l", log, "-w",
                       "-t", "60", "restart"]),
            check=True, capture_output=True, timeout=90,
        )

    def stop(self) -> None:
        subprocess.run(
            self._cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(os.path.dirname(self.datadir), ignore_errors=True)


def create_database(admin_url: str) -> str:
    """Create a fresh database on the server of ``admin_url``; return its URL."""
    import psycopg

    name = f"thrifty_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
