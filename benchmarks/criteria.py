"""Completion criteria: how much spend each saves, and at what cost in regret (issue 13, item 6).

Run from the repository root (LCBench surrogate in ``$THRIFTY_BENCHDATA/lcbench``, default
``../shared/benchdata``):

    .venv/bin/python benchmarks/criteria.py --jobs 2           # the full run, writes the results
    .venv/bin/python benchmarks/criteria.py --quick --no-write # smoke run: 2 tasks, 2 seeds

Protocol (the criteria part of ``benchmarks/cost.py``, with more seeds and the tail reported):

- Ten LCBench tasks (those of ``benchmarks/cost.py``), seeds 0..9 (``--seeds``). A run is thrifty's
  defaults (``Study.create`` without a strategy: ``auto``, which picks ``gp`` for this small
  black-box space) with a trial budget of 100 (``Budget(trials=100)``); each trial is one
  configuration trained to epoch 52 (the surrogate's ``val_accuracy``, maximised), its cost the
  surrogate's training time in units of the task's median full training.
- Variants: no criterion (``none``: all 100 trials), and one criterion each (``stop_when=[...]``).
  The same seed gives the same trials up to the stop, so a variant's run is a prefix of ``none``'s.
- Regret = (reference - best found) / reference, reference = the best of 10,000 seeded random
  configurations (``cost._reference``). Spend saved = 1 - spend / spend of ``none`` on the same
  (task, seed), averaged over runs.
- Reported per variant: mean spend, mean spend saved, median / mean / 90th-percentile / worst
  regret, and the extra regret over ``none`` on the same run (median and worst).
- Floor (issue 13, item 6): a recommended criterion saves at least 30% of spend at no more than
  0.1 points of extra median regret over ``none``.

No peer offers completion criteria that weigh the model's expected gain, so there is no peer column
(Optuna's closest is a user-written callback; ``NoImprovement`` below is what such a callback does).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _report import machine, source_fingerprint, write_results
from cost import LCBENCH_SPACE, TASKS, _reference
from lcbench import MAX_EPOCH, BenchdataMissing, LCBench

import thrifty as th

SECTION = "## Completion criteria: spend saved against regret (benchmarks/criteria.py)"
MAX_TRIALS = 100
VARIANTS = {
    "none": lambda: None,
    "no_improvement(0.1% over 25 trials)": lambda: [th.NoImprovement(min_improvement=0.001, trials=25)],
    "no_improvement(0.1% over 40 trials)": lambda: [th.NoImprovement(min_improvement=0.001, trials=40)],
    "no_expected_improvement(0.3%, confirmed over 10 trials)": lambda: [th.NoExpectedImprovement(0.003)],
    "no_expected_improvement(0.1%, confirmed over 10 trials: the defaults)": lambda: [th.NoExpectedImprovement()],
    "no_expected_improvement(0.1%, no confirmation)": lambda: [th.NoExpectedImprovement(0.001, confirm_trials=0)],
}


def run_cell(cell: tuple[str, int, str]) -> dict:
    task, seed, name = cell
    bench = LCBench.load(task)
    ref = _reference(bench)
    unit = float(np.median(bench.evaluate(bench.sample(np.random.default_rng(7), 2000), [MAX_EPOCH])["time"][:, 0]))
    study = th.Study.create(LCBENCH_SPACE, {"val_acc": "max"}, storage="memory", seed=seed,
                            stop_when=VARIANTS[name](), budget=th.Budget(trials=MAX_TRIALS))
    t0 = time.perf_counter()
    ended = ""
    while True:
        try:
            t = study.ask()
        except th.StudyExhausted as exc:
            ended = str(exc)
            break
        r = bench.evaluate([dict(t.params)], [MAX_EPOCH])
        study.tell(t, {"val_acc": float(r["val_accuracy"][0, 0])}, cost_usd=float(r["time"][0, 0]) / unit)
    best = study.best.value
    return {"task": task, "seed": seed, "variant": name, "trials": len(study.trials), "spend_units": study.cost_usd,
            "regret": (ref - best) / ref, "wall_s": time.perf_counter() - t0, "ended": ended}


def summarise(rows: list[dict]) -> list[dict]:
    base = {(r["task"], r["seed"]): r for r in rows if r["variant"] == "none"}
    out = []
    for name in VARIANTS:
        rs = [r for r in rows if r["variant"] == name and (r["task"], r["seed"]) in base]
        if not rs:
            continue
        reg = np.array([r["regret"] for r in rs]) * 100
        extra = np.array([r["regret"] - base[(r["task"], r["seed"])]["regret"] for r in rs]) * 100
        saved = np.array([1 - r["spend_units"] / base[(r["task"], r["seed"])]["spend_units"] for r in rs]) * 100
        out.append({"variant": name, "runs": len(rs), "spend": float(np.mean([r["spend_units"] for r in rs])),
                    "trials": float(np.mean([r["trials"] for r in rs])), "saved_pct": float(np.mean(saved)),
                    "median": float(np.median(reg)), "mean": float(np.mean(reg)), "p90": float(np.percentile(reg, 90)),
                    "worst": float(np.max(reg)), "extra_median_pts": float(np.median(reg) - np.median(
                        [base[(r["task"], r["seed"])]["regret"] * 100 for r in rs])),
                    "extra_run_median": float(np.median(extra)), "extra_run_worst": float(np.max(extra))})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 tasks, seeds 0..1")
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    ap.add_argument("--variants", default=None, help=f"';'-separated subset of: {'; '.join(VARIANTS)}")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args()
    tasks = TASKS[:2] if args.quick else TASKS
    seeds = list(range(2 if args.quick else args.seeds))
    names = ["none"] + [v.strip() for v in (args.variants.split(";") if args.variants else VARIANTS) if v != "none"]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {'; '.join(VARIANTS)}")
    try:
        LCBench.load(tasks[0])
    except BenchdataMissing as exc:
        print(f"criteria benchmark: {exc}", file=sys.stderr)
        return 2
    cmd = "python benchmarks/criteria.py " + " ".join(sys.argv[1:])
    t0, fp0 = time.time(), source_fingerprint()
    cells = [(t, s, v) for v in names for t in tasks for s in seeds]
    rows: list[dict] = []
    with mp.get_context("fork").Pool(args.jobs) as pool:
        for r in pool.imap_unordered(run_cell, cells):
            rows.append(r)
            print(f"[{len(rows)}/{len(cells)}] {r['variant']:34s} {r['task']:>6s} s{r['seed']}: regret "
                  f"{100 * r['regret']:.2f}%, {r['trials']} trials, {r['spend_units']:.1f} u, {r['wall_s']:.0f} s",
                  flush=True)
    summ = summarise(rows)
    none = next(s for s in summ if s["variant"] == "none")
    lines = [SECTION, "",
             (f"- Date: {time.strftime('%Y-%m-%d')}; machine: {machine()}; command: `{cmd}`; "
              f"{(time.time() - t0) / 60:.1f} min; thrifty source {fp0} at the start, {source_fingerprint()} at the end."),
             (f"- {len(tasks)} LCBench tasks x seeds 0..{len(seeds) - 1}; thrifty's defaults (auto: gp), up to "
              f"{MAX_TRIALS} full trainings per run; protocol in the script's docstring. Raw numbers: "
              "`benchmarks/criteria.json`. No peer column (see the docstring)."), "",
             ("| criterion | runs | mean trials | mean spend (units) | spend saved vs none | median regret | "
              "mean regret | p90 regret | worst regret | extra median regret (points) | worst extra on one run |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summ:
        lines.append(f"| {s['variant']} | {s['runs']} | {s['trials']:.0f} | {s['spend']:.1f} | {s['saved_pct']:.0f}% | "
                     f"{s['median']:.2f}% | {s['mean']:.2f}% | {s['p90']:.2f}% | {s['worst']:.2f}% | "
                     f"{s['extra_median_pts']:+.2f} | {s['extra_run_worst']:+.2f} |")
    ok = [s for s in summ if s["variant"] != "none" and s["saved_pct"] >= 30 and s["extra_median_pts"] <= 0.1]
    lines += ["", "Floor (issue 13, item 6): a criterion saves at least 30% of spend at no more than 0.1 points of "
              "extra median regret: " + (f"**PASS** ({', '.join(s['variant'] for s in ok)})" if ok else "**FAIL**")
              + f" (none: median regret {none['median']:.2f}%).", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        (HERE / "criteria.json").write_text(json.dumps({"command": cmd, "machine": machine(), "rows": rows,
                                                        "summary": summ}, indent=1))
        write_results(Path(args.out), SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
