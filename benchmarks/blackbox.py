"""Black-box benchmark: simple regret against evaluations on synthetic functions, thrifty against peers.

Run from the repository root (peers: ``pip install optuna smac==2.4.1 torch==2.13.0 greenlet``;
torch is for Optuna's GPSampler, greenlet makes it about twice as fast):

    .venv/bin/python benchmarks/blackbox.py                 # the full run, writes the results
    .venv/bin/python benchmarks/blackbox.py --quick         # smoke run: 2 seeds, 30 evaluations

Other flags: ``--functions branin,hartmann6``, ``--methods thrifty-tpe,optuna-tpe`` (see ``--list``),
``--seeds 20`` (seeds 0..19) or ``--seeds 0,4,7``, ``--evals 100``, ``--jobs N`` (cells
(function, seed, method) in a process pool; default 1, at most 2: the machine has 2 cores and others
share it), ``--no-cost`` (skip the cost variant), ``--no-write``. A quick run writes its section,
JSON and plots under ``benchmarks/_work/`` unless ``--out``/``--json`` say otherwise.

Protocol.

- Functions (``thrifty.testfunctions.PROBLEMS``, all minimized): Branin (2-d), Hartmann-6, Ackley-5,
  Rosenbrock-4, each on its box; every method sees the same box as independent floats.
- Simple regret after n evaluations = best value among the first n evaluations − the known minimum.
- 20 seeds (0..19), 100 evaluations per run, one evaluation at a time (sequential), each method as its
  documentation recommends, in one run of this script.
- Methods: thrifty ``random``, ``tpe``, ``gp``, ``auto`` (``th.Study.create(space, {"y": "min"},
  storage="memory", strategy=NAME, seed=seed)``, ask/tell); Optuna 5 ``TPESampler(multivariate=True,
  seed=seed)``, ``GPSampler(seed=seed)``, ``RandomSampler(seed=seed)`` (in-memory study,
  ``study.optimize``); SMAC3 2.4.1 ``HyperparameterOptimizationFacade`` (random forest; ``Scenario(
  n_trials=100, deterministic=True, seed=seed)``, ``smac.optimize()``; output under
  ``benchmarks/_work/smac/``). A thrifty strategy that cannot be built is listed as skipped, with the
  reason; so is a peer whose package is missing.
- Reported: median (over seeds) simple regret after 25, 50 and 100 evaluations per function and
  method; the curves (``benchmarks/blackbox.png``, log y).
- Floor: thrifty ``auto`` matches or beats the best peer (the lowest median regret among Optuna TPE,
  Optuna GP, SMAC3 and Optuna random) on at least 3 of the 4 functions, both at 50 and at 100
  evaluations. "Matches" = auto's median regret ≤ best peer's × 1.05 (within 5% relative) or ≤ best
  peer's + 1e-3 (within 1e-3 absolute). The same test is printed for thrifty ``tpe`` and ``gp`` for
  information.

Cost variant: an evaluation at ``params`` costs ``problem.cost_usd(params)`` dollars ($0.10 in the
all-low corner to $1.00 in the all-high one, told with ``study.tell(t, ..., cost_usd=c)``). Dollar
budget per function ``th.Budget(usd=X)`` with X = 40 × the mean cost of a uniform random evaluation
(estimated from 20,000 draws). thrifty ``GP`` and ``TPE`` with ``cost_aware=True`` against
``cost_aware=False`` (and thrifty random), run until the study refuses to start another trial.
Reported: median regret after 25%, 50% and 100% of X, evaluations made and dollars spent
(``benchmarks/blackbox_cost.png``: median regret against dollars spent). No peer has dollar budgets,
so this part has no peer column.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import math
import multiprocessing as mp
import os
import shlex
import shutil
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

import thrifty as th  # noqa: E402
import _report  # noqa: E402
from cost import machine  # noqa: E402
from thrifty.testfunctions import PROBLEMS  # noqa: E402

SECTION = "## Black-box: regret against evaluations on synthetic functions (benchmarks/blackbox.py)"
COST_BUDGET_EVALS = 40
CHECKPOINTS = (25, 50, 100)
REL_TOL, ABS_TOL = 0.05, 1e-3

THRIFTY_METHODS = {"thrifty-random": "random", "thrifty-tpe": "tpe", "thrifty-gp": "gp", "thrifty-auto": "auto"}
PEER_METHODS = ("optuna-tpe", "optuna-gp", "smac-hpo", "optuna-random")
METHODS = (*THRIFTY_METHODS, *PEER_METHODS)
LABELS = {
    "thrifty-random": "thrifty random", "thrifty-tpe": "thrifty tpe", "thrifty-gp": "thrifty gp",
    "thrifty-auto": "thrifty auto", "optuna-tpe": "Optuna TPE (multivariate)", "optuna-gp": "Optuna GPSampler",
    "smac-hpo": "SMAC3 HPO facade (RF)", "optuna-random": "Optuna random",
}
COLORS = {
    "thrifty-random": "tab:gray", "thrifty-tpe": "tab:orange", "thrifty-gp": "tab:green", "thrifty-auto": "tab:red",
    "optuna-tpe": "tab:purple", "optuna-gp": "tab:brown", "smac-hpo": "tab:pink", "optuna-random": "tab:olive",
}
# Strategy classes of the cost variant (constructed with cost_aware=...).
COST_STRATEGIES = {"gp": "thrifty.strategies.gp:GP", "tpe": "thrifty.strategies.tpe:TPE"}


# -- availability -----------------------------------------------------------------------------------
def availability(method: str) -> str | None:
    """``None`` if ``method`` can run here, else why not."""
    if method in THRIFTY_METHODS:
        from thrifty.strategies import make_strategy

        try:
            make_strategy(THRIFTY_METHODS[method])
        except Exception as exc:  # noqa: BLE001 - any failure means: not available
            return f"`strategy={THRIFTY_METHODS[method]!r}` cannot be built: {type(exc).__name__}: {exc}"
        return None
    need = {"optuna-tpe": ["optuna"], "optuna-random": ["optuna"], "optuna-gp": ["optuna", "torch"],
            "smac-hpo": ["smac", "ConfigSpace"]}[method]
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(missing)}" if missing else None


def cost_variant_availability(kind: str, cost_aware: bool) -> str | None:
    module, _, cls = COST_STRATEGIES[kind].partition(":")
    try:
        klass = getattr(importlib.import_module(module), cls)
    except Exception as exc:  # noqa: BLE001
        return f"`from {module} import {cls}` fails: {type(exc).__name__}: {exc}"
    try:
        strategy = klass(cost_aware=cost_aware)
    except Exception as exc:  # noqa: BLE001
        return f"`{cls}(cost_aware={cost_aware})` fails: {type(exc).__name__}: {exc}"
    if not hasattr(th, "Budget"):
        return "th.Budget is missing"
    try:  # the study must accept the instance together with a dollar budget
        th.Study.create({"x": th.Float(0.0, 1.0)}, {"y": "min"}, storage="memory", strategy=strategy, seed=0,
                        budget=th.Budget(usd=1.0))
    except Exception as exc:  # noqa: BLE001
        return (f"`th.Study.create(..., strategy={cls}(cost_aware={cost_aware}), budget=th.Budget(usd=...))` "
                f"fails: {type(exc).__name__}: {exc}")
    return None


# -- runners (each returns the values of the evaluations in order) ----------------------------------
def _quiet() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("smac").setLevel(logging.ERROR)
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
    except ImportError:
        pass


def run_thrifty(problem, strategy: str, seed: int, evals: int) -> list[float]:
    study = th.Study.create(problem.space, {"y": "min"}, storage="memory", strategy=strategy, seed=seed)
    values = []
    for _ in range(evals):
        t = study.ask()
        y = float(problem.f(t.params))
        study.tell(t, {"y": y})
        values.append(y)
    return values


def run_optuna(problem, sampler_name: str, seed: int, evals: int) -> list[float]:
    import optuna

    sampler = {
        "optuna-tpe": lambda: optuna.samplers.TPESampler(multivariate=True, seed=seed),
        "optuna-gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "optuna-random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }[sampler_name]()
    study = optuna.create_study(direction="minimize", sampler=sampler)
    space = problem.space

    def objective(trial):
        params = {n: trial.suggest_float(n, space[n].low, space[n].high, log=space[n].log) for n in space.dim_names}
        return float(problem.f(params))

    study.optimize(objective, n_trials=evals)
    return [float(t.value) for t in study.trials]


def run_smac(problem, seed: int, evals: int) -> list[float]:
    from ConfigSpace import ConfigurationSpace, Float
    from smac import HyperparameterOptimizationFacade, Scenario

    space = problem.space
    cs = ConfigurationSpace(seed=seed)
    cs.add([Float(n, (space[n].low, space[n].high), log=space[n].log) for n in space.dim_names])
    values: list[float] = []

    def train(config, seed: int = 0) -> float:
        y = float(problem.f(dict(config)))
        values.append(y)
        return y

    out = WORK / "smac"
    out.mkdir(parents=True, exist_ok=True)
    scenario = Scenario(cs, name=f"{problem.name}-seed{seed}-pid{os.getpid()}", output_directory=out,
                        deterministic=True, n_trials=evals, seed=seed)
    smac = HyperparameterOptimizationFacade(scenario, train, overwrite=True, logging_level=40)
    smac.optimize()
    shutil.rmtree(out / scenario.name, ignore_errors=True)
    return values


def run_cell(cell: tuple[str, int, str, int]) -> dict[str, Any]:
    """One (function, seed, method) run."""
    fn, seed, method, evals = cell
    _quiet()
    problem = PROBLEMS[fn]
    t0 = time.perf_counter()
    try:
        if method in THRIFTY_METHODS:
            values = run_thrifty(problem, THRIFTY_METHODS[method], seed, evals)
        elif method == "smac-hpo":
            values = run_smac(problem, seed, evals)
        else:
            values = run_optuna(problem, method, seed, evals)
    except Exception as exc:  # noqa: BLE001 - report the cell, go on with the others
        return {"function": fn, "seed": seed, "method": method, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "wall_s": time.perf_counter() - t0}
    return {"function": fn, "seed": seed, "method": method, "values": values, "wall_s": time.perf_counter() - t0}


def run_cost_cell(cell: tuple[str, int, str, bool | None, float, int]) -> dict[str, Any]:
    """One run of the cost variant: ask until the dollar budget refuses a trial."""
    fn, seed, kind, cost_aware, budget_usd, max_evals = cell
    _quiet()
    problem = PROBLEMS[fn]
    name = f"thrifty-{kind}" + ("" if cost_aware is None else f" cost_aware={cost_aware}")
    t0 = time.perf_counter()
    try:
        if cost_aware is None:
            strategy: Any = kind
        else:
            module, _, cls = COST_STRATEGIES[kind].partition(":")
            strategy = getattr(importlib.import_module(module), cls)(cost_aware=cost_aware)
        study = th.Study.create(problem.space, {"y": "min"}, storage="memory", strategy=strategy, seed=seed,
                                budget=th.Budget(usd=budget_usd))
        values, costs, stop = [], [], "max_evals"
        for _ in range(max_evals):
            try:
                t = study.ask()
            except th.StudyExhausted as exc:
                stop = str(exc)
                break
            c = float(problem.cost_usd(t.params))
            y = float(problem.f(t.params))
            study.tell(t, {"y": y}, cost_usd=c)
            values.append(y)
            costs.append(c)
        ledger = float(study.cost_usd)
    except Exception as exc:  # noqa: BLE001
        return {"function": fn, "seed": seed, "variant": name, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "wall_s": time.perf_counter() - t0}
    return {"function": fn, "seed": seed, "variant": name, "values": values, "costs": costs, "stop": stop,
            "ledger_usd": ledger, "budget_usd": budget_usd, "wall_s": time.perf_counter() - t0}


def _run_pool(fn, cells: list, jobs: int, label: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    t0 = time.time()

    def note(i: int, r: dict[str, Any]) -> None:
        what = r.get("method") or r.get("variant")
        tail = f"ERROR {r['error']}" if "error" in r else f"{r['wall_s']:.1f} s"
        print(f"  [{label} {i}/{len(cells)}, {time.time() - t0:.0f} s] {r['function']} seed {r['seed']} {what}: {tail}",
              flush=True)

    # Always in spawned worker processes (also with --jobs 1), which start with the thread limits set
    # in main(); the parent has no model state to leak into the cells.
    with mp.get_context("spawn").Pool(jobs) as pool:
        for i, r in enumerate(pool.imap_unordered(fn, cells), 1):
            out.append(r)
            note(i, r)
    return out


# -- analysis --------------------------------------------------------------------------------------
def regret_curve(values: list[float], minimum: float, evals: int) -> np.ndarray:
    """Best-so-far minus the minimum after 1..evals evaluations (NaN past the last evaluation made)."""
    curve = np.full(evals, np.nan)
    if values:
        best = np.minimum.accumulate(np.asarray(values[:evals], dtype=float)) - minimum
        curve[: len(best)] = best
    return curve


def median_curves(results: list[dict], evals: int) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for fn in sorted({r["function"] for r in results}):
        for m in sorted({r["method"] for r in results}):
            rows = [r for r in results if r["function"] == fn and r["method"] == m and "values" in r]
            if rows:
                curves = np.array([regret_curve(r["values"], PROBLEMS[fn].minimum, evals) for r in rows])
                out.setdefault(fn, {})[m] = np.nanmedian(curves, axis=0)
    return out


def matches(x: float, ref: float) -> bool:
    return x <= ref * (1 + REL_TOL) or x <= ref + ABS_TOL


def floor_check(med: dict, method: str, peers: list[str], at: list[int]) -> dict[str, Any]:
    per: dict[int, list[dict]] = {}
    for n in at:
        for fn, curves in med.items():
            if method not in curves:
                continue
            ref = {p: float(curves[p][n - 1]) for p in peers if p in curves}
            if not ref:
                continue
            best_peer = min(ref, key=ref.get)
            mine = float(curves[method][n - 1])
            per.setdefault(n, []).append({"function": fn, "regret": mine, "best_peer": best_peer,
                                          "best_peer_regret": ref[best_peer], "ok": matches(mine, ref[best_peer])})
    nfun = len(med)
    need = min(3, nfun)
    passed = bool(per) and all(sum(r["ok"] for r in rows) >= need and len(rows) == nfun for rows in per.values())
    return {"method": method, "at": at, "need": need, "of": nfun, "per": {str(k): v for k, v in per.items()},
            "pass": passed}


def _variant_order(v: str) -> tuple:
    return ("random" in v, "-tpe" in v, "cost_aware=False" in v)


def cost_grid_curve(values: list[float], costs: list[float], minimum: float, grid: np.ndarray) -> np.ndarray:
    """Regret of the best evaluation paid for within each dollar amount of ``grid`` (inf before the first
    evaluation is paid for: nothing found yet)."""
    out = np.full(len(grid), np.inf)
    if not values:
        return out
    spent = np.cumsum(costs)
    best = np.minimum.accumulate(np.asarray(values, dtype=float)) - minimum
    idx = np.searchsorted(spent, grid, side="right") - 1
    ok = idx >= 0
    out[ok] = best[idx[ok]]
    return out


# -- reporting -------------------------------------------------------------------------------------
def fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 1e-3:
        return f"{x:.3g}"
    return f"{x:.2e}"


def versions() -> dict[str, str]:
    return _report.versions(("thrifty", "optuna", "smac", "ConfigSpace", "torch", "greenlet", "numpy", "scipy", "scikit-learn"))


source_fingerprint = _report.source_fingerprint
write_results = _report.write_results


def plot(med: dict, evals: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fns = list(med)
    fig, axes = plt.subplots(1, len(fns), figsize=(4.6 * len(fns), 4.0), squeeze=False)
    x = np.arange(1, evals + 1)
    for ax, fn in zip(axes[0], fns):
        for m in METHODS:
            if m in med[fn]:
                style = "-" if m.startswith("thrifty") else "--"
                lw = 2.4 if m == "thrifty-auto" else 1.5
                ax.plot(x, np.maximum(med[fn][m], 1e-12), style, label=LABELS[m], lw=lw, color=COLORS[m])
        ax.set_yscale("log")
        ax.set_title(fn)
        ax.set_xlabel("evaluations")
        ax.grid(True, which="both", alpha=0.3)
    _finish(fig, axes, path)


def _finish(fig: Any, axes: Any, path: Path) -> None:
    """Label, lay out, save and close a figure of regret panels."""
    import matplotlib.pyplot as plt

    axes[0][0].set_ylabel("median simple regret")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cost(curves: dict, grids: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fns = list(curves)
    fig, axes = plt.subplots(1, len(fns), figsize=(4.6 * len(fns), 4.0), squeeze=False)
    for ax, fn in zip(axes[0], fns):
        for v in sorted(curves[fn], key=_variant_order):
            c = curves[fn][v]
            style = "-" if "cost_aware=True" in v else (":" if "random" in v else "--")
            color = "tab:green" if "-gp" in v else ("tab:orange" if "-tpe" in v else "tab:gray")
            ax.plot(grids[fn], np.maximum(c, 1e-12), style, label=v, lw=1.6, color=color)
        ax.set_yscale("log")
        ax.set_title(f"{fn} (budget ${grids[fn][-1]:.2f})")
        ax.set_xlabel("dollars spent")
        ax.grid(True, which="both", alpha=0.3)
    _finish(fig, axes, path)


def rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def mean_cost(problem, n: int = 20_000) -> float:
    rng = np.random.default_rng(2024)
    return float(np.mean([problem.cost_usd(problem.space.decode(u)) for u in rng.random((n, problem.space.n_dims))]))


def parse_seeds(s: str) -> list[int]:
    return [int(x) for x in s.split(",")] if "," in s else list(range(int(s)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, 30 evaluations, writes under _work/")
    ap.add_argument("--methods", default=None, help=f"comma-separated subset of {', '.join(METHODS)}")
    ap.add_argument("--functions", default=None, help=f"comma-separated subset of {', '.join(PROBLEMS)}")
    ap.add_argument("--seeds", default=None, help="N (seeds 0..N-1) or a list 0,4,7 (default 20; quick 2)")
    ap.add_argument("--evals", type=int, default=None, help="evaluations per run (default 100; quick 30)")
    ap.add_argument("--jobs", type=int, default=1, help="process pool size over cells (1 or 2)")
    ap.add_argument("--no-cost", action="store_true", help="skip the cost variant")
    ap.add_argument("--list", action="store_true", help="list the methods and whether each is available")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--out", type=Path, default=None, help="markdown file for the section")
    ap.add_argument("--json", type=Path, default=None, help="raw numbers")
    args = ap.parse_args(argv)

    if args.list:
        for m in METHODS:
            why = availability(m)
            print(f"{m:15s} {'available' if why is None else 'SKIPPED: ' + why}")
        return 0
    if not 1 <= args.jobs <= 2:
        ap.error("--jobs must be 1 or 2 (2 cores, shared with other work)")
    methods = args.methods.split(",") if args.methods else list(METHODS)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {bad}; known: {', '.join(METHODS)}")
    functions = args.functions.split(",") if args.functions else list(PROBLEMS)
    bad = [f for f in functions if f not in PROBLEMS]
    if bad:
        ap.error(f"unknown function(s) {bad}; known: {', '.join(PROBLEMS)}")
    seeds = parse_seeds(args.seeds) if args.seeds else ([0, 1] if args.quick else list(range(20)))
    evals = args.evals or (30 if args.quick else 100)
    prefix = WORK / "blackbox.quick" if args.quick else HERE / "blackbox"
    out_md = args.out or (WORK / "RESULTS.quick.md" if args.quick else HERE / "RESULTS.md")
    out_json = args.json or Path(f"{prefix}.json")
    png, png_cost = Path(f"{prefix}.png"), Path(f"{prefix}_cost.png")
    WORK.mkdir(parents=True, exist_ok=True)
    # One BLAS/torch thread per worker process. This benchmark measures regret, not speed, and on this
    # 2-core machine (shared with other work) multi-threaded BLAS/torch oversubscribes the cores: Optuna's
    # GPSampler took 47 s for a 100-evaluation run with default threads under load, 11 s with one.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

    try:
        py = os.path.relpath(sys.executable, os.getcwd())
        py = sys.executable if len(py) > len(sys.executable) else py
    except ValueError:
        py = sys.executable
    command = shlex.join([py, "benchmarks/blackbox.py", *(sys.argv[1:] if argv is None else argv)])

    t_all = time.time()
    fp_start = source_fingerprint()
    skipped = {m: why for m in methods if (why := availability(m)) is not None}
    run_methods = [m for m in methods if m not in skipped]
    for m, why in skipped.items():
        print(f"SKIPPED {m}: {why}", flush=True)
    print(f"methods: {', '.join(run_methods)}; functions: {', '.join(functions)}; seeds: {len(seeds)}; "
          f"evals: {evals}; jobs: {args.jobs}", flush=True)

    # Slow methods first so that the pool's tail is short.
    order = {m: i for i, m in enumerate(["smac-hpo", "optuna-gp", "thrifty-gp", "thrifty-auto"])}
    cells = sorted(((fn, s, m, evals) for fn in functions for s in seeds for m in run_methods),
                   key=lambda c: (order.get(c[2], 99), c[0], c[1]))
    t0 = time.time()
    results = _run_pool(run_cell, cells, args.jobs, "regret") if cells else []
    main_wall = time.time() - t0
    errors = [r for r in results if "error" in r]
    med = median_curves(results, evals)

    # -- cost variant
    cost_rows: list[dict] = []
    cost_skipped: dict[str, str] = {}
    budgets: dict[str, float] = {}
    cost_wall = 0.0
    if not args.no_cost:
        variants: list[tuple[str, bool | None]] = [("random", None)]
        for kind in ("gp", "tpe"):
            for aware in (True, False):
                why = cost_variant_availability(kind, aware)
                if why is None:
                    variants.append((kind, aware))
                else:
                    cost_skipped[f"thrifty-{kind} cost_aware={aware}"] = why
        for v, why in cost_skipped.items():
            print(f"SKIPPED (cost variant) {v}: {why}", flush=True)
        budgets = {fn: COST_BUDGET_EVALS * mean_cost(PROBLEMS[fn]) for fn in functions}
        ccells = [(fn, s, kind, aware, budgets[fn], 20 * COST_BUDGET_EVALS)
                  for kind, aware in variants for fn in functions for s in seeds]
        ccells.sort(key=lambda c: (c[2] != "gp", c[0], c[1]))
        t0 = time.time()
        cost_rows = _run_pool(run_cost_cell, ccells, args.jobs, "cost")
        cost_wall = time.time() - t0
        errors += [r for r in cost_rows if "error" in r]

    total = time.time() - t_all
    fp_end = source_fingerprint()

    # -- tables
    at = [c for c in CHECKPOINTS if c <= evals] or [evals]
    if evals not in at and evals < max(CHECKPOINTS):
        at.append(evals)
    floor_at = [50, 100] if evals >= 100 else [at[-1]]
    peers = [m for m in PEER_METHODS if m in run_methods]
    floors = []
    for m in ("thrifty-auto", "thrifty-tpe", "thrifty-gp"):
        if m in run_methods and peers:
            floors.append(floor_check(med, m, peers, floor_at))

    cost_curves: dict[str, dict[str, np.ndarray]] = {}
    grids: dict[str, np.ndarray] = {}
    cost_summary: list[dict] = []
    for fn in functions:
        if fn not in budgets:
            continue
        grid = np.linspace(0, budgets[fn], 201)[1:]
        grids[fn] = grid
        for v in sorted({r["variant"] for r in cost_rows}, key=_variant_order):
            rows = [r for r in cost_rows if r["function"] == fn and r["variant"] == v and "values" in r]
            if not rows:
                continue
            cs = np.array([cost_grid_curve(r["values"], r["costs"], PROBLEMS[fn].minimum, grid) for r in rows])
            curve = np.median(cs, axis=0)
            cost_curves.setdefault(fn, {})[v] = curve
            cost_summary.append({
                "function": fn, "variant": v, "budget_usd": budgets[fn],
                "regret_25pct": float(curve[49]), "regret_50pct": float(curve[99]), "regret_100pct": float(curve[-1]),
                "median_evals": float(np.median([len(r["values"]) for r in rows])),
                "median_spent_usd": float(np.median([sum(r["costs"]) for r in rows])),
                "median_cost_per_eval": float(np.median([np.mean(r["costs"]) for r in rows if r["costs"]])),
            })

    data = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command, "machine": machine(),
        "versions": versions(), "functions": functions, "seeds": seeds, "evals": evals, "jobs": args.jobs,
        "methods_run": run_methods, "methods_skipped": skipped, "wall_s": {"total": total, "regret": main_wall,
                                                                          "cost": cost_wall},
        "thrifty_source_sha256_12": {"start": fp_start, "end": fp_end},
        "match_rule": {"relative": REL_TOL, "absolute": ABS_TOL},
        "median_regret": {fn: {m: c.tolist() for m, c in cs.items()} for fn, cs in med.items()},
        "floors": floors,
        "cost": {"budget_evals": COST_BUDGET_EVALS, "budgets_usd": budgets, "skipped": cost_skipped,
                 "summary": cost_summary, "runs": cost_rows},
        "runs": results,
    }

    lines = [SECTION, ""]
    lines += [f"- Date: {data['date']}; machine: {machine()}",
              "- Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()),
              f"- Command: `{command}`",
              f"- Wall time: {total / 60:.1f} min (regret runs {main_wall / 60:.1f} min, cost variant "
              f"{cost_wall / 60:.1f} min), {args.jobs} worker process(es)"
              + f"; BLAS/torch threads per worker: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
              f"- thrifty source (sha256 of src/thrifty/**/*.py): {fp_start} at the start, {fp_end} at the end"
              + ("" if fp_start == fp_end else " (it changed during the run: each cell uses the code as it was "
                 "when its process imported it)"),
              f"- {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}), {evals} sequential evaluations per run; "
              "simple regret = best value so far − the known minimum; median over seeds. Protocol: the "
              f"script's docstring. Raw numbers: `{rel(out_json)}`; curves: `{rel(png)}`."]
    if skipped:
        lines.append("- **Skipped methods** (not available in this run): "
                     + "; ".join(f"`{m}`: {why}" for m, why in skipped.items()))
    if errors:
        lines.append(f"- **Errors**: {len(errors)} cell(s) failed: "
                     + "; ".join(f"{r['function']}/{r['seed']}/{r.get('method') or r.get('variant')}: `{r['error']}`"
                                 for r in errors[:8]) + (" ..." if len(errors) > 8 else ""))
    lines.append("")
    shown = [m for m in METHODS if m in run_methods]
    for n in at:
        lines += [f"### Median simple regret after {n} evaluations", "",
                  "| function | " + " | ".join(LABELS[m] for m in shown) + " |",
                  "|---|" + "---:|" * len(shown)]
        for fn, cs in med.items():
            vals = {m: float(cs[m][n - 1]) for m in shown if m in cs}
            best = min(vals.values()) if vals else None
            cells_ = []
            for m in shown:
                v = vals.get(m)
                s = fmt(v) if v is not None else "–"
                cells_.append(f"**{s}**" if v is not None and v == best else s)
            lines.append(f"| {fn} | " + " | ".join(cells_) + " |")
        lines.append("")
    wall_per = {}
    for m in shown:
        ws = [r["wall_s"] for r in results if r["method"] == m and "values" in r]
        if ws:
            wall_per[m] = float(np.median(ws))
    if wall_per:
        lines += ["Median wall time of one run (all its evaluations, including the method's own overhead; "
                  f"{args.jobs} process(es) sharing 2 cores): "
                  + ", ".join(f"{LABELS[m]} {fmt(w)} s" for m, w in wall_per.items()), ""]

    lines += ["### Floor", "",
              f"thrifty `auto` matches or beats the best peer (lowest median regret among "
              f"{', '.join(LABELS[p] for p in PEER_METHODS)}) on at least 3 of the 4 functions at 50 and at 100 "
              f"evaluations; \"matches\" = median regret ≤ best peer × {1 + REL_TOL:g} or ≤ best peer + {ABS_TOL:g}.", ""]
    if "thrifty-auto" not in run_methods:
        reason = skipped.get("thrifty-auto", "not selected with --methods")
        lines.append(f"- **FAIL (not evaluated)**: thrifty `auto` did not run: {reason}")
        print(f"FLOOR FAIL (not evaluated): thrifty auto did not run: {reason}")
    if evals < 100:
        lines.append(f"- (this run has {evals} evaluations: the check below is at {floor_at}, not the floor's 50 and 100)")
    for fl in floors:
        official = fl["method"] == "thrifty-auto"
        verdict = "PASS" if fl["pass"] else "FAIL"
        detail = []
        for n, rows in fl["per"].items():
            okf = [r["function"] for r in rows if r["ok"]]
            detail.append(f"at {n}: {len(okf)}/{len(rows)} ({', '.join(okf) or 'none'})")
        tag = "floor" if official else "for information, same test"
        lines.append(f"- **{verdict}** ({tag}): {LABELS[fl['method']]}: " + "; ".join(detail))
        print(f"{'FLOOR ' if official else 'info  '}{verdict}: {fl['method']}: " + "; ".join(detail), flush=True)
        for n, rows in fl["per"].items():
            for r in rows:
                lines.append(f"  - {n} evals, {r['function']}: {fmt(r['regret'])} vs {LABELS[r['best_peer']]} "
                             f"{fmt(r['best_peer_regret'])} → {'ok' if r['ok'] else 'worse'}")
    lines.append("")

    lines += ["### Cost variant: regret against dollars (thrifty cost_aware=True vs False)", ""]
    if args.no_cost:
        lines += ["Not run (`--no-cost`).", ""]
    else:
        lines.append(f"Budget per function = {COST_BUDGET_EVALS} × the mean cost of a uniform random evaluation: "
                     + ", ".join(f"{fn} ${b:.2f}" for fn, b in budgets.items())
                     + ". Each run asks until the study refuses a trial (`StudyExhausted`). Curves: "
                     f"`{rel(png_cost)}`. Regret at x% = the best evaluation paid for within x% of "
                     "the budget.")
        if cost_skipped:
            lines.append("")
            lines.append("**Skipped variants**: " + "; ".join(f"`{v}`: {why}" for v, why in cost_skipped.items()))
        lines += ["", "| function | variant | regret @25% $ | regret @50% $ | regret @100% $ | evaluations | spent $ | $ per eval |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in cost_summary:
            lines.append(f"| {r['function']} | {r['variant']} | {fmt(r['regret_25pct'])} | {fmt(r['regret_50pct'])} | "
                         f"{fmt(r['regret_100pct'])} | {r['median_evals']:.0f} | {r['median_spent_usd']:.2f} | "
                         f"{r['median_cost_per_eval']:.3f} |")
        lines.append("")
        lines.append("(medians over seeds)")
        for kind in ("gp", "tpe"):
            a = {r["function"]: r for r in cost_summary if r["variant"] == f"thrifty-{kind} cost_aware=True"}
            b = {r["function"]: r for r in cost_summary if r["variant"] == f"thrifty-{kind} cost_aware=False"}
            common = [fn for fn in a if fn in b]
            if common:
                wins = [fn for fn in common if a[fn]["regret_100pct"] < b[fn]["regret_100pct"]]
                msg = (f"thrifty {kind}: cost_aware=True has the lower median regret at the full budget on "
                       f"{len(wins)} of {len(common)} functions ({', '.join(wins) or 'none'})")
                lines.append(f"- {msg}")
                print("cost variant: " + msg, flush=True)
        lines.append("")

    section = "\n".join(lines)
    print()
    print(section)
    if not args.no_write:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(data, indent=1, default=float) + "\n")
        if med:
            plot(med, evals, png)
        if cost_curves:
            plot_cost(cost_curves, grids, png_cost)
        write_results(out_md, SECTION, section)
        print(f"\nwrote {out_md}, {out_json}, {png}" + (f", {png_cost}" if cost_curves else ""), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
