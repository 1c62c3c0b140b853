"""A three-stage scikit-learn pipeline tuned under a dollar budget, with and without memoization.

Run from the repository root (two to four minutes on 2 cores: the two runs side by side, one core
each; the faster the machine, the more trials $0.30 buys):

    .venv/bin/python examples/pipeline.py               # both runs, seed 0
    .venv/bin/python examples/pipeline.py --seed 3 --budget 0.5 --jobs 1

**Data**: scikit-learn's handwritten digits (``load_digits``: 1,797 8x8 images, 10 classes; it
ships with scikit-learn, nothing is downloaded), split once into 1,347 training and 450 validation
images (stratified, ``random_state=0``), pixels standardised on the training images.

**The pipeline** (each stage gets its own parameters and the previous stage's output):

1. ``kernel_pca``: exact RBF kernel PCA fitted on the training images (the dense eigendecomposition
   of the 1,347 x 1,347 kernel matrix), both sets projected onto the leading components.
   Parameters: ``gamma`` (the kernel's width) and ``n_components``. The expensive stage: 0.2 to
   1.4 s on one core, depending on the machine (more components, longer).
2. ``logistic``: multinomial logistic regression (L-BFGS) on the components, optionally
   standardised first. Parameters: ``C`` (inverse L2 strength), ``standardize``. Tens to
   hundreds of milliseconds; its output is the validation set's log-probabilities (a log-softmax
   of the model's logits, so a confident model never gives ``log(0)``).
3. ``calibrate``: temperature scaling of those log-probabilities (divide by ``temperature``,
   renormalise). Parameter: ``temperature``. Milliseconds. Returns the validation log-loss (the
   objective, minimised) and the validation accuracy.

**Pricing**: every trial's wall time is billed as if the machine cost $36 an hour (``pricing=
{"local": 36.0}``: a cent a second, so the dollars are readable); the budget is $0.30 per run,
25 to 100 runs of the whole pipeline depending on the machine, of which the first 10 trials are
the strategy's initial design. Billing wall time makes each run's dollars, and so its path, vary a little from one run
to the next.

The strategy's own time between trials (``eeipu``'s proposals, a few tenths of a second each) is
not billed: with trials this cheap it is not small (a memoised run proposes several times as many
candidates and takes two to four times the wall time).

**With memoization** (the default): each stage's output is kept in the memo cache under its
prefix's parameters, so a trial that keeps an earlier trial's ``gamma`` and ``n_components`` reads
the kernel PCA instead of computing it (and one that also keeps ``C`` and ``standardize`` reads the
fitted model's log-probabilities); the default strategy (``auto``) picks ``eeipu``, which knows
what the cache holds and what each stage costs. **Without**: the same pipeline with every stage
``cache=False``; ``auto`` picks the same ``eeipu``, which then has nothing cached to reuse. The two
runs differ only in the cache.

``benchmarks/pipelines_real.py`` repeats both runs over several seeds and measures the dollars each
needs to reach the same validation log-loss.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core per run: wall time is what is billed

import argparse
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

import thrifty as th

#: $36 an hour: a cent per second of a trial's wall time.
PRICING = {"local": 36.0}
BUDGET_USD = 0.30
OBJECTIVE = {"log_loss": "min"}

_DATA: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, x_val, y_train, y_val)``: the digits, split and standardised once per process."""
    global _DATA
    if _DATA is None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
        scaler = StandardScaler().fit(x_train)
        _DATA = scaler.transform(x_train), scaler.transform(x_val), y_train, y_val
    return _DATA


# -- the stages ------------------------------------------------------------------------------------
def kernel_pca(params: dict[str, Any], _previous: Any) -> dict[str, np.ndarray]:
    """Stage 1: the training and validation images projected on the leading RBF kernel PCA
    components of the training images."""
    from sklearn.decomposition import KernelPCA

    x_train, x_val, _, _ = data()
    kpca = KernelPCA(n_components=params["n_components"], kernel="rbf", gamma=params["gamma"],
                     eigen_solver="dense", random_state=0)
    z_train = kpca.fit_transform(x_train)
    return {"train": z_train.astype(np.float32), "val": kpca.transform(x_val).astype(np.float32)}


def logistic(params: dict[str, Any], features: dict[str, np.ndarray]) -> np.ndarray:
    """Stage 2: multinomial logistic regression on the components; the validation set's
    log-probabilities."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    _, _, y_train, _ = data()
    z_train, z_val = features["train"].astype(np.float64), features["val"].astype(np.float64)
    if params["standardize"]:
        scaler = StandardScaler().fit(z_train)
        z_train, z_val = scaler.transform(z_train), scaler.transform(z_val)
    model = LogisticRegression(C=params["C"], max_iter=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(z_train, y_train)
    return log_softmax(model.decision_function(z_val))  # not log(predict_proba): no log(0) for a sure model


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise ``log(softmax(z))``, computed without overflow or ``log(0)``."""
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def calibrate(params: dict[str, Any], log_proba: np.ndarray) -> dict[str, float]:
    """Stage 3: temperature scaling; the validation log-loss and accuracy."""
    _, _, _, y_val = data()
    log_p = log_softmax(log_proba / params["temperature"])
    rows = np.arange(len(y_val))
    return {"log_loss": float(-log_p[rows, y_val].mean()), "accuracy": float((log_p.argmax(axis=1) == y_val).mean())}


def pipeline(cache: bool = True, cache_dir: str | None = None) -> th.Pipeline:
    """The three stages; ``cache=False`` turns the memo cache off for every stage."""
    return th.Pipeline([
        th.Stage("kernel_pca", kernel_pca, cache=cache, space={
            "gamma": th.Float(1e-3, 1e-1, log=True),
            "n_components": th.Int(16, 256, log=True)}),
        th.Stage("logistic", logistic, cache=cache, space={
            "C": th.Float(1e-2, 1e4, log=True),
            "standardize": th.Categorical([False, True])}),
        th.Stage("calibrate", calibrate, space={"temperature": th.Float(0.2, 5.0, log=True)}),
    ], cache_dir=cache_dir)


# -- one tuning run --------------------------------------------------------------------------------
@dataclass
class Tuned:
    """One run: per trial (in order) its dollars and validation log-loss, the stage runs that were
    cache hits, the best trial, the wall seconds of the whole run (the strategy's proposals
    included), the strategy auto chose, and the median seconds of each stage where it was computed
    (its cache write included) and of a read from the cache (``"read"``)."""

    memo: bool
    seed: int
    costs: list[float]
    losses: list[float]
    hits: int
    best_loss: float
    best_accuracy: float
    best_params: dict[str, Any]
    wall_s: float
    strategy: str
    stage_s: dict[str, float]


    @property
    def spent_usd(self) -> float:
        return float(sum(self.costs))

    def usd_to_reach(self, target: float) -> float:
        """Dollars spent up to and including the first trial whose log-loss is at most
        ``target`` (``inf``: never)."""
        spent = 0.0
        for cost, loss in zip(self.costs, self.losses):
            spent += cost
            if loss <= target:
                return spent
        return math.inf


def chosen(study: th.Study) -> str:
    """The strategies ``auto`` chose in the study (in order), or the study's strategy."""
    changes = getattr(study.strategy, "changes", None)
    return " then ".join(name for _, name, _ in changes) if changes else study.strategy.name


def tune(memo: bool, seed: int = 0, budget_usd: float = BUDGET_USD, cache_dir: str | None = None) -> Tuned:
    """Tune the pipeline once on in-memory storage under ``budget_usd`` (the memo cache in
    ``cache_dir``, a fresh temporary folder by default)."""
    data()  # loaded before the first trial starts, so no trial pays for it
    with tempfile.TemporaryDirectory(prefix="thrifty-pipeline-") as tmp:
        study = th.Study.create(pipeline=pipeline(memo, cache_dir or os.path.join(tmp, "cache")),
                                objective=OBJECTIVE, storage="memory", seed=seed,
                                budget=th.Budget(usd=budget_usd), pricing=PRICING, artifact_root=tmp)
        t0 = time.perf_counter()
        study.optimize(progress=False)
        wall = time.perf_counter() - t0
        trials = sorted(study.trials, key=lambda t: t.number)
        losses = [float(t.metrics.get("log_loss", math.inf)) if t.state is th.TrialState.COMPLETED else math.inf
                  for t in trials]
        runs = study.storage.stage_runs(study.id)
        stage_s = {}
        for stage in study.pipeline.stages:
            ran = [r.elapsed_s for r in runs if r.name == stage.name and r.outcome == "run"]
            if ran:
                stage_s[stage.name] = float(np.median(ran))
        reads = [r.elapsed_s for r in runs if r.outcome == "hit"]
        if reads:
            stage_s["read"] = float(np.median(reads))
        done = [t for t in trials if t.state is th.TrialState.COMPLETED]
        best = study.best if done else None  # a budget smaller than one trial completes none
        out = Tuned(memo, seed, [t.cost_usd for t in trials], losses, len(reads),
                    float(best.metrics["log_loss"]) if best else math.inf,
                    float(best.metrics["accuracy"]) if best else math.nan, dict(best.params) if best else {}, wall,
                    chosen(study), stage_s)
        study.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=BUDGET_USD, help="dollars per run (default %(default)s)")
    ap.add_argument("--jobs", type=int, choices=(1, 2), default=2,
                    help="2 (default): the two runs side by side, one core each; 1: one after the other")
    args = ap.parse_args(argv)
    print(f"tuning with and without memoization, ${args.budget:.2f} each ...", flush=True)
    data()  # before the fork: both runs start with the data loaded
    tasks = [(True, args.seed, args.budget), (False, args.seed, args.budget)]
    if args.jobs == 2:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(2) as pool:
            runs = pool.starmap(tune, tasks, chunksize=1)
    else:
        runs = [tune(*task) for task in tasks]
    with_memo, without = runs
    target = without.best_loss
    print()
    print(f"{'':22s} {'candidates':>10s} {'cache hits':>10s} {'spent':>8s} {'best log-loss':>14s} "
          f"{'accuracy':>9s} {'wall s':>7s}")
    for r in runs:
        print(f"{'with memoization' if r.memo else 'without memoization':22s} {len(r.costs):10d} {r.hits:10d} "
              f"${r.spent_usd:7.4f} {r.best_loss:14.4f} {r.best_accuracy:9.4f} {r.wall_s:7.1f}")
    print("\nmedian seconds of a stage where it ran: "
          + ", ".join(f"{k} {v:.3f}" for k, v in with_memo.stage_s.items() if k != "read")
          + (f"; a cache read {with_memo.stage_s['read']:.3f}" if "read" in with_memo.stage_s else ""))
    print(f"strategy (auto): {with_memo.strategy} / {without.strategy}")
    reach_memo, reach_plain = with_memo.usd_to_reach(target), without.usd_to_reach(target)
    print(f"dollars to reach log-loss {target:.4f} (the best without memoization): "
          f"${reach_memo:.4f} with memoization, ${reach_plain:.4f} without"
          + (f" ({reach_memo / reach_plain:.2f}x)" if math.isfinite(reach_memo) else " (never reached with it)"))
    print(f"best configuration with memoization: {with_memo.best_params}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
