#!/usr/bin/env python
"""Issue 16's scale benchmark: the HTTP service and the Ray backend, one after the other.

    .venv/bin/python benchmarks/scale.py                 # both parts, about 10 minutes here
    .venv/bin/python benchmarks/scale.py --part ray      # one part

The two parts are their own scripts, each with its protocol in its docstring, its section in
``benchmarks/RESULTS.md`` and its raw JSON:

- ``benchmarks/scale_service.py --cycles 384``: suggest+complete throughput and p50/p99 latency
  through ``thrifty serve`` with 1, 8 and 32 client processes on SQLite and PostgreSQL, against
  Optuna's gRPC storage proxy in the same run (384 cycles per configuration: Optuna's proxy takes
  over two minutes for the script's default 960 with one client here). Floors: p99 under 50 ms at
  32 clients on PostgreSQL, and at least Optuna's throughput.
- ``benchmarks/scale_ray.py``: wall-clock speed-up with 1, 2 and 4 Ray workers on trials of fixed
  length against Ray Tune running the same trials, per-trial overhead, and the budget's overshoot
  with 8 Ray workers. Floors: at least 1.8x at 2 workers, overhead per trial no more than Ray Tune's.

They run one at a time, each on a machine the other has left (so neither measures the other's
load); anything else running on the machine is what the load-average lines report.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = {
    "service": [str(HERE / "scale_service.py"), "--cycles", "384"],
    "ray": [str(HERE / "scale_ray.py")],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=[*PARTS, "all"], default="all", help="which part to run (default: all)")
    args = ap.parse_args()
    failed = 0
    for name, cmd in PARTS.items():
        if args.part not in (name, "all"):
            continue
        print(f"== {name}: {' '.join(['python', *[Path(c).name if c.endswith('.py') else c for c in cmd]])}",
              flush=True)
        failed |= subprocess.call([sys.executable, *cmd]) != 0
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main())
