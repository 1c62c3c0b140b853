"""A real Ray cluster on this machine for the tests: a head node and a second worker node.

Both are started with ``ray start`` (2 CPUs each, free ports, the temporary folder given: keep it
short, Ray's unix socket paths must stay under ~107 characters) and ended by :meth:`stop`, which
ends only this cluster's processes: those whose command line names its folder or its GCS port,
and their descendants (never ``ray stop``, which ends every Ray process of the machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _net import free_port

RAY = Path(sys.executable).with_name("ray")
#: Ray's environment for the tests: no ~/.ray/auth_token, no usage reporting.
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass
class LocalCluster:
    """A head node and one worker node on this machine."""

    temp_dir: str
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, temp_dir: str, cpus_per_node: int = 2) -> LocalCluster:
        cluster = cls(temp_dir, free_port())
        common = ["--num-cpus", str(cpus_per_node), "--disable-usage-stats",
                  "--dashboard-agent-listen-port", "0", "--metrics-export-port", "0"]
        try:
            _ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(cluster.port), "--temp-dir",
                 temp_dir, "--include-dashboard", "false", "--ray-client-server-port", str(free_port()), *common)
            _ray("start", "--address", cluster.address, "--node-ip-address", "127.0.0.1", *common)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def pids(self) -> list[int]:
        """This cluster's processes and their descendants (read from /proc)."""
        marks = (self.temp_dir, f":{self.port}")
        parents: dict[int, int] = {}
        ours: set[int] = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            pid = int(entry)
            parents[pid] = ppid
            if pid != os.getpid() and any(m in cmd for m in marks) and "pytest" not in cmd:
                ours.add(pid)
        grown = True
        while grown:
            more = {p for p, pp in parents.items() if pp in ours and p not in ours and p != os.getpid()}
            grown = bool(more)
            ours |= more
        return sorted(ours)

    def stop(self) -> list[int]:
        """End this cluster's processes (SIGTERM, SIGKILL 3 s later); returns those still alive
        after that (none, normally)."""
        pids = self.pids()
        for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            end = time.time() + wait_s
            while time.time() < end and any(_alive(p) for p in pids):
                time.sleep(0.1)
            pids = [p for p in pids if _alive(p)]
            if not pids:
                break
        return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _ray(*args: str) -> None:
    p = subprocess.run([str(RAY), *args], check=False, env=ENV, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
