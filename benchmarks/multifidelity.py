"""Multi-fidelity benchmark on the LCBench surrogate: money to a good model, thrifty against peers.

Run from the repository root (Optuna and matplotlib come with ``pip install -e '.[bench]'``; Ray Tune
is optional: ``pip install 'ray[tune]'``, its cells are skipped with a message when it is missing):

    .venv/bin/python benchmarks/multifidelity.py --jobs 2             # the full run, writes the results
    .venv/bin/python benchmarks/multifidelity.py --quick --jobs 2     # smoke run: 2 tasks, 2 seeds

Other flags: ``--tasks 3945,7593``, ``--seeds 10`` (seeds 0..9) or ``--seeds 0,4,7``,
``--methods thrifty-asha,optuna-random-hyperband`` (see ``--list``), ``--ray-seeds N`` (Ray Tune runs
on the first N seeds only, see below), ``--jobs N`` (cells in a process pool), ``--no-write``.

Protocol (``shared/BENCHMARKING.md``, issue 4). Data: ``$THRIFTY_BENCHDATA/lcbench`` (default
``../shared/benchdata``).

- Tasks 3945, 7593, 34539, 126025, 126026, 126029, 146212, 167104, 167149, 167152; seeds 0..9.
- Quality of a configuration = its epoch-52 ``val_accuracy`` (``--objective`` picks another output of
  the surrogate: ``val_balanced_accuracy``, or ``val_cross_entropy``, which every method then
  maximises negated, and whose regret is (found - reference) / reference). Only configurations trained to epoch 52
  count as found (by whichever method: the ledger below records every configuration that reaches
  epoch 52, whatever the method calls it).
- Reference = the best epoch-52 ``val_accuracy`` of 10,000 uniform random configurations (log-uniform
  where log; seed 12345, the same draw as ``benchmarks/cost.py``). Regret = (reference - best found) /
  reference.
- Cost = surrogate training seconds actually run: a trial trained to epoch k costs time(k), the
  running maximum of the surrogate's cumulative ``time`` over epochs 1..k; a stopped trial is never
  resumed, and a PAUSED one (thrifty's ASHA promotion variant) resumes where it paused and pays only
  its new epochs. In units of one full training (the task's median epoch-52 time over the 10,000
  reference configurations).
- Hard budget 50 units per run, enforced by this script's own ledger, identically for every method:
  each epoch is charged when it is trained; the epoch that crosses the line is charged and what it
  yields still counts (a trial that reaches epoch 52 with it is found, at 50 units); the run then ends
  and nothing after it counts.
- Same space for every method (``LCBENCH_SPACE`` of ``benchmarks/cost.py``); ASHA and Hyperband with
  min_resource 1, max_resource 52 (epochs), reduction factor 3 in every library. Single worker.

Methods: thrifty random search with the ASHA, Hyperband and median schedulers and without one
(``th.Study`` in memory, ask / report per epoch / ``should_stop`` / tell; thrifty's ASHA with its
defaults, i.e. measured rungs: a rung stops trials only while the study's completed trials show it
predicts the end, and as ``thrifty-asha-classic`` with ``check_rungs=False``); Optuna random + median
pruner, random + Hyperband pruner, TPE + Hyperband pruner, TPE without pruning (``study.optimize``,
``trial.report`` per epoch, ``trial.should_prune()``, in-memory storage); Ray Tune ``ASHAScheduler``
with a function trainable (random search, ``max_concurrent_trials=1``, ``reuse_actors=True``; the
ledger runs in a ``Stopper`` on the driver, which sees every epoch's result before the trainable
may go on, so the hard line is the same as for the others). For issue 5: SMAC3's
``MultiFidelityFacade`` (``smac-mf``: random forest + Hyperband, eta 3, budgets 1..52 epochs; a
configuration evaluated at a higher budget is trained again from scratch and pays again; about 55 s
per run here). DEHB 0.1.2 (``dehb``: differential evolution + Hyperband, eta 3, fidelities 52/27..52
epochs, i.e. 2, 6, 17, 52) runs as a child process in its own venv (it pins numpy<2: ``bash
benchmarks/peers/setup.sh venv-dehb``), driven by ask/tell through the remote-ledger protocol; like
SMAC it trains a configuration again from scratch at a higher fidelity and pays again.
thrifty's defaults (``thrifty-defaults``: ``Study.create`` without a strategy or scheduler, i.e.
``auto`` and ``AutoStopping``; auto chooses BOHB around a GP here, a small unconditional space
whose trials report steps) are issue 5's floor row, judged against the best peer of the run
(``floor5``); ``thrifty-auto-asha`` is auto with the measured ASHA given the full resource (52); ``thrifty-gp`` is the same GP without stopping;
``thrifty-mfgp-asha`` is the other model-based multi-fidelity variant, one GP over (configuration,
epoch) (``strategy="mfgp"``) with the same ASHA.
Syne Tune's asynchronous BOHB (``synetune-bohb``: its ``BOHB`` baseline, stopping-type
ASHA with the KDE searcher) runs as a child process in its own venv (``bash benchmarks/peers/setup.sh
venv-synetune``), its scheduler driven directly in a single-worker loop (suggest, one
``on_trial_result`` per epoch) with every epoch charged by this script's ledger.

Ray Tune's overhead: an ASHA run starts 200 to 700 trials in 50 units (374 on average in the full
run). Measured here (task 3945, seed 0, 245 trials): 2.0 s per trial with a new actor per trial
(499 s for the run), 38 ms with ``reuse_actors=True`` (9.4 s, the same trials and result), so Ray
Tune runs on all seeds (the full run: 100 Ray cells in 18 minutes). ``--ray-seeds N`` restricts it to
the first N seeds where that is too slow; the section then states the deviation and adds a table
of every method on those seeds alone.

Reported per method: the share of (task, seed) runs reaching 1% and 0.5% regret within the budget;
regret after 10, 25 and 50 units, averaged (mean) over seeds per task and then the median over
tasks; the median-regret-against-units curves (``benchmarks/multifidelity.png``). Raw numbers:
``benchmarks/multifidelity.json``; the table: a section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import thrifty as th  # noqa: E402
from thrifty.encoding import encoder_of
from _report import write_results  # noqa: E402
from cost import LCBENCH_SPACE, TASKS, machine  # noqa: E402
from lcbench import MAX_EPOCH, BenchdataMissing, LCBench  # noqa: E402

BUDGET = 50.0
REF_N, REF_SEED = 10_000, 12345
#: ``--objective``: the surrogate output each method optimises, and its sign (+1: maximised as is;
#: -1: a loss, maximised negated). Every method sees the signed value as ``val_acc`` (to maximise).
OBJECTIVES = {"val_accuracy": 1.0, "val_balanced_accuracy": 1.0, "val_cross_entropy": -1.0}
OBJECTIVE = "val_accuracy"  # set by --objective before any worker forks
MIN_R, MAX_R, ETA = 1, MAX_EPOCH, 3
GRID = np.round(np.arange(0.0, BUDGET + 1e-9, 0.25), 2)
REPORT_AT = (10, 25, 50)
SECTION = "## Multi-fidelity: money to a good model on LCBench (benchmarks/multifidelity.py)"
WORK = HERE / "_work"  # gitignored: Ray's temp dir and result folders

# key -> (display name, library)
METHODS = {
    "thrifty-asha": ("thrifty random+ASHA", "thrifty"),
    "thrifty-asha-classic": ("thrifty random+ASHA (classic: every rung judges)", "thrifty"),
    "thrifty-hyperband": ("thrifty random+Hyperband", "thrifty"),
    "thrifty-median": ("thrifty random+median", "thrifty"),
    "thrifty-random": ("thrifty random (no stopping)", "thrifty"),
    "thrifty-asha-promotion": ("thrifty random+ASHA (promotion)", "thrifty"),
    "thrifty-adaptive": ("thrifty random+adaptive", "thrifty"),
    "thrifty-tpe": ("thrifty TPE (no stopping)", "thrifty"),
    "thrifty-bohb-adaptive": ("thrifty BOHB+adaptive", "thrifty"),
    "thrifty-auto": ("thrifty auto+adaptive (defaults)", "thrifty"),
    "thrifty-tpe-asha": ("thrifty TPE+ASHA (measured rungs)", "thrifty"),
    "thrifty-auto-asha": ("thrifty auto+ASHA (measured rungs)", "thrifty"),
    "thrifty-gp": ("thrifty GP (no stopping)", "thrifty"),
    "thrifty-defaults": ("thrifty defaults (auto strategy, auto scheduler)", "thrifty"),
    "thrifty-defaults-usd": ("thrifty defaults with the budget given to thrifty (usd = units)", "thrifty"),
    "thrifty-mfgp-asha": ("thrifty GP over (configuration, epoch)+ASHA (measured rungs)", "thrifty"),
    "optuna-random-median": ("Optuna random+MedianPruner", "optuna"),
    "optuna-random-hyperband": ("Optuna random+HyperbandPruner", "optuna"),
    "optuna-tpe-hyperband": ("Optuna TPE+HyperbandPruner", "optuna"),
    "optuna-tpe": ("Optuna TPE (no pruning)", "optuna"),
    "ray-asha": ("Ray Tune ASHA (random)", "ray"),
    "smac-mf": ("SMAC3 MultiFidelityFacade (RF + Hyperband)", "smac"),
    "remote-random": ("random search in a child process (the remote protocol's check)", "remote"),
    "dehb": ("DEHB (DE + Hyperband)", "remote"),
    "synetune-bohb": ("Syne Tune asynchronous BOHB", "remote"),
}
# Peers in their own virtual environments (pins that clash with thrifty's), run as child processes
# of this script through the remote-ledger protocol (benchmarks/peers/remote_child.py).
# key -> (the venv's folder under benchmarks/_work, or None for this interpreter; the child script
# in benchmarks/peers; the distribution whose version the results name, or None)
REMOTE = {
    "remote-random": (None, "random_child.py", None),
    "dehb": ("venv-dehb", "dehb_child.py", "dehb"),
    "synetune-bohb": ("venv-synetune", "synetune_child.py", "syne-tune"),
}
FLOOR = ("thrifty-asha", "optuna-random-hyperband")
# Issue 5: thrifty's defaults (auto strategy, auto scheduler) against the best peer run; where that
# row was not run, auto with the measured ASHA (the same stopping rule with a declared full resource).
FLOOR5 = ("thrifty-defaults", "thrifty-auto-asha")
PEER_LIBRARIES = ("optuna", "ray", "smac", "remote")


def floor5(summ: dict[str, dict]) -> str | None:
    """The issue-5 floor line: the first of ``FLOOR5`` that ran reaches 1% in at least 1.5x the
    share of runs of the best peer, and its median regret at 50 units is at most half the best
    peer's (each "best" taken over the peers in this run, separately); None unless one of FLOOR5
    and a peer ran."""
    peers = [k for k in summ if METHODS[k][1] in PEER_LIBRARIES and k != "remote-random"]
    mine = next((k for k in FLOOR5 if k in summ), None)
    if mine is None or not peers:
        return None
    a = summ[mine]
    share_peer = max(peers, key=lambda k: summ[k]["share_1pct"])
    regret_peer = min(peers, key=lambda k: summ[k]["median_regret_at"][50])
    bs, br = summ[share_peer]["share_1pct"], summ[regret_peer]["median_regret_at"][50]
    ok_share = a["share_1pct"] >= 1.5 * bs - 1e-9  # shares are k/n: 0.84 vs 1.5 * 0.56 must not fail on rounding
    ok_regret = a["median_regret_at"][50] <= 0.5 * br + 1e-12
    return (f"Floor (issue 5): {METHODS[mine][0]} reaches 1% in {100 * a['share_1pct']:.0f}% of runs against "
            f"1.5 × {100 * bs:.0f}% = {150 * bs:.0f}% needed (best peer: {METHODS[share_peer][0]}): "
            f"{'ok' if ok_share else 'no'}; median regret at 50 units {pct(a['median_regret_at'][50])} against "
            f"half of {pct(br)} = {pct(0.5 * br)} (best peer: {METHODS[regret_peer][0]}): "
            f"{'ok' if ok_regret else 'no'}: **{'PASS' if ok_share and ok_regret else 'FAIL'}**.")


# -- the task: surrogate, reference and unit (cached per process) -------------------------------
@functools.lru_cache(maxsize=None)
def surrogate(task: str) -> LCBench:
    return LCBench.load(task)


@functools.lru_cache(maxsize=None)
def reference(task: str) -> tuple[float, float]:
    """(reference score, unit in seconds) of ``task``: the best epoch-52 signed ``OBJECTIVE`` and
    the median epoch-52 time of 10,000 seeded uniform random configurations."""
    bench = surrogate(task)
    configs = bench.sample(np.random.default_rng(REF_SEED), REF_N)
    out = bench.evaluate(configs, [MAX_EPOCH])
    return float(np.max(OBJECTIVES[OBJECTIVE] * out[OBJECTIVE][:, 0])), float(np.median(out["time"][:, 0]))


def learning_curve(task: str, params: dict, unit: float) -> tuple[np.ndarray, np.ndarray]:
    """(signed ``OBJECTIVE`` at epochs 1..52, cumulative cost in units at epochs 1..52, a running max)."""
    cfg = {k: float(params[k]) for k in LCBENCH_SPACE}
    out = surrogate(task).evaluate([cfg], np.arange(1, MAX_EPOCH + 1))
    return OBJECTIVES[OBJECTIVE] * out[OBJECTIVE][0], out["time"][0] / unit


# -- the ledger: one per (task, seed, method) run ----------------------------------------------
class Ledger:
    """Charges every trained epoch in units, enforces the hard line, records what is found."""

    def __init__(self, task: str, budget: float = BUDGET) -> None:
        self.task = task
        self.ref, self.unit = reference(task)
        self.budget = budget
        self.spent = 0.0
        self.epochs = 0
        self.trials = 0
        self.full = 0
        self.best = -math.inf
        self.finds: list[tuple[float, float]] = []  # (units spent when found, best accuracy so far)
        self.ignored = 0  # epochs a method trained after the line (none should: they are not counted)
        self.near_duplicates = 0  # full trainings of a near-duplicate of a configuration trained to 52 before
        self._full_points: list[np.ndarray] = []  # encoded configurations trained to epoch 52
        self.log: list[list] = []  # [params, epochs trained] per trial, to re-check the ledger at the end

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.budget

    def start(self, params: dict) -> Run:
        self.trials += 1
        self.log.append([dict(params), 0])
        acc, cum = learning_curve(self.task, params, self.unit)
        return Run(self, acc, cum, len(self.log) - 1)

    def charge(self, units: float, epoch: int, acc: float, params: dict | None = None) -> bool:
        """Charge one trained epoch; returns False (and counts nothing) if the line was already crossed."""
        if self.exhausted:
            self.ignored += 1
            return False
        self.spent += units
        self.epochs += 1
        if epoch == MAX_EPOCH:
            self.full += 1
            if params is not None:
                self._count_near_duplicate(params)
            if acc > self.best:
                self.best = acc
                self.finds.append((min(self.spent, self.budget), acc))
        return True

    def _count_near_duplicate(self, params: dict) -> None:
        """Count a full training of a near-duplicate (``thrifty.encoding.NEAR``: every parameter
        within 1% of its range, log scale where log) of a configuration already trained to 52."""
        enc = encoder_of(LCBENCH_SPACE)
        x = enc.snap(enc.encode([{k: params[k] for k in LCBENCH_SPACE}]))
        if self._full_points and enc.near_duplicates(x, np.vstack(self._full_points))[0]:
            self.near_duplicates += 1
        self._full_points.append(x)

    def recheck(self) -> float:
        """|ledger - cost recomputed from scratch from each trial's params and epochs trained|, in units."""
        total = 0.0
        for params, epochs in self.log:
            if epochs:
                total += learning_curve(self.task, params, self.unit)[1][epochs - 1]
        return abs(total - self.spent)

    def regret(self, acc: float) -> float:
        return (self.ref - acc) / abs(self.ref)

    def record(self) -> dict:
        return {"task": self.task, "reference": self.ref, "unit_s": self.unit, "spent_units": self.spent,
                "epochs": self.epochs, "trials": self.trials, "full_trainings": self.full,
                "near_duplicate_full_trainings": self.near_duplicates,
                "finds": [[round(u, 5), a] for u, a in self.finds], "epochs_ignored": self.ignored,
                "final_regret": self.regret(self.best) if self.finds else None}


class Run:
    """One trial being trained epoch by epoch (the surrogate's curve, paid per epoch)."""

    def __init__(self, ledger: Ledger, acc: np.ndarray, cum: np.ndarray, index: int) -> None:
        self.ledger, self.acc, self.cum = ledger, acc, cum
        self.index = index  # this trial's entry in the ledger's log (a resumed trial is not the last)
        self.epoch = 0

    def train_epoch(self) -> tuple[float, float]:
        """Train the next epoch: charge it, return (val_accuracy, units it cost)."""
        e = self.epoch
        inc = float(self.cum[e] - (self.cum[e - 1] if e else 0.0))
        self.epoch += 1
        acc = float(self.acc[e])
        if self.ledger.charge(inc, self.epoch, acc, self.ledger.log[self.index][0]):
            self.ledger.log[self.index][1] = self.epoch
        return acc, inc


# -- thrifty --------------------------------------------------------------------------------------
def thrifty_scheduler(key: str, seed: int):
    from thrifty.schedulers.adaptive import AdaptiveASHA
    from thrifty.schedulers.asha import ASHA
    from thrifty.schedulers.auto import AutoStopping
    from thrifty.schedulers.hyperband import Hyperband
    from thrifty.schedulers.percentile import Median

    return {
        "thrifty-asha": lambda: ASHA(min_resource=MIN_R, max_resource=MAX_R, reduction_factor=ETA),  # measured rungs
        "thrifty-asha-classic": lambda: ASHA(min_resource=MIN_R, max_resource=MAX_R, reduction_factor=ETA,
                                             check_rungs=False),
        "thrifty-hyperband": lambda: Hyperband(min_resource=MIN_R, max_resource=MAX_R, reduction_factor=ETA, seed=seed),
        "thrifty-median": lambda: Median(),  # defaults: min_resource=1, min_trials=5 (as Optuna's MedianPruner)
        "thrifty-random": lambda: None,
        "thrifty-asha-promotion": lambda: ASHA(min_resource=MIN_R, max_resource=MAX_R, reduction_factor=ETA,
                                               mode="promotion"),
        "thrifty-adaptive": lambda: AdaptiveASHA(min_resource=MIN_R, max_resource=MAX_R, reduction_factor=ETA),
        "thrifty-tpe": lambda: None,
        "thrifty-bohb-adaptive": lambda: AdaptiveASHA(min_resource=MIN_R, max_resource=MAX_R, reduction_factor=ETA),
        "thrifty-auto": lambda: AdaptiveASHA(min_resource=MIN_R, max_resource=MAX_R, reduction_factor=ETA),
        "thrifty-tpe-asha": lambda: ASHA(min_resource=MIN_R, max_resource=MAX_R, reduction_factor=ETA),
        "thrifty-auto-asha": lambda: ASHA(min_resource=MIN_R, max_resource=MAX_R, reduction_factor=ETA),
        "thrifty-gp": lambda: None,
        "thrifty-defaults": lambda: AutoStopping(),  # what Study.create gives without a scheduler argument
        "thrifty-defaults-usd": lambda: AutoStopping(),
        "thrifty-mfgp-asha": lambda: ASHA(min_resource=MIN_R, max_resource=MAX_R, reduction_factor=ETA),
    }[key]()


THRIFTY_STRATEGY = {"thrifty-tpe": "tpe", "thrifty-bohb-adaptive": "bohb", "thrifty-auto": "auto",
                    "thrifty-tpe-asha": "tpe", "thrifty-auto-asha": "auto", "thrifty-gp": "gp", "thrifty-defaults": "auto", "thrifty-defaults-usd": "auto",
                    "thrifty-mfgp-asha": "mfgp"}


def run_thrifty(key: str, ledger: Ledger, seed: int) -> dict:
    study = th.Study.create(LCBENCH_SPACE, {"val_acc": "max"}, name=f"mf-{ledger.task}-{seed}-{key}",
                            storage="memory", strategy=THRIFTY_STRATEGY.get(key, "random"),
                            scheduler=thrifty_scheduler(key, seed), seed=seed,
                            budget={"usd": ledger.budget} if key.endswith("-usd") else None)
    stopped = 0
    ended = ""  # why thrifty ended the study itself (a budgeted study may, before the ledger's line)
    runs: dict[int, Run] = {}  # paused trials keep their model state: a resume pays only new epochs
    try:
        while not ledger.exhausted:
            try:
                t = study.ask()
            except th.StudyExhausted as exc:
                ended = str(exc)
                break
            if t.start_step:
                run = runs[t.number]
            else:
                run = runs[t.number] = ledger.start(dict(t.params))
            for epoch in range(run.epoch + 1, MAX_EPOCH + 1):
                acc, inc = run.train_epoch()
                try:
                    t.report({"val_acc": acc}, step=epoch, cost_usd=inc, elapsed_s=0.0)
                except th.TrialStopped as exc:  # thrifty's own hard budget (the -usd variant): spent
                    study.tell(t, state="stopped", reason=exc.reason, elapsed_s=0.0)
                    ended = str(exc)
                    break
                if epoch == MAX_EPOCH:
                    study.tell(t, {"val_acc": acc}, elapsed_s=0.0)
                elif ledger.exhausted:
                    study.tell(t, state="stopped", reason="benchmark: budget line", elapsed_s=0.0)
                elif t.should_stop():
                    study.tell(t, state="paused" if t.pausing else "stopped", elapsed_s=0.0)
                    stopped += 0 if t.pausing else 1
                else:
                    continue
                break
        # thrifty's own ledger must agree with the benchmark's (every epoch reported with its cost).
        drift = abs(study.cost_usd - ledger.spent)
    finally:
        study.close()
    return {"stopped_by_scheduler": stopped, "ledger_drift_units": drift, "ended": ended}


# -- Optuna ---------------------------------------------------------------------------------------
def optuna_suggest(trial) -> dict:
    out = {}
    for name, p in LCBENCH_SPACE.items():
        if isinstance(p, th.Int):
            out[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
        else:
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
    return out


def run_optuna(key: str, ledger: Ledger, seed: int) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    sampler_name, _, pruner_name = key.removeprefix("optuna-").partition("-")
    sampler = (optuna.samplers.RandomSampler(seed=seed) if sampler_name == "random"
               else optuna.samplers.TPESampler(seed=seed))
    pruner = {
        "median": lambda: optuna.pruners.MedianPruner(),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=MIN_R, max_resource=MAX_R,
                                                            reduction_factor=ETA),
        "": lambda: optuna.pruners.NopPruner(),
    }[pruner_name]()
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner,
                                study_name=f"mf-{ledger.task}-{seed}-{key}")

    def objective(trial):
        run = ledger.start(optuna_suggest(trial))
        for epoch in range(1, MAX_EPOCH + 1):
            acc, _ = run.train_epoch()
            if epoch == MAX_EPOCH:
                if ledger.exhausted:
                    trial.study.stop()
                return acc
            if ledger.exhausted:
                trial.study.stop()
                raise optuna.TrialPruned()
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        raise AssertionError("unreachable")

    study.optimize(objective)
    pruned = sum(1 for t in study.trials if t.state == optuna.trial.TrialState.PRUNED)
    return {"pruned": pruned}


# -- Ray Tune -------------------------------------------------------------------------------------
def _ray_env() -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1e9")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    paths = [str(HERE), str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)


def ray_start() -> None:
    _ray_env()
    import ray

    if not ray.is_initialized():
        (WORK / "ray_tmp").mkdir(parents=True, exist_ok=True)
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 _temp_dir=str(WORK / "ray_tmp"), configure_logging=True)


def _ray_trainable(config: dict) -> None:
    """Function trainable: one report per epoch with the cumulative cost in units; the driver's
    Stopper charges the ledger from it."""
    from ray import tune

    import multifidelity  # by name: Ray pickles this function by value, not this script's globals

    acc, cum = multifidelity.learning_curve(config["task"], config, config["unit"])
    for e in range(MAX_EPOCH):
        tune.report({"val_acc": float(acc[e]), "epoch": e + 1, "cum_units": float(cum[e])})


def run_ray(key: str, ledger: Ledger, seed: int) -> dict:
    ray_start()
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    space = {"task": ledger.task, "unit": ledger.unit}
    for name, p in LCBENCH_SPACE.items():
        if isinstance(p, th.Int):
            space[name] = tune.lograndint(p.low, p.high + 1) if p.log else tune.randint(p.low, p.high + 1)
        else:
            space[name] = tune.loguniform(p.low, p.high) if p.log else tune.uniform(p.low, p.high)

    class LedgerStopper(tune.Stopper):
        def __init__(self) -> None:
            self.last: dict[str, tuple[int, float]] = {}
            self.index: dict[str, int] = {}

        def __call__(self, trial_id: str, result: dict) -> bool:
            if "cum_units" not in result:
                return False
            if trial_id not in self.last:
                ledger.trials += 1
                ledger.log.append([{k: result["config"][k] for k in LCBENCH_SPACE}, 0])
                self.index[trial_id] = len(ledger.log) - 1
            epoch0, cum0 = self.last.get(trial_id, (0, 0.0))
            epoch, cum = int(result["epoch"]), float(result["cum_units"])
            if epoch > epoch0:  # a new epoch (the duplicate final result of a finished trial is not)
                if epoch != epoch0 + 1:
                    raise RuntimeError(f"Ray skipped epochs {epoch0 + 1}..{epoch - 1} of {trial_id}")
                if ledger.charge(cum - cum0, epoch, float(result["val_acc"]), ledger.log[self.index[trial_id]][0]):
                    ledger.log[self.index[trial_id]][1] = epoch
                self.last[trial_id] = (epoch, cum)
            return False

        def stop_all(self) -> bool:
            return ledger.exhausted

    name = f"mf-{ledger.task}-{seed}-{os.getpid()}-{time.time_ns()}"
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=MAX_R, grace_period=MIN_R,
                              reduction_factor=ETA)
    tuner = tune.Tuner(
        _ray_trainable, param_space=space,
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=scheduler, num_samples=-1,
                                    max_concurrent_trials=1, reuse_actors=True,
                                    search_alg=BasicVariantGenerator(random_state=seed)),
        run_config=tune.RunConfig(name=name, storage_path=str(WORK / "ray_results"),
                                  stop=LedgerStopper(), verbose=0, log_to_file=False),
    )
    ledger.trials = 0
    tuner.fit()
    shutil.rmtree(WORK / "ray_results" / name, ignore_errors=True)
    return {}


# -- SMAC3 ----------------------------------------------------------------------------------------
def run_smac(key: str, ledger: Ledger, seed: int) -> dict:
    """SMAC3 2.4 ``MultiFidelityFacade`` (random forest + Hyperband intensifier, eta 3, budgets 1..52
    epochs), driven by ask/tell. SMAC evaluates a configuration at a higher budget by training it
    again from scratch, so each of its trials starts a new run and pays every epoch (the protocol)."""
    import logging

    from ConfigSpace import ConfigurationSpace, Float, Integer
    from smac import MultiFidelityFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    logging.getLogger("smac").setLevel(logging.ERROR)
    cs = ConfigurationSpace(seed=seed)
    cs.add([Integer(n, (p.low, p.high), log=p.log) if isinstance(p, th.Int) else Float(n, (p.low, p.high), log=p.log)
            for n, p in LCBENCH_SPACE.items()])
    out = WORK / "smac-mf"
    out.mkdir(parents=True, exist_ok=True)
    scenario = Scenario(cs, name=f"{ledger.task}-{seed}-pid{os.getpid()}", output_directory=out, deterministic=True,
                        n_trials=10**6, min_budget=MIN_R, max_budget=MAX_R, seed=seed)
    smac = MultiFidelityFacade(scenario, lambda config, seed=0, budget=1.0: 0.0, overwrite=True, logging_level=40,
                               intensifier=MultiFidelityFacade.get_intensifier(scenario, eta=ETA))
    trials = 0
    try:
        while not ledger.exhausted:
            info = smac.ask()
            run = ledger.start({k: info.config[k] for k in LCBENCH_SPACE})
            trials += 1
            acc = 0.0
            for _ in range(int(round(info.budget))):
                acc, _ = run.train_epoch()
                if ledger.exhausted:
                    break
            smac.tell(info, TrialValue(cost=100.0 - acc))
    finally:
        shutil.rmtree(out / scenario.name, ignore_errors=True)
    return {"smac_trials": trials}


# -- peers in their own environments (remote-ledger protocol) ------------------------------------
def remote_python(key: str) -> Path:
    """The interpreter of ``key``'s child; raises FileNotFoundError with the set-up command if missing."""
    venv = REMOTE[key][0]
    if venv is None:
        return Path(sys.executable)
    py = WORK / venv / "bin" / "python"
    if not py.exists():
        raise FileNotFoundError(f"{key}: no virtual environment at {py.parent.parent}; create it with "
                                f"`bash benchmarks/peers/setup.sh {venv}`")
    return py


def run_remote(key: str, ledger: Ledger, seed: int) -> dict:
    """Run a peer as a child process (its own venv): it proposes and decides, this process trains
    and charges every epoch on the same ledger as everyone else (the protocol: peers/remote_child.py)."""
    import subprocess

    script = REMOTE[key][1]
    space = {n: {"type": "int" if isinstance(p, th.Int) else "float", "low": p.low, "high": p.high,
                 "log": bool(p.log)} for n, p in LCBENCH_SPACE.items()}
    setup = {"task": ledger.task, "seed": seed, "space": space, "min_resource": MIN_R, "max_resource": MAX_R,
             "eta": ETA, "budget_units": ledger.budget}
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    log_path = WORK / "logs" / f"{key}-{ledger.task}-{seed}.log"
    runs: list[Run] = []
    info: dict = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE / "peers")}
    with open(log_path, "w") as log, subprocess.Popen(
            [str(remote_python(key)), str(HERE / "peers" / script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log, text=True, bufsize=1, cwd=WORK, env=env) as child:
        def reply(msg: dict) -> None:
            child.stdin.write(json.dumps(msg) + "\n")
            child.stdin.flush()

        reply(setup)
        for line in child.stdout:
            msg = json.loads(line)
            if msg["op"] == "start":
                runs.append(ledger.start({k: msg["params"][k] for k in LCBENCH_SPACE}))
                reply({"run": len(runs) - 1})
            elif msg["op"] == "train":
                run, accs = runs[msg["run"]], []
                for _ in range(max(0, int(msg["epochs"]))):
                    if ledger.exhausted or run.epoch >= MAX_EPOCH:
                        break
                    accs.append(run.train_epoch()[0])
                reply({"accs": accs, "epoch": run.epoch, "exhausted": ledger.exhausted})
            elif msg["op"] == "done":
                info = dict(msg.get("info") or {})
                break
            else:
                raise RuntimeError(f"{key}: unknown message {msg!r} (see {log_path})")
        child.stdin.close()
        rc = child.wait(timeout=60)
    if rc != 0 or not ledger.exhausted:
        raise RuntimeError(f"{key} on task {ledger.task} seed {seed}: the child exited with {rc} before the budget "
                           f"was spent ({ledger.spent:.2f} of {ledger.budget} units); its log: {log_path}")
    return info


RUNNERS = {"thrifty": run_thrifty, "optuna": run_optuna, "ray": run_ray, "smac": run_smac, "remote": run_remote}


def run_cell(cell: tuple[str, int, str]) -> dict:
    task, seed, key = cell
    ledger = Ledger(task)
    t0 = time.perf_counter()
    extra = RUNNERS[METHODS[key][1]](key, ledger, seed)
    wall = time.perf_counter() - t0
    return {**ledger.record(), "ledger_recheck_units": ledger.recheck(), "seed": seed, "method": key, "wall_s": wall, **extra}


# -- analysis -------------------------------------------------------------------------------------
def regret_curve(rec: dict) -> np.ndarray:
    """Regret at each point of GRID (inf before the first find)."""
    out = np.full(len(GRID), np.inf)
    for u, acc in rec["finds"]:
        out[GRID >= u - 1e-12] = (rec["reference"] - acc) / abs(rec["reference"])
    return out


def task_curves(recs: list[dict]) -> dict[str, np.ndarray]:
    """Per task: the mean over seeds of the regret curve (inf where any seed has found nothing)."""
    by: dict[str, list[np.ndarray]] = {}
    for r in recs:
        by.setdefault(r["task"], []).append(regret_curve(r))
    return {t: np.mean(np.vstack(cs), axis=0) for t, cs in by.items()}


def median_curve(recs: list[dict]) -> np.ndarray:
    return np.median(np.vstack(list(task_curves(recs).values())), axis=0)


def summarize(recs: list[dict]) -> dict:
    finals = np.array([np.inf if r["final_regret"] is None else r["final_regret"] for r in recs])
    med = median_curve(recs)
    at = {u: float(med[np.searchsorted(GRID, u)]) for u in REPORT_AT}
    return {
        "runs": len(recs), "tasks": len({r["task"] for r in recs}), "seeds": sorted({r["seed"] for r in recs}),
        "share_1pct": float(np.mean(finals <= 0.01)), "share_05pct": float(np.mean(finals <= 0.005)),
        "median_regret_at": at, "median_regret_all_runs_50": float(np.median(finals)),
        "mean_trials": float(np.mean([r["trials"] for r in recs])),
        "mean_full": float(np.mean([r["full_trainings"] for r in recs])),
        "mean_wall_s": float(np.mean([r["wall_s"] for r in recs])),
        "tail_at": tail_at(recs),
        "near_duplicates": int(sum(r.get("near_duplicate_full_trainings", 0) for r in recs)),
        "runs_above_5pct": int(np.sum(finals > 0.05)),
    }


def tail_at(recs: list[dict]) -> dict[int, dict[str, float]]:
    """Per unit mark of REPORT_AT: the median, 90th percentile and worst regret over runs (each run
    its own regret then; inf for a run that had found nothing yet)."""
    curves = np.vstack([regret_curve(r) for r in recs])
    out = {}
    for u in REPORT_AT:
        col = np.sort(curves[:, np.searchsorted(GRID, u)])
        # The 90th percentile as the value 90% of runs are at or below (nearest rank: no blending
        # with an inf), so "p90 1.2%" reads "nine runs in ten end within 1.2%".
        p90 = float(col[max(math.ceil(0.9 * len(col)) - 1, 0)])
        out[u] = {"median": float(np.median(col)), "p90": p90, "worst": float(col[-1])}
    return out


def tail_table(summ: dict[str, dict], keys: list[str]) -> list[str]:
    """The tail over runs (issue 13): median / 90th percentile / worst regret at 10, 25 and 50 units,
    runs ending above 5% regret and near-duplicate full trainings."""
    head = " | ".join(f"@{u} u median / p90 / worst" for u in REPORT_AT)
    lines = [f"| method | {head} | runs > 5% @50 u | near-duplicate full trainings |",
             "|---|" + "---|" * len(REPORT_AT) + "---|---|"]
    for k in keys:
        s = summ[k]
        cells = [" / ".join(pct(s["tail_at"][u][q]) for q in ("median", "p90", "worst")) for u in REPORT_AT]
        lines.append(f"| {METHODS[k][0]} | " + " | ".join(cells) + f" | {s['runs_above_5pct']} | {s['near_duplicates']} |")
    return lines


def pct(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{100 * x:.2f}%"


def table(summ: dict[str, dict], keys: list[str]) -> list[str]:
    lines = ["| method | runs (tasks × seeds) | reach 1% | reach 0.5% | regret @10 u | regret @25 u | "
             "regret @50 u | median over runs @50 u | trials started | full trainings | s per run |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in keys:
        s = summ[k]
        at = s["median_regret_at"]
        lines.append(
            f"| {METHODS[k][0]} | {s['runs']} ({s['tasks']} × {len(s['seeds'])}) | {100 * s['share_1pct']:.0f}% | "
            f"{100 * s['share_05pct']:.0f}% | {pct(at[10])} | {pct(at[25])} | {pct(at[50])} | "
            f"{pct(s['median_regret_all_runs_50'])} | {s['mean_trials']:.0f} | {s['mean_full']:.1f} | "
            f"{s['mean_wall_s']:.1f} |")
    return lines


def plot(recs: list[dict], keys: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    styles = {"thrifty": "-", "optuna": "--", "ray": ":", "smac": "-.", "remote": (0, (3, 1, 1, 1))}
    for k in keys:
        rs = [r for r in recs if r["method"] == k]
        if not rs:
            continue
        med = median_curve(rs) * 100
        med = np.where(np.isfinite(med), np.maximum(med, 1e-3), np.nan)
        ax.plot(GRID, med, ls=styles[METHODS[k][1]], lw=2 if k == FLOOR[0] else 1.4,
                label=f"{METHODS[k][0]} ({len({r['seed'] for r in rs})} seeds)")
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlim(0, BUDGET)
    ax.set_xlabel("budget spent (units of one full training)")
    ax.set_ylabel("regret, % (mean over seeds, median over tasks)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def versions(keys: list[str]) -> dict[str, str]:
    import onnxruntime

    out = {"thrifty": th.__version__, "numpy": np.__version__, "onnxruntime": onnxruntime.__version__}
    if any(METHODS[k][1] == "optuna" for k in keys):
        import optuna

        out["optuna"] = optuna.__version__
    if any(METHODS[k][1] == "ray" for k in keys):
        import ray

        out["ray"] = ray.__version__
    if any(METHODS[k][1] == "smac" for k in keys):
        from importlib.metadata import version

        out["smac"] = version("smac")
    import subprocess

    for k in keys:
        if METHODS[k][1] == "remote" and REMOTE[k][2] is not None:
            dist = REMOTE[k][2]
            out[dist] = subprocess.run([str(remote_python(k)), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
                                       capture_output=True, text=True, check=True).stdout.strip()
    return out


def source_state() -> str:
    """The commit of the thrifty measured, and whether src/ had uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE.parent, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=HERE.parent, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes in src/" if dirty else "")


def parse_seeds(text: str) -> list[int]:
    """``N`` (seeds 0..N-1, N >= 1) or a comma-separated list of seeds."""
    seeds = [int(s) for s in text.split(",") if s.strip()] if "," in text else list(range(int(text)))
    if not seeds:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: no seeds; give a count >= 1 (seeds 0..N-1) or a list "
                                         "such as 0,4,7")
    return seeds


def warm_up(keys: list[str]) -> None:
    """Import everything the cells use before the pool forks, so every worker runs the same code
    even if the source tree changes during the run (workers are replaced every few cells)."""
    for key in keys:
        if METHODS[key][1] == "thrifty":
            study = th.Study.create(LCBENCH_SPACE, {"val_acc": "max"}, storage="memory",
                                    scheduler=thrifty_scheduler(key, 0))
            t = study.ask()
            t.report({"val_acc": 1.0}, step=1, cost_usd=0.1, elapsed_s=0.0)
            t.should_stop()
            study.tell(t, {"val_acc": 1.0}, elapsed_s=0.0)
            study.close()
        elif METHODS[key][1] == "optuna":
            import optuna  # noqa: F401
            import optuna.samplers  # noqa: F401


def _pool_init() -> None:
    # One thread per worker: the cells are the parallelism.
    os.environ["OMP_NUM_THREADS"] = "1"


def main() -> int:
    global OBJECTIVE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 tasks, 2 seeds")
    ap.add_argument("--tasks", help="comma-separated task ids (default: the 10 of issue 4)")
    ap.add_argument("--seeds", type=parse_seeds, help="N (seeds 0..N-1) or a comma-separated list (default 10)")
    ap.add_argument("--methods", help="comma-separated method keys (default: all; see --list)")
    ap.add_argument("--ray-seeds", type=int, help="Ray Tune runs on the first N seeds only (default: all)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes for the non-Ray cells")
    ap.add_argument("--no-write", action="store_true", help="print only; write no JSON, PNG or RESULTS.md")
    ap.add_argument("--list", action="store_true", help="list the method keys and exit")
    ap.add_argument("--objective", choices=list(OBJECTIVES), default=OBJECTIVE,
                    help="the surrogate output to optimise (default val_accuracy)")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--tag", help="a supplementary run (letters, digits, '-'): its own RESULTS.md section and "
                                  "benchmarks/multifidelity-TAG.json/.png")
    ap.add_argument("--title", help="with --tag: the words appended to the section's heading (default: the tag)")
    args = ap.parse_args()
    if args.tag is not None and not all(c.isalnum() or c == "-" for c in args.tag):
        ap.error(f"--tag {args.tag!r}: use letters, digits and '-' (it names files); put words in --title")
    OBJECTIVE = args.objective
    stem = "multifidelity" + (f"-{args.tag}" if args.tag else "")
    section_title = SECTION + (f", {args.title or args.tag}" if args.tag else "")
    if args.list:
        for k, (name, _) in METHODS.items():
            print(f"{k:26s} {name}")
        return 0
    tasks = args.tasks.split(",") if args.tasks else (TASKS[:2] if args.quick else TASKS)
    seeds = args.seeds if args.seeds else ([0, 1] if args.quick else list(range(10)))
    keys = args.methods.split(",") if args.methods else list(METHODS)
    unknown = [k for k in keys if k not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
    if "ray-asha" in keys:
        try:
            _ray_env()
            import ray  # noqa: F401
            from ray import tune  # noqa: F401
        except ImportError:
            print("multifidelity: Ray Tune is not installed (pip install 'ray[tune]'): its cells are skipped",
                  file=sys.stderr)
            keys.remove("ray-asha")
    ray_seeds = seeds if args.ray_seeds is None else seeds[:args.ray_seeds]
    try:
        for task in tasks:
            surrogate(task)
    except BenchdataMissing as exc:
        print(f"multifidelity benchmark: {exc}", file=sys.stderr)
        return 2

    cmd = "python " + " ".join(["benchmarks/multifidelity.py"] + sys.argv[1:])
    t_start = time.time()
    src = source_state()
    warm_up(keys)
    print(f"references for {len(tasks)} tasks ...", flush=True)
    for task in tasks:  # computed once here; the forked workers inherit the cache
        ref, unit = reference(task)
        print(f"  {task}: reference {ref:.3f}, unit {unit:.1f} s", flush=True)

    cells = [(t, s, k) for k in keys if METHODS[k][1] != "ray" for t in tasks for s in seeds]
    ray_cells = [(t, s, "ray-asha") for t in tasks for s in ray_seeds] if "ray-asha" in keys else []
    recs: list[dict] = []

    def done(rec: dict) -> None:
        recs.append(rec)
        fr = rec["final_regret"]
        print(f"[{len(recs)}/{len(cells) + len(ray_cells)}] {rec['method']:24s} task {rec['task']:>6s} seed "
              f"{rec['seed']}: regret {pct(fr if fr is not None else math.inf):>7s}, {rec['trials']} trials, "
              f"{rec['full_trainings']} full, {rec['spent_units']:.2f} u, {rec['wall_s']:.1f} s"
              + (f", {rec['near_duplicate_full_trainings']} near-duplicate full" if rec.get("near_duplicate_full_trainings") else "")
              + (f"; ended: {rec['ended']}" if rec.get("ended") else ""), flush=True)

    if args.jobs > 1 and len(cells) > 1:
        with mp.get_context("fork").Pool(args.jobs, initializer=_pool_init, maxtasksperchild=20) as pool:
            for rec in pool.imap_unordered(run_cell, cells):
                done(rec)
    else:
        for cell in cells:
            done(run_cell(cell))
    t_ray = time.time()
    for cell in ray_cells:
        done(run_cell(cell))
    ray_wall = time.time() - t_ray
    if ray_cells:
        import ray

        ray.shutdown()
    wall = time.time() - t_start

    keys_run = [k for k in keys if any(r["method"] == k for r in recs)]
    summ = {k: summarize([r for r in recs if r["method"] == k]) for k in keys_run}
    ray_cmp = {}
    if ray_cells and len(ray_seeds) < len(seeds):
        ray_cmp = {k: summarize([r for r in recs if r["method"] == k and r["seed"] in ray_seeds]) for k in keys_run}
    floor = None
    if all(k in summ for k in FLOOR):
        a, b = summ[FLOOR[0]], summ[FLOOR[1]]
        ok_share = a["share_1pct"] >= b["share_1pct"]
        ok_regret = a["median_regret_at"][50] <= b["median_regret_at"][50]
        floor = {"pass": bool(ok_share and ok_regret), "share_ok": bool(ok_share), "regret_ok": bool(ok_regret)}
    vers = versions(keys_run)
    date = time.strftime("%Y-%m-%d")

    lines = [section_title, "",
             f"Date {date}; machine: {machine()}; command: `{cmd}`; wall time {wall / 60:.1f} min"
             + (f" (Ray Tune cells {ray_wall / 60:.1f} min of it)" if ray_cells else "") + "; "
             + ", ".join(f"{k} {v}" for k, v in vers.items()) + f" (thrifty at {src}). Raw numbers: `benchmarks/{stem}.json`; "
             f"curves: `benchmarks/{stem}.png`.", "",
             f"Protocol of `shared/BENCHMARKING.md` (see the script's docstring): {len(tasks)} LCBench tasks "
             f"({', '.join(tasks)}), seeds {seeds[0]}..{seeds[-1]}, hard budget {BUDGET:.0f} units (1 unit = the "
             f"task's median full-training time), enforced by the benchmark's own ledger for every method; "
             f"ASHA/Hyperband with min 1, max 52 epochs, reduction factor 3 everywhere. Regret @u: mean over seeds "
             f"per task, then the median over tasks (— where a task's seeds had not all found a fully trained "
             f"configuration yet). Objective: epoch-52 `{OBJECTIVE}`. \"Reach 1%\": share of (task, seed) runs whose best configuration trained to "
             f"epoch 52 within the budget has regret ≤ 1%.", ""]
    if ray_cells and len(ray_seeds) < len(seeds):
        lines += [f"**Deviation**: Ray Tune ASHA ran on seeds {', '.join(map(str, ray_seeds))} only (about a "
                  f"second of overhead per trial, hundreds of trials per run: "
                  f"{summ['ray-asha']['mean_wall_s']:.0f} s per run here against "
                  f"{max(summ[k]['mean_wall_s'] for k in keys_run if k != 'ray-asha'):.0f} s at most for the "
                  "others). Its row covers those seeds; the second table compares every method on them.", ""]
    lines += table(summ, keys_run)
    tail_note = ("The tail over runs: each run's regret at 10, 25 and 50 units (—: nothing trained to epoch 52 "
                 "yet); a near-duplicate full training is a configuration trained to epoch 52 within 1% of each "
                 "parameter's range (log scale where log; `thrifty.encoding.NEAR`) of one trained to 52 before "
                 "in the same run:")
    lines += ["", tail_note, ""]
    lines += tail_table(summ, keys_run)
    if floor is not None:
        a, b = summ[FLOOR[0]], summ[FLOOR[1]]
        lines += ["", f"Floor (issue 4): thrifty random+ASHA at least matches Optuna random+Hyperband on the share "
                  f"reaching 1% ({100 * a['share_1pct']:.0f}% vs {100 * b['share_1pct']:.0f}%: "
                  f"{'ok' if floor['share_ok'] else 'no'}) and on the median regret at 50 units "
                  f"({pct(a['median_regret_at'][50])} vs {pct(b['median_regret_at'][50])}: "
                  f"{'ok' if floor['regret_ok'] else 'no'}): **{'PASS' if floor['pass'] else 'FAIL'}**."]
    line5 = floor5(summ)
    if line5 is not None:
        lines += ["", line5]
    if ray_cmp:
        lines += ["", f"Every method on the Ray Tune seeds only ({', '.join(map(str, ray_seeds))}):", ""]
        lines += table(ray_cmp, keys_run)
    lines += ["", "Regret at 50 units per task (mean over seeds):", "",
              "| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for k in keys_run:
        tc = task_curves([r for r in recs if r["method"] == k])
        lines.append(f"| {METHODS[k][0]} | " + " | ".join(pct(float(tc[t][-1])) if t in tc else "" for t in tasks)
                     + " |")
    drift = max((r.get("ledger_drift_units", 0.0) for r in recs), default=0.0)
    recheck = max((r["ledger_recheck_units"] for r in recs), default=0.0)
    ignored = sum(r["epochs_ignored"] for r in recs)
    lines += ["", f"Checks: the ledger of every run, recomputed from scratch from each trial's parameters and "
              f"epochs trained, differs by at most {recheck:.2g} units; thrifty's own cost ledger (every epoch "
              f"reported with its cost) differs from the benchmark's by at most {drift:.2g} units; epochs trained "
              f"after the budget line by any method: {ignored}.", ""]
    section = "\n".join(lines) + "\n"
    print("\n" + section)

    if not args.no_write:
        raw = {"command": cmd, "date": date, "machine": machine(), "versions": vers, "thrifty_source": src, "wall_s": wall,
               "ray_wall_s": ray_wall, "budget_units": BUDGET, "tasks": tasks, "seeds": seeds,
               "ray_seeds": ray_seeds if ray_cells else [], "methods": {k: METHODS[k][0] for k in keys_run},
               "summary": summ, "summary_on_ray_seeds": ray_cmp, "floor": floor,
               "grid_units": GRID.tolist(),
               "median_curves": {k: [None if not math.isfinite(x) else x for x in
                                     median_curve([r for r in recs if r["method"] == k]).tolist()]
                                 for k in keys_run},
               "runs": sorted(recs, key=lambda r: (r["method"], r["task"], r["seed"]))}
        (HERE / f"{stem}.json").write_text(json.dumps(raw, indent=1))
        plot(recs, keys_run, HERE / f"{stem}.png",
             f"LCBench, {len(tasks)} tasks × {len(seeds)} seeds, hard budget {BUDGET:.0f} units")
        write_results(Path(args.out), section_title, section)
        print(f"wrote {args.out}, benchmarks/{stem}.json, benchmarks/{stem}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
