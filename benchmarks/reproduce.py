#!/usr/bin/env python
"""Do thrifty's decisions reproduce exactly? A quick guard for refactors (issue 12).

Runs a fixed subset of the thrifty cells of ``benchmarks/multifidelity.py`` (LCBench surrogate:
every configuration started, every epoch paid, where each run ended) and of
``benchmarks/blackbox.py`` (every value of every evaluation, and the dollar-budget variant with
its costs and stop reason), drops wall-clock times, and compares the records with the stored
baseline ``benchmarks/reproduce-baseline.json``. Any difference is printed cell by cell and the
exit status is 1. It is a subset (a few minutes on one core), not a substitute for rerunning the
full benchmarks after a deliberate change.

Usage, from the repository root::

    .venv/bin/python benchmarks/reproduce.py            # compare with the baseline (exit 1 on any change)
    .venv/bin/python benchmarks/reproduce.py --record   # write the baseline from this source tree

The baseline also records the versions of Python and the numerical packages it was made with
(``_environment``): another numpy or scipy changes last digits, and then every cell may differ
with no change of thrifty's; the comparison says so, and the remedy is to record the baseline
again from the commit before the change, in this environment, and compare.

It imports thrifty from this tree's ``src/`` (as the benchmarks do). LCBench data:
``$THRIFTY_BENCHDATA/lcbench`` (default ``../shared/benchdata``); without it the multi-fidelity part
is reported missing and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

BASELINE = HERE / "reproduce-baseline.json"
MF_METHODS = ("thrifty-defaults", "thrifty-mfgp-asha", "thrifty-gp", "thrifty-tpe-asha", "thrifty-hyperband",
              "thrifty-asha-promotion")
MF_TASKS = ("3945", "126025")
MF_SEEDS = (0, 1)
BB_METHODS = ("thrifty-random", "thrifty-tpe", "thrifty-gp", "thrifty-auto")
BB_FUNCTIONS = ("branin", "hartmann6")
BB_SEEDS = (0, 1)
BB_EVALS = 30
COST_VARIANTS: tuple[tuple[str, bool | None], ...] = (("random", None), ("gp", True), ("tpe", True))


ENV_KEY = "_environment"
ENV_PACKAGES = ("numpy", "scipy", "scikit-learn", "onnxruntime")


def environment() -> dict[str, str]:
    """The versions the decisions' last digits depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ENV_PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("wall_s",)}


def run_all() -> dict[str, Any]:
    import blackbox
    import multifidelity
    from lcbench import BenchdataMissing

    out: dict[str, Any] = {}
    try:
        for key in MF_METHODS:
            for task in MF_TASKS:
                for seed in MF_SEEDS:
                    out[f"mf/{key}/{task}/{seed}"] = _strip(multifidelity.run_cell((task, seed, key)))
                    print(f"mf {key} {task} seed {seed}", flush=True)
    except BenchdataMissing as exc:
        print(f"LCBench data missing: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    for method in BB_METHODS:
        for fn in BB_FUNCTIONS:
            for seed in BB_SEEDS:
                out[f"bb/{method}/{fn}/{seed}"] = _strip(blackbox.run_cell((fn, seed, method, BB_EVALS)))
    for kind, aware in COST_VARIANTS:
        for fn in BB_FUNCTIONS:
            budget = 10 * blackbox.mean_cost(blackbox.PROBLEMS[fn])
            for seed in BB_SEEDS:
                rec = blackbox.run_cost_cell((fn, seed, kind, aware, budget, 40))
                out[f"cost/{kind}-{aware}/{fn}/{seed}"] = _strip(rec)
    print("black-box and cost cells done", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", action="store_true", help="write the baseline instead of comparing")
    args = ap.parse_args()
    got = json.loads(json.dumps(run_all()))  # the same float/tuple normalisation as the stored file
    if args.record:
        got[ENV_KEY] = environment()
        BASELINE.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"wrote {BASELINE.relative_to(HERE.parent)} ({len(got)} cells)")
        return 0
    want = json.loads(BASELINE.read_text())
    recorded_env, env = want.pop(ENV_KEY, None), environment()
    if recorded_env != env:
        print(f"note: the baseline was recorded with {recorded_env}, this run has {env}: differences may come "
              "from the packages, not from thrifty; record the baseline again from the commit before the change "
              "(--record) and compare")
    bad = 0
    for cell in sorted(set(want) | set(got)):
        if want.get(cell) != got.get(cell):
            bad += 1
            a, b = want.get(cell, {}), got.get(cell, {})
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            detail = "; ".join(f"{k}: {str(a.get(k))[:80]} -> {str(b.get(k))[:80]}" for k in keys[:4])
            print(f"CHANGED {cell}: {detail}")
    print(f"{len(got)} cells, {bad} changed" + ("" if bad else ": every decision reproduces exactly"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
