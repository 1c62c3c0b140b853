"""Real training with scikit-learn: money to a good model when every step is real work.

Run from the repository root (Optuna comes with ``pip install -e '.[bench]'``):

    .venv/bin/python benchmarks/sklearn_real.py --seeds 10 --jobs 2      # the full run, writes the results
    .venv/bin/python benchmarks/sklearn_real.py --seeds 2 --no-write     # smoke run

The protocol of ``benchmarks/multifidelity.py`` (``shared/BENCHMARKING.md``), on training that runs
for real, so that a rule fitted to a surrogate shows here. Each step is real work and its cost is the
CPU seconds it took (``time.process_time``; BLAS and OpenMP held to one thread):

- ``mlp-digits``: ``MLPClassifier`` (Adam) on scikit-learn's digits (70/30 split, standardised); one
  step = one epoch (``partial_fit``); 27 epochs. Space: units per layer 16-512 (log), layers 1-3,
  batch size 16-512 (log), initial learning rate 1e-4..0.1 (log), L2 ``alpha`` 1e-6..0.1 (log).
  The cost of a full training spans two orders of magnitude (one 16-unit layer with batches of 512
  against three 512-unit layers with batches of 16).
- ``hgb-synthetic``: ``HistGradientBoostingClassifier`` with ``warm_start`` on
  ``make_classification`` (4,000 samples, 20 features, 5% label noise, 70/30 split); one step = 4
  more boosting rounds; 27 steps (108 rounds). Space: learning rate 0.005-0.5 (log), leaves 4-128
  (log), minimum leaf size 2-200 (log), L2 1e-6..10 (log), feature share per split 0.2-1.

Objective: validation log-loss (minimised; continuous, where accuracy on a few hundred validation
samples moves in coarse steps). Every model is seeded (``random_state=0``), so a configuration's
curve is deterministic; only its measured cost varies a little from run to run.

- Unit = the median CPU seconds of a full training over ``CAL_N`` seeded uniform random
  configurations (log-uniform where log), measured at the start of the run (the calibration).
- Hard budget 50 units per run, enforced by this script's ledger identically for every method: each
  step is charged when it is trained; the step that crosses the line is charged and what it yields
  still counts; then the run ends. Only configurations trained to the last step count as found.
- Regret of a found loss ``v`` = ``(v - best) / (median - best)``, with ``median`` the calibration
  configurations' median final loss and ``best`` the lowest final loss known to the run (the
  calibration's and every method's, all seeds): 1% regret closes 99% of the gap from a typical
  random configuration to the best anyone found. Comparable within one run only (peers in the same run).

Methods: ``thrifty-defaults`` (``Study.create`` without a strategy or scheduler),
``thrifty-defaults-usd`` (the same with the budget given to thrifty: ``Budget(usd=50)``, one
unit = one dollar), Optuna ``TPESampler`` without pruning and with ``HyperbandPruner`` (min 1,
max 27, reduction factor 3); single-worker ask/report/tell loops in memory. Reported per task and
method: the share of runs reaching 1% and 0.5% regret; median / 90th percentile / worst regret at 10,
25 and 50 units; runs that ended with no configuration trained to the end; near-duplicate full
trainings; units left unspent (budgeted thrifty); seconds per run. Results: a section of
``benchmarks/RESULTS.md`` and ``benchmarks/sklearn_real.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads: CPU seconds of one thread, comparable across steps

import argparse
import functools
import json
import math
import multiprocessing as mp
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _report import floor_verdict, pct, tail_summary, write_results
from cost import machine

import thrifty as th
from thrifty.encoding import encoder_of

STEPS = 27
BUDGET = 50.0
REPORT_AT = (10, 25, 50)
CAL_N, CAL_SEED = 32, 12345
SECTION = "## Real training with scikit-learn: CPU seconds to a good model (benchmarks/sklearn_real.py)"

SPACES = {
    "mlp-digits": th.Space({
        "units": th.Int(16, 512, log=True), "layers": th.Int(1, 3), "batch_size": th.Int(16, 512, log=True),
        "learning_rate": th.Float(1e-4, 0.1, log=True), "alpha": th.Float(1e-6, 0.1, log=True),
    }),
    "hgb-synthetic": th.Space({
        "learning_rate": th.Float(0.005, 0.5, log=True), "max_leaf_nodes": th.Int(4, 128, log=True),
        "min_samples_leaf": th.Int(2, 200, log=True), "l2_regularization": th.Float(1e-6, 10.0, log=True),
        "max_features": th.Float(0.2, 1.0),
    }),
}
METHODS = {
    "thrifty-defaults": "thrifty defaults (auto strategy, auto scheduler)",
    "thrifty-defaults-usd": "thrifty defaults with the budget given to thrifty (usd = units)",
    "optuna-tpe": "Optuna TPE (no pruning)",
    "optuna-tpe-hyperband": "Optuna TPE+HyperbandPruner",
}
PEERS = ("optuna-tpe", "optuna-tpe-hyperband")


@functools.cache
def data(task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val) of ``task``: fixed splits (random_state 0)."""
    from sklearn.datasets import load_digits, make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if task == "mlp-digits":
        x, y = load_digits(return_X_y=True)
    else:
        x, y = make_classification(n_samples=4000, n_features=20, n_informative=10, n_redundant=4, flip_y=0.05,
                                   class_sep=0.7, random_state=0)
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.3, random_state=0)
    scale = StandardScaler().fit(xtr)
    return scale.transform(xtr), ytr, scale.transform(xva), yva


class Training:
    """One configuration being trained step by step for real; :meth:`step` returns (validation
    log-loss, CPU seconds the step took)."""

    def __init__(self, task: str, params: dict[str, Any]) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.neural_network import MLPClassifier

        self.task, self.steps = task, 0
        p = params
        if task == "mlp-digits":
            self.model = MLPClassifier(hidden_layer_sizes=(int(p["units"]),) * int(p["layers"]),
                                       batch_size=int(p["batch_size"]), learning_rate_init=float(p["learning_rate"]),
                                       alpha=float(p["alpha"]), random_state=0)
        else:
            self.model = HistGradientBoostingClassifier(
                max_iter=4, learning_rate=float(p["learning_rate"]), max_leaf_nodes=int(p["max_leaf_nodes"]),
                min_samples_leaf=int(p["min_samples_leaf"]), l2_regularization=float(p["l2_regularization"]),
                max_features=float(p["max_features"]), warm_start=True, early_stopping=False, random_state=0)

    def step(self) -> tuple[float, float]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.metrics import log_loss

        xtr, ytr, xva, yva = data(self.task)
        self.steps += 1
        t0 = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.task == "mlp-digits":
                self.model.partial_fit(xtr, ytr, classes=np.unique(ytr))
            else:
                self.model.max_iter = 4 * self.steps
                self.model.fit(xtr, ytr)
        cpu = time.process_time() - t0
        proba = np.clip(self.model.predict_proba(xva), 1e-12, 1.0)
        loss = float(log_loss(yva, proba, labels=np.unique(ytr)))
        return (loss if math.isfinite(loss) else 1e3), cpu


def calibrate(task: str) -> dict[str, Any]:
    """Full trainings of ``CAL_N`` seeded random configurations: the unit (median CPU seconds) and
    the median and best final loss."""
    space = SPACES[task]
    rng = np.random.default_rng(CAL_SEED)
    losses, cpus = [], []
    for u in rng.random((CAL_N, space.n_dims)):
        run, cpu, loss = Training(task, space.decode(u)), 0.0, math.inf
        for _ in range(STEPS):
            loss, c = run.step()
            cpu += c
        losses.append(loss)
        cpus.append(cpu)
    return {"unit_s": float(np.median(cpus)), "median_loss": float(np.median(losses)), "best_loss": float(min(losses)),
            "cpu_s_range": [float(min(cpus)), float(max(cpus))]}


class Ledger:
    """Charges each step's measured CPU seconds in units, enforces the hard line, records full
    trainings (the best final loss so far, with the units spent when it was found)."""

    def __init__(self, task: str, unit_s: float) -> None:
        self.task, self.unit_s = task, unit_s
        self.space = SPACES[task]
        self.spent = 0.0
        self.trials = 0
        self.full = 0
        self.best = math.inf
        self.finds: list[tuple[float, float]] = []
        self.near_duplicates = 0
        self._full: list[np.ndarray] = []
        self._enc = encoder_of(self.space)

    @property
    def exhausted(self) -> bool:
        return self.spent >= BUDGET - 1e-12

    def step(self, run: Training, params: dict[str, Any]) -> tuple[float, float] | None:
        """Train ``run`` one more step: (loss there, units it cost), or None past the line."""
        if self.exhausted:
            return None
        loss, cpu = run.step()
        units = cpu / self.unit_s
        self.spent += units
        if run.steps == STEPS:
            self.full += 1
            x = self._enc.snap(self._enc.encode([params]))
            if self._full and self._enc.near_duplicates(x, np.vstack(self._full))[0]:
                self.near_duplicates += 1
            self._full.append(x)
            if loss < self.best:
                self.best = loss
                self.finds.append((min(self.spent, BUDGET), loss))
        return loss, units


def run_thrifty(key: str, ledger: Ledger, seed: int) -> dict[str, Any]:
    budget = {"usd": BUDGET} if key.endswith("-usd") else None
    study = th.Study.create(ledger.space, {"loss": "min"}, storage="memory", seed=seed, budget=budget)
    ended = ""
    try:
        while not ledger.exhausted:
            try:
                t = study.ask()
            except th.StudyExhausted as exc:
                ended = str(exc)
                break
            params = dict(t.params)
            run = Training(ledger.task, params)
            ledger.trials += 1
            for step in range(1, STEPS + 1):
                out = ledger.step(run, params)
                if out is None:
                    study.tell(t, state="stopped", reason="benchmark: budget line")
                    break
                loss, units = out
                try:
                    t.report({"loss": loss}, step=step, cost_usd=units)
                except th.TrialStopped as exc:  # thrifty's own hard budget (the -usd variant): spent
                    study.tell(t, state="stopped", reason=exc.reason)
                    ended = str(exc)
                    break
                if step == STEPS:
                    study.tell(t, {"loss": loss})
                elif ledger.exhausted:
                    study.tell(t, state="stopped", reason="benchmark: budget line")
                    break
                elif t.should_stop():
                    study.tell(t, state="stopped")
                    break
    finally:
        study.close()
    return {"ended": ended, "unspent_units": max(BUDGET - ledger.spent, 0.0) if ended else 0.0}


def run_optuna(key: str, ledger: Ledger, seed: int) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    pruner = (optuna.pruners.HyperbandPruner(min_resource=1, max_resource=STEPS, reduction_factor=3)
              if key.endswith("hyperband") else optuna.pruners.NopPruner())
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)

    def objective(trial):
        params = {n: (trial.suggest_int(n, p.low, p.high, log=p.log) if isinstance(p, th.Int)
                      else trial.suggest_float(n, p.low, p.high, log=p.log)) for n, p in ledger.space.items()}
        run = Training(ledger.task, params)
        ledger.trials += 1
        for step in range(1, STEPS + 1):
            out = ledger.step(run, params)
            if out is None or (ledger.exhausted and step < STEPS):
                trial.study.stop()
                raise optuna.TrialPruned()
            if step == STEPS:
                if ledger.exhausted:
                    trial.study.stop()
                return out[0]
            trial.report(out[0], step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        raise AssertionError("unreachable")

    study.optimize(objective)
    return {"ended": "", "unspent_units": 0.0}


def run_cell(cell: tuple[str, int, str, float]) -> dict[str, Any]:
    task, seed, key, unit_s = cell
    ledger = Ledger(task, unit_s)
    t0 = time.perf_counter()
    extra = (run_thrifty if key.startswith("thrifty") else run_optuna)(key, ledger, seed)
    return {"task": task, "seed": seed, "method": key, "wall_s": time.perf_counter() - t0,
            "spent_units": ledger.spent, "trials": ledger.trials, "full_trainings": ledger.full,
            "near_duplicate_full_trainings": ledger.near_duplicates,
            "finds": [[round(u, 5), v] for u, v in ledger.finds], **extra}


def regret_at(rec: dict[str, Any], units: float, median: float, best: float) -> float:
    out = math.inf
    for u, v in rec["finds"]:
        if u <= units + 1e-12:
            out = (v - best) / (median - best)
    return out


def summarize(recs: list[dict[str, Any]], median: float, best: float) -> dict[str, Any]:
    return {**tail_summary(recs, lambda r, u: regret_at(r, u, median, best), REPORT_AT, BUDGET),
            "none_trained": int(sum(1 for r in recs if not r["finds"])),
            "near_duplicates": int(sum(r["near_duplicate_full_trainings"] for r in recs)),
            "max_unspent_units": float(max(r["unspent_units"] for r in recs)),
            "mean_trials": float(np.mean([r["trials"] for r in recs])),
            "mean_full": float(np.mean([r["full_trainings"] for r in recs])),
            "mean_wall_s": float(np.mean([r["wall_s"] for r in recs]))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(SPACES), help="comma-separated (default: all)")
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated method keys")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args()
    tasks, keys = args.tasks.split(","), args.methods.split(",")
    bad = [n for n in tasks if n not in SPACES] + [k for k in keys if k not in METHODS]
    if bad:
        ap.error(f"unknown {bad}; tasks: {', '.join(SPACES)}; methods: {', '.join(METHODS)}")
    cmd = "python " + " ".join(["benchmarks/sklearn_real.py"] + sys.argv[1:])
    t0 = time.time()
    with mp.get_context("fork").Pool(max(args.jobs, 1)) as pool:
        cal = dict(zip(tasks, pool.map(calibrate, tasks)))
    for task in tasks:
        c = cal[task]
        print(f"calibration {task}: unit {c['unit_s']:.3f} CPU s (full trainings {c['cpu_s_range'][0]:.3f}-"
              f"{c['cpu_s_range'][1]:.3f} s), median loss {c['median_loss']:.4f}, best {c['best_loss']:.4f}", flush=True)
    cells = [(n, s, k, cal[n]["unit_s"]) for n in tasks for k in keys for s in range(args.seeds)]
    recs: list[dict[str, Any]] = []
    with mp.get_context("fork").Pool(max(args.jobs, 1), maxtasksperchild=10) as pool:
        for rec in pool.imap_unordered(run_cell, cells):
            recs.append(rec)
            best = rec["finds"][-1][1] if rec["finds"] else math.nan
            print(f"[{len(recs)}/{len(cells)}] {rec['method']:24s} {rec['task']:13s} seed {rec['seed']}: best loss "
                  f"{best:.4f}, {rec['trials']} trials, {rec['full_trainings']} full, {rec['spent_units']:.2f} u, "
                  f"{rec['wall_s']:.1f} s{'; ended: ' + rec['ended'] if rec['ended'] else ''}", flush=True)
    wall = time.time() - t0
    import optuna
    import sklearn

    summ: dict[str, dict[str, Any]] = {}
    for n in tasks:
        best = min([cal[n]["best_loss"]] + [r["finds"][-1][1] for r in recs if r["task"] == n and r["finds"]])
        cal[n]["best_known_loss"] = best
        summ[n] = {k: summarize([r for r in recs if r["task"] == n and r["method"] == k], cal[n]["median_loss"], best)
                   for k in keys}
    lines = [SECTION, "", f"Date {time.strftime('%Y-%m-%d')}; machine: {machine()}; command: `{cmd}`; wall time "
             f"{wall / 60:.1f} min; optuna {optuna.__version__}, scikit-learn {sklearn.__version__}. Protocol: the "
             f"script's docstring ({args.seeds} seeds, hard budget {BUDGET:.0f} units of measured CPU seconds, "
             f"{STEPS} steps per full training). Raw numbers: `benchmarks/sklearn_real.json`.", ""]
    head = " | ".join(f"@{u} u median / p90 / worst" for u in REPORT_AT)
    for n in tasks:
        c = cal[n]
        lines += [f"**{n}** (unit {c['unit_s']:.3f} CPU s; calibration full trainings {c['cpu_s_range'][0]:.3f}-"
                  f"{c['cpu_s_range'][1]:.3f} s; median loss {c['median_loss']:.4f}, best known {c['best_known_loss']:.4f})",
                  "", f"| method | reach 1% | reach 0.5% | {head} | runs with nothing trained | "
                  "near-duplicate full trainings | most units unspent | trials | full trainings | s per run |",
                  "|---|---|---|" + "---|" * len(REPORT_AT) + "---|---|---|---|---|---|"]
        for k in keys:
            s = summ[n][k]
            cells_ = [" / ".join(pct(s["tail_at"][u][q]) for q in ("median", "p90", "worst")) for u in REPORT_AT]
            lines.append(f"| {METHODS[k]} | {100 * s['share_1pct']:.0f}% | {100 * s['share_05pct']:.0f}% | "
                         + " | ".join(cells_) + f" | {s['none_trained']} | {s['near_duplicates']} | "
                         f"{s['max_unspent_units']:.2f} | {s['mean_trials']:.0f} | {s['mean_full']:.1f} | "
                         f"{s['mean_wall_s']:.1f} |")
        line = floor_verdict(n, summ[n], PEERS, METHODS)
        lines += ["", line, ""] if line else [""]
    section = "\n".join(lines) + "\n"
    print("\n" + section)
    if not args.no_write:
        (HERE / "sklearn_real.json").write_text(json.dumps({"command": cmd, "calibration": cal, "summary": summ,
                                                             "runs": recs}, indent=1))
        write_results(Path(args.out), SECTION, section)
        print(f"wrote {args.out}, benchmarks/sklearn_real.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
