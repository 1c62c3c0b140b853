"""The peer side of the remote-ledger protocol (stdlib only: it runs in a peer's own venv).

A peer whose pins clash with thrifty's environment (DEHB pins numpy<2, Syne Tune pulls ~1 GB) runs
in its own virtual environment as a child process of ``benchmarks/multifidelity.py``. The parent
owns the benchmark's ledger (surrogate, costs, hard budget); the child owns the peer's optimiser
and asks the parent to train. One JSON object per line in each direction:

- parent -> child, first line: ``{"task", "seed", "space": {name: {"type": "int"|"float", "low",
  "high", "log"}}, "min_resource", "max_resource", "eta", "budget_units"}``;
- child -> parent ``{"op": "start", "params": {...}}``, reply ``{"run": id}``: a new trial, from
  scratch;
- child -> parent ``{"op": "train", "run": id, "epochs": k}``, reply ``{"accs": [...], "epoch": e,
  "exhausted": bool}``: train run ``id`` up to ``k`` more epochs (it stops early at the budget line
  or at the last epoch; ``accs`` has one val_accuracy per epoch trained, ``epoch`` is where the run
  now is);
- child -> parent ``{"op": "done", "info": {...}}``, no reply: the peer is finished (``info`` is
  added to the run's record).

Nothing else may be written to the child's stdout (peers' chatter goes to stderr, which the parent
saves to a log file). The child stops asking once a reply says ``exhausted``.
"""

from __future__ import annotations

import json
import sys
from typing import Any


class RemoteLedger:
    """The child's view of the parent's ledger."""

    def __init__(self) -> None:
        self._out = sys.stdout
        sys.stdout = sys.stderr  # anything a peer prints goes to the log, never into the protocol
        self.setup: dict[str, Any] = json.loads(sys.stdin.readline())
        self.exhausted = False

    def _ask(self, msg: dict) -> dict:
        self._out.write(json.dumps(msg) + "\n")
        self._out.flush()
        line = sys.stdin.readline()
        if not line:
            raise SystemExit("remote ledger: the parent closed the pipe")
        return json.loads(line)

    def start(self, params: dict[str, Any]) -> int:
        """Start a trial from scratch; returns its run id."""
        return int(self._ask({"op": "start", "params": params})["run"])

    def train(self, run: int, epochs: int) -> tuple[list[float], int]:
        """Train ``run`` up to ``epochs`` more epochs: (val_accuracy per epoch trained, epoch now)."""
        rep = self._ask({"op": "train", "run": run, "epochs": int(epochs)})
        self.exhausted = bool(rep["exhausted"])
        return [float(a) for a in rep["accs"]], int(rep["epoch"])

    def done(self, **info: Any) -> None:
        self._out.write(json.dumps({"op": "done", "info": info}) + "\n")
        self._out.flush()
