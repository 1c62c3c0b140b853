"""Proposal overhead: time per proposal (ask) of thrifty's model-based strategies against Optuna's.

Run from the repository root (Optuna's GPSampler needs ``pip install torch==2.13.0 greenlet``):

    .venv/bin/python benchmarks/proposal_overhead.py            # the full run, writes the results
    .venv/bin/python benchmarks/proposal_overhead.py --quick    # smoke run (small histories, 5 asks), under _work/

Protocol.

- Problem: Ackley-5 (``thrifty.testfunctions.PROBLEMS["ackley5"]``), 5 continuous dimensions in
  [-32.768, 32.768], minimized; in-memory storage for both libraries.
- History: N completed trials at the same N uniform random points (numpy seed 0) for every method,
  recorded without proposals (thrifty ``study.add_trial(params, {"y": f})``; Optuna
  ``study.add_trials([optuna.trial.create_trial(...)])``).
- Then one untimed warm-up ask+tell (imports, one-off set-up), then ``--asks`` (default 20) timed asks,
  each followed by a tell of the true value, so the history grows from N+1 to N+20 during the timing.
  Timed: thrifty ``study.ask()``; Optuna ``study.ask()`` plus the five ``trial.suggest_float`` calls
  (where Optuna samples). Reported: median and 90th percentile of the asks, in milliseconds.
- Methods: thrifty ``strategy="tpe"`` and ``strategy="gp"`` (seed 0), Optuna ``TPESampler(
  multivariate=True, seed=0)`` and ``GPSampler(seed=0)``. N = 100, 500, 1000 for the TPEs; 100, 300,
  500, 1000 for the GPs, where N = 1000 is cut short when the median of its first 3 timed proposals
  is over 2 s (the table says so).
- Each (method, N) runs in a fresh spawned process, one after the other, with BLAS/torch limited to
  ``--threads`` threads (default 1: the machine has 2 cores that other work shares; multi-threaded
  torch under that contention measured 4× slower). The 1-minute load average at the start of each
  row is recorded.
- Trials with step reports (issue 13): ``thrifty-steps`` is a study with the defaults (``auto``,
  which picks ``mfgp`` once trials report steps, and ``scheduler="auto"``) whose N
  trials are enqueued at the same points and each report steps 1..9 of a curve ending at the
  problem's value, those worse than the median at step 3 told STOPPED there; the timed asks are the
  defaults' own proposals (each then runs its steps the same way, untimed). N = 100, 500, 1000.
- ``thrifty-steps-usd``: the same with each step reporting its dollars (1 cent at the centre of
  the space, ten times dearer across the first dimension, three times across the second), so the
  study's cost model is fitted and ``mfgp``'s cost premium is at work, as in a real run.
- Floors: thrifty tpe ≤ Optuna multivariate TPE at 1,000 trials (median ms per proposal); thrifty gp
  < 250 ms per proposal at 500 trials; thrifty's defaults with step reports < 100 ms per proposal
  at 1,000 trials (issue 13).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shlex
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

import _report  # noqa: E402
from cost import machine  # noqa: E402

SECTION = "## Proposal overhead: time per ask of model-based strategies (benchmarks/proposal_overhead.py)"
PROBLEM = "ackley5"
METHODS = ("thrifty-tpe", "optuna-tpe", "thrifty-gp", "optuna-gp", "thrifty-steps", "thrifty-steps-usd")
LABELS = {"thrifty-tpe": "thrifty tpe", "optuna-tpe": "Optuna TPE (multivariate)", "thrifty-gp": "thrifty gp",
          "optuna-gp": "Optuna GPSampler",
          "thrifty-steps": "thrifty defaults, trials with step reports (auto: mfgp)",
          "thrifty-steps-usd": "thrifty defaults, step reports with dollars (auto: mfgp + cost premium)"}
SIZES = {"tpe": (100, 500, 1000), "gp": (100, 300, 500, 1000), "steps": (100, 500, 1000)}
SIZES["steps-usd"] = SIZES["steps"]
QUICK_SIZES = {"tpe": (50, 200), "gp": (50, 200), "steps": (50, 200), "steps-usd": (50, 200)}
#: Trials with step reports (issue 13): each reports steps 1..STEPS of a curve ending at the
#: problem's value; those worse than the median so far at step 3 stop there, as a scheduler would.
STEPS = 9
GP_SKIP_S = 2.0  # GP rows at N = 1000 stop after 3 timed proposals whose median is longer


def step_cost_usd(params: dict[str, float]) -> float:
    """Dollars of one step in the ``-usd`` variant: 1 cent at the centre of the space, growing ten
    times across the first dimension and three times across the second (log-linearly)."""
    u0 = (params["x1"] + 32.768) / 65.536
    u1 = (params["x2"] + 32.768) / 65.536
    return 0.01 * 10.0 ** (u0 - 0.5) * 3.0 ** (u1 - 0.5)


def history_points(n: int) -> list[dict[str, float]]:
    from thrifty.testfunctions import PROBLEMS

    space = PROBLEMS[PROBLEM].space
    rng = np.random.default_rng(0)
    return [space.decode(u) for u in rng.random((n, space.n_dims))]


def measure(job: tuple[str, int, int, float | None]) -> dict[str, Any]:
    """Pre-fill a study with ``n`` trials, then time ``asks`` proposals. Runs in a fresh process."""
    method, n, asks, skip_over_s = job
    warnings.filterwarnings("ignore")
    from thrifty.testfunctions import PROBLEMS

    problem = PROBLEMS[PROBLEM]
    space = problem.space
    points = history_points(n)
    out: dict[str, Any] = {"method": method, "n": n, "asks": asks,
                           "loadavg_1min_at_start": os.getloadavg()[0]}
    try:
        t0 = time.perf_counter()
        if method in ("thrifty-steps", "thrifty-steps-usd"):
            import thrifty as th

            study = th.Study.create(space, {"y": "min"}, storage="memory", seed=0)  # the defaults
            at3: list[float] = []

            def run_steps(t: Any) -> None:
                """Report the trial's curve (steps 1..STEPS); stop it at step 3 when it is worse
                than the median of the trials seen there."""
                end = float(problem.f(t.params))
                usd = step_cost_usd(t.params) if method == "thrifty-steps-usd" else 0.0
                for step in range(1, STEPS + 1):
                    v = end * (1.0 + 2.0 / step)
                    t.report({"y": v}, step=step, cost_usd=usd)
                    if step == 3:
                        at3.append(v)
                        if v > float(np.median(at3)):
                            study.tell(t, state="stopped")
                            return
                study.tell(t, {"y": v})

            for p in points:  # enqueued: the history is built without proposals
                study.enqueue(p)
                run_steps(study.ask())
            finish = run_steps
        elif method.startswith("thrifty"):
            import thrifty as th

            study = th.Study.create(space, {"y": "min"}, storage="memory", strategy=method.split("-")[1], seed=0)
            for p in points:
                study.add_trial(p, {"y": float(problem.f(p))})

            def finish(t: Any) -> None:
                study.tell(t, {"y": float(problem.f(t.params))})
        if method.startswith("thrifty"):

            def ask() -> tuple[float, Any]:
                s = time.perf_counter()
                t = study.ask()
                return time.perf_counter() - s, t

            def tell(t: Any) -> float:
                s = time.perf_counter()
                finish(t)
                return time.perf_counter() - s
        else:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.ERROR)
            sampler = (optuna.samplers.TPESampler(multivariate=True, seed=0) if method == "optuna-tpe"
                       else optuna.samplers.GPSampler(seed=0))
            study = optuna.create_study(direction="minimize", sampler=sampler)
            dists = {k: optuna.distributions.FloatDistribution(space[k].low, space[k].high, log=space[k].log)
                     for k in space.dim_names}
            study.add_trials([optuna.trial.create_trial(params=dict(p), distributions=dists, value=float(problem.f(p)))
                              for p in points])

            def ask() -> tuple[float, Any]:
                s = time.perf_counter()
                t = study.ask()
                params = {k: t.suggest_float(k, d.low, d.high, log=d.log) for k, d in dists.items()}
                return time.perf_counter() - s, (t, params)

            def tell(tp: Any) -> float:
                s = time.perf_counter()
                study.tell(tp[0], float(problem.f(tp[1])))
                return time.perf_counter() - s

        out["prefill_s"] = time.perf_counter() - t0
        warm, t = ask()
        tell(t)
        out["warmup_ms"] = warm * 1e3
        ask_s, tell_s = [], []
        for i in range(asks):
            a, t = ask()
            ask_s.append(a)
            tell_s.append(tell(t))
            if skip_over_s is not None and i == 2 and float(np.median(ask_s)) > skip_over_s:
                out["skipped"] = (f"the first 3 timed proposals took {float(np.median(ask_s)):.1f} s "
                                  f"(median) > {skip_over_s:g} s; warm-up {warm:.1f} s")
                out["ask_ms"] = (np.array(ask_s) * 1e3).tolist()
                return out
        ms = np.array(ask_s) * 1e3
        out.update({"ask_ms": ms.tolist(), "p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
                    "min_ms": float(ms.min()), "tell_p50_ms": float(np.median(tell_s) * 1e3)})
    except Exception as exc:  # noqa: BLE001 - report the row, go on
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()
    return out


def availability(method: str) -> str | None:
    import importlib.util

    if method.startswith("thrifty"):
        from thrifty.strategies import make_strategy

        try:
            make_strategy("auto" if method.startswith("thrifty-steps") else method.split("-")[1])
        except Exception as exc:  # noqa: BLE001
            return f"`strategy={method.split('-')[1]!r}` cannot be built: {type(exc).__name__}: {exc}"
        return None
    need = ["optuna"] + (["torch"] if method == "optuna-gp" else [])
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(missing)}" if missing else None


def versions() -> dict[str, str]:
    return _report.versions(("thrifty", "optuna", "torch", "greenlet", "numpy", "scipy"))


source_fingerprint = _report.source_fingerprint
write_results = _report.write_results


def rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: N = 50 and 200, 5 asks, writes under _work/")
    ap.add_argument("--methods", default=None, help=f"comma-separated subset of {', '.join(METHODS)}")
    ap.add_argument("--asks", type=int, default=None, help="timed asks per row (default 20; quick 5)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/torch threads in each measuring process (default 1)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    methods = args.methods.split(",") if args.methods else list(METHODS)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {bad}; known: {', '.join(METHODS)}")
    asks = args.asks or (5 if args.quick else 20)
    sizes = QUICK_SIZES if args.quick else SIZES
    out_md = args.out or (WORK / "RESULTS.quick.md" if args.quick else HERE / "RESULTS.md")
    out_json = args.json or (WORK / "proposal_overhead.quick.json" if args.quick else HERE / "proposal_overhead.json")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    try:
        py = os.path.relpath(sys.executable, os.getcwd())
        py = sys.executable if len(py) > len(sys.executable) else py
    except ValueError:
        py = sys.executable
    command = shlex.join([py, "benchmarks/proposal_overhead.py", *(sys.argv[1:] if argv is None else argv)])

    t_all = time.time()
    fp_start = source_fingerprint()
    skipped = {m: why for m in methods if (why := availability(m)) is not None}
    for m, why in skipped.items():
        print(f"SKIPPED {m}: {why}", flush=True)
    rows: list[dict[str, Any]] = []
    ctx = mp.get_context("spawn")
    for kind in ("tpe", "gp", "steps", "steps-usd"):
        for n in sizes[kind]:
            for m in (f"thrifty-{kind}", f"optuna-{kind}"):
                if m not in methods or m in skipped:
                    continue
                skip_over = GP_SKIP_S if kind == "gp" and n >= 1000 else None
                t0 = time.time()
                with ctx.Pool(1) as pool:  # a fresh process per row
                    r = pool.apply(measure, ((m, n, asks, skip_over),))
                r["wall_s"] = time.time() - t0
                rows.append(r)
                if "error" in r:
                    what = f"ERROR {r['error']}"
                elif "skipped" in r:
                    what = f"SKIPPED: {r['skipped']}"
                else:
                    what = f"p50 {r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms"
                print(f"{m:12s} N={n:5d}: {what}  [{r['wall_s']:.0f} s, load {r['loadavg_1min_at_start']:.1f}]",
                      flush=True)
    total = time.time() - t_all
    fp_end = source_fingerprint()

    def get(m: str, n: int) -> dict | None:
        return next((r for r in rows if r["method"] == m and r["n"] == n and "p50_ms" in r), None)

    floors = []
    big_tpe = max(sizes["tpe"])
    a, b = get("thrifty-tpe", big_tpe), get("optuna-tpe", big_tpe)
    label = f"thrifty tpe ≤ Optuna multivariate TPE at {big_tpe:,} trials (median ms per proposal)"
    if a and b:
        floors.append((label, "PASS" if a["p50_ms"] <= b["p50_ms"] else "FAIL",
                       f"{a['p50_ms']:.1f} ms vs {b['p50_ms']:.1f} ms"))
    else:
        floors.append((label, "FAIL (not measured)", "a row is missing: see the table"))
    gp_n = 500 if 500 in sizes["gp"] else max(sizes["gp"])
    a = get("thrifty-gp", gp_n)
    label = f"thrifty gp < 250 ms per proposal at {gp_n:,} trials"
    floors.append((label, ("PASS" if a["p50_ms"] < 250 else "FAIL") if a else "FAIL (not measured)",
                   f"{a['p50_ms']:.1f} ms" if a else "the row is missing: see the table"))
    steps_n = max(sizes["steps"])
    a = get("thrifty-steps", steps_n)
    label = f"thrifty's defaults with step reports < 100 ms per proposal at {steps_n:,} trials (issue 13)"
    floors.append((label, ("PASS" if a["p50_ms"] < 100 else "FAIL") if a else "FAIL (not measured)",
                   f"{a['p50_ms']:.1f} ms" if a else "the row is missing: see the table"))
    a = get("thrifty-steps-usd", steps_n)
    label = (f"thrifty's defaults with step reports and dollars (the cost model and mfgp's premium at work) "
             f"< 100 ms per proposal at {steps_n:,} trials (issue 13)")
    floors.append((label, ("PASS" if a["p50_ms"] < 100 else "FAIL") if a else "FAIL (not measured)",
                   f"{a['p50_ms']:.1f} ms" if a else "the row is missing: see the table"))
    if args.quick:
        floors = [(lab + " [quick run: sizes differ from the floor's]", v, d) for lab, v, d in floors]

    data = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command, "machine": machine(),
            "versions": versions(), "problem": PROBLEM, "asks": asks, "threads": args.threads,
            "sizes": {k: list(v) for k, v in sizes.items()}, "skipped_methods": skipped, "wall_s": total,
            "thrifty_source_sha256_12": {"start": fp_start, "end": fp_end}, "rows": rows,
            "floors": [{"floor": f, "verdict": v, "detail": d} for f, v, d in floors]}

    lines = [SECTION, "",
             f"- Date: {data['date']}; machine: {machine()}",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()),
             f"- Command: `{command}`; wall time {total / 60:.1f} min",
             f"- thrifty source (sha256 of src/thrifty/**/*.py): {fp_start} at the start, {fp_end} at the end",
             f"- Ackley-5, in-memory storage; N random completed trials recorded first, one untimed warm-up, then "
             f"{asks} timed asks (each followed by a tell); a fresh process per row; BLAS/torch threads = "
             f"{args.threads}. Optuna's time includes the five `suggest_float` calls. Protocol: the script's "
             f"docstring. Raw numbers: `{rel(out_json)}`."]
    if skipped:
        lines.append("- **Skipped methods**: " + "; ".join(f"`{m}`: {why}" for m, why in skipped.items()))
    lines += ["", "| method | N existing trials | median ms per ask | p90 ms | tell median ms | load avg at start |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {LABELS[r['method']]} | {r['n']:,} | error: `{r['error']}` | | | |")
        elif "skipped" in r:
            lines.append(f"| {LABELS[r['method']]} | {r['n']:,} | skipped: {r['skipped']} | | | "
                         f"{r['loadavg_1min_at_start']:.1f} |")
        else:
            lines.append(f"| {LABELS[r['method']]} | {r['n']:,} | {fmt_ms(r['p50_ms'])} | {fmt_ms(r['p90_ms'])} | "
                         f"{fmt_ms(r['tell_p50_ms'])} | {r['loadavg_1min_at_start']:.1f} |")
    lines += ["", "Floors:", ""]
    for lab, v, d in floors:
        lines.append(f"- **{v}**: {lab}: {d}")
        print(f"FLOOR {v}: {lab}: {d}", flush=True)
    lines.append("")
    section = "\n".join(lines)
    print()
    print(section)
    if not args.no_write:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(data, indent=1) + "\n")
        write_results(out_md, SECTION, section)
        print(f"\nwrote {out_md} and {out_json}", flush=True)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
