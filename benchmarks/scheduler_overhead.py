#!/usr/bin/env python
"""Cost of one ``report`` + ``should_stop`` as a study grows, thrifty against Optuna, in one run.

The workload: one process, trials one after another on a SQLite file (a fresh one per
configuration), random search over two floats, each trial reporting a learning curve at steps
1, 2, ..., 27 whose rank at every step mostly predicts its rank at the end (so early stopping
pays and the schedulers stop most trials early). Measured around each report: thrifty's
``handle.report(value, step)`` + ``handle.should_stop()`` with the default scheduler
(``scheduler="auto"``); Optuna's ``trial.report(value, step)`` + ``trial.should_prune()`` with its
``SuccessiveHalvingPruner`` and ``MedianPruner`` (defaults). A stopped/pruned trial is told so and
the next one starts. ``ask`` and ``tell`` are not in the timings.

Reported per configuration: the median latency of the reports of trials 1-500, 1,501-2,000 and
4,501-5,000 (the p50 "at 500, 2,000 and 5,000 trials"), and the ratio of the last window's median
to the first's (flat = 1). A configuration that runs past ``--max-seconds-per-config`` stops there
and is reported up to where it got.

Each configuration runs in a fresh interpreter. ``--thrifty-src NAME=DIR`` (repeatable) measures
thrifty from another source tree too (``DIR`` is put first on ``PYTHONPATH``), so that a change
and the code before it are measured in the same run on the same machine.

Usage::

    python benchmarks/scheduler_overhead.py --quick      # 1,000 trials, thrifty only
    python benchmarks/scheduler_overhead.py              # 5,000 trials, thrifty and Optuna;
                                                         # writes benchmarks/scheduler_overhead.json
                                                         # and its section of benchmarks/RESULTS.md
    # the same, with thrifty as of an earlier commit too:
    git archive REV src | tar -x -C /tmp/old && \
        python benchmarks/scheduler_overhead.py --thrifty-src "REV=/tmp/old/src"
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import source_fingerprint, versions, write_results  # noqa: E402

SECTION = "## Overhead: report + should_stop as the study grows (benchmarks/scheduler_overhead.py)"
STEPS = 27
WINDOW = 500


def curve_value(x: float, y: float, number: int, step: int) -> float:
    """The learning curve: rises towards the configuration's quality, with a little seeded noise."""
    quality = 1.0 - (x - 0.3) ** 2 - (y - 0.6) ** 2
    noise = math.sin(12.9898 * number + 78.233 * step) * 43758.5453 % 1.0 - 0.5  # deterministic
    return quality * (1.0 - 0.5 * math.exp(-step / 4.0)) + 0.02 * noise


def time_reports(
    trials: int, cap_s: float, ask: Callable[[], tuple[Any, int, float, float]],
    report: Callable[[Any, float, int], bool], end: Callable[[Any, float | None], None],
) -> list[list[float]]:
    """Run trials one after another: ``ask() -> (trial, number, x, y)``; ``report(trial, value,
    step) -> stop?`` is what is timed; ``end(trial, value)`` tells a completed trial (``None``:
    stopped). The latencies of each trial's reports, trial by trial, until ``cap_s`` has passed."""
    pc = time.perf_counter
    deadline = pc() + cap_s
    out: list[list[float]] = []
    for _ in range(trials):
        trial, number, x, y = ask()
        lats: list[float] = []
        for step in range(1, STEPS + 1):
            v = curve_value(x, y, number, step)
            t0 = pc()
            stop = report(trial, v, step)
            lats.append(pc() - t0)
            if stop:
                end(trial, None)
                break
        else:
            end(trial, v)
        out.append(lats)
        if pc() > deadline:
            break
    return out


def run_thrifty(url: str, trials: int, cap_s: float) -> list[list[float]]:
    import thrifty as th

    space = th.Space({"x": th.Float(0.0, 1.0), "y": th.Float(0.0, 1.0)})
    study = th.Study.create(space, "max", storage=url, strategy="random", seed=0)

    def ask() -> tuple[Any, int, float, float]:
        h = study.ask()
        return h, h.number, h.params["x"], h.params["y"]

    def report(h: Any, v: float, step: int) -> bool:
        h.report(v, step=step)
        return bool(h.should_stop())

    def end(h: Any, v: float | None) -> None:
        if v is None:
            study.tell(h, state="stopped")
        else:
            study.tell(h, v)

    try:
        return time_reports(trials, cap_s, ask, report, end)
    finally:
        study.close()


def run_optuna(url: str, trials: int, cap_s: float, pruner_name: str) -> list[list[float]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = {"sha": optuna.pruners.SuccessiveHalvingPruner, "median": optuna.pruners.MedianPruner}[pruner_name]()
    study = optuna.create_study(storage=url, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                                pruner=pruner)

    def ask() -> tuple[Any, int, float, float]:
        t = study.ask()
        return t, t.number, t.suggest_float("x", 0.0, 1.0), t.suggest_float("y", 0.0, 1.0)

    def report(t: Any, v: float, step: int) -> bool:
        t.report(v, step)
        return bool(t.should_prune())

    def end(t: Any, v: float | None) -> None:
        if v is None:
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(t, v)

    return time_reports(trials, cap_s, ask, report, end)


def child(cfg: dict[str, Any]) -> None:
    """Run one configuration in this interpreter; print its per-trial latencies as JSON."""
    with tempfile.TemporaryDirectory(prefix="sched-overhead-") as tmp:
        url = f"sqlite:///{tmp}/study.db"
        if cfg["lib"] == "thrifty":
            lats = run_thrifty(url, cfg["trials"], cfg["cap_s"])
        else:
            lats = run_optuna(url, cfg["trials"], cfg["cap_s"], cfg["pruner"])
    print(json.dumps({"lats": lats}))


def run_config(cfg: dict[str, Any], src: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    t0 = time.time()
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], env=env, capture_output=True,
                          text=True, cwd=str(ROOT))
    if proc.returncode != 0:
        return {**cfg, "error": proc.stderr[-3000:]}
    lats = json.loads(proc.stdout.strip().splitlines()[-1])["lats"]
    return {**cfg, "wall_s": time.time() - t0, **summarize(lats)}


def summarize(per_trial: list[list[float]]) -> dict[str, Any]:
    """Median latency (ms) per window of WINDOW trials, and the reports per trial."""
    windows = []
    for start in range(0, len(per_trial), WINDOW):
        chunk = [x for lats in per_trial[start:start + WINDOW] for x in lats]
        if len(per_trial[start:start + WINDOW]) == WINDOW:
            windows.append(1e3 * statistics.median(chunk))
    n_reports = sum(len(x) for x in per_trial)
    return {"completed_trials": len(per_trial), "reports": n_reports, "p50_ms_by_window": windows,
            "ratio_last_first": windows[-1] / windows[0] if len(windows) > 1 else None}


def at(r: dict[str, Any], trials: int) -> str:
    w = r.get("p50_ms_by_window") or []
    k = trials // WINDOW - 1
    return f"{w[k]:.3f}" if 0 <= k < len(w) else "n/a"


def table(results: list[dict[str, Any]], trials: int) -> str:
    marks = [m for m in (500, 2000, 5000) if m <= trials]
    head = "| configuration | trials done | reports | " + " | ".join(f"p50 ms at {m:,}" for m in marks) \
        + " | last/first | wall s |"
    lines = [head, "|" + " --- |" * (len(marks) + 5)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['label']} | error | | " + " | " * len(marks) + " |")
            continue
        ratio = r["ratio_last_first"]
        lines.append(f"| {r['label']} | {r['completed_trials']:,} | {r['reports']:,} | "
                     + " | ".join(at(r, m) for m in marks)
                     + f" | {'n/a' if ratio is None else f'{ratio:.2f}'} | {r['wall_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=5000)
    ap.add_argument("--quick", action="store_true", help="1,000 trials, thrifty only, nothing written")
    ap.add_argument("--libs", default="thrifty,optuna")
    ap.add_argument("--thrifty-src", action="append", default=[], metavar="NAME=DIR",
                    help="also measure thrifty from this source tree (a checkout's src folder)")
    ap.add_argument("--max-seconds-per-config", type=float, default=1500.0)
    ap.add_argument("--optuna-max-seconds", type=float, help="a cap for the Optuna rows only (default: the same)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    trials = 1000 if args.quick else args.trials
    libs = ["thrifty"] if args.quick else args.libs.split(",")
    runs: list[tuple[dict[str, Any], str | None]] = []
    if "thrifty" in libs:
        runs.append(({"lib": "thrifty", "label": "thrifty auto (this tree)"}, str(ROOT / "src")))
        for spec in args.thrifty_src:
            name, _, src = spec.partition("=")
            runs.append(({"lib": "thrifty", "label": f"thrifty auto ({name})"}, str(Path(src).resolve())))
    if "optuna" in libs:
        runs += [({"lib": "optuna", "pruner": "sha", "label": "Optuna SuccessiveHalvingPruner"}, None),
                 ({"lib": "optuna", "pruner": "median", "label": "Optuna MedianPruner"}, None)]
    started = time.time()
    results = []
    for cfg, src in runs:
        cap = args.optuna_max_seconds if cfg["lib"] == "optuna" and args.optuna_max_seconds else \
            args.max_seconds_per_config
        r = run_config({**cfg, "trials": trials, "cap_s": cap}, src)
        results.append(r)
        print(r["label"], json.dumps({k: v for k, v in r.items() if k not in ("label",)}), flush=True)
    text = table(results, trials)
    print(text)
    if args.quick or args.no_write:
        return
    info = {"date": _dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
            f"{platform.system()} {platform.release()}", "command": "python " + shlex.join(sys.argv),
            "wall_min": (time.time() - started) / 60, "versions": versions(["optuna", "SQLAlchemy"]),
            "thrifty_source": source_fingerprint(), "results": results}
    (ROOT / "benchmarks" / "scheduler_overhead.json").write_text(json.dumps(info, indent=1) + "\n")
    section = (f"{SECTION}\n\nDate {info['date']}; machine: {info['machine']}, Python {info['versions']['python']}; "
               f"command: `{info['command']}`; wall time {info['wall_min']:.1f} min; optuna "
               f"{info['versions']['optuna']}, SQLAlchemy {info['versions']['SQLAlchemy']} (thrifty source "
               f"{info['thrifty_source']}). One process, a fresh SQLite file per row, random search, curves of "
               f"up to {STEPS} steps; the p50 at N trials is the median over the reports of the last {WINDOW} "
               f"trials up to N. Raw numbers: `benchmarks/scheduler_overhead.json`.\n\n{text}\n\n"
               "Floor (issue 12): thrifty's default scheduler under 1 ms p50 at 5,000 trials and last/first at "
               "most 1.5.\n")
    write_results(ROOT / "benchmarks" / "RESULTS.md", SECTION, section)


if __name__ == "__main__":
    main()
