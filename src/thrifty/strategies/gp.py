"""Gaussian-process Bayesian optimisation (``strategy="gp"``).

The first ``n_startup`` trials (default ``max(5, 2 * dims)``) are the study's scrambled Sobol'
points (those of ``strategy="sobol"``); after that each proposal fits a GP to the history and
maximises an acquisition function. Everything is a function of ``(space, history, seed, number)``:
nothing is remembered between proposals, so any worker proposes the same point for the same
history.

**Model** (:mod:`thrifty.numerics.gp`). Inputs are the space's unit-cube encoding
(:func:`thrifty.encoding.encoder_of`, log scale where the space says log). Floats and ints are continuous inputs (ints are rounded when the
point is decoded, and candidates are snapped to valid values before they are scored);
categoricals are one-hot with one length scale per categorical (a Hamming kernel term: two choices
are either equal or different, never "near"); an inactive conditional parameter takes a fixed
value plus a 0/1 "inactive" indicator input with its own length scale. The kernel is an ARD
Matérn-5/2 with an amplitude, plus Gaussian noise with a floor of 1e-6 (of the standardised
variance). Length scales, amplitude and noise are the maximum a posteriori under weak log-normal
priors (the length scales' prior scales with the dimension, Hvarfner et al. 2024), by L-BFGS-B
with analytic gradients from several starts.

**Targets.** The objective is turned into a quantity to minimise (``"max"`` objectives are
negated); several objectives are scalarised ParEGO-style (augmented Chebyshev with weights drawn
per trial number). Values are then robustly scaled (median and MAD), the bad tail beyond 2 MADs is
compressed logarithmically (outliers do not flatten the model where it matters), and the result is
standardised. Trials that failed, INFEASIBLE trials without metrics (the objective raised
``TrialInfeasible``) and completed trials whose objective is NaN or infinite count as observations
with the *worst* value observed so far, so the model steers away from them. An INFEASIBLE trial
with its metrics (it broke a constraint) counts with its value and is never the incumbent. Stopped and paused trials count with their last reported value; pending and running
trials are "in flight" (see below); failed trials that a retry replaced are ignored.

**Acquisition.** Log expected improvement, computed stably as in Ament et al. (2023), over the
best posterior mean at a feasible observed point. It is maximised over scrambled Sobol'
candidates (``n_candidates``) plus perturbations of the best observed points, then refined from
the best 5 candidates by L-BFGS-B on their active continuous dimensions (analytic gradients), then
by one-step moves of the discrete parameters (every other choice of a categorical, the next int up
and down). Points already in the history (any state) are never proposed again; an all-discrete
space with at most 4096 combinations is enumerated instead, and when every combination has been
tried the strategy is exhausted. Nor is a *near-duplicate* of a point in the history (or of one
already proposed in the batch) proposed: every parameter within 1% of its range and the same
choices (:data:`thrifty.encoding.NEAR`); the best-scoring candidate that is not one wins. A
deterministic objective would return what is known, and a noisy one learns about as much 1%
away; without the rule a model drawn to a corner of the space (or one reading a ``bohb`` level
view as mostly noise) trained the same configuration to the end over and over. On a measurably noisy objective (fitted noise variance at least
``NOISY`` = 0.1% of the data's), nor are points where the posterior variance is already below the
noise variance (capped at 1% of the data's variance) proposed, unless nothing else is left:
otherwise EI may resample the incumbent's immediate neighbourhood over and over for noise-sized
"improvements". On a deterministic objective that neighbourhood is where the optimum's last digits
are, so the rule is off there (with it, GP runs on Branin stalled short of the optimum).

**Trials in flight (batch).** Kriging believer: pending and running trials (and, for ``n > 1``,
the points already proposed in this batch) are added to the GP as observations whose value is the
posterior mean there (from the model fitted on finished trials only; the hyperparameters are fitted
on finished trials only). The posterior variance collapses around them, so other workers are sent
elsewhere.

**Constraints** (the study's ``constraints``: metric -> ``("<=" | ">=", bound)``): each metric
gets its own GP; the acquisition adds ``log P(feasible)`` (Gardner et al. 2014), the incumbent is
the best *feasible* observation and, until one exists, the acquisition is ``log P(feasible)``
alone. Failed and infeasible trials without the metric count with its worst observed value (or,
if that value satisfies the bound, just beyond the bound).

**Cost-aware** (``cost_aware=True``, or ``None`` = on when the study has a dollar budget and a
fitted cost model): EI per unit of predicted cost with cost cooling (CArBO, Lee et al. 2020): the
acquisition is ``log EI - alpha * log cost`` where ``cost`` is the cost model's median forecast at
the full resource and ``alpha = (budget - spent) / budget`` goes from 1 to 0 as the budget is
spent (``alpha = 1`` without a budget). The gradient refinement uses a linear fit of log cost over
the scored candidates; the final choice uses the cost model itself.

**Cost premium** (how :mod:`~thrifty.strategies.mfgp` uses it): the same with ``log cost``
replaced by ``max(0, log cost - log typical)``, ``typical`` the median forecast over 256 seeded
Sobol' points of the space: a configuration pays in expected improvement only for what it costs
above a typical one (ten times the typical cost needs ten times the EI), and cheap configurations
get no bonus (plain EI per unit cost drifts to cheap, poor corners: measured in issue 13).

**Speed.** Up to ``max_points`` (300) finished trials the model uses all of them. Beyond that it
uses a subset: the best third (by objective), the most recent third and a seeded random third of
the rest. Hyperparameters are fitted at every proposal while there are at most ``REFIT_ALL`` (24)
observations; beyond, on the first ``a`` observations in trial order, ``a`` the largest *refit
anchor* (24, then each 15% more) not above their number, so they change when the data have grown
by 15%; the fit is memoised on its data, so the proposals in between only condition the GP on every
point. Any worker computes the same fit from the same history: the strategy stays stateless. A fit
uses all its points up to 60; beyond that, from 3 starts on a random 60 (cheap), then refined by a
short L-BFGS-B run on a random 150 starting from that fit.
Proposals run with one BLAS thread. Measured (``study.ask()``, in-memory storage, 2-core machine
under load): about 30 ms per proposal at 40 trials, 50-70 ms at 100 and 100-165 ms (median wall
time) at 300 and 500 trials, on 2- to 10-dimensional spaces.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from thrifty.encoding import encoder_of
from thrifty.errors import StudyExhausted, ValidationError
from thrifty.ranking import measured
from thrifty.space import Float, ParamValue, Space
from thrifty.specs.strategies import GPSpec
from thrifty.strategies.base import Strategy
from thrifty.trial import Trial, TrialState

#: The cost premium's typical configuration: the median forecast over this many Sobol' points.
TYPICAL_SAMPLE = 256
TYPICAL_SEED = 7
#: (cost model, log dollars) of the typical configuration, by (model id, dims, pinned values).
_TYPICAL_MEMO: dict[tuple[int, Any, bytes], tuple[Any, float]] = {}
#: Hyperparameters are fitted on all points up to this many; beyond, coarse-to-fine (module doc).
FIT_SMALL = 60
#: The fine hyperparameter fit uses at most this many points.
FIT_MAX = 150
#: All-discrete spaces with at most this many combinations are enumerated.
MAX_ENUMERATE = 4096
#: Starting points of the gradient refinement.
N_REFINE = 5
#: Fitted noise variance (share of the standardised data's variance, i.e. a noise standard deviation of
#: about 3% of the data's) from which the objective counts as noisy for the resampling guard of
#: ``_Model._score``. Deterministic objectives fit ~1e-6 to 3e-4 (the noise prior's median).
NOISY = 1e-3
#: Candidates whose cost is forecast in cost-aware mode (the best by EI).
COST_POOL = 256
#: Hyperparameters are refitted at every proposal up to this many observations, then each time
#: the observations grow by ``REFIT_GROWTH`` (:meth:`_Model._hyperparameters`).
REFIT_ALL = 24
REFIT_GROWTH = 1.15
#: Memoised hyperparameter fits: (seed, anchor, parameter names, points, targets) -> theta.
_FITS: dict[tuple[Any, ...], Any] = {}


def refit_anchor(n: int) -> int:
    """The number of observations the hyperparameters are fitted on when there are ``n``: ``n`` up
    to ``REFIT_ALL``, then the largest of ``REFIT_ALL``, ``ceil(REFIT_ALL * REFIT_GROWTH)``, ...
    (each the ceiling of the previous times ``REFIT_GROWTH``) not above ``n``."""
    if n <= REFIT_ALL:
        return n
    a = REFIT_ALL
    while True:
        nxt = math.ceil(a * REFIT_GROWTH)
        if nxt > n:
            return a
        a = nxt


class GP(Strategy):
    """Gaussian-process Bayesian optimisation with log expected improvement (module doc).

    ``n_startup``: quasi-random (Sobol') trials before the model is used (``None``:
    ``max(5, 2 * dims)``). ``cost_aware``: divide EI by the forecast cost, with cost cooling
    (``None``: when the study has a dollar budget and a cost model). ``n_candidates``: quasi-random
    candidates the acquisition is scored on (a power of 2 is best). ``max_points``: finished trials
    the model is fitted on (beyond: a subset, see the module doc).
    """

    name = "gp"
    needs_history = True
    slow = True

    def __init__(self, n_startup: int | None = None, cost_aware: bool | None = None,
                 n_candidates: int = 1024, max_points: int = 300) -> None:
        self.spec = spec = GPSpec(n_startup, cost_aware, n_candidates, max_points)
        self.n_startup = spec.n_startup
        self.cost_aware = spec.cost_aware
        self.n_candidates = spec.n_candidates
        self.max_points = spec.max_points
        self.wants_cost_model = spec.cost_aware is True
        #: With ``cost_aware``: charge only the cost above the space's typical configuration
        #: (``log EI - alpha * max(0, log cost - log typical)``; see "Cost premium" in the module
        #: doc). Set by :class:`~thrifty.strategies.mfgp.MFGP`; not a spec argument of ``gp``.
        self.cost_premium = False
        self._features: dict[Space, Any] = {}

    def prepare(self, space: Space) -> None:
        import scipy.optimize  # noqa: F401 - slow imports, done outside the ask transaction
        import scipy.stats  # noqa: F401

        import thrifty.numerics.acquisition  # noqa: F401
        import thrifty.numerics.gp  # noqa: F401

    def _group_features(self, space: Space) -> Any:
        """The kernel features of ``space``'s encoding (built once per space)."""
        from thrifty.numerics.features import GroupFeatures

        feat = self._features.get(space)
        if feat is None:
            feat = self._features[space] = GroupFeatures(encoder_of(space))
        return feat

    # -- proposing ----------------------------------------------------------------------------
    def propose(
        self, space: Space, history: Sequence[Trial], *, seed: int, number: int, n: int = 1
    ) -> list[dict[str, ParamValue]]:
        import numpy as np

        if space.n_dims == 0:
            return [space.decode(np.empty(0)) for _ in range(n)]
        return self._run(_Proposer(self, space, history, seed, number), n)

    def propose_pinned(
        self, space: Space, history: Sequence[Trial], *, seed: int, number: int, n: int = 1,
        pinned: Mapping[str, float], also_taken: Sequence[Mapping[str, ParamValue]] = (),
    ) -> list[dict[str, ParamValue]]:
        """:meth:`propose` with the float parameters of ``pinned`` held at the given values: no
        candidate moves them, and the incumbent of expected improvement is the best observation at
        those values (any observation while there is none). ``also_taken``: further parameter sets
        (``pinned`` filled in) never to propose. The near-duplicate rule compares every parameter,
        the pinned ones included: for ``mfgp``, which asks a GP over (configuration, resource) for a
        configuration at the full resource this way, a near-duplicate is one of a configuration
        already trained to (about) the full resource."""
        for name in pinned:
            if name not in space or not isinstance(space[name], Float):
                raise ValidationError(f"GP.propose_pinned: {name!r} is not a float parameter of the space")
        return self._run(_Proposer(self, space, history, seed, number, pinned=pinned, also_taken=also_taken), n)

    @staticmethod
    def _run(proposer: _Proposer, n: int) -> list[dict[str, ParamValue]]:
        # One BLAS thread: these matrices are small, and OpenBLAS threads spinning side by side
        # stall the workers of a study that propose at the same time on a few cores.
        with blas_controller().limit(limits=1, user_api="blas"):
            return proposer.run(n)


_CONTROLLER: list[Any] = []


def blas_controller() -> Any:
    """A cached ``threadpoolctl.ThreadpoolController`` (finding the libraries takes milliseconds).

    It knows only the BLAS libraries loaded when it is made, and scipy brings its own: scipy is
    imported first, so that its BLAS is limited too whatever the process imported before (a
    proposal's numbers must not depend on the import order)."""
    if not _CONTROLLER:
        import scipy.linalg  # noqa: F401 - loads scipy's BLAS before the controller looks
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


@dataclass
class _Data:
    """The history as model inputs: canonical points and minimisation targets."""

    x: Any  # (n, D) canonical points of settled trials with an observation
    y: Any  # (n,) objective to minimise (worst value for failures), raw scale
    failed: Any  # (n,) bool: failed/infeasible/non-finite (y was filled in)
    numbers: Any  # (n,) trial numbers
    cons: list[tuple[Any, float]]  # per constraint: (values as "<= bound", NaN filled; bound)
    feasible: Any  # (n,) bool: no failure and every constraint met
    pending: list[Any] = field(default_factory=list)  # canonical points in flight


class _Proposer:
    def __init__(self, strategy: GP, space: Space, history: Sequence[Trial], seed: int, number: int,
                 pinned: Mapping[str, float] | None = None,
                 also_taken: Sequence[Mapping[str, ParamValue]] = ()) -> None:
        import numpy as np

        self.s = strategy
        self.space = space
        self.feat = strategy._group_features(space)
        self.enc = self.feat.encoder
        self.history = history
        self.seed = int(seed) & 0xFFFFFFFF
        self.number = int(number)
        self.ctx = strategy.context
        self.np = np
        self.n_startup = strategy.n_startup if strategy.n_startup is not None else max(5, 2 * space.n_dims)
        self.all_points = self.enc.all_points(MAX_ENUMERATE)
        # Every trial's canonical point, once (the model's inputs and the duplicate check).
        self.points = self.enc.snap(self.enc.encode([t.params for t in history])) if history \
            else np.empty((0, space.n_dims))
        self.taken = set(self.enc.keys(self.points))
        self.batch: list[Any] = []  # this call's proposals so far (canonical points)
        # Pinned dimensions (propose_pinned): canonical columns and their values.
        self.pin_cols = np.array([space.dim_names.index(name) for name in pinned or {}], dtype=int)
        ref = {**space.decode(np.full(space.n_dims, 0.5)), **(pinned or {})}
        self.pin_vals = self.enc.snap(self.enc.encode([ref]))[0, self.pin_cols]
        if len(also_taken):
            extra = self.enc.snap(self.enc.encode([{**q, **(pinned or {})} for q in also_taken]))
            self.taken.update(self.enc.keys(extra))

    def known_points(self) -> Any:
        """Canonical points of every trial in the history and of this batch's proposals so far."""
        if self.batch:
            return self.np.vstack([self.points, self.np.array(self.batch)])
        return self.points

    def pin(self, x: Any) -> Any:
        """``x`` (unit-cube or canonical points, one per row) with the pinned columns set."""
        if len(self.pin_cols):
            x = x.copy()
            x[..., self.pin_cols] = self.pin_vals
        return x

    def rng(self, tag: int, k: int | None = None) -> Any:
        return self.np.random.default_rng([self.seed, self.number if k is None else k, tag])

    def run(self, n: int) -> list[dict[str, ParamValue]]:
        data = self._data()
        model: _Model | None = None
        out = []
        for j in range(n):
            k = self.number + j
            use_model = k >= self.n_startup and int((~data.failed).sum()) >= 1 and len(data.y) >= 2
            if use_model:
                if model is None:
                    model = _Model(self, data)
                x = model.propose(k, data.pending)
            else:
                x = self._quasi_random(k)
            key = self.enc.keys(x[None, :])[0]
            self.taken.add(key)
            self.batch.append(x)
            data.pending.append(x)
            out.append(self.space.decode(self.np.nan_to_num(x, nan=0.5)))
        return out

    # -- history ------------------------------------------------------------------------------
    def _data(self) -> _Data:
        np = self.np
        objectives = dict(self.ctx.objectives)
        constraints = dict(self.ctx.constraints)
        rows, ys, numbers, fails, cvals, pending, told_infeasible = [], [], [], [], [], [], []
        for row, t in enumerate(self.history):
            st = t.state
            if st in (TrialState.PENDING, TrialState.RUNNING):
                pending.append(row)
                continue
            vals = [t.metrics.get(m) for m in objectives]
            finite = all(v is not None and math.isfinite(v) for v in vals)
            if st in (TrialState.STOPPED, TrialState.PAUSED) and not finite:
                if st is TrialState.PAUSED:
                    pending.append(row)  # it may resume and finish
                continue  # stopped before any report: says nothing about the configuration
            if st is TrialState.FAILED and t.retried:
                continue  # its worker died; the retry stands for it
            # An INFEASIBLE trial with its metrics (it broke a constraint) is an observation.
            failed = st is TrialState.FAILED or not measured(t) or not finite
            rows.append(row)
            told_infeasible.append(st is TrialState.INFEASIBLE)
            ys.append([(-v if objectives[m] == "max" else v) if finite else np.nan
                       for m, v in zip(objectives, vals)])
            fails.append(failed)
            numbers.append(t.number)
            cvals.append([t.metrics.get(m, math.nan) for m in constraints])
        x = self.points[rows]
        failed = np.array(fails, dtype=bool)
        y = self._scalarise(np.array(ys, dtype=float).reshape(len(rows), len(objectives)), failed)
        if (~failed).any():
            y[failed] = np.max(y[~failed])
        cons = []
        feasible = ~failed & ~np.array(told_infeasible, dtype=bool)
        cv = np.array(cvals, dtype=float).reshape(len(rows), len(constraints))
        for j, (op, bound) in enumerate(constraints.values()):
            v, b = (cv[:, j], float(bound)) if op == "<=" else (-cv[:, j], -float(bound))
            ok = np.isfinite(v)
            feasible = feasible & ok & (np.where(ok, v, np.inf) <= b)
            if ok.any():
                worst = float(np.max(v[ok]))
                if worst <= b:  # nothing observed breaks it: put failures just beyond the bound
                    spread = float(np.ptp(v[ok])) if ok.sum() > 1 else 0.0
                    worst = b + max(spread, abs(b) * 0.1, 1e-3)
                v = np.where(ok, v, worst)
            cons.append((v, b))
        pend_x = list(self.points[pending])
        return _Data(x=x, y=y, failed=failed, numbers=np.array(numbers, dtype=int), cons=cons,
                     feasible=feasible, pending=pend_x)

    def _scalarise(self, y: Any, failed: Any) -> Any:
        """One minimisation target per row: the objective, or ParEGO's augmented Chebyshev
        scalarisation of several (weights drawn for this trial number)."""
        np = self.np
        if y.shape[1] == 1:
            return y[:, 0].copy()
        ok = ~failed
        out = np.full(len(y), np.nan)
        if not ok.any():
            return out
        lo, hi = np.min(y[ok], axis=0), np.max(y[ok], axis=0)
        norm = (y[ok] - lo) / np.where(hi > lo, hi - lo, 1.0)
        w = self.rng(11).dirichlet(np.ones(y.shape[1]))
        out[ok] = np.max(norm * w, axis=1) + 0.05 * norm @ w
        return out

    # -- quasi-random points ------------------------------------------------------------------
    def _quasi_random(self, k: int) -> Any:
        """Sobol' point ``k`` of the study's sequence (the next unused one if taken)."""
        np = self.np
        from scipy.stats import qmc

        engine = qmc.Sobol(d=self.space.n_dims, scramble=True, seed=np.random.default_rng(self.seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if k:
                engine.fast_forward(k)
            pts = self.pin(self.enc.snap(engine.random(64)))
        for x, key in zip(pts, self.enc.keys(pts)):
            if key not in self.taken:
                return x
        return self._untaken(self.pin(self.enc.snap(self.rng(3, k).random((256, self.space.n_dims)))))

    def _untaken(self, fallback: Any) -> Any:
        if self.all_points is not None:
            free = [x for x, key in zip(self.all_points, self.enc.keys(self.all_points)) if key not in self.taken]
            if not free:
                raise StudyExhausted(
                    f"strategy 'gp': all {len(self.all_points)} configurations of the space have been tried",
                    "strategy",
                )
            return free[int(self.rng(4).integers(len(free)))]
        for x, key in zip(fallback, self.enc.keys(fallback)):
            if key not in self.taken:
                return x
        return fallback[0]


class _Model:
    """The fitted GPs of one proposal, and the acquisition's maximisation."""

    def __init__(self, p: _Proposer, data: _Data) -> None:
        from thrifty.numerics.gp import GaussianProcess

        np = p.np
        self.p, self.np, self.enc, self.feat = p, np, p.enc, p.feat
        rng = p.rng(1)
        idx = self._subset(data, rng)
        self.x = data.x[idx]
        self.f = self.feat.features(self.x)
        self.y = standardise(data.y[idx])
        self.feasible = data.feasible[idx]
        self.real_ok = ~data.failed[idx]
        self.gp = GaussianProcess(self.feat)
        self.theta = self._hyperparameters(data, rng)
        self.gp.condition(self.theta, self.f, self.y)
        self.cons = []  # (GP model, standardised values, standardised bound)
        for v, b in data.cons:
            vv = v[idx]
            mu, sd = float(np.mean(vv)), float(np.std(vv)) or 1.0
            cy = (vv - mu) / sd
            cgp = GaussianProcess(self.feat)
            th = self._fit(cgp, self.f, cy, rng, warm=self.theta, small=True)
            cgp.condition(th, self.f, cy)
            self.cons.append((cgp, cy, th, (b - mu) / sd))
        # The incumbent's candidates: feasible successes at the pinned values (any, while none is).
        self.incumbent_ok = self.feasible & self.real_ok
        if len(p.pin_cols):
            at = np.all(np.isclose(self.x[:, p.pin_cols], p.pin_vals[None, :]), axis=1)
            if (self.incumbent_ok & at).any():
                self.incumbent_ok = self.incumbent_ok & at
        self.has_incumbent = bool(self.incumbent_ok.any())
        self.cost = _CostTerm.make(p, self.feat)

    def _subset(self, data: _Data, rng: Any) -> Any:
        """Indices of the points the model uses: all, or beyond ``max_points`` the best third,
        the most recent third and a random third of the rest."""
        np = self.np
        n, cap = len(data.y), self.p.s.max_points
        if n <= cap:
            return np.arange(n)
        k = cap // 3
        order = np.argsort(data.y, kind="stable")
        chosen = set(order[:k].tolist())
        recent = [i for i in np.argsort(-data.numbers, kind="stable") if i not in chosen][:k]
        chosen.update(recent)
        rest = np.array([i for i in range(n) if i not in chosen])
        chosen.update(rng.choice(rest, size=cap - len(chosen), replace=False).tolist())
        return np.array(sorted(chosen))

    def _hyperparameters(self, data: _Data, rng: Any) -> Any:
        """The GP's hyperparameters: fitted on every model point while there are at most
        ``REFIT_ALL`` observations; beyond, fitted on the first ``a`` observations (history order),
        ``a`` the largest refit anchor (``REFIT_ALL`` times powers of ``REFIT_GROWTH``) not above
        their number, so they are refitted each time the data grow by that factor. A function of
        the history alone (any worker fits the same); the fit is memoised on its data, so the
        proposals between two anchors only condition the GP on all points."""
        n = len(data.y)
        a = refit_anchor(n)
        if a >= n:
            return self._fit(self.gp, self.f, self.y, rng)
        x = data.x[:a]
        y = standardise(data.y[:a])
        key = (self.p.seed, a, self.feat.encoder.names, x.tobytes(), y.tobytes())
        theta = _FITS.get(key)
        if theta is None:
            theta = self._fit(self.gp, self.feat.features(x), y, self.p.rng(1, a))
            _FITS[key] = theta
            while len(_FITS) > 16:
                _FITS.pop(next(iter(_FITS)))
        return theta

    def _fit(self, gp: Any, f: Any, y: Any, rng: Any, warm: Any = None, small: bool = False) -> Any:
        np = self.np
        n = len(y)
        starts = gp.default_starts() if warm is None else [warm, gp.default_starts()[0]]
        if warm is None:
            starts.append(gp.random_start(rng))
        if n <= FIT_SMALL:
            return gp.fit(f, y, starts)
        sub = np.sort(rng.choice(n, size=FIT_SMALL, replace=False))
        theta = gp.fit(f[sub], y[sub], starts)
        if small:
            return theta
        sub = np.sort(rng.choice(n, size=min(n, FIT_MAX), replace=False))
        return gp.fit(f[sub], y[sub], [theta], maxiter=50)

    # -- one proposal -------------------------------------------------------------------------
    def propose(self, k: int, pending: list[Any]) -> Any:
        np = self.np
        gp, cons = self.gp, self.cons
        if pending:  # kriging believer: in-flight points at their posterior mean
            xp = np.array(pending)
            fp = self.feat.features(xp)
            f = np.vstack([self.f, fp])
            gp = type(self.gp)(self.feat).condition(self.theta, f, np.r_[self.y, self.gp.predict(fp)[0]])
            cons = []
            for cgp, cy, th, b in self.cons:
                cf = type(cgp)(self.feat).condition(th, f, np.r_[cy, cgp.predict(fp)[0]])
                cons.append((cf, cy, th, b))
        self.acq = _Acquisition(self, gp, cons)
        return self._maximise(k)

    def _maximise(self, k: int) -> Any:
        np = self.np
        p, enc = self.p, self.enc
        rng = p.rng(2, k)
        if p.all_points is not None:
            keys = enc.keys(p.all_points)
            x = np.array([xi for xi, key in zip(p.all_points, keys) if key not in p.taken])
            if not len(x):
                p._untaken(None)  # raises StudyExhausted
            u = np.nan_to_num(x, nan=0.5)
        else:
            u = self._candidates(rng)
            x = enc.snap(u)
        score = self._score(x)
        if self.cost is not None:
            score = self.cost.prepare(x, score, rng)
        if p.all_points is None:
            u, x, score = self._refine(u, x, score, rng)
        if self.cost is not None:
            score = self.cost.final(x, score)
        best = self._best_new(x, score)
        if best is None:  # everything known too well: drop that rule
            score = self._score(x, guard=False)
            if self.cost is not None:
                score = self.cost.final(x, score)
            best = self._best_new(x, score)
            if best is None:
                return p._untaken(x)
        return x[best]

    def _best_new(self, x: Any, score: Any) -> int | None:
        """The index of the best-scoring candidate that is worth a trial, or None: a finite score
        and not a near-duplicate (:data:`thrifty.encoding.NEAR`: every parameter within 1% of its
        range) of a point already tried or proposed in this batch. On a deterministic objective
        measuring it again returns what is known; on a noisy one a point 1% away teaches the model
        about as much as a repeat. Without this rule a model drawn to a corner of the space (or one
        that reads an objective as mostly noise, as ``bohb``'s level views with imputed stopped
        trials often do) pays for the same answer over and over. Enumerated spaces keep only the
        exact-duplicate rule."""
        np = self.np
        order = np.argsort(-score, kind="stable")
        order = order[np.isfinite(score[order])]
        if not len(order):
            return None
        if self.p.all_points is not None:
            return int(order[0])
        return self.enc.first_not_near(x, order, self.p.known_points())

    def _score(self, x: Any, guard: bool = True) -> Any:
        """Acquisition at canonical points; ``-inf`` for points already in the history and
        (``guard``, unless the space is enumerated, and only when the objective is measurably noisy:
        fitted noise variance at least ``NOISY`` of the data's) for points where the model already
        knows the value better than one more measurement would tell (posterior variance below the
        noise variance, capped at 0.01 of the data's variance): without that rule EI on a noisy
        objective may sample the incumbent's neighbourhood again and again for noise-sized
        "improvements". On a (nearly) deterministic objective that neighbourhood is exactly where
        the last digits of the optimum are, so there the rule is off."""
        np = self.np
        val, var = self.acq.value(self.feat.features(x))
        val = np.where(np.isnan(val), -np.inf, val)
        taken = np.array([key in self.p.taken for key in self.enc.keys(x)])
        noise = self.acq.gp.noise
        if guard and self.p.all_points is None and noise >= NOISY:
            taken |= var < min(noise, 1e-2)
        return np.where(taken, -np.inf, val)

    def _candidates(self, rng: Any) -> Any:
        """Sobol' points plus perturbations of the best observed points (unit cube)."""
        np = self.np
        from scipy.stats import qmc

        d = self.enc.n_dims
        m = self.p.s.n_candidates
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sobol = qmc.Sobol(d=d, scramble=True, seed=rng).random(m)
        ok = self.incumbent_ok if self.has_incumbent else self.real_ok
        pool = np.flatnonzero(ok) if ok.any() else np.arange(len(self.y))
        best = pool[np.argsort(self.y[pool], kind="stable")[:5]]
        n_local = max(m // 4, 16)
        base = self.x[best[rng.integers(len(best), size=n_local)]]
        base = np.where(np.isnan(base), rng.random(base.shape), base)
        sd = rng.choice([0.01, 0.03, 0.1], size=(n_local, 1))
        local = base.copy()
        cont = self.enc.continuous
        local[:, cont] = base[:, cont] + sd * rng.standard_normal((n_local, len(cont)))
        flip = rng.random((n_local, d)) < 1.0 / d
        flip[:, cont] = False
        local = np.where(flip, rng.random((n_local, d)), local)
        return self.p.pin(np.vstack([sobol, np.clip(local, 0.0, 1.0)]))

    def _refine(self, u: Any, x: Any, score: Any, rng: Any) -> tuple[Any, Any, Any]:
        """Gradient refinement of the best candidates on their active continuous dims, then
        one-step moves of the discrete dims; returns all points scored."""
        np = self.np
        enc = self.enc
        order = np.argsort(-score, kind="stable")
        starts = [i for i in order[:N_REFINE] if np.isfinite(score[i])]
        if starts and len(enc.continuous):
            ur = self._gradient_step(u[starts], x[starts])
            xr = enc.snap(ur)
            u, x, score = np.vstack([u, ur]), np.vstack([x, xr]), np.r_[score, self._score(xr)]
        if enc.has_discrete:
            for _ in range(2):
                order = np.argsort(-score, kind="stable")[:3]
                moves = [enc.neighbours(u[i], x[i]) for i in order if np.isfinite(score[i])]
                moves = [mv for mv in moves if len(mv)]
                if not moves:
                    break
                un = np.vstack(moves)
                xn = enc.snap(un)
                sn = self._score(xn)
                improved = np.max(sn) > np.max(score)
                u, x, score = np.vstack([u, un]), np.vstack([x, xn]), np.r_[score, sn]
                if not improved:
                    break
        return u, x, score

    def _gradient_step(self, u: Any, x: Any) -> Any:
        """The candidates ``u`` (snapped: ``x``) after L-BFGS-B on the acquisition over their
        active, unpinned continuous dims."""
        np = self.np
        from thrifty.numerics.acquisition import gradient_refine

        cont = self.enc.continuous
        free = ~np.isnan(x[:, cont]) & ~np.isin(cont, self.p.pin_cols)[None, :]  # (B, C): active, not pinned
        if not free.any():
            return u
        refined = gradient_refine(lambda xb: self.acq.value_grad(self.feat.features(xb), xb), x, free, cont)
        rows, cols = np.nonzero(free)
        out = u.copy()
        out[rows, cont[cols]] = refined[rows, cont[cols]]
        return out


class _Acquisition:
    """log EI (or, with no feasible point yet, nothing) + sum of log P(feasible) - cost term."""

    def __init__(self, model: _Model, gp: Any, cons: list[Any]) -> None:
        np = model.np
        self.np, self.gp, self.cons = np, gp, cons
        self.cost = model.cost
        self.cont_cols = model.feat.dim_col[model.enc.continuous]
        n = len(model.y)
        if model.has_incumbent:
            mean = gp.train_mean()[:n]
            self.best: float | None = float(np.min(mean[model.incumbent_ok]))
        else:
            self.best = None

    def value(self, f: Any) -> Any:
        from thrifty.numerics.acquisition import log_ei, log_prob_below

        mean, var = self.gp.predict(f)
        total = log_ei(mean, var, self.best) if self.best is not None else self.np.zeros(len(f))
        for cgp, _, _, b in self.cons:
            c_mean, c_var = cgp.predict(f)
            total += log_prob_below(c_mean, c_var, b)
        if self.cost is not None:
            total -= self.cost.linear(f[:, self.cont_cols])
        return total, var

    def value_grad(self, f: Any, x: Any) -> tuple[Any, Any]:
        from thrifty.numerics.acquisition import log_ei_grad, log_prob_below_grad

        np = self.np
        total = np.zeros(len(f))
        grad = np.zeros((len(f), len(self.cont_cols)))
        if self.best is not None:
            val, g = log_ei_grad(*self.gp.predict_grad(f, self.cont_cols), self.best)
            total += val
            grad += g
        for cgp, _, _, b in self.cons:
            val, g = log_prob_below_grad(*cgp.predict_grad(f, self.cont_cols), b)
            total += val
            grad += g
        if self.cost is not None:
            total -= self.cost.linear(f[:, self.cont_cols])
            grad -= self.cost.slope[None, :]
        return total, grad


class _CostTerm:
    """``alpha * log cost`` for cost-aware search (CArBO's cost cooling), or with
    ``GP.cost_premium`` ``alpha * max(0, log cost - log typical)``: only what a configuration costs
    above the space's typical one (the median forecast over :data:`TYPICAL_SAMPLE` seeded Sobol'
    points of the space) is charged."""

    def __init__(self, p: _Proposer, feat: Any, alpha: float) -> None:
        np = p.np
        self.p, self.feat, self.np, self.alpha = p, feat, np, alpha
        self.cont_cols = feat.dim_col[feat.encoder.continuous]  # the continuous dims' feature columns
        self.slope = np.zeros(len(self.cont_cols))
        self.intercept = 0.0
        self.typical: float | None = None  # log dollars of the typical configuration (premium only)
        if p.s.cost_premium:
            self.typical = self._typical()

    def _typical(self) -> float:
        """The typical configuration's log dollars, memoised on the cost model (it is refitted
        only now and then) and the pinned values."""
        from scipy.stats import qmc

        p, model = self.p, self.p.ctx.cost_model
        key = (id(model), p.enc.names, p.pin_vals.tobytes())
        hit = _TYPICAL_MEMO.get(key)
        if hit is not None and hit[0] is model:
            return hit[1]
        u = qmc.Sobol(d=p.enc.n_dims, scramble=True, seed=TYPICAL_SEED).random(TYPICAL_SAMPLE)
        value = float(self.np.median(self.raw_log_cost(p.enc.snap(p.pin(u)))))
        _TYPICAL_MEMO[key] = (model, value)
        while len(_TYPICAL_MEMO) > 8:
            _TYPICAL_MEMO.pop(next(iter(_TYPICAL_MEMO)))
        return value

    @staticmethod
    def make(p: _Proposer, feat: Any) -> _CostTerm | None:
        ctx = p.ctx
        on = p.s.cost_aware
        if on is None:
            on = ctx.budget_usd is not None
        if not on or ctx.cost_model is None:
            return None
        if ctx.budget_usd is not None and ctx.budget_usd > 0:
            alpha = min(max((ctx.budget_usd - ctx.spent_usd) / ctx.budget_usd, 0.0), 1.0)
        else:
            alpha = 1.0
        if alpha <= 0.0:
            return None
        return _CostTerm(p, feat, alpha)

    def log_cost(self, x: Any) -> Any:
        """The charged log cost at canonical points ``x``: the forecast's log dollars, or with the
        premium only their excess over the typical configuration's."""
        raw = self.raw_log_cost(x)
        return raw if self.typical is None else self.np.maximum(raw - self.typical, 0.0)

    def raw_log_cost(self, x: Any) -> Any:
        """The cost model's mean log dollars at canonical points ``x`` (full resource)."""
        np = self.np
        params = self.p.enc.decode(np.nan_to_num(x, nan=0.5))
        ctx = self.p.ctx
        mean, _ = ctx.cost_model.predict_log(params, ctx.max_resource)
        return np.asarray(mean, dtype=float)

    def linear(self, xc: Any) -> Any:
        return self.alpha * (self.intercept + xc @ self.slope)

    def fit_linear(self, x: Any, logc: Any) -> None:
        """A linear fit of log cost on the continuous dims (for the gradient refinement)."""
        np = self.np
        xc = self.feat.features(x)[:, self.cont_cols]
        a = np.hstack([np.ones((len(xc), 1)), xc])
        coef = np.linalg.lstsq(a.T @ a + 1e-6 * np.eye(a.shape[1]), a.T @ logc, rcond=None)[0]
        self.intercept, self.slope = float(coef[0]), coef[1:]

    def prepare(self, x: Any, score: Any, rng: Any) -> Any:
        """Fit the linear stand-in on the best candidates by EI and as many random ones, and
        return the scores with it subtracted."""
        np = self.np
        order = np.argsort(-score, kind="stable")
        half = COST_POOL // 2
        top = order[:half]
        rest = order[half:]
        pick = np.r_[top, rng.choice(rest, size=min(half, len(rest)), replace=False)] if len(rest) else top
        self.fit_linear(x[pick], self.log_cost(x[pick]))
        return score - self.linear(self.feat.features(x)[:, self.cont_cols])

    def final(self, x: Any, score: Any) -> Any:
        """Scores with the cost model's forecast for the best ``COST_POOL`` candidates (by EI)."""
        np = self.np
        out = np.full(len(score), -np.inf)
        lin = self.linear(self.feat.features(x)[:, self.cont_cols])
        base = score + lin  # the acquisition without the linear cost term
        order = np.argsort(-base, kind="stable")[:COST_POOL]
        order = order[np.isfinite(base[order])]
        if not len(order):
            return out
        out[order] = base[order] - self.alpha * self.log_cost(x[order])
        return out


def standardise(y: Any) -> Any:
    """Robust scale (median, MAD), log-compress the bad tail beyond 2, then standardise."""
    import numpy as np

    med = float(np.median(y))
    mad = 1.4826 * float(np.median(np.abs(y - med)))
    scale = mad if mad > 0 else float(np.std(y))
    z = (y - med) / (scale if scale > 0 else 1.0)
    z = np.where(z > 2.0, 2.0 + np.log1p(np.maximum(z - 2.0, 0.0)), z)
    sd = float(np.std(z))
    return (z - float(np.mean(z))) / (sd if sd > 0 else 1.0)
