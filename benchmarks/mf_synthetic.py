"""Multi-fidelity synthetic functions: money to a good configuration, thrifty against Optuna.

Run from the repository root (Optuna comes with ``pip install -e '.[bench]'``):

    .venv/bin/python benchmarks/mf_synthetic.py --seeds 30 --jobs 2      # the full run, writes the results
    .venv/bin/python benchmarks/mf_synthetic.py --seeds 2 --no-write     # smoke run

The same protocol as ``benchmarks/multifidelity.py`` (``shared/BENCHMARKING.md``), on functions with
a fidelity input written from their published definitions, so that a rule fitted to LCBench's ten
tasks shows here:

- ``mf-branin``: Branin with three fidelity-dependent coefficients (Kandasamy et al., "Multi-fidelity
  Gaussian process bandit optimisation", JAIR 2019, the 1-fidelity-dimension variant):
  ``a (x2 - b(z) x1^2 + c(z) x1 - r)^2 + s (1 - t(z)) cos(x1) + s`` with
  ``b(z) = 5.1 / (4 pi^2) - 0.01 (1 - z)``, ``c(z) = 5 / pi - 0.1 (1 - z)``,
  ``t(z) = 1 / (8 pi) + 0.05 (1 - z)``, minimised on ``[-5, 10] x [0, 15]``;
- ``mf-hartmann3`` / ``mf-hartmann6``: Hartmann with ``alpha'(z) = alpha - 0.1 (1 - z)``
  (Kandasamy et al., "Multi-fidelity Bayesian optimisation with continuous approximations",
  ICML 2017), maximised on the unit cube.

A trial is trained step by step, ``z = step / 27`` at steps 1..27 (reports the function at that
fidelity), each step costing ``1/27`` of a unit: one full training (step 27) is one unit whatever
the configuration. Hard budget 50 units per run, enforced by this script's ledger identically for
every method. Only configurations trained to step 27 count as found. Regret of a configuration =
``(f* - f(x)) / (f* - f_med)`` in the "larger is better" sign, where ``f_med`` is the median of ``f`` over
10,000 uniform points (seed 12345): 1% regret closes 99% of the gap from a typical random
configuration to the optimum. ``f*``: the known optimum (Branin 0.397887, Hartmann-3 3.86278,
Hartmann-6 3.32237). Near-duplicate full trainings: a configuration trained to step 27 within 1% of
each parameter's range of one trained to 27 before in the run (``thrifty.encoding.NEAR``).

Methods: ``thrifty-defaults`` (``Study.create`` without a strategy or scheduler), ``thrifty-asha``
(random search + thrifty's ASHA, measured rungs), Optuna ``TPESampler`` + ``HyperbandPruner``
(min 1, max 27, reduction factor 3) and Optuna random + ``HyperbandPruner``, all single-worker
ask/report/tell loops in memory. Reported per function and method: the share of runs reaching 1% and
0.5% regret; median / 90th percentile / worst regret at 10, 25 and 50 units; near-duplicate full
trainings; seconds per run. Results: a section of ``benchmarks/RESULTS.md`` and
``benchmarks/mf_synthetic.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import thrifty as th  # noqa: E402
from _report import floor_verdict, pct, tail_summary, write_results  # noqa: E402
from cost import machine  # noqa: E402
from thrifty.encoding import encoder_of  # noqa: E402

STEPS = 27
BUDGET = 50.0
REPORT_AT = (10, 25, 50)
REF_N, REF_SEED = 10_000, 12345
SECTION = "## Multi-fidelity synthetic functions: Branin and Hartmann with a fidelity (benchmarks/mf_synthetic.py)"

_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                  [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def branin(x: np.ndarray, z: float) -> float:
    """Multi-fidelity Branin at fidelity ``z`` in (0, 1] (module doc); to be minimised."""
    x1, x2 = float(x[0]), float(x[1])
    b = 5.1 / (4 * math.pi**2) - 0.01 * (1 - z)
    c = 5 / math.pi - 0.1 * (1 - z)
    t = 1 / (8 * math.pi) + 0.05 * (1 - z)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann(a: np.ndarray, p: np.ndarray) -> Callable[[np.ndarray, float], float]:
    def f(x: np.ndarray, z: float) -> float:
        alpha = _ALPHA - 0.1 * (1 - z)
        return float(alpha @ np.exp(-np.sum(a * (np.asarray(x)[None, :] - p) ** 2, axis=1)))
    return f


# name -> (space, f(x, z) with x in the space's order, direction, known optimum)
FUNCTIONS: dict[str, tuple[th.Space, Callable[[np.ndarray, float], float], str, float]] = {
    "mf-branin": (th.Space({"x1": th.Float(-5.0, 10.0), "x2": th.Float(0.0, 15.0)}), branin, "min", 0.397887),
    "mf-hartmann3": (th.Space({f"x{i}": th.Float(0.0, 1.0) for i in range(3)}), hartmann(_H3_A, _H3_P), "max",
                     3.86278),
    "mf-hartmann6": (th.Space({f"x{i}": th.Float(0.0, 1.0) for i in range(6)}), hartmann(_H6_A, _H6_P), "max",
                     3.32237),
}
METHODS = {
    "thrifty-defaults": "thrifty defaults (auto strategy, auto scheduler)",
    "thrifty-asha": "thrifty random+ASHA (measured rungs)",
    "optuna-tpe-hyperband": "Optuna TPE+HyperbandPruner",
    "optuna-random-hyperband": "Optuna random+HyperbandPruner",
}
PEERS = ("optuna-tpe-hyperband", "optuna-random-hyperband")


def signed(name: str, value: float) -> float:
    """``value`` as "larger is better"."""
    return value if FUNCTIONS[name][2] == "max" else -value


def reference(name: str) -> float:
    """The median of ``f`` (full fidelity, larger-is-better sign) over 10,000 uniform points."""
    space, f, _, _ = FUNCTIONS[name]
    rng = np.random.default_rng(REF_SEED)
    vals = [signed(name, f(_vector(space, space.decode(u)), 1.0)) for u in rng.random((REF_N, space.n_dims))]
    return float(np.median(vals))


def _vector(space: th.Space, params: dict) -> np.ndarray:
    return np.array([float(params[n]) for n in space.dim_names])


class Ledger:
    """Charges each step (1/27 unit), enforces the hard line, records full trainings."""

    def __init__(self, name: str, median: float) -> None:
        self.name = name
        self.space, self.f, _, opt = FUNCTIONS[name]
        self.best_possible = signed(name, opt)
        self.median = median
        self.spent = 0.0
        self.trials = 0
        self.full = 0
        self.best = -math.inf
        self.finds: list[tuple[float, float]] = []  # (units spent, best value so far, signed)
        self.near_duplicates = 0
        self._full: list[np.ndarray] = []
        self._enc = encoder_of(self.space)

    @property
    def exhausted(self) -> bool:
        return self.spent >= BUDGET - 1e-12

    def step(self, params: dict, step: int) -> float | None:
        """Train ``params`` to ``step`` (one more step): its value there, or None past the line."""
        if self.exhausted:
            return None
        self.spent += 1.0 / STEPS
        value = self.f(_vector(self.space, params), step / STEPS)
        if step == STEPS:
            self.full += 1
            x = self._enc.snap(self._enc.encode([params]))
            if self._full and self._enc.near_duplicates(x, np.vstack(self._full))[0]:
                self.near_duplicates += 1
            self._full.append(x)
            v = signed(self.name, value)
            if v > self.best:
                self.best = v
                self.finds.append((min(self.spent, BUDGET), v))
        return value

    def regret(self, v: float) -> float:
        return (self.best_possible - v) / (self.best_possible - self.median)


def run_thrifty(key: str, ledger: Ledger, seed: int) -> None:
    strategy, scheduler = ("auto", "auto") if key == "thrifty-defaults" else (
        "random", {"name": "asha", "min_resource": 1, "max_resource": STEPS, "reduction_factor": 3})
    direction = FUNCTIONS[ledger.name][2]
    study = th.Study.create(ledger.space, {"f": direction}, storage="memory", strategy=strategy,
                            scheduler=scheduler, seed=seed)
    try:
        while not ledger.exhausted:
            try:
                t = study.ask()
            except th.StudyExhausted:
                break
            for step in range(1, STEPS + 1):
                value = ledger.step(dict(t.params), step)
                if value is None:
                    study.tell(t, state="stopped", reason="benchmark: budget line")
                    break
                t.report({"f": value}, step=step, cost_usd=1.0 / STEPS)
                if step == STEPS:
                    study.tell(t, {"f": value})
                elif ledger.exhausted:
                    study.tell(t, state="stopped", reason="benchmark: budget line")
                    break
                elif t.should_stop():
                    study.tell(t, state="stopped")
                    break
            ledger.trials += 1
    finally:
        study.close()


def run_optuna(key: str, ledger: Ledger, seed: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler = (optuna.samplers.TPESampler(seed=seed) if "tpe" in key else optuna.samplers.RandomSampler(seed=seed))
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=STEPS, reduction_factor=3)
    direction = "maximize" if FUNCTIONS[ledger.name][2] == "max" else "minimize"
    study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)

    def objective(trial):
        params = {n: trial.suggest_float(n, p.low, p.high) for n, p in ledger.space.items()}
        ledger.trials += 1
        for step in range(1, STEPS + 1):
            value = ledger.step(params, step)
            if value is None or (ledger.exhausted and step < STEPS):
                trial.study.stop()
                raise optuna.TrialPruned()
            if step == STEPS:
                if ledger.exhausted:
                    trial.study.stop()
                return value
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        raise AssertionError("unreachable")

    study.optimize(objective)


def run_cell(cell: tuple[str, int, str, float]) -> dict:
    name, seed, key, median = cell
    ledger = Ledger(name, median)
    t0 = time.perf_counter()
    (run_thrifty if key.startswith("thrifty") else run_optuna)(key, ledger, seed)
    return {"function": name, "seed": seed, "method": key, "wall_s": time.perf_counter() - t0,
            "spent_units": ledger.spent, "trials": ledger.trials, "full_trainings": ledger.full,
            "near_duplicate_full_trainings": ledger.near_duplicates,
            "finds": [[round(u, 5), v] for u, v in ledger.finds],
            "regrets": [[round(u, 5), ledger.regret(v)] for u, v in ledger.finds],
            "final_regret": ledger.regret(ledger.best) if ledger.finds else None}


def regret_at(rec: dict, units: float) -> float:
    out = math.inf
    for u, r in rec["regrets"]:
        if u <= units + 1e-12:
            out = r
    return out


def summarize(recs: list[dict]) -> dict:
    return {**tail_summary(recs, regret_at, REPORT_AT, BUDGET),
            "near_duplicates": int(sum(r["near_duplicate_full_trainings"] for r in recs)),
            "mean_trials": float(np.mean([r["trials"] for r in recs])),
            "mean_full": float(np.mean([r["full_trainings"] for r in recs])),
            "mean_wall_s": float(np.mean([r["wall_s"] for r in recs]))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--functions", default=",".join(FUNCTIONS), help="comma-separated (default: all)")
    ap.add_argument("--seeds", type=int, default=30, help="seeds 0..N-1 (default 30)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated method keys")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args()
    names, keys = args.functions.split(","), args.methods.split(",")
    bad = [n for n in names if n not in FUNCTIONS] + [k for k in keys if k not in METHODS]
    if bad:
        ap.error(f"unknown {bad}; functions: {', '.join(FUNCTIONS)}; methods: {', '.join(METHODS)}")
    cmd = "python " + " ".join(["benchmarks/mf_synthetic.py"] + sys.argv[1:])
    t0 = time.time()
    medians = {n: reference(n) for n in names}
    cells = [(n, s, k, medians[n]) for n in names for k in keys for s in range(args.seeds)]
    recs: list[dict] = []
    with mp.get_context("fork").Pool(max(args.jobs, 1), maxtasksperchild=20) as pool:
        for rec in pool.imap_unordered(run_cell, cells):
            recs.append(rec)
            fr = rec["final_regret"]
            print(f"[{len(recs)}/{len(cells)}] {rec['method']:24s} {rec['function']:13s} seed {rec['seed']}: regret "
                  f"{pct(fr if fr is not None else math.inf)}, {rec['trials']} trials, {rec['full_trainings']} full, "
                  f"{rec['near_duplicate_full_trainings']} near-duplicate, {rec['wall_s']:.1f} s", flush=True)
    wall = time.time() - t0
    import optuna

    summ = {n: {k: summarize([r for r in recs if r["function"] == n and r["method"] == k]) for k in keys}
            for n in names}
    lines = [SECTION, "", f"Date {time.strftime('%Y-%m-%d')}; machine: {machine()}; command: `{cmd}`; wall time "
             f"{wall / 60:.1f} min; optuna {optuna.__version__}. Protocol: the script's docstring ({args.seeds} seeds, "
             f"hard budget {BUDGET:.0f} units, 27 steps of 1/27 unit each per full training). Raw numbers: "
             "`benchmarks/mf_synthetic.json`.", ""]
    head = " | ".join(f"@{u} u median / p90 / worst" for u in REPORT_AT)
    for n in names:
        lines += [f"**{n}**", "", f"| method | reach 1% | reach 0.5% | {head} | near-duplicate full trainings | "
                  "trials | full trainings | s per run |", "|---|---|---|" + "---|" * len(REPORT_AT) + "---|---|---|---|"]
        for k in keys:
            s = summ[n][k]
            cells_ = [" / ".join(pct(s["tail_at"][u][q]) for q in ("median", "p90", "worst")) for u in REPORT_AT]
            lines.append(f"| {METHODS[k]} | {100 * s['share_1pct']:.0f}% | {100 * s['share_05pct']:.0f}% | "
                         + " | ".join(cells_) + f" | {s['near_duplicates']} | {s['mean_trials']:.0f} | "
                         f"{s['mean_full']:.1f} | {s['mean_wall_s']:.1f} |")
        line = floor_verdict(n, summ[n], PEERS, METHODS)
        lines += ["", line, ""] if line else [""]
    section = "\n".join(lines) + "\n"
    print("\n" + section)
    if not args.no_write:
        (HERE / "mf_synthetic.json").write_text(json.dumps({"command": cmd, "summary": summ, "runs": recs}, indent=1))
        write_results(Path(args.out), SECTION, section)
        print(f"wrote {args.out}, benchmarks/mf_synthetic.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
