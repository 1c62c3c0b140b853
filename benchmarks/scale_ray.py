"""Scale benchmark, Ray backend (issue 16): wall-clock speed-up with 1, 2 and 4 Ray workers against
Ray Tune running the same trials in the same run, per-trial overhead, and the dollar budget's
overshoot with 8 Ray workers.

Run from the repository root (needs ``.venv/bin/pip install 'ray[default]==2.60.0' 'ray[tune]==2.60.0'``
and, for the default storage, PostgreSQL on 127.0.0.1:5432 with trust auth):

    .venv/bin/python benchmarks/scale_ray.py                  # 16 trials of 1 s per worker count
    .venv/bin/python benchmarks/scale_ray.py --trials 8 --no-write

Protocol. One Ray instance on this machine (``ray.init(num_cpus=8)``, its temporary folder inside
the benchmark's own; started once, before anything is timed) serves both tools. Every trial sleeps
``--trial-s`` seconds (default 1) and reports once: sleeping trials need no CPU, so this 2-core
machine can run 8 of them at once, and the numbers measure scheduling, storage and process overhead
rather than the machine's cores (8 logical Ray CPUs, each trial holding one). For each worker count
W in 1, 2, 4, the tools take turns (thrifty, then Ray Tune) running ``--trials`` such trials:

- **thrifty**: ``study.optimize(fn, n_trials=N, n_workers=W, backend="ray")`` on a fresh study in
  PostgreSQL (``--storage sqlite`` for a SQLite file), random search, no scheduler; every trial is
  a Ray task that opens the study, asks, runs, tells (``thrifty.runners.ray``).
- **Ray Tune**: ``tune.Tuner(fn, tune_config=TuneConfig(num_samples=N, max_concurrent_trials=W))``
  with a uniform parameter, its default searcher and scheduler (FIFO), results in the benchmark's
  folder, verbose 0; the function sleeps the same time and calls ``tune.report`` once.

Wall time is the whole call (``optimize`` / ``Tuner.fit``), after one untimed warm-up run of each tool
(W = 4, 4 trials) that starts Ray's worker processes. **Speed-up** = wall(W=1) / wall(W) (ideal: W).
**Per-trial overhead** = wall × W / N − trial time: the seconds each trial costs beyond its sleep
(at W = 1 its whole bookkeeping; ideal 0).

**Budget overshoot**: a study with pricing $1 per trial-second (``{local: 3600}``), a hard budget of
``--budget-usd`` (default $10), trials of 4 s reporting every 0.25 s, ``n_workers=8`` (after an
untimed warm-up run with 8 workers, so that 8 worker processes exist): 8 trials start at once with
nothing spent, $32 of work for $10, so the ledger reaches the limit with all 8 in flight and the
breaker stops them. Reported: dollars spent beyond the limit, against the documented bound (one reporting
interval per trial in flight: 8 × $0.25 = $2).

Floors (issue 16): speed-up at least 1.8× at 2 workers; thrifty's per-trial overhead no more than
Ray Tune's (at W = 1, where it is the whole bookkeeping of a trial).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import machine, md_table, source_fingerprint, versions, write_results

SECTION = "## Scale: Ray backend (benchmarks/scale_ray.py)"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
WORKERS = (1, 2, 4)


def sleeping(seconds: float) -> Any:
    """thrifty's objective: sleep, then return a value."""

    def objective(trial: Any) -> float:
        time.sleep(seconds)
        return float(trial.params["x"])

    return objective


def reporting(seconds: float, every_s: float) -> Any:
    """thrifty's objective for the budget run: report every ``every_s`` for ``seconds``."""

    def objective(trial: Any) -> float | None:
        steps = round(seconds / every_s)
        for step in range(1, steps + 1):
            time.sleep(every_s)
            trial.report(float(trial.params["x"]), step=step)
            if trial.should_stop():
                return None
        return float(trial.params["x"])

    return objective


def tune_trainable(seconds: float) -> Any:
    """Ray Tune's function: the same sleep, one report."""

    def trainable(config: dict[str, Any]) -> None:
        from ray import tune

        time.sleep(seconds)
        tune.report({"value": float(config["x"])})

    return trainable


class Storages:
    """A fresh PostgreSQL database for the run (dropped at the end), or a SQLite file."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.kind, self.folder = kind, folder
        self.db = f"bench_scale_ray_{uuid.uuid4().hex[:8]}"
        if kind == "postgresql":
            import psycopg

            with psycopg.connect(PG_SERVER, autocommit=True) as c:
                c.execute(f'CREATE DATABASE "{self.db}"')
            self.url = PG_SERVER.rsplit("/", 1)[0] + "/" + self.db
        else:
            self.url = f"sqlite:///{folder / 'scale_ray.db'}"

    def drop(self) -> None:
        if self.kind == "postgresql":
            import psycopg

            with psycopg.connect(PG_SERVER, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


def run_thrifty(url: str, folder: Path, n: int, w: int, trial_s: float) -> float:
    import thrifty as th

    study = th.Study.create({"x": th.Float(0.0, 1.0)}, "max", name=f"w{w}-{uuid.uuid4().hex[:6]}", storage=url,
                            strategy="random", scheduler="none", artifact_root=str(folder / "art"))
    began = time.perf_counter()
    result = study.optimize(sleeping(trial_s), n_trials=n, n_workers=w, backend="ray", progress=False)
    wall = time.perf_counter() - began
    done = sum(1 for t in study.trials if t.state is th.TrialState.COMPLETED)
    assert done == n, (result, study.counts())
    study.close()
    return wall


def run_tune(folder: Path, n: int, w: int, trial_s: float) -> float:
    from ray import tune

    tuner = tune.Tuner(
        tune_trainable(trial_s), param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=w, metric="value", mode="max"),
        run_config=tune.RunConfig(storage_path=str(folder / "tune"), name=f"w{w}-{uuid.uuid4().hex[:6]}", verbose=0),
    )
    began = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - began
    assert len(grid) == n and not grid.errors, grid.errors
    return wall


def budget_overshoot(url: str, folder: Path, budget_usd: float) -> dict[str, Any]:
    import thrifty as th

    trial_s, every_s, workers = 4.0, 0.25, 8
    run_thrifty(url, folder, workers, workers, 0.2)  # warm-up: 8 of Ray's worker processes, started at once
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, "max", name=f"budget-{uuid.uuid4().hex[:6]}", storage=url,
                            strategy="random", scheduler="none", pricing={"local": 3600.0},
                            budget={"usd": budget_usd}, artifact_root=str(folder / "art"))
    result = study.optimize(reporting(trial_s, every_s), n_workers=workers, backend="ray", progress=False)
    trials = study.trials
    interval = max(m.cost_usd for t in trials for m in t.measurements)
    spent = study.cost_usd
    out = {"workers": workers, "budget_usd": budget_usd, "spent_usd": spent, "overshoot_usd": spent - budget_usd,
           "bound_usd": workers * interval, "max_interval_usd": interval, "trials": len(trials),
           "stopped_by_budget": sum(1 for t in trials if t.stop_kind is th.StopKind.BUDGET),
           "reason": result.reason, "message": result.message}
    study.close()
    return out


def run(n: int, trial_s: float, storage: str, budget_usd: float, folder: Path) -> dict[str, Any]:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    began = time.perf_counter()
    ray.init(num_cpus=8, include_dashboard=False, _temp_dir=temp, logging_level=logging.WARNING,
             log_to_driver=False)
    ray_init_s = time.perf_counter() - began
    stores = Storages(storage, folder)
    rows: list[dict[str, Any]] = []
    try:
        print(f"ray.init {ray_init_s:.1f} s; storage {stores.url}", flush=True)
        run_thrifty(stores.url, folder, 4, 4, trial_s)  # warm-up: Ray's worker processes
        run_tune(folder, 4, 4, trial_s)
        for w in WORKERS:
            t = run_thrifty(stores.url, folder, n, w, trial_s)
            r = run_tune(folder, n, w, trial_s)
            rows.append({"workers": w, "thrifty_s": t, "tune_s": r})
            print(f"W={w}: thrifty {t:.2f} s, Ray Tune {r:.2f} s", flush=True)
        overshoot = budget_overshoot(stores.url, folder, budget_usd)
        print(f"budget: {overshoot}", flush=True)
    finally:
        ray.shutdown()
        stores.drop()
        shutil.rmtree(temp, ignore_errors=True)
    base = {k: rows[0][k] for k in ("thrifty_s", "tune_s")}
    for row in rows:
        w = row["workers"]
        for tool in ("thrifty", "tune"):
            row[f"{tool}_speedup"] = base[f"{tool}_s"] / row[f"{tool}_s"]
            row[f"{tool}_overhead_s"] = row[f"{tool}_s"] * w / n - trial_s
    return {"rows": rows, "overshoot": overshoot, "ray_init_s": ray_init_s, "storage": storage, "trials": n,
            "trial_s": trial_s}


def report(res: dict[str, Any], cmd: str, took_s: float) -> str:
    rows, o = res["rows"], res["overshoot"]
    two = next(r for r in rows if r["workers"] == 2)
    one = rows[0]
    speed_ok = two["thrifty_speedup"] >= 1.8
    overhead_ok = one["thrifty_overhead_s"] <= one["tune_overhead_s"]
    v = versions(["ray", "psycopg"])
    lines = [SECTION, "",
             (f"Date {time.strftime('%Y-%m-%d')}; machine: {machine()}; command: `{cmd}`; {took_s:.0f} s; "
             f"ray {v['ray']}; thrifty source {source_fingerprint()}; storage {res['storage']}. "
             f"{res['trials']} trials of {res['trial_s']:g} s (sleeps: this machine has 2 cores, sleeping trials "
             "need none, so 8 logical Ray CPUs hold 8 trials at once) per worker count, thrifty and Ray Tune "
             f"taking turns on one Ray instance (ray.init {res['ray_init_s']:.1f} s, untimed, as is one warm-up "
             "run of each). Overhead per trial = wall × workers / trials − trial time. Raw numbers: "
             "`benchmarks/scale_ray.json`."), ""]
    table = [[r["workers"], f"{r['thrifty_s']:.2f}", f"{r['thrifty_speedup']:.2f}×", f"{r['thrifty_overhead_s']:.3f}",
              f"{r['tune_s']:.2f}", f"{r['tune_speedup']:.2f}×", f"{r['tune_overhead_s']:.3f}"] for r in rows]
    lines += md_table(["workers", "thrifty wall s", "thrifty speed-up", "thrifty overhead s/trial", "Ray Tune wall s",
                       "Ray Tune speed-up", "Ray Tune overhead s/trial"], table)
    lines += ["", (f"Budget overshoot with {o['workers']} Ray workers: ${o['spent_usd']:.3f} spent of a "
              f"${o['budget_usd']:g} hard budget, **${o['overshoot_usd']:.3f} over** (bound: {o['workers']} in-flight "
              f"reporting intervals of at most ${o['max_interval_usd']:.3f} = ${o['bound_usd']:.3f}); "
              f"{o['trials']} trials, {o['stopped_by_budget']} stopped by the breaker; run ended: {o['message']}."), "",
              (f"Floor (issue 16): speed-up at 2 workers ≥ 1.8×: {two['thrifty_speedup']:.2f}×, "
              f"**{'PASS' if speed_ok else 'FAIL'}**. thrifty's per-trial overhead ≤ Ray Tune's (1 worker): "
              f"{one['thrifty_overhead_s']:.3f} s vs {one['tune_overhead_s']:.3f} s, "
              f"**{'PASS' if overhead_ok else 'FAIL'}**. Budget within its bound: "
              f"**{'PASS' if o['overshoot_usd'] <= o['bound_usd'] + 1e-9 else 'FAIL'}**."), ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=16, help="trials per worker count (default %(default)s)")
    ap.add_argument("--trial-s", type=float, default=1.0, help="seconds each trial sleeps (default %(default)s)")
    ap.add_argument("--storage", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--budget-usd", type=float, default=10.0, help="the overshoot run's budget (default %(default)s)")
    ap.add_argument("--no-write", action="store_true", help="print only; RESULTS.md and the JSON untouched")
    args = ap.parse_args()
    t0 = time.time()
    folder = Path(tempfile.mkdtemp(prefix="scale_ray_"))
    try:
        res = run(args.trials, args.trial_s, args.storage, args.budget_usd, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    cmd = "python benchmarks/scale_ray.py" + "".join(
        f" --{k.replace('_', '-')} {getattr(args, k)}" for k, d in (("trials", 16), ("trial_s", 1.0),
                                                                    ("storage", "postgresql"), ("budget_usd", 10.0))
        if getattr(args, k) != d)
    text = report(res, cmd, time.time() - t0)
    print(text)
    if not args.no_write:
        (HERE / "scale_ray.json").write_text(json.dumps({**res, "machine": machine(), "command": cmd,
                                                         "date": time.strftime("%Y-%m-%d"),
                                                         "median_thrifty_overhead_s": statistics.median(
                                                             r["thrifty_overhead_s"] for r in res["rows"])}, indent=1))
        write_results(HERE / "RESULTS.md", SECTION, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
