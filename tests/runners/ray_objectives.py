"""Objectives the Ray tests run in Ray's worker processes (importable there: the driver's
``sys.path`` travels with each task), and a driver program the tests kill with SIGKILL.

Every objective appends ``start NUMBER PID NODE`` and ``end NUMBER PID NODE`` lines to
``runs.log`` in the parent folder of its study's ``artifact_root`` (give the study an absolute one
in the test's folder), so a test sees which process on which node ran which trial, and how often.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

#: Where the objectives log: a file ``runs.log`` in the artifact root's parent folder.
LOG_NAME = "runs.log"


def _log(trial: Any, line: str) -> None:
    import ray

    node = ray.get_runtime_context().get_node_id()[:8] if ray.is_initialized() else "-"
    folder = Path(trial.study.artifact_root).parent
    with open(folder / LOG_NAME, "a") as f:
        f.write(f"{line} {os.getpid()} {node}\n")


def stepping(trial: Any) -> float | None:
    """Ten steps of 0.05 s, reporting ``x`` at each; stops when told."""
    _log(trial, f"start {trial.number}")
    x = float(trial.params["x"])
    for step in range(1, 11):
        time.sleep(0.05)
        trial.report(x, step=step)
        if trial.should_stop():
            _log(trial, f"end {trial.number}")
            return None
    _log(trial, f"end {trial.number}")
    return x


def silent(trial: Any) -> float:
    """Never reports: sleeps 120 s (a stop can only end it by cancelling its task)."""
    _log(trial, f"start {trial.number}")
    time.sleep(120)
    _log(trial, f"end {trial.number}")
    return 1.0


def one_second(trial: Any) -> float:
    """Sleeps one second, then completes."""
    _log(trial, f"start {trial.number}")
    time.sleep(1.0)
    _log(trial, f"end {trial.number}")
    return float(trial.params["x"])


def read_log(folder: Path) -> list[list[str]]:
    """The lines the objectives wrote under ``folder``, split into words."""
    path = folder / LOG_NAME
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def main(argv: list[str]) -> None:
    """``python ray_objectives.py STORAGE NAME ADDRESS``: a driver that runs study NAME's
    ``one_second`` trials on Ray with two workers until its budget is used up."""
    import thrifty as th

    storage, name, address = argv
    study = th.Study.load(name, storage=storage)
    study.optimize(one_second, n_workers=2, backend="ray", address=address, progress=False)


if __name__ == "__main__":
    main(sys.argv[1:])
