"""Tree-structured Parzen estimator (TPE): model where good and bad trials lie, propose where the
ratio of the two densities is highest.

Written from Bergstra et al. (2011), "Algorithms for Hyper-Parameter Optimization", and Watanabe
(2023), "Tree-Structured Parzen Estimator: Understanding Its Algorithm Components and Their Roles
for Better Empirical Performance". The choices made here:

* **Multivariate Parzen estimators on the unit cube.** Trials are encoded by the space's
  encoder (:func:`~thrifty.encoding.encoder_of`, log-scaled where the space says ``log=True``). Each of the
  two densities ``l(x)`` (good trials) and ``g(x)`` (bad trials) is a mixture with one product
  kernel per trial plus a *prior* component, the uniform distribution on the cube, with weight
  ``prior_weight`` (each trial weighs 1). Kernels per dimension:

  - floats: a Gaussian truncated to ``[0, 1]``; its bandwidth follows Scott's rule,
    ``sigma = std * n ** (-1 / (d + 4))`` (the standard deviation of the estimator's trials in
    that dimension, ``n`` of them active there, ``d`` dimensions), at most 1 and at least
    ``min(0.1, max(0.5 / sqrt(N), 0.01))`` for ``N`` settled trials. The floor keeps a handful of
    good trials from making needle-thin kernels early (with a fixed floor of 0.03 the median
    regret on Branin after 60 evaluations was 30 times worse) and lets the search sharpen later
    (with a fixed floor of 0.1 the median regrets on Branin and Hartmann-6 after 250
    evaluations were 5 to 8 times worse);
  - ints: the same truncated Gaussian, integrated over each value's cell of the cube (so the
    kernel gives probabilities of values, not densities), with a bandwidth of at least half a
    cell; ints with more than 4,096 values are treated as floats;
  - categoricals: an Aitchison-Aitken kernel, probability ``1 - lam`` for the trial's own choice
    and ``lam / (K - 1)`` for each other one, with ``lam = (K - 1) / K / (1 + n / K)`` (nearly
    uniform for few trials, sharper as ``n`` grows).

* **Conditional parameters.** An inactive dimension (``nan`` in the encoding) is handled inside
  each kernel rather than by splitting the trials into groups: a trial on which a parameter is
  inactive contributes the *uniform* (uninformative) kernel in that dimension, and a candidate on
  which a parameter is inactive ignores that dimension (it is marginalized out: whether it is
  active is decided by its parents, whose kernels already account for it). Sampling follows the
  same rule (uniform where the chosen trial lacks the parameter) and the space's decoding then
  drops what is inactive.

* **The good/bad split.** Trials are ranked best first: completed, stopped or paused trials with
  a finite objective that satisfy the study's constraints (by objective; several objectives: by
  non-dominated front, ties by the sum of per-objective ranks); then trials with a finite objective
  that break a constraint or were recorded INFEASIBLE with their metrics (least total violation
  first); then FAILED trials, INFEASIBLE ones without metrics and finished trials without a
  finite objective; then PENDING / RUNNING trials. The best
  ``gamma(n) = min(ceil(gamma * n), max_good)`` (defaults ``0.1`` and 25, Optuna's and Watanabe's
  default) form ``l``, where ``n`` counts settled trials; only trials with a finite objective can
  be good. Everything else forms ``g``.

* **STOPPED and PAUSED trials** (ended or paused early by a scheduler) count with their last
  reported objective, as they are stored: a trial stopped because it was doing badly usually
  reported a bad value, so it ranks low. One without a finite value is bad. (Multi-fidelity
  modelling is the ``bohb`` strategy's job.)

* **Constant liar.** PENDING and RUNNING trials (and, within one ``propose(n=...)`` call, the
  earlier proposals of the batch) always count as bad, as if they had the worst value, so parallel
  workers do not pile onto one point; they are also excluded as duplicates. Their kernels in ``g``
  take the bandwidths of ``l``, the resolution at which candidates compete: with ``g``'s own
  (broad) bandwidths one pending trial among many bad ones hardly moved the next proposal (4 and
  12 times in 20 on Branin and Hartmann-6 for a trial pending right next to it, against 8 and 20
  times in 20 this way), and with 4 asynchronous workers this did not cost regret.

* **Proposal.** The first ``n_startup`` trials (counted as settled trials) are the study's
  seeded random draws (the same points :class:`~thrifty.strategies.random.RandomSearch` draws).
  After that, ``n_candidates`` points are drawn from ``l`` and scored by
  ``log l(x) - log g(x)``; the best one that does not repeat an existing trial's params wins.

* **Constraints** (``{metric: (op, bound)}``): besides ranking breakers below feasible trials,
  each constraint adds ``log P(feasible | x)`` to the score once some trial broke it. The
  probability is a Gaussian-kernel vote of the trials with a value whose bandwidth at ``x`` is the
  distance to its 5th nearest trial, smoothed towards the overall feasible fraction by one
  pseudo-trial: the boundary is resolved finely where trials are dense, which is near the optimum
  (where an active constraint's boundary usually passes), and coarsely elsewhere. The term is
  near 0 where nearby trials were feasible and very negative where they were not, the analogue of
  multiplying expected improvement by the probability of feasibility. (A Parzen-density ratio
  with Scott's bandwidth was tried first: too coarse near the boundary; about 55% of late
  proposals were feasible on the toy problem of the tests, against about 90% with the vote.)

* **Cost-aware search** (``cost_aware``; ``None``: on when the study has a dollar budget and a
  fitted cost model): the score becomes ``log l(x) - log g(x) - c * mu(x)`` where ``mu(x)`` is the
  cost model's mean of ``log(dollars)`` for a full trial at ``x`` and ``c = (budget left) /
  budget`` is CArBO's cost cooling (Lee et al. 2020): cheap points are preferred early, and the
  preference fades as the budget is spent. Without a dollar budget ``c`` stays 1 (improvement per
  dollar throughout).

* **Determinism and duplicates.** The proposal is a function of ``(history, seed, number)``: the
  random generator is :func:`~thrifty.strategies.base.seeded_rng` of ``(seed, number)`` and the
  history is read in trial-number order. A candidate equal to an existing trial's params (any
  state) is skipped for the next best. If all are taken: in a small all-discrete space (at most
  4,096 combinations) every untried combination is scored and the best taken; otherwise more
  candidates are drawn (from ``l``, then uniformly). Only when every combination of a small
  discrete space has been tried does the strategy fall back to a random draw, which then repeats
  a trial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thrifty.encoding import encoder_of
from thrifty.ranking import front_ranks, measured
from thrifty.space import ParamValue, Space
from thrifty.specs.strategies import TPESpec
from thrifty.strategies.base import Strategy, seeded_rng
from thrifty.trial import Trial, TrialState

_CONT, _INT, _CAT = 0, 1, 2
#: Ints with more values than this are modelled as floats (the decoding snaps them).
_MAX_INT_CELLS = 4096
#: All-discrete spaces with at most this many combinations are enumerated against duplicates.
_MAX_ENUMERATE = 4096
#: Extra rounds of candidates drawn when every candidate repeats a trial (large spaces).
_RETRY_ROUNDS = 8
#: Trials whose distance sets the bandwidth of the probability-of-feasibility vote.
_FEASIBILITY_NEIGHBOURS = 5
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

# Tiers of the ranking (lower is better).
_FEASIBLE, _BREAKS, _NO_VALUE, _LIVE = 0, 1, 2, 3


@dataclass
class _Dims:
    """What the estimators need to know about each dimension of a space's encoding."""

    kind: np.ndarray  # _CONT / _INT / _CAT per dimension
    edges: list[np.ndarray | None]  # cell edges in [0, 1] of int dimensions
    n_choices: np.ndarray  # K of categorical dimensions (1 elsewhere)
    grid: np.ndarray | None  # encodings of every combination of a small all-discrete space
    grid_params: list[dict[str, ParamValue]] | None


def _describe(space: Space) -> _Dims:
    """The estimators' view of ``space``'s encoding (:func:`~thrifty.encoding.encoder_of`): ints with at most
    ``_MAX_INT_CELLS`` values are discrete (their cells' edges), larger ones continuous."""
    enc = encoder_of(space)
    d = enc.n_dims
    kind = np.zeros(d, dtype=int)
    edges: list[np.ndarray | None] = [None] * d
    n_choices = np.ones(d, dtype=int)
    all_discrete = True
    size = 1
    for k, col in enumerate(enc.columns):
        if col.kind == "categorical":
            kind[k] = _CAT
            n_choices[k] = col.n_values
            size *= col.n_values
        elif col.kind == "int":
            size *= col.n_values
            if col.n_values > _MAX_INT_CELLS:
                continue  # modelled as a float
            kind[k] = _INT
            edges[k] = enc.cell_edges(k)
        else:
            all_discrete = False
    grid = grid_params = None
    if all_discrete and size <= _MAX_ENUMERATE:
        from thrifty.strategies.grid import GridSearch

        grid_params = GridSearch().grid(space)
        grid = enc.encode(grid_params)
    return _Dims(kind, edges, n_choices, grid, grid_params)


def _min_bandwidth(n: int) -> float:
    """The smallest Gaussian bandwidth (unit cube) after ``n`` settled trials: 0.1 up to 25
    trials, then shrinking like ``0.5 / sqrt(n)`` down to 0.01."""
    return min(0.1, max(0.5 / math.sqrt(max(n, 1)), 0.01))


def _logsumexp(a: np.ndarray) -> np.ndarray:
    m = np.max(a, axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(a - m), axis=1)) + m[:, 0]


class _Parzen:
    """A mixture of product kernels centred on ``centres`` (rows of the encoding, ``nan`` where
    inactive), each of weight 1, plus the uniform distribution on the cube with weight
    ``prior_weight`` (none if 0). Gaussian bandwidths: Scott's rule per dimension, at least
    ``min_bandwidth``, or those of another estimator (``bandwidths_of``)."""

    def __init__(self, dims: _Dims, centres: np.ndarray, prior_weight: float, min_bandwidth: float,
                 bandwidths_of: _Parzen | None = None) -> None:
        from scipy.special import ndtr

        n, d = centres.shape
        self.dims = dims
        if prior_weight > 0:
            self.mu = np.vstack([centres, np.full((1, d), np.nan)])  # the last row: the prior
            w = np.r_[np.ones(n), prior_weight]
        else:
            self.mu, w = centres, np.ones(n)
        self.total_weight = float(w.sum())
        self.weights = w / w.sum()
        self.log_w = np.log(self.weights)
        self.sigma = np.ones(d)
        self.lam = np.zeros(d)
        self.log_z = np.zeros_like(self.mu)  # log truncation mass of each Gaussian kernel
        active = ~np.isnan(centres)
        n_active = active.sum(axis=0)
        for k in range(d):
            nk = int(n_active[k])
            if nk == 0:
                continue
            if dims.kind[k] == _CAT:
                big_k = int(dims.n_choices[k])
                self.lam[k] = (big_k - 1) / big_k / (1.0 + nk / big_k)
                continue
            col = centres[active[:, k], k]
            scott = (float(np.std(col)) if nk > 1 else 0.0) * nk ** (-1.0 / (d + 4))
            lo = min_bandwidth
            e = dims.edges[k]
            if e is not None:
                lo = max(lo, 0.5 / (len(e) - 1))  # at least half a cell
            self.sigma[k] = min(max(scott, lo), 1.0)
        self.n_active = n_active
        if bandwidths_of is not None:  # where that estimator has trials
            has = bandwidths_of.n_active > 0
            self.sigma = np.where(has, bandwidths_of.sigma, self.sigma)
            self.lam = np.where(has, bandwidths_of.lam, self.lam)
        numeric = (dims.kind != _CAT) & (n_active > 0)
        if numeric.any():
            mu = self.mu[:, numeric]
            s = self.sigma[numeric]
            with np.errstate(invalid="ignore", divide="ignore"):
                z = np.log(ndtr((1.0 - mu) / s) - ndtr(-mu / s))
            self.log_z[:, numeric] = np.where(np.isnan(mu), 0.0, z)

    @property
    def n_components(self) -> int:
        return len(self.weights)

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """Log density (probability in discrete dimensions) of each row of ``x``."""
        from scipy.special import ndtr

        out = np.broadcast_to(self.log_w, (len(x), self.n_components)).copy()
        for k in range(x.shape[1]):
            xk = x[:, k]
            rows = ~np.isnan(xk)
            if not rows.any():
                continue  # inactive in every row: marginalized out
            xk = xk[rows]
            mu = self.mu[:, k]
            off = np.isnan(mu)  # components without this dimension: the uniform kernel
            kind = self.dims.kind[k]
            if kind == _CAT:
                big_k = int(self.dims.n_choices[k])
                if big_k == 1:
                    continue
                lam = self.lam[k]
                same = np.floor(xk * big_k)[:, None] == np.floor(np.where(off, -1.0, mu) * big_k)[None, :]
                term = np.where(same, math.log1p(-lam), math.log(max(lam, 1e-300) / (big_k - 1)))
                term[:, off] = -math.log(big_k)
            elif kind == _INT:
                e = self.dims.edges[k]
                assert e is not None
                cell = np.clip(np.searchsorted(e, xk, side="right") - 1, 0, len(e) - 2)
                a, b = e[cell], e[cell + 1]
                s = self.sigma[k]
                mu0 = np.where(off, 0.5, mu)[None, :]
                za = (a[:, None] - mu0) / s
                zb = (b[:, None] - mu0) / s
                # the kernel's mass on the cell, computed on the side of the mean where it is precise
                mass = np.where(za > 0, ndtr(-za) - ndtr(-zb), ndtr(zb) - ndtr(za))
                term = np.log(np.maximum(mass, 1e-300)) - self.log_z[:, k][None, :]
                term[:, off] = np.log(b - a)[:, None]
            else:
                s = self.sigma[k]
                z = (xk[:, None] - np.where(off, 0.5, mu)[None, :]) / s
                term = -0.5 * z * z - (_LOG_SQRT_2PI + math.log(s) + self.log_z[:, k])[None, :]
                term[:, off] = 0.0
            out[rows] += term
        return _logsumexp(out)

    def sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """``m`` points of the unit cube drawn from the mixture."""
        from scipy.special import ndtr, ndtri

        d = self.mu.shape[1]
        comp = rng.choice(self.n_components, size=m, p=self.weights)
        u = rng.random((m, d))
        v = rng.random((m, d))
        out = u.copy()  # uniform where the chosen component lacks the dimension
        for k in range(d):
            mu = self.mu[comp, k]
            on = ~np.isnan(mu)
            if not on.any():
                continue
            if self.dims.kind[k] == _CAT:
                big_k = int(self.dims.n_choices[k])
                own = np.floor(mu[on] * big_k)
                other = np.floor(u[on, k] * (big_k - 1))
                other = other + (other >= own)
                c = np.where(v[on, k] < 1.0 - self.lam[k], own, other)
                out[on, k] = (np.clip(c, 0, big_k - 1) + 0.5) / big_k
            else:  # the truncated Gaussian by inversion of its CDF
                s = self.sigma[k]
                lo, hi = ndtr(-mu[on] / s), ndtr((1.0 - mu[on]) / s)
                out[on, k] = mu[on] + s * ndtri(lo + u[on, k] * (hi - lo))
        return np.clip(out, 0.0, 1.0)


@dataclass
class _History:
    """The history as arrays, in trial-number order (proposals of the current batch appended)."""

    x: np.ndarray  # (N, d) encodings
    tier: np.ndarray  # _FEASIBLE / _BREAKS / _NO_VALUE / _LIVE
    order_key: np.ndarray  # ranking within the first two tiers (smaller is better)
    excess: np.ndarray  # (N, n_constraints): metric beyond its bound (<= 0 is feasible), nan unknown

    def with_liar(self, x: np.ndarray) -> _History:
        return _History(
            np.vstack([self.x, x[None, :]]), np.r_[self.tier, _LIVE], np.r_[self.order_key, np.inf],
            np.vstack([self.excess, np.full((1, self.excess.shape[1]), np.nan)]),
        )


class TPE(Strategy):
    """Tree-structured Parzen estimator with multivariate kernels (see the module doc).

    ``n_startup``: settled trials drawn at random before the model is used. ``n_candidates``:
    points drawn from ``l(x)`` per proposal. ``gamma`` and ``max_good``: the good set is the best
    ``min(ceil(gamma * n), max_good)`` of ``n`` settled trials. ``prior_weight``: weight of the
    uniform prior component in each estimator (each trial weighs 1). ``cost_aware``: prefer
    cheap points with CArBO's cost cooling (``None``: when the study has a dollar budget and a
    fitted cost model).
    """

    name = "tpe"
    needs_history = True
    slow = True

    def __init__(
        self,
        n_startup: int = 10,
        n_candidates: int = 24,
        gamma: float = 0.1,
        max_good: int = 25,
        prior_weight: float = 1.0,
        cost_aware: bool | None = None,
    ) -> None:
        self.spec = spec = TPESpec(n_startup, n_candidates, gamma, max_good, prior_weight, cost_aware)
        self.n_startup = spec.n_startup
        self.n_candidates = spec.n_candidates
        self.max_good = spec.max_good
        self.gamma = spec.gamma
        self.prior_weight = spec.prior_weight
        self.cost_aware = spec.cost_aware
        self.wants_cost_model = spec.cost_aware is True
        # Caches (optimisations only: a fresh object proposes the same points).
        self._space: Space | None = None
        self._dims: _Dims | None = None
        self._rows: dict[int, tuple[Trial, np.ndarray, Mapping[str, Any]]] = {}
        self._rows_key: Any = None

    def prepare(self, space: Space) -> None:
        import scipy.special  # noqa: F401 - a slow first import, done outside the ask lock

        self._describe(space)

    # -- the history as arrays -------------------------------------------------------------------
    def _describe(self, space: Space) -> _Dims:
        if self._space is not space or self._dims is None:
            if self._space is None or self._space != space or self._dims is None:
                self._dims = _describe(space)
                self._rows = {}
            self._space = space
        return self._dims

    def _row(self, space: Space, t: Trial, objectives: list[tuple[str, str]],
             constraints: list[tuple[str, tuple[str, float]]]) -> np.ndarray:
        """One trial as ``[encoding..., tier, objectives (smaller is better)..., constraint
        excesses...]`` (cached: a settled trial's snapshot never changes)."""
        hit = self._rows.get(t.number)
        if hit is not None and hit[0] is t:
            return hit[1]
        if hit is not None and hit[2] is t.params:
            x = hit[1][: space.n_dims]
        else:
            x = space.encode(t.params)
        ys = [math.nan] * len(objectives)
        ex = [math.nan] * len(constraints)
        state = t.state
        if state in (TrialState.PENDING, TrialState.RUNNING):
            tier = _LIVE
        elif state not in (TrialState.STOPPED, TrialState.PAUSED) and not measured(t):
            tier = _NO_VALUE  # FAILED, INFEASIBLE without metrics
        else:
            metrics = t.metrics
            for i, (name, direction) in enumerate(objectives):
                v = metrics.get(name)
                ys[i] = math.nan if v is None else (-v if direction == "max" else v)
            if not all(math.isfinite(y) for y in ys):
                tier = _NO_VALUE
            else:
                for i, (name, (op, bound)) in enumerate(constraints):
                    v = metrics.get(name)
                    if v is not None and math.isfinite(v):
                        ex[i] = v - bound if op == "<=" else bound - v
                breaks = state is TrialState.INFEASIBLE or any(math.isnan(e) or e > 0.0 for e in ex)
                tier = _BREAKS if breaks else _FEASIBLE
        row = np.concatenate([x, [tier], ys, ex])
        self._rows[t.number] = (t, row, t.params)
        return row

    def _history(self, space: Space, history: Sequence[Trial]) -> _History:
        ctx = self.context
        objectives = [(str(k), str(v)) for k, v in ctx.objectives.items()]
        constraints = [(str(k), (str(v[0]), float(v[1]))) for k, v in ctx.constraints.items()]
        key = (objectives, constraints)
        if key != self._rows_key:
            self._rows, self._rows_key = {}, key
        if any(a.number > b.number for a, b in zip(history, history[1:])):
            history = sorted(history, key=lambda t: t.number)
        rows = [self._row(space, t, objectives, constraints) for t in history if not t.retried]
        d, m, c = space.n_dims, len(objectives), len(constraints)
        table = np.array(rows).reshape(len(rows), d + 1 + m + c)
        n = len(rows)
        x = table[:, :d]
        tier_a = table[:, d].astype(int)
        y = table[:, d + 1: d + 1 + m]
        excess = table[:, d + 1 + m:]
        key = np.full(n, np.inf)
        feas = tier_a == _FEASIBLE
        if feas.any():
            if y.shape[1] == 1:
                key[feas] = y[feas, 0]
            else:
                yf = y[feas]
                ranks = np.argsort(np.argsort(yf, axis=0, kind="stable"), axis=0, kind="stable").sum(axis=1)
                key[feas] = front_ranks(yf) + ranks / (len(yf) * y.shape[1] + 1.0)
        brk = tier_a == _BREAKS
        if brk.any():
            viol = np.where(np.isnan(excess[brk]), np.inf, np.maximum(excess[brk], 0.0)).sum(axis=1)
            key[brk] = viol
        return _History(x, tier_a, key, excess)

    def ranked(self, space: Space, history: Sequence[Trial]) -> list[Trial]:
        """The trials of ``history`` in the order the good/bad split takes them (module doc), best
        first, in the context bound with ``bind``: trials with a finite objective that satisfy the
        constraints, then those that break one (least violation first), then those without a
        finite objective, then the live ones; ties in trial-number order; retried trials are left
        out. The good trials of the next proposal are the first ``gamma(n)`` with a value."""
        kept = sorted((t for t in history if not t.retried), key=lambda t: t.number)
        hist = self._history(space, kept)
        return [kept[i] for i in np.lexsort((hist.order_key, hist.tier))]

    # -- proposing ---------------------------------------------------------------------------------
    def propose(
        self, space: Space, history: Sequence[Trial], *, seed: int, number: int, n: int = 1
    ) -> list[dict[str, ParamValue]]:
        dims = self._describe(space)
        hist = self._history(space, history)
        out = []
        for k in range(number, number + n):
            params = self._propose_one(space, dims, hist, seeded_rng(seed, k))
            out.append(params)
            hist = hist.with_liar(space.encode(params))
        return out

    def _propose_one(
        self, space: Space, dims: _Dims, hist: _History, rng: np.random.Generator
    ) -> dict[str, ParamValue]:
        d = space.n_dims
        if d == 0:
            return space.decode(np.empty(0))
        settled = int(np.sum(hist.tier != _LIVE))
        if settled < self.n_startup:
            return self._random(space, dims, hist, rng)

        # The split: the best gamma(n) trials with a value are good; the rest, and liars, bad.
        valued = np.flatnonzero(hist.tier <= _BREAKS)
        n_good = min(math.ceil(self.gamma * settled), self.max_good, len(valued))
        ranked = valued[np.lexsort((hist.order_key[valued], hist.tier[valued]))]
        good = np.zeros(len(hist.tier), dtype=bool)
        good[ranked[:n_good]] = True
        live = hist.tier == _LIVE
        floor = _min_bandwidth(settled)
        l_est = _Parzen(dims, hist.x[good], self.prior_weight, floor)
        g_est = _Parzen(dims, hist.x[~good & ~live], self.prior_weight, floor)
        # Constant liar: pending trials are bad points at the resolution of the good model.
        liars = _Parzen(dims, hist.x[live], 0.0, floor, bandwidths_of=l_est) if live.any() else None
        constrained = bool(np.any(hist.tier == _BREAKS))
        cost = self.cost_weight()

        def score(params: list[dict[str, ParamValue]], x: np.ndarray) -> np.ndarray:
            log_g = g_est.log_pdf(x)
            if liars is not None:
                total = g_est.total_weight + liars.total_weight
                log_g = np.logaddexp(math.log(g_est.total_weight / total) + log_g,
                                     math.log(liars.total_weight / total) + liars.log_pdf(x))
            s = l_est.log_pdf(x) - log_g
            if constrained:
                s = s + _log_feasible(dims, hist, x)
            if cost is not None:
                s = s - cost * self._predicted_log_cost(params)
            return np.where(np.isnan(s), -np.inf, s)

        first: dict[str, ParamValue] | None = None
        for attempt in range(1 + _RETRY_ROUNDS):
            # candidates from l; if all repeat trials (a large discrete space), more from l, then
            # uniform ones
            if attempt <= _RETRY_ROUNDS // 2:
                u = l_est.sample(rng, self.n_candidates)
            else:
                u = rng.random((self.n_candidates, d))
            params = encoder_of(space).decode(u)
            x = encoder_of(space).encode(params)
            s = score(params, x)
            repeat = _repeats(x, hist.x)
            if not repeat.all():
                return params[int(np.argmax(np.where(repeat, -np.inf, s)))]
            if first is None:
                first = params[int(np.argmax(s))]
            if dims.grid is not None:  # a small discrete space: score every untried combination
                assert dims.grid_params is not None
                free = np.flatnonzero(~_repeats(dims.grid, hist.x))
                if len(free) == 0:
                    return space.decode(rng.random(d))  # every combination tried: repeats allowed
                untried = [dims.grid_params[i] for i in free]
                return untried[int(np.argmax(score(untried, dims.grid[free])))]
        assert first is not None
        return first  # nothing new found in a large space: repeat the best candidate

    def _random(
        self, space: Space, dims: _Dims, hist: _History, rng: np.random.Generator
    ) -> dict[str, ParamValue]:
        """The study's seeded random draw (as RandomSearch), avoiding repeats where it can."""
        d = space.n_dims
        params = space.decode(rng.random(d))
        if not len(hist.x) or not _repeats(space.encode(params)[None, :], hist.x)[0]:
            return params
        if dims.grid is not None:
            assert dims.grid_params is not None
            free = np.flatnonzero(~_repeats(dims.grid, hist.x))
            if len(free):
                return dims.grid_params[int(free[rng.integers(len(free))])]
            return params  # every combination tried
        for _ in range(100):
            p = space.decode(rng.random(d))
            if not _repeats(space.encode(p)[None, :], hist.x)[0]:
                return p
        return params

    # -- cost-aware search -----------------------------------------------------------------------
    def cost_weight(self) -> float | None:
        """CArBO's cost-cooling exponent ``c`` (module doc) in the context bound with ``bind``, or
        ``None`` when cost-aware search is off there."""
        ctx = self.context
        model = ctx.cost_model
        if self.cost_aware is False or model is None or not getattr(model, "is_fitted", True):
            return None
        if self.cost_aware is None and ctx.budget_usd is None:
            return None
        if ctx.budget_usd is None or ctx.budget_usd <= 0:
            return 1.0
        return min(max((ctx.budget_usd - ctx.spent_usd) / ctx.budget_usd, 0.0), 1.0)

    def _predicted_log_cost(self, params: list[dict[str, ParamValue]]) -> np.ndarray:
        ctx = self.context
        assert ctx.cost_model is not None
        try:
            mean, _ = ctx.cost_model.predict_log(params, ctx.max_resource)
        except ValueError:
            return np.zeros(len(params))
        mean = np.asarray(mean, dtype=float)
        return np.where(np.isfinite(mean), mean, 0.0)


def _log_feasible(dims: _Dims, hist: _History, x: np.ndarray) -> np.ndarray:
    """Sum over the constraints of ``log P(feasible | x)`` for each row of ``x``.

    A Gaussian-kernel vote of the trials with a value (Nadaraya-Watson), whose bandwidth at ``x``
    is the distance to its ``_FEASIBILITY_NEIGHBOURS``-th nearest trial (so the boundary is
    resolved finely where trials are dense, which is near the optimum), smoothed towards the
    overall feasible fraction by one pseudo-trial. Distances are Euclidean on the unit cube, with
    1 per dimension for different categories and for active against inactive.
    """
    valued = hist.tier <= _BREAKS
    xs = hist.x[valued]
    out = np.zeros(len(x))
    if not len(xs):
        return out
    sq = x[:, None, :] - xs[None, :, :]
    sq = sq * sq
    cat = dims.kind == _CAT
    if cat.any():
        k = dims.n_choices[cat]
        sq[:, :, cat] = np.floor(x[:, None, cat] * k) != np.floor(xs[None, :, cat] * k)
    x_off, s_off = np.isnan(x)[:, None, :], np.isnan(xs)[None, :, :]
    sq = np.where(x_off & s_off, 0.0, np.where(x_off | s_off, 1.0, sq))
    r2 = sq.sum(axis=2)
    k = min(_FEASIBILITY_NEIGHBOURS, len(xs))
    h2 = np.maximum(np.partition(r2, k - 1, axis=1)[:, k - 1], 1e-12)
    w = np.exp(-0.5 * r2 / h2[:, None])
    total = w.sum(axis=1)
    for e in hist.excess[valued].T:
        ok = ~(np.isnan(e) | (e > 0))
        if ok.all():
            continue
        base = (ok.sum() + 1.0) / (len(ok) + 2.0)
        out += np.log((w @ ok.astype(float) + base) / (total + 1.0))
    return out


def _repeats(x: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Which rows of ``x`` equal some row of ``seen`` (``nan`` equal to ``nan``)."""
    out = np.zeros(len(x), dtype=bool)
    if not len(seen):
        return out
    xa, sa = np.nan_to_num(x, nan=-1.0), np.nan_to_num(seen, nan=-1.0)
    first = xa[:, None, 0] == sa[None, :, 0]  # screen on the first dimension, then compare rows
    for i in np.flatnonzero(first.any(axis=1)):
        out[i] = bool((sa[first[i]] == xa[i]).all(axis=1).any())
    return out
