"""The cost model: what will a configuration cost at a given resource (epochs, ...)?

:class:`CostModel` splits ``log(cumulative cost)`` of a configuration ``x`` at resource ``r`` into
a *level* and a *curve shape*::

    log cost(x, r) = f(x) + s(x, r),        s(x, R) = 0,

where ``R`` is the reference resource: the largest step any fitted trial reached (in a study, the
full resource of a trial).

* **Shape** ``s``: a Bayesian linear regression on ``z = log(r / R)``, ``z**2`` and ``z`` times
  each encoded parameter (so the cost per epoch may grow differently for different
  configurations), with a prior mean of ``s = z`` (cost proportional to the resource). It is fitted
  *within* trials: each trial's reports (at most ``rows_per_trial`` of them, spread evenly on a log
  scale) minus their own mean, so the many reports of one trial inform the shape of the curve and
  leave the level to ``f``. Prior and noise precisions are set by maximizing the evidence (MacKay).
  Carrying a cost from one resource to another adds a variance proportional to the distance in
  ``log r`` (single curves stray from the shape like a random walk), measured on the trials'
  own curves with each trial left out of the shape it is checked against.
* **Level** ``f``: a Gaussian process on the encoded parameters (the unit cube of
  :func:`~thrifty.encoding.encoder_of`, log-scaled where the space says log; categorical and
  "inactive" dimensions compare as equal / different: :mod:`thrifty.numerics.features`), built
  from :mod:`thrifty.numerics` (kernels, Cholesky, log evidence, slice sampling). Its kernel is an ARD Matérn-3/2 plus a
  constant (the unknown mean cost, integrated out), with a log-normal prior (median 1, one
  unit of log) on each length scale, so that dimensions the data say little about stay smooth.
  Each trial gives one observation: its cost at ``R``, or, for a trial that stopped earlier, its
  last cumulative cost carried to ``R`` by the shape model, with the carrying's variance added to
  that observation's noise. The hyperparameters are not a single best fit: a short slice-sampling
  chain started at the posterior mode gives ``samples`` settings, and the prediction averages them,
  so the forecast's spread includes the uncertainty about which dimensions matter.

  The level is also modelled at a few lower *anchor* resources (observed steps about a factor 4
  apart), with the same hyperparameters and each anchor's own observations (a trial's report
  nearest the anchor, carried to it); there the predictive variance is rescaled to the anchor's
  data. A forecast at resource ``r`` takes the level at the nearest anchors (interpolating between
  the two around ``r``, linearly in ``log r``) and carries it to ``r`` with the shape model, so
  forecasts below ``R`` lean on the costs measured there rather than on the shape alone.

Predictions are log-normal: :meth:`CostModel.predict_log` gives the mean and the standard deviation
of ``log(dollars)`` (a mixture over hyperparameter samples and anchors, matched by its first two
moments); :meth:`CostModel.predict` turns them into a median (``exp`` of the mean log), a mean
(``exp(mean + sd**2 / 2)``) and a 90% interval. The median, not the mean, is the point forecast to
compare with a single observed cost: the cost is as likely to be above as below it. (The mean is
higher, and a forecast that minimizes the expected relative error would be lower, about
``median * exp(-sd**2)``.) Measured on the LCBench surrogate (``benchmarks/cost.py``: random
configurations, epoch-52 cost of held-out ones), the median is off by about a third on average
after 20 trials and by about a quarter after 50, and the 90% interval holds the cost about 90% of
the time.

Trials that never reported a step contribute their total cost at resource 1. Only the last
``max_trials`` (200) trials with costs are used, and, when none of those reached the furthest
resource of any trial, the latest ``max_trials // 4`` earlier trials that did (so the reference
resource stays the study's full resource). With fewer than
``min_trials`` trials with costs the model is not fitted and predicts the mean log cost seen so
far, scaled in proportion to the resource.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thrifty.encoding import encoder_of
from thrifty.errors import NotEnoughData, ValidationError
from thrifty.numerics.features import hamming_mask, values_with_indicators
from thrifty.numerics.fitting import best_of_starts, slice_sample
from thrifty.numerics.kernels import matern, sq_dists
from thrifty.numerics.posterior import neg_log_evidence, posterior_weights
from thrifty.space import Space
from thrifty.trial import Trial, TrialState


@dataclass(frozen=True)
class CostForecast:
    """A predicted cost in dollars: ``mean_usd`` (expected value), ``median_usd`` and a 90%
    interval ``[low_usd, high_usd]``; ``std_log`` is the standard deviation of log cost."""

    mean_usd: float
    median_usd: float
    low_usd: float
    high_usd: float
    std_log: float


# -- the curve shape: Bayesian linear regression within trials ---------------------------------
class _Shape:
    """``s(x, r) = phi(x, z) @ w`` with ``z = log(r / R)``; ``phi = [z, z^2, z * (x - 0.5)]``."""

    def __init__(self, log_ref: float) -> None:
        self.log_ref = log_ref

    def features(self, x: np.ndarray, log_r: np.ndarray) -> np.ndarray:
        z = (log_r - self.log_ref)[:, None]
        return np.hstack([z, z * z, z * (x - 0.5)])

    def fit(self, groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_dims: int) -> _Shape:
        """``groups``: per trial, (x of each row, log r of each row, log cost of each row)."""
        p = 2 + n_dims
        self.w0 = np.zeros(p)
        self.w0[0] = 1.0  # prior: cost proportional to the resource
        phis, ts = [], []
        for x, lr, y in groups:
            if len(y) < 2:
                continue
            phi = self.features(x, lr)
            t = y - phi @ self.w0
            phis.append(phi - phi.mean(axis=0))
            ts.append(t - t.mean())
        alpha, beta = 4.0, 100.0  # without data: prior sd 0.5 per coefficient, curve noise 0.1
        if phis:
            phi, t = np.vstack(phis), np.concatenate(ts)
            n_free = len(t) - len(phis)  # each trial's mean was removed
            gram, rhs = phi.T @ phi, phi.T @ t
            eig = np.linalg.eigvalsh(gram).clip(min=0.0)
            if n_free >= 1:
                beta = 1.0 / max(float(np.mean(t * t)), 1e-8)
                for _ in range(100):
                    a = alpha * np.eye(p) + beta * gram
                    mean = beta * np.linalg.solve(a, rhs)
                    lam = beta * eig
                    gamma = float(np.sum(lam / (alpha + lam)))
                    new_alpha = min(max(gamma / max(float(mean @ mean), 1e-12), 1e-6), 1e6)
                    resid = float(np.sum((t - phi @ mean) ** 2))
                    new_beta = min(max(n_free - gamma, 1e-6) / max(resid, 1e-12), 1e6)
                    done = abs(new_alpha - alpha) < 1e-6 * alpha and abs(new_beta - beta) < 1e-6 * beta
                    alpha, beta = new_alpha, new_beta
                    if done:
                        break
            a = alpha * np.eye(p) + beta * gram
            self.cov = np.linalg.inv(a)
            self.w = self.w0 + beta * self.cov @ rhs
            # How far a single curve strays from the shape, growing with the distance a cost is
            # carried (like a random walk in log r): each trial's reports carried to its own last
            # report by the shape fitted without that trial; the squared misses per unit of
            # distance.
            num = den = 0.0
            for x, lr, y in groups:
                if len(y) < 2:
                    continue
                phi_i = self.features(x, lr)
                t_i = y - phi_i @ self.w0
                phi_i, t_i = phi_i - phi_i.mean(axis=0), t_i - t_i.mean()
                w_i = self.w0 + beta * np.linalg.solve(a - beta * phi_i.T @ phi_i, rhs - phi_i.T @ t_i)
                last = int(np.argmax(lr))
                dz = lr[last] - lr
                miss = (y[last] - y) - (self.features(x, np.full(len(lr), lr[last])) - self.features(x, lr)) @ w_i
                num += float(miss @ miss)
                den += float(np.sum(dz))
            self.carry_var = num / den if den > 0 else 0.25
        else:
            self.cov = np.eye(p) / alpha
            self.w = self.w0.copy()
            self.carry_var = 0.25
        self.noise_var = 1.0 / beta
        return self

    def change(self, x: np.ndarray, log_from: np.ndarray, log_to: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of ``s(x, r_to) - s(x, r_from)``: the change of log cost from one
        resource to another (the variance includes a curve's own deviation from the shape)."""
        dphi = self.features(x, log_to) - self.features(x, log_from)
        var = np.einsum("ij,jk,ik->i", dphi, self.cov, dphi)
        dz = log_to - log_from
        var = var + np.where(np.abs(dz) > 1e-9, self.noise_var, 0.0) + self.carry_var * np.abs(dz)
        return dphi @ self.w, var


# -- the level: a Gaussian process with ARD Matérn-3/2 ------------------------------------------
_NU = 1.5  # Matérn smoothness (1.5 or 2.5)
_RESTARTS, _BURN, _THIN = 0, 2, 2  # optimizer restarts; slice-sampling burn-in and thinning (sweeps)
_ANCHOR_RATIO, _MAX_ANCHORS = 4.0, 5
_CONST_VAR = 100.0  # prior variance of the constant mean, in units of the data's variance
_NOISE_MIN = 1e-4
_LS_PRIOR = (0.0, 1.0)  # log length scale ~ N(0, 1) (unit cube)
_BOUNDS_LS = (math.log(0.02), math.log(50.0))
_BOUNDS_AMP = (math.log(0.01), math.log(20.0))
_BOUNDS_NOISE = (math.log(1e-6), math.log(2.0))


@dataclass
class _Posterior:
    y_mu: float
    y_sd: float
    alpha: np.ndarray  # (S, n)
    kinv: np.ndarray  # (S, n, n)
    scale: np.ndarray  # (S,)


class _GP:
    """Zero-mean GP plus a constant kernel ``_CONST_VAR`` (the unknown mean), on standardized y.

    Hyperparameters ``theta = [log length scales..., log amplitude, log noise]`` are fitted on the
    targets ``y`` given here (with ``extra_var`` added to their noise); :meth:`condition` then gives
    the posterior for any targets at the same inputs."""

    def __init__(self, x: np.ndarray, y: np.ndarray, extra_var: np.ndarray, hamming: np.ndarray,
                 nu: float = _NU) -> None:
        self.x, self.hamming, self.nu = x, hamming, nu
        self.y_mu = float(np.mean(y))
        sd = float(np.std(y))
        self.y_sd = sd if sd > 1e-9 else 1.0
        self.y = (y - self.y_mu) / self.y_sd
        self.extra = extra_var / self.y_sd**2
        self.dist = sq_dists(x, x, hamming)
        self.n, self.d = x.shape
        self.bounds = [_BOUNDS_LS] * self.d + [_BOUNDS_AMP, _BOUNDS_NOISE]

    def neg_log_post(self, th: np.ndarray, grad: bool = True) -> Any:
        """Negative log posterior of the hyperparameters (up to a constant), and its gradient."""
        d, n = self.d, self.n
        w = np.exp(-2.0 * th[:d])
        amp = math.exp(th[d])
        noise = math.exp(th[d + 1])
        kf, dk = matern(self.dist @ w, amp, self.nu)
        k = kf + _CONST_VAR
        k[np.diag_indices(n)] += noise + _NOISE_MIN + self.extra
        ev = neg_log_evidence(k, self.y, with_w=grad)
        if ev is None:
            return (1e10, np.zeros_like(th)) if grad else 1e10
        u = (th[:d] - _LS_PRIOR[0]) / _LS_PRIOR[1]
        val = ev[0] + 0.5 * float(u @ u)
        if not grad:
            return val
        wm = ev[1]
        g = np.empty_like(th)
        # dK/dlog(l_j) = -2 dk/d(r2) * w_j * D_j
        g[:d] = 0.5 * w * np.einsum("ab,abj->j", wm * (-2.0 * dk), self.dist)
        g[d] = 0.5 * float(np.sum(wm * kf))
        g[d + 1] = 0.5 * float(np.trace(wm)) * noise
        g[:d] += u / _LS_PRIOR[1]
        return val, g

    def fit(self, rng: np.random.Generator, samples: int) -> _GP:
        """The posterior mode (SLSQP from ``_RESTARTS + 1`` starts), then, if ``samples > 1``, a
        slice-sampling chain from it: ``_BURN`` sweeps, then one sample every ``_THIN`` sweeps."""
        d = self.d
        starts = [np.r_[np.full(d, math.log(0.5)), 0.0, math.log(0.05)]]
        for _ in range(_RESTARTS):
            starts.append(np.r_[rng.uniform(math.log(0.1), math.log(3.0), d), rng.uniform(-1, 1),
                                rng.uniform(-5, -1)])
        # (SLSQP rather than L-BFGS-B: scipy's L-BFGS-B calls LAPACK routines that OpenBLAS
        # runs multi-threaded even at this size, which stalls forked workers fitting side by side.)
        theta = best_of_starts(self.neg_log_post, starts, self.bounds, "SLSQP")
        if samples > 1:
            keep = slice_sample(lambda th: -self.neg_log_post(th, grad=False), theta, self.bounds, rng,
                                _BURN + samples * _THIN)[_BURN + _THIN - 1::_THIN]
        else:
            keep = [theta]
        self._set(np.array(keep))
        return self

    def _set(self, thetas: np.ndarray) -> None:
        """Keep the hyperparameter samples and their kernel matrices (without the noise)."""
        d = self.d
        self.w = np.exp(-2.0 * thetas[:, :d])  # (S, d)
        self.amp = np.exp(thetas[:, d])
        self.noise = np.exp(thetas[:, d + 1]) + _NOISE_MIN
        self.k = np.stack([matern(self.dist @ w, a, self.nu)[0] + _CONST_VAR for w, a in zip(self.w, self.amp)])

    def condition(self, y: np.ndarray, extra_var: np.ndarray, rescale: bool = False) -> _Posterior:
        """The posterior for targets ``y`` at the training inputs (the hyperparameter samples are
        shared; ``y`` is standardized on its own, ``extra_var`` is added to the noise). With
        ``rescale``, each sample's predictive variance is multiplied by the maximum-likelihood
        scale of its covariance for these targets (shrunk towards 1 with two pseudo-points)."""
        y_mu = float(np.mean(y))
        sd = float(np.std(y))
        y_sd = sd if sd > 1e-9 else 1.0
        yy = (y - y_mu) / y_sd
        extra = extra_var / y_sd**2
        n, samples = self.n, len(self.k)
        alpha = np.empty((samples, n))
        kinv = np.empty((samples, n, n))
        for i in range(samples):
            k = self.k[i].copy()
            k[np.diag_indices(n)] += self.noise[i] + extra
            # (one retry with jitter: cannot be needed with the noise floor, but never fail a forecast)
            alpha[i], kinv[i] = posterior_weights(k, yy, "one_retry")
        scale = (alpha @ yy + 2.0) / (n + 2.0) if rescale else np.ones(samples)
        return _Posterior(y_mu, y_sd, alpha, kinv, scale)

    def cross(self, xs: np.ndarray) -> np.ndarray:
        """Kernel between new inputs and the training inputs, per sample: (S, m, n)."""
        dist = sq_dists(xs, self.x, self.hamming)  # (m, n, d)
        return matern(np.einsum("mnd,sd->smn", dist, self.w), self.amp[:, None, None], self.nu)[0] + _CONST_VAR

    def predict(self, post: _Posterior, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of a new observation's y (``ks`` from :meth:`cross`), mixed over the
        hyperparameter samples."""
        mean = np.einsum("smn,sn->sm", ks, post.alpha)
        # ks K^-1 ks' per candidate, as a batched product (BLAS) then a row sum: the one-call
        # three-operand einsum ran as a plain loop, 70% of an ask under a dollar budget.
        quad = np.sum(np.matmul(ks, post.kinv) * ks, axis=-1)
        var = (self.amp + _CONST_VAR + self.noise)[:, None] - quad
        var = np.maximum(var, 1e-10) * post.scale[:, None]
        mix_mean = mean.mean(axis=0)
        mix_var = var.mean(axis=0) + mean.var(axis=0)
        return mix_mean * post.y_sd + post.y_mu, mix_var * post.y_sd**2


class CostModel:
    """Predicts the dollars a configuration costs up to a resource level (see the module doc).

    ``samples``: hyperparameter samples the forecast averages over (1: the posterior mode only);
    ``max_trials``: only the last this many trials with costs are fitted (the GP costs grow with the
    cube of their number); ``seed`` makes the fit reproducible."""

    def __init__(self, space: Space, rows_per_trial: int = 8, min_trials: int = 3, *, samples: int = 8,
                 max_trials: int = 200, seed: int = 0) -> None:
        if rows_per_trial < 1:
            raise ValidationError(f"CostModel(rows_per_trial={rows_per_trial}): expected an integer >= 1")
        if min_trials < 2:
            raise ValidationError(f"CostModel(min_trials={min_trials}): expected an integer >= 2")
        if samples < 1:
            raise ValidationError(f"CostModel(samples={samples}): expected an integer >= 1")
        if max_trials < min_trials:
            raise ValidationError(f"CostModel(max_trials={max_trials}): expected an integer >= min_trials")
        self.space = space
        self.rows_per_trial = rows_per_trial
        self.min_trials = min_trials
        self.samples = samples
        self.max_trials = max_trials
        self.seed = seed
        self._encoder = encoder_of(space)
        self._hamming = hamming_mask(self._encoder)
        self._fitted = False
        self.n_trials = 0
        self.n_rows = 0

    # -- data ----------------------------------------------------------------------------------
    @staticmethod
    def observations(trial: Trial) -> list[tuple[float, float]]:
        """(resource, cumulative dollars) pairs of a trial, from its measurements."""
        pairs: list[tuple[float, float]] = []
        total = 0.0
        for m in trial.measurements:
            total += m.cost_usd
            if m.step is not None and m.step > 0:
                if pairs and pairs[-1][0] == m.step:
                    pairs[-1] = (float(m.step), total)
                else:
                    pairs.append((float(m.step), total))
        if pairs and total > pairs[-1][1]:
            pairs[-1] = (pairs[-1][0], total)  # the cost told at the end belongs to the last step
        if not pairs and total > 0:
            pairs.append((1.0, total))
        return [(r, c) for r, c in pairs if c > 0]

    def _inputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(GP inputs: values with inactive = 0.5, plus an is-inactive column per conditional
        dimension; shape-model inputs: values with inactive = 0.5)."""
        return values_with_indicators(self._encoder, x)

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, trials: Sequence[Trial]) -> CostModel:
        """Fit on the trials' measured costs. Trials without any cost are ignored."""
        params, obs_all = [], []
        for t in trials:
            if t.state is TrialState.PENDING:
                continue
            obs = self.observations(t)
            if not obs:
                continue
            params.append(t.params)
            obs_all.append(obs)
        keep = self._kept(obs_all)
        params, obs_all = [params[i] for i in keep], [obs_all[i] for i in keep]
        n_trials = len(obs_all)
        self.n_trials = n_trials
        self.n_rows = sum(len(o) for o in obs_all)
        self._fitted = n_trials >= self.min_trials
        if not obs_all:
            self._fallback = None
            return self
        y_last = np.array([math.log(o[-1][1]) for o in obs_all])
        r_last = np.array([o[-1][0] for o in obs_all])
        self._fallback = (float(np.mean(y_last)), float(np.std(y_last)) if n_trials > 1 else 1.0,
                          float(np.median(r_last)))
        if not self._fitted:
            return self
        gp_x, shape_x = self._inputs(self._encoder.encode(params))
        log_r = [np.log([r for r, _ in o]) for o in obs_all]
        log_c = [np.log([c for _, c in o]) for o in obs_all]
        self.ref_resource = float(max(np.max(np.exp(lr)) for lr in log_r))
        self._shape = _Shape(math.log(self.ref_resource))
        groups = []
        for xs, lr, lc in zip(shape_x, log_r, log_c):
            if len(lr) > self.rows_per_trial:
                idx = np.unique(np.round(np.geomspace(1, len(lr), self.rows_per_trial)).astype(int) - 1)
                lr, lc = lr[idx], lc[idx]
            groups.append((np.repeat(xs[None, :], len(lr), axis=0), lr, lc))
        self._shape.fit(groups, shape_x.shape[1])
        self._anchors = self._anchor_levels(np.concatenate(log_r))
        targets = [self._targets(shape_x, log_r, log_c, a) for a in self._anchors]
        # Hyperparameters from the levels at the reference resource (the last anchor), shared by all.
        self._gp = _GP(gp_x, *targets[-1], self._hamming).fit(np.random.default_rng(self.seed), self.samples)
        # Below the reference the hyperparameters are borrowed: rescale the variance to each
        # anchor's own data there.
        self._posts = [self._gp.condition(y, v, rescale=i < len(targets) - 1) for i, (y, v) in enumerate(targets)]
        return self

    def _kept(self, obs_all: list[list[tuple[float, float]]]) -> list[int]:
        """Indices of the trials fitted: the last ``max_trials``, and, when none of those reached
        the furthest resource any trial reached, the latest ``max_trials // 4`` (at least one)
        earlier trials that did. Why: the forecast at the full resource is the level at the
        furthest resource fitted; a window of trials all stopped at epoch 3 made that resource 3,
        and carrying 3 epochs to 52 forecast 2,000 times the true cost, which ended a budgeted
        study with two thirds of its budget left (LCBench 126025, seed 2)."""
        n = len(obs_all)
        window = list(range(max(0, n - self.max_trials), n))
        if not window:
            return window
        furthest = max(o[-1][0] for o in obs_all)
        if max(obs_all[i][-1][0] for i in window) >= furthest:
            return window
        reached = [i for i in range(window[0]) if obs_all[i][-1][0] >= furthest]
        return reached[-max(1, self.max_trials // 4):] + window

    @staticmethod
    def _anchor_levels(log_r: np.ndarray) -> np.ndarray:
        """Log resources where the level is modelled: the reference (largest) resource and, below
        it, observed resources about a factor ``_ANCHOR_RATIO`` apart (at most ``_MAX_ANCHORS``)."""
        lo, hi = float(np.min(log_r)), float(np.max(log_r))
        k = min(_MAX_ANCHORS, 1 + math.ceil((hi - lo) / math.log(_ANCHOR_RATIO) - 1e-9))
        if k <= 1:
            return np.array([hi])
        seen = np.unique(log_r)
        want = np.linspace(lo, hi, k)
        return np.unique(seen[np.argmin(np.abs(seen[None, :] - want[:, None]), axis=1)])

    def _targets(self, shape_x: np.ndarray, log_r: list[np.ndarray], log_c: list[np.ndarray],
                 anchor: float) -> tuple[np.ndarray, np.ndarray]:
        """Each trial's log cost at the anchor resource: its observation nearest the anchor (on a
        log scale), carried there by the shape model; and the variance that carrying adds."""
        near = [int(np.argmin(np.abs(lr - anchor))) for lr in log_r]
        log_from = np.array([lr[j] for lr, j in zip(log_r, near)])
        y = np.array([lc[j] for lc, j in zip(log_c, near)])
        change, var = self._shape.change(shape_x, log_from, np.full(len(y), anchor))
        return y + change, var

    @property
    def is_fitted(self) -> bool:
        """True once at least ``min_trials`` trials with costs were seen."""
        return self._fitted

    # -- prediction ----------------------------------------------------------------------------
    def predict_log(self, params: Sequence[Mapping[str, Any]],
                    resource: float | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of log(dollars) for each params at the resource(s)."""
        n = len(params)
        r = np.broadcast_to(np.asarray(resource, dtype=float), (n,))
        if n == 0 and getattr(self, "_fallback", None) is not None:
            return np.zeros(0), np.zeros(0)
        if not self._fitted:
            if getattr(self, "_fallback", None) is None:
                raise NotEnoughData("the cost model has seen no trial with a cost yet")
            mu, sd, r0 = self._fallback
            # Without a model, cost is assumed proportional to the resource.
            return mu + np.log(np.maximum(r, 1e-12) / r0), np.full(n, max(sd, 0.5))
        gp_x, shape_x = self._inputs(self._encoder.encode(params))
        log_r = np.log(np.maximum(r, 1e-12))
        anchors = self._anchors
        # Between two anchors: interpolate (linearly in log r) the forecasts from both; outside
        # them: from the nearest. The result is the two-component mixture's mean and variance.
        hi = np.clip(np.searchsorted(anchors, log_r), 0, len(anchors) - 1)
        lo = np.where(log_r <= anchors[0], 0, np.clip(hi - 1, 0, len(anchors) - 1))
        span = anchors[hi] - anchors[lo]
        t = np.clip(np.where(span > 0, (log_r - anchors[lo]) / np.where(span > 0, span, 1.0), 0.0), 0.0, 1.0)
        ks = self._gp.cross(gp_x)
        mean = np.zeros(n)
        second = np.zeros(n)
        for a in np.unique(np.r_[lo, hi]):
            weight = np.where(lo == a, 1.0 - t, 0.0) + np.where(hi == a, t, 0.0)
            rows = weight > 0
            if not rows.any():
                continue
            f_mean, f_var = self._gp.predict(self._posts[a], ks[:, rows])
            c_mean, c_var = self._shape.change(shape_x[rows], np.full(int(rows.sum()), anchors[a]), log_r[rows])
            m, v = f_mean + c_mean, f_var + c_var
            mean[rows] += weight[rows] * m
            second[rows] += weight[rows] * (v + m * m)
        return mean, np.sqrt(np.maximum(second - mean * mean, 1e-12))

    def sample_log(self, params: Sequence[Mapping[str, Any]], resource: float, draws: int,
                   rng: np.random.Generator) -> np.ndarray:
        """Joint draws of log(dollars) of the configurations ``params`` at ``resource``, shape
        ``(draws, len(params))``.

        Unlike :meth:`predict_log`, which is per configuration, the draws keep the model's
        uncertainty *shared* across configurations: each draw picks one hyperparameter sample and
        one function from the GP posterior at all the configurations together (so if the level is
        overestimated it is overestimated for all of them), then adds independent per-trial noise
        and curve-shape variation. Sums over draws are therefore honest about a study's total.
        The level is taken at the anchor resource nearest to ``resource``.
        """
        n = len(params)
        if draws < 1:
            raise ValidationError(f"sample_log(draws={draws!r}): expected an integer >= 1")
        if not self._fitted:
            mu, sd = self.predict_log(params, resource)
            # Without a model the unknown is the level of all costs at once: fully shared.
            return mu[None, :] + sd[None, :] * rng.standard_normal((draws, 1))
        gp_x, shape_x = self._inputs(self._encoder.encode(params))
        log_r = math.log(max(float(resource), 1e-12))
        a = int(np.argmin(np.abs(self._anchors - log_r)))
        post = self._posts[a]
        gp = self._gp
        ks = gp.cross(gp_x)  # (S, n, m)
        kss = matern(np.einsum("mnd,sd->smn", sq_dists(gp_x, gp_x, gp.hamming), gp.w),
                      gp.amp[:, None, None], gp.nu)[0] + _CONST_VAR
        c_mean, c_var = self._shape.change(shape_x, np.full(n, self._anchors[a]), np.full(n, log_r))
        which = rng.integers(0, len(gp.amp), size=draws)
        out = np.empty((draws, n))
        for i in np.unique(which):
            rows = np.flatnonzero(which == i)
            mean = ks[i] @ post.alpha[i]
            cov = (kss[i] - ks[i] @ post.kinv[i] @ ks[i].T) * post.scale[i]
            cov = 0.5 * (cov + cov.T)
            w, v = np.linalg.eigh(cov)  # PSD up to rounding: clip, never fail a forecast on it
            factor = v * np.sqrt(np.maximum(w, 0.0))
            f = mean[None, :] + rng.standard_normal((len(rows), n)) @ factor.T
            noise_sd = math.sqrt(float(gp.noise[i] * post.scale[i]))
            f = f + noise_sd * rng.standard_normal((len(rows), n))
            out[rows] = f * post.y_sd + post.y_mu
        return out + c_mean[None, :] + np.sqrt(np.maximum(c_var, 0.0))[None, :] * rng.standard_normal((draws, n))

    def predict(self, params: Mapping[str, Any], resource: float = 1.0) -> CostForecast:
        """The cost forecast of one configuration trained up to ``resource``: log-normal, with
        ``median_usd`` the point forecast (see the module doc)."""
        mu, sd = self.predict_log([params], resource)
        m, s = float(mu[0]), float(sd[0])
        return CostForecast(
            mean_usd=math.exp(m + s * s / 2), median_usd=math.exp(m), low_usd=math.exp(m - 1.645 * s),
            high_usd=math.exp(m + 1.645 * s), std_log=s,
        )

    def expected_cost(self, space_sample: Sequence[Mapping[str, Any]], resource: float) -> float:
        """Mean predicted dollars of a configuration drawn like ``space_sample`` (e.g. random)."""
        mu, sd = self.predict_log(space_sample, resource)
        return float(np.mean(np.exp(mu + sd**2 / 2)))
