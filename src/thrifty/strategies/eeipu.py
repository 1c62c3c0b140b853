"""``eeipu``: memoization-aware, cost-aware Bayesian optimisation of pipelines (EEIPU: Essofi et al.
2024, "Reducing Hyperparameter Tuning Costs in ML, Vision and Language Model Training Pipelines via
Memoization-Awareness", arXiv 2411.03731).

A pipeline study's trial runs stages in order (prepare data, train, evaluate, ...); the memo cache
keeps each stage's output under its *prefix* (the parameters of stages ``0..s``), so a trial that
keeps an earlier trial's prefix reads that output instead of computing it again. This strategy picks
the configuration with the most expected improvement per expected dollar, where the expected dollars
know what the cache holds now.

**Models** (the shared core, :mod:`thrifty.numerics`: the ARD Matérn-5/2 GP of the ``gp``
strategy). The objective: one GP, targets as ``gp``'s (minimised, robustly scaled by
:func:`thrifty.strategies.gp.standardise`, failed trials at the worst value, trials in flight at
their posterior mean). The cost: one GP per stage on the log of the dollars the stage cost when it
*ran* (a stage read from the cache says nothing about computing it), over that stage's own
parameters, as in the paper. (Over the parameters of stages ``0..s``, which would let an earlier
stage's output change a later stage's cost, the GPs learnt the synthetic benchmark's costs from too
few points in 5 and 7 dimensions: 48 configurations within the budget against 55, three seeds.)
A stage's forecast is log-normal, so its expected dollars are ``exp(mu + sigma^2 / 2)`` (``mu``,
``sigma^2``: the GP's predictive mean and variance of log dollars, the fitted noise included). The
stages' GPs are used once every stage has :data:`MIN_COST_POINTS` (3) runs with a cost above 0; until then the total-cost GP stands in (below), and while fewer than 3
trials have a cost the cost term is off (plain EI).

**Expected cost of a candidate** (dollars): the deepest cached prefix whose parameters the
candidate keeps exactly (the encoded values rounded to 9 decimals, :meth:`Encoder.keys`) covers its
stages ``0..s`` at that prefix's measured ``read_cost_usd``; every later stage counts at its
expected dollars: ``E[C] = read_cost_usd + sum over stages t > s of E[cost_t]`` (no prefix: the sum
over every stage). Only the prefixes the study's context lists now (``Context.cached_prefixes``)
count: a prefix that was evaluated but has since been evicted is costed as computed again; nothing
about the cache is inferred from the history.

**Acquisition**: ``log EI(x) - eta * log E[C(x)]``, i.e. ``EI / E[C]^eta``. The exponent ``eta``
cools (``cost_exponent=None``, the default) from 1 when the model takes over to 0 when the budget is
spent: ``eta = 1 - (1 - r)^2``, ``r = (budget - spent) / (budget - initial)`` clipped to ``[0, 1]``,
``initial`` the dollars the first ``n_startup`` trials (the initial design) cost; without a dollar
budget ``eta = 1``. Early proposals favour cheap ones, late ones chase improvement alone. The paper
(after CArBO's cost cooling, Lee et al. 2020) cools linearly, ``eta = r``; ours keeps the cost's
weight at 3/4 or more until half the budget after the initial design is spent and lets it fall
fastest at the end. The reason: ``log EI``'s spread over the candidates widens as the objective's
model firms up, while ``log E[C]``'s stays that of the cost surface, so the cost's pull already fades
as the search goes on and a linear exponent fades it twice. Measured on benchmarks/pipelines.py's
three stage orders, 100 seeds each (40 seeds, then 60 held-out ones): more candidates (median 63
against 57 on the paper's order) and a better median, 90th percentile and 95th percentile final
objective on every order than the linear rule (RESULTS.md, issue 15). A number for
``cost_exponent`` holds ``eta`` there: 0 is EI alone, memoization-aware only through its candidates
(the benchmark's cost-blind variant).

**Within the budget**: with a dollar budget, a candidate whose expected cost exceeds the dollars
left (less this batch's earlier proposals) is never proposed while one that fits exists, and each
proposal's expected cost is its :meth:`EEIPU.forecast_usd`, which the study's budget admission uses
instead of its own cache-blind cost model (so a cheap completion of a cached prefix is not refused
at the end of the budget as if it had to compute the prefix again).

**Candidates**: fresh ones, ``n_candidates`` scrambled Sobol' points plus ``LOCAL_SHARE`` (a
quarter) as many perturbations of the :data:`N_BEST` best observed points (each continuous
coordinate moved by a normal draw of standard deviation 0.01, 0.03 or 0.1 of its range; a discrete
one redrawn with probability ``1 / dims``); and completions: for each of at most ``max_prefixes``
cached prefixes, ``completions`` points that keep the prefix's parameters, half with the later
stages drawn uniformly and half perturbations (0.03 or 0.1) of the later stages of the best observed
configuration with that prefix (of the best overall when none has it). The prefixes completed, when
there are more: those whose best observed configuration is best first, then the deepest. A prefix
covering every stage is a whole configuration and is not completed. The best-scoring candidate that
is neither in the history (any state) nor a near-duplicate (:data:`thrifty.encoding.NEAR`) of a
trial or of this batch's proposals wins.

**Without stages** (a plain study: ``Context.stage_params`` is empty or names one stage) the one
stage holds every parameter and its cost is the trial's total ``cost_usd``: EI per expected dollar
with the same cooling. With stages but too few per-stage costs recorded (``Context.stage_run_usd``:
what each stage cost when it ran, from the study's stage records), the total's GP stands for them: a completion costs its prefix's read
cost plus the total's expectation less the prefix's measured ``run_cost_usd``, at least
:data:`SUFFIX_FLOOR` of the total.

**Start**: trials numbered below ``n_startup`` (default ``max(5, 2 * dims)``) are the study's
scrambled Sobol' points (those of ``strategy="sobol"``). Each GP's hyperparameters are fitted on its
first ``a`` observations in history order, ``a`` the refit anchor of ``gp``
(:func:`thrifty.strategies.gp.refit_anchor`), and memoised on those points and targets
(:func:`fitted`). A stage's cost GP is given its raw log dollars, so its fit changes only when
``a`` does. The objective's GP is given its targets as scaled among every observation (it keeps the
``max_points`` most recent), which change with each new one, so it is refitted at every proposal:
fitted only at the anchors (its first ``a`` targets scaled among themselves), it did worse in the
tail on benchmarks/pipelines.py (paper order, 100 seeds: worst run -5.95 against -2.67, p90 -2.29
against -1.76; the same on the reversed order) for about 70 ms per proposal saved (the real
example, a few hundred trials, where it is two thirds of a proposal's time). Proposals run with one
BLAS thread. Everything is a function of ``(space, history, context, seed, number)``.
"""

from __future__ import annotations

import json
import math
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from thrifty.encoding import Encoder, encoder_of
from thrifty.errors import ThriftyError
from thrifty.space import ParamValue, Space
from thrifty.specs.strategies import EEIPUSpec
from thrifty.strategies._spread import fresh_sobol
from thrifty.strategies.base import Strategy
from thrifty.strategies.gp import blas_controller, refit_anchor, standardise
from thrifty.trial import Trial, TrialState

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.numerics.features import GroupFeatures
    from thrifty.numerics.gp import GaussianProcess
    from thrifty.pipelines.cache import CachedPrefix

#: Runs with a cost above 0 a stage's cost GP needs.
MIN_COST_POINTS = 3
#: A completion's remaining cost under the total-cost fallback is at least this share of the total.
SUFFIX_FLOOR = 0.1
#: Fresh local candidates: this share of ``n_candidates``, around the ``N_BEST`` best points.
LOCAL_SHARE = 0.25
N_BEST = 5
#: Standard deviations (share of each range) of fresh and of completion perturbations.
LOCAL_SD = (0.01, 0.03, 0.1)
SUFFIX_SD = (0.03, 0.1)
#: Hyperparameter fits use at most this many points (a seeded subset beyond).
FIT_MAX = 150
#: Memoised hyperparameter fits: (what, anchor, columns, points, targets) -> theta.
_FITS: dict[tuple[Any, ...], Any] = {}
_FITS_KEPT = 32
#: Proposals whose expected dollars :meth:`EEIPU.forecast_usd` remembers.
FORECASTS_KEPT = 64


def _params_key(params: Mapping[str, Any]) -> str:
    return json.dumps({k: params[k] for k in sorted(params)}, default=str, allow_nan=True)


#: Trial states whose dollars the cost GPs learn from.
_PAID = (TrialState.COMPLETED, TrialState.STOPPED, TrialState.FAILED, TrialState.INFEASIBLE)


def cooling_exponent(budget_usd: float | None, spent_usd: float, initial_usd: float) -> float:
    """The exponent of the expected cost: ``1 - (1 - r)^2`` with ``r = (budget - spent) / (budget -
    initial)`` clipped to ``[0, 1]`` (dollars; ``initial``: what the initial design cost), so 1 when
    the model takes over and 0 when the budget is spent (module doc, "Acquisition"); 1 without a
    budget, 0 when the initial design took the whole budget."""
    if budget_usd is None:
        return 1.0
    room = budget_usd - initial_usd
    if room <= 0:
        return 0.0
    r = min(max((budget_usd - spent_usd) / room, 0.0), 1.0)
    return 1.0 - (1.0 - r) ** 2


def expected_cost(stage_usd: np.ndarray, depth: np.ndarray, read_usd: np.ndarray,
                  run_usd: np.ndarray) -> np.ndarray:
    """Expected dollars of candidates (module doc). ``stage_usd``: ``(m, k)`` expected dollars of
    each stage computed (``k = 1``: the total-cost fallback); ``depth``: index of the last stage of
    the cached prefix each keeps (-1: none); ``read_usd`` / ``run_usd``: that prefix's measured read
    and run dollars (ignored where ``depth`` is -1)."""
    cached = depth >= 0
    if stage_usd.shape[1] == 1:
        total = stage_usd[:, 0]
        rest = np.maximum(total - run_usd, SUFFIX_FLOOR * total)
        return np.where(cached, read_usd + rest, total)
    later = np.arange(stage_usd.shape[1])[None, :] > depth[:, None]
    return np.where(cached, read_usd, 0.0) + np.sum(np.where(later, stage_usd, 0.0), axis=1)


@dataclass(frozen=True)
class Stages:
    """The encoded columns of each stage's parameters (a parameter no stage names joins the last)."""

    own: tuple[np.ndarray, ...]

    @staticmethod
    def of(enc: Encoder, stage_params: Sequence[Sequence[str]]) -> Stages:
        """The stages of ``stage_params`` (parameter names per stage); one stage of every column
        when there are fewer than two."""
        if len(stage_params) < 2:
            return Stages((np.arange(enc.n_dims),))
        index = {n: i for i, n in enumerate(enc.names)}
        own = [[index[n] for n in names if n in index] for names in stage_params]
        named = {i for cols in own for i in cols}
        own[-1].extend(i for i in range(enc.n_dims) if i not in named)
        return Stages(tuple(np.array(sorted(cols), dtype=int) for cols in own))

    @property
    def n(self) -> int:
        return len(self.own)

    def prefix(self, s: int) -> np.ndarray:
        """Columns of stages ``0..s``."""
        return np.sort(np.concatenate(self.own[: s + 1]))


@dataclass(frozen=True)
class Prefix:
    """A cached prefix in encoded terms: its last stage, its parameters as the cache holds them, the
    encoded values of its columns (:meth:`Stages.prefix`), its key among them, and its measured read
    and run dollars."""

    stage: int
    params: Mapping[str, Any]
    values: np.ndarray
    key: bytes
    read_usd: float
    run_usd: float


def cached_prefixes(cached: Sequence[CachedPrefix], space: Space, enc: Encoder, stages: Stages) -> list[Prefix]:
    """The context's cached prefixes that fit the stages, encoded; of two with the same parameters
    the cheaper read."""
    if stages.n < 2:
        return []
    items = [c for c in cached if 0 <= int(c.stage) < stages.n]
    if not items:
        return []
    ref = space.decode(np.full(space.n_dims, 0.5))
    points = enc.snap(enc.encode([{**ref, **dict(c.params)} for c in items]))  # one batch: fast
    stage_of = np.array([int(c.stage) for c in items])
    keys: list[bytes] = [b""] * len(items)
    for s in np.unique(stage_of):
        rows = np.flatnonzero(stage_of == s)
        for i, key in zip(rows, enc.keys(points[np.ix_(rows, stages.prefix(int(s)))]), strict=True):
            keys[i] = key
    best: dict[tuple[int, bytes], Prefix] = {}
    for i, c in enumerate(items):
        s, key = int(stage_of[i]), keys[i]
        values = points[i, stages.prefix(s)]
        p = Prefix(s, dict(c.params), values, key, float(c.read_cost_usd), float(c.run_cost_usd))
        if (s, key) not in best or p.read_usd < best[(s, key)].read_usd:
            best[(s, key)] = p
    return list(best.values())


def deepest_prefix(x: np.ndarray, prefixes: Sequence[Prefix], enc: Encoder,
                   stages: Stages) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each candidate (rows of ``x``, snapped): the last stage of the deepest cached prefix it
    keeps exactly (-1: none), and that prefix's read and run dollars."""
    m = len(x)
    depth, read, run = np.full(m, -1), np.zeros(m), np.zeros(m)
    by_stage: dict[int, dict[bytes, Prefix]] = {}
    for p in prefixes:
        by_stage.setdefault(p.stage, {})[p.key] = p
    for s in sorted(by_stage):  # deeper stages overwrite shallower ones
        table = by_stage[s]
        for i, key in enumerate(enc.keys(x[:, stages.prefix(s)])):
            p = table.get(key)
            if p is not None:
                depth[i], read[i], run[i] = s, p.read_usd, p.run_usd
    return depth, read, run


def zscored(v: np.ndarray) -> np.ndarray:
    """``v`` less its mean, over its standard deviation (1 where that is 0)."""
    return (v - np.mean(v)) / (float(np.std(v)) or 1.0)


def fitted(gp: GaussianProcess, x: np.ndarray, y: np.ndarray, what: str, seed: int,
           scale: Callable[[np.ndarray], np.ndarray] = zscored) -> Any:
    """MAP hyperparameters of ``gp`` for encoded points ``x`` and raw targets ``y`` (in history
    order): fitted on the first ``a = refit_anchor(n)`` points, their targets scaled among
    themselves by ``scale`` (at most :data:`FIT_MAX` of them, a seeded subset beyond), memoised on
    those points and raw targets, so the fit changes only when ``a`` does. Seeded by ``(seed, a,
    what)``: any worker fits the same from the same history."""
    a = refit_anchor(len(y))
    xa, ya = x[:a], y[:a]
    key = (what, seed, a, gp.feat.encoder.names, xa.tobytes(), ya.tobytes())
    theta = _FITS.get(key)
    if theta is None:
        rng = np.random.default_rng([seed, a, zlib.crc32(what.encode())])
        ys = scale(ya)
        if a > FIT_MAX:
            keep = np.sort(rng.choice(a, size=FIT_MAX, replace=False))
            xa, ys = xa[keep], ys[keep]
        theta = gp.fit(gp.feat.features(xa), ys, [*gp.default_starts(), gp.random_start(rng)])
        _FITS[key] = theta
        while len(_FITS) > _FITS_KEPT:
            _FITS.pop(next(iter(_FITS)))
    return theta


@dataclass(frozen=True)
class Observations:
    """The history as model inputs: encoded points of settled trials with an observation, their
    minimisation targets (failures at the worst value), which are real values eligible as the
    incumbent, and the encoded points in flight."""

    x: np.ndarray
    y: np.ndarray
    ok: np.ndarray
    pending: np.ndarray

    @staticmethod
    def of(history: Sequence[Trial], points: np.ndarray, metric: str, direction: str) -> Observations:
        rows, ys, oks, pending = [], [], [], []
        for i, t in enumerate(history):
            if t.state in (TrialState.PENDING, TrialState.RUNNING, TrialState.PAUSED):
                pending.append(i)
                continue
            if t.state is TrialState.FAILED and t.retried:
                continue  # its retry stands for it
            v = t.metrics.get(metric)
            finite = v is not None and math.isfinite(v)
            if t.state is TrialState.STOPPED and not finite:
                continue  # stopped before any report
            good = finite and t.state in (TrialState.COMPLETED, TrialState.STOPPED)
            rows.append(i)
            ys.append((-v if direction == "max" else v) if finite else math.nan)
            oks.append(good)
        y = np.array(ys, dtype=float)
        ok = np.array(oks, dtype=bool)
        real = np.isfinite(y)
        if real.any():
            y[~real] = np.max(y[real])
        return Observations(points[rows], y, ok, points[pending])


class StageCostModel:
    """Expected dollars of each stage computed, from one log-cost GP per stage (module doc), or of
    the whole trial (``total``: the fallback and plain studies)."""

    def __init__(self, parts: list[tuple[np.ndarray, GaussianProcess, float, float]], total: bool) -> None:
        self.parts = parts  # (columns, GP, mean, sd of log dollars) per stage
        self.total = total

    def expected(self, x: np.ndarray) -> np.ndarray:
        """``(m, k)`` expected dollars at snapped points ``x``: ``exp(mu + sigma^2 / 2)``."""
        out = np.empty((len(x), len(self.parts)))
        for j, (cols, gp, mu, sd) in enumerate(self.parts):
            mean, var = gp.predict(gp.feat.features(x[:, cols]))
            out[:, j] = np.exp(mu + sd * mean + 0.5 * sd * sd * (var + gp.noise))
        return out


class EEIPU(Strategy):
    """Expected improvement per expected dollar, memoization-aware (module doc).

    ``n_startup``: Sobol' trials before the model (``None``: ``max(5, 2 * dims)``).
    ``n_candidates``: fresh Sobol' candidates per proposal. ``completions``: candidates per cached
    prefix. ``max_prefixes``: cached prefixes completed per proposal. ``cost_exponent``: ``None``
    cools from 1 to 0 as the dollar budget is spent; a number in ``[0, 1]`` holds it.
    ``max_points``: finished trials the objective's GP is conditioned on (the most recent beyond).
    """

    name = "eeipu"
    needs_history = True
    slow = True

    def __init__(self, n_startup: int | None = None, n_candidates: int = 512, completions: int = 32,
                 max_prefixes: int = 64, cost_exponent: float | None = None, max_points: int = 300) -> None:
        self.spec = spec = EEIPUSpec(n_startup, n_candidates, completions, max_prefixes, cost_exponent, max_points)
        self.n_startup = spec.n_startup
        self.n_candidates = spec.n_candidates
        self.completions = spec.completions
        self.max_prefixes = spec.max_prefixes
        self.cost_exponent = spec.cost_exponent
        self.max_points = spec.max_points
        self._features: dict[tuple[Space, tuple[int, ...]], tuple[GroupFeatures, np.ndarray]] = {}
        #: Expected dollars of the latest proposals (:meth:`forecast_usd`), by their parameters.
        self._forecasts: dict[str, float] = {}

    def forecast_usd(self, params: Mapping[str, Any]) -> float | None:
        """The expected dollars of one of the latest proposals (the cache it keeps counted at its
        read cost), or ``None`` for one proposed without the cost model (the initial design)."""
        return self._forecasts.get(_params_key(params))

    def remember(self, params: Mapping[str, Any], usd: float | None) -> None:
        """Keep a proposal's expected dollars for :meth:`forecast_usd` (the latest ``FORECASTS_KEPT``)."""
        key = _params_key(params)
        self._forecasts.pop(key, None)
        if usd is not None and math.isfinite(usd):
            self._forecasts[key] = float(usd)
            while len(self._forecasts) > FORECASTS_KEPT:
                self._forecasts.pop(next(iter(self._forecasts)))

    def prepare(self, space: Space) -> None:
        import scipy.stats.qmc  # noqa: F401 - slow imports, done outside the ask transaction

        import thrifty.numerics.acquisition
        import thrifty.numerics.gp  # noqa: F401

    def features(self, space: Space, cols: np.ndarray) -> tuple[GroupFeatures, np.ndarray]:
        """Kernel features of the parameters in encoded columns ``cols`` (their own sub-space), and
        the columns they read; all columns when the sub-space is not a space of its own (a condition
        on a parameter outside it)."""
        from thrifty.numerics.features import GroupFeatures

        key = (space, tuple(int(c) for c in cols))
        if key not in self._features:
            enc = encoder_of(space)
            if len(cols) in (0, enc.n_dims):  # all, or none (a stage of fixed parameters): the whole space
                self._features[key] = (GroupFeatures(enc), np.arange(enc.n_dims))
                return self._features[key]
            try:
                sub = Space({enc.names[c]: space[enc.names[c]] for c in cols})
                self._features[key] = (GroupFeatures(encoder_of(sub)), np.asarray(cols, dtype=int))
            except ThriftyError:
                self._features[key] = (GroupFeatures(enc), np.arange(enc.n_dims))
        return self._features[key]

    def exponent(self, history: Sequence[Trial], n_startup: int) -> float:
        """``eta`` of this proposal (module doc)."""
        if self.cost_exponent is not None:
            return self.cost_exponent
        ctx = self.context
        initial = sum(t.cost_usd for t in history if t.number < n_startup)
        return cooling_exponent(ctx.budget_usd, ctx.spent_usd, initial)

    def propose(self, space: Space, history: Sequence[Trial], *, seed: int, number: int,
                n: int = 1) -> list[dict[str, ParamValue]]:
        if space.n_dims == 0:
            return [space.decode(np.empty(0)) for _ in range(n)]
        # One BLAS thread, as ``gp``: small matrices, and workers proposing side by side on few cores.
        with blas_controller().limit(limits=1, user_api="blas"):
            return _Proposal(self, space, history, int(seed) & 0xFFFFFFFF, int(number)).run(n)


class _Proposal:
    """One call of :meth:`EEIPU.propose`: the data, the models (fitted once), the batch."""

    def __init__(self, s: EEIPU, space: Space, history: Sequence[Trial], seed: int, number: int) -> None:
        self.s, self.space, self.history, self.seed, self.number = s, space, history, seed, number
        self.enc = encoder_of(space)
        self.n_startup = s.n_startup if s.n_startup is not None else max(5, 2 * space.n_dims)
        self.points = self.enc.snap(self.enc.encode([t.params for t in history])) if history \
            else np.empty((0, space.n_dims))
        self.taken = set(self.enc.keys(self.points))
        self.batch: list[np.ndarray] = []
        ctx = s.context
        self.stages = Stages.of(self.enc, ctx.stage_params)
        self.prefixes = cached_prefixes(ctx.cached_prefixes, space, self.enc, self.stages)
        self.metric, self.direction = next(iter(ctx.objectives.items()))

    def rng(self, tag: int, k: int | None = None) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.number if k is None else k, tag])

    def run(self, n: int) -> list[dict[str, ParamValue]]:
        obs = Observations.of(self.history, self.points, self.metric, self.direction)
        model: _Scorer | None = None
        out: list[dict[str, ParamValue]] = []
        for j in range(n):
            k = self.number + j
            usd: float | None = None
            if k < self.n_startup or not obs.ok.any() or len(obs.y) < 2:
                params = fresh_sobol(self.space, self.history, out, seed=self.seed, number=k)
                x = self.enc.snap(self.enc.encode([params]))[0]
            else:
                if model is None:
                    model = _Scorer(self, obs)
                x, usd = model.propose(k, np.array(self.batch).reshape(-1, self.enc.n_dims))
                params = self.exact(x, self.space.decode(np.nan_to_num(x, nan=0.5)))
                if usd is not None:
                    model.left -= usd  # this batch's earlier proposals spend from the same dollars
            self.s.remember(params, usd)
            self.taken.add(self.enc.keys(x[None, :])[0])
            self.batch.append(x)
            out.append(params)
        return out

    def exact(self, x: np.ndarray, params: dict[str, ParamValue]) -> dict[str, ParamValue]:
        """``params`` (decoded from ``x``) with the parameters of the deepest cached prefix ``x``
        keeps set to the cache's own values: decoding may move a float in its last bits, and the
        cache matches a prefix's parameters exactly."""
        for p in sorted(self.prefixes, key=lambda q: -q.stage):
            if self.enc.keys(x[None, self.stages.prefix(p.stage)])[0] == p.key:
                return {**params, **{k: v for k, v in p.params.items() if k in params}}
        return params

    def known(self) -> np.ndarray:
        """Encoded points of every trial and of this batch's proposals."""
        return np.vstack([self.points, *[b[None, :] for b in self.batch]]) if self.batch else self.points

    # -- the cost models ----------------------------------------------------------------------
    def cost_model(self) -> StageCostModel | None:
        """Per-stage cost GPs, the total-cost GP where stage costs are missing, or ``None`` while
        too few trials have a cost."""
        per_stage = self._cost_rows() if self.stages.n >= 2 else None
        if per_stage is not None:
            parts = [self._cost_part(self.stages.own[s], rows, costs, f"stage{s}")
                     for s, (rows, costs) in enumerate(per_stage)]
            return StageCostModel(parts, total=False)
        paid = [(i, t.cost_usd) for i, t in enumerate(self.history) if t.state in _PAID and t.cost_usd > 0]
        if len(paid) < MIN_COST_POINTS:
            return None
        rows, costs = zip(*paid)
        part = self._cost_part(np.arange(self.enc.n_dims), list(rows), list(costs), "total")
        return StageCostModel([part], total=True)

    def _cost_rows(self) -> list[tuple[list[int], list[float]]] | None:
        """Per stage, the history rows where it ran with a cost above 0 and those dollars; ``None``
        unless every stage has :data:`MIN_COST_POINTS`."""
        out: list[tuple[list[int], list[float]]] = [([], []) for _ in range(self.stages.n)]
        known = self.s.context.stage_run_usd
        for i, t in enumerate(self.history):
            costs = known.get(t.number, ()) if t.state in _PAID else ()
            for s, c in enumerate(costs[: self.stages.n]):
                if c is not None and c > 0 and math.isfinite(c):
                    out[s][0].append(i)
                    out[s][1].append(c)
        return out if all(len(rows) >= MIN_COST_POINTS for rows, _ in out) else None

    def _cost_part(self, cols: np.ndarray, rows: list[int], costs: list[float],
                   what: str) -> tuple[np.ndarray, GaussianProcess, float, float]:
        from thrifty.numerics.gp import GaussianProcess

        feat, cols = self.s.features(self.space, cols)
        logc = np.log(np.array(costs, dtype=float))
        mu, sd = float(np.mean(logc)), float(np.std(logc)) or 1.0
        x = self.points[rows][:, cols]
        y = (logc - mu) / sd
        gp = GaussianProcess(feat)
        gp.condition(fitted(gp, x, logc, what, self.seed), feat.features(x), y)
        return cols, gp, mu, sd


class _Scorer:
    """The fitted models of one proposal and the acquisition's maximisation over the candidates."""

    def __init__(self, p: _Proposal, obs: Observations) -> None:
        from thrifty.numerics.gp import GaussianProcess

        self.p, self.enc = p, p.enc
        keep = np.arange(len(obs.y))[-p.s.max_points:]  # the most recent beyond max_points
        self.x, self.ok = obs.x[keep], obs.ok[keep]
        if not self.ok.any():  # only failures among the most recent: any observation may lead
            self.ok = np.ones(len(keep), dtype=bool)
        self.y_raw = obs.y[keep]
        feat, _ = p.s.features(p.space, np.arange(p.enc.n_dims))
        self.feat = feat
        y = standardise(self.y_raw)
        self.f = feat.features(self.x)
        self.gp = GaussianProcess(feat)
        # the targets scaled with every observation: a fit at each proposal in effect (module doc)
        self.theta = fitted(self.gp, self.x, y, "objective", p.seed)
        self.gp.condition(self.theta, self.f, y)
        self.y = y
        self.pending = obs.pending
        self._best: dict[int, dict[bytes, tuple[float, int | None]]] = {}
        self.eta = p.s.exponent(p.history, p.n_startup)
        ctx = p.s.context
        #: Dollars left of the budget (``inf`` without one), less this batch's proposals.
        self.left = math.inf if ctx.budget_usd is None else max(ctx.budget_usd - ctx.spent_usd, 0.0)
        self.costs = p.cost_model() if self.eta > 0 or math.isfinite(self.left) else None

    def propose(self, k: int, batch: np.ndarray) -> tuple[np.ndarray, float | None]:
        """The best new candidate for trial ``k`` (module doc), with the trials in flight and
        ``batch`` (this call's earlier proposals) at their posterior mean; and its expected
        dollars (``None`` without a cost model)."""
        from thrifty.numerics.acquisition import log_ei
        from thrifty.numerics.gp import GaussianProcess

        gp = self.gp
        flying = np.vstack([self.pending, batch]) if len(batch) else self.pending
        if len(flying):
            fp = self.feat.features(flying)
            gp = GaussianProcess(self.feat).condition(self.theta, np.vstack([self.f, fp]),
                                                      np.r_[self.y, self.gp.predict(fp)[0]])
        best = float(np.min(gp.train_mean()[: len(self.y)][self.ok]))
        x = self.candidates(k)
        mean, var = gp.predict(self.feat.features(x))
        score = log_ei(mean, var, best)
        cost = None
        if self.costs is not None:
            depth, read, run = deepest_prefix(x, self.p.prefixes, self.enc, self.p.stages)
            cost = expected_cost(self.costs.expected(x), depth, read, run)
            if self.eta > 0:
                score = score - self.eta * np.log(np.maximum(cost, 1e-12))
        score = np.where(np.isnan(score), -np.inf, score)
        taken = np.array([key in self.p.taken for key in self.enc.keys(x)])
        score = np.where(taken, -np.inf, score)
        if cost is not None:  # what the dollars left cannot pay for is never proposed while something fits
            fits = (cost <= self.left) & np.isfinite(score)
            if fits.any():
                score = np.where(fits, score, -np.inf)
        i = self.best_new(x, score)
        return x[i], (None if cost is None else float(cost[i]))

    def best_new(self, x: np.ndarray, score: np.ndarray) -> int:
        """The best-scoring candidate that is not a near-duplicate of a known point (the best
        finite one if every candidate is)."""
        order = np.argsort(-score, kind="stable")
        order = order[np.isfinite(score[order])]
        if not len(order):
            return int(np.argmax(score))
        fresh = self.enc.first_not_near(x, order, self.p.known())
        return int(order[0]) if fresh is None else fresh

    # -- candidates ---------------------------------------------------------------------------
    def candidates(self, k: int) -> np.ndarray:
        """Snapped candidates: fresh points, then completions of cached prefixes (module doc)."""
        rng = self.p.rng(2, k)
        parts = [self.fresh(rng)]
        for prefix in self.completed_prefixes():
            parts.append(self.completions(prefix, rng))
        return self.enc.snap(np.vstack(parts))

    def fresh(self, rng: np.random.Generator) -> np.ndarray:
        from scipy.stats import qmc

        d, m = self.enc.n_dims, self.p.s.n_candidates
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Sobol' balance: any count is fine here
            sobol = qmc.Sobol(d=d, scramble=True, seed=rng).random(m)
        pool = np.flatnonzero(self.ok)
        best = pool[np.argsort(self.y_raw[pool], kind="stable")[:N_BEST]]
        n_local = max(int(m * LOCAL_SHARE), 16)
        base = np.nan_to_num(self.x[best[rng.integers(len(best), size=n_local)]], nan=0.5)
        return np.vstack([sobol, self.perturbed(base, LOCAL_SD, rng, np.arange(d))])

    def perturbed(self, base: np.ndarray, sds: tuple[float, ...], rng: np.random.Generator,
                  cols: np.ndarray) -> np.ndarray:
        """``base`` with columns ``cols`` moved: continuous ones by a normal draw (standard
        deviation one of ``sds``), discrete ones redrawn with probability ``1 / len(cols)``."""
        out = base.copy()
        sd = rng.choice(np.array(sds), size=(len(base), 1))
        cont = np.intersect1d(cols, self.enc.continuous)
        out[:, cont] = np.clip(base[:, cont] + sd * rng.standard_normal((len(base), len(cont))), 0.0, 1.0)
        disc = np.setdiff1d(cols, cont)
        flip = rng.random((len(base), len(disc))) < 1.0 / max(len(cols), 1)
        out[:, disc] = np.where(flip, rng.random((len(base), len(disc))), base[:, disc])
        return out

    def completed_prefixes(self) -> list[Prefix]:
        """The cached prefixes completed this proposal: not covering every stage; at most
        ``max_prefixes``, those whose best observed configuration is best first, then the deepest."""
        p = self.p
        open_ = [q for q in p.prefixes if q.stage < p.stages.n - 1]
        if len(open_) <= p.s.max_prefixes:
            return open_
        return sorted(open_, key=lambda q: (self.best_with(q)[0], -q.stage))[: p.s.max_prefixes]

    def best_with(self, prefix: Prefix) -> tuple[float, int | None]:
        """(best target, its row) among the observations that keep ``prefix``; ``(inf, None)`` if none."""
        return self.best_by_key(prefix.stage).get(prefix.key, (math.inf, None))

    def best_by_key(self, stage: int) -> dict[bytes, tuple[float, int | None]]:
        """Per prefix key of stages ``0..stage``: (best target, its first row) among the real
        observations with it; computed once per proposal."""
        known = self._best.get(stage)
        if known is None:
            known = self._best[stage] = {}
            keys = self.enc.keys(self.x[:, self.p.stages.prefix(stage)])
            for i in np.flatnonzero(self.ok):
                y = float(self.y_raw[i])
                if y < known.get(keys[i], (math.inf, None))[0]:
                    known[keys[i]] = (y, int(i))
        return known

    def completions(self, prefix: Prefix, rng: np.random.Generator) -> np.ndarray:
        """``completions`` points keeping ``prefix``: half uniform, half around the best observed
        configuration with it (the best overall if none)."""
        m = self.p.s.completions
        cols = self.p.stages.prefix(prefix.stage)
        rest = np.setdiff1d(np.arange(self.enc.n_dims), cols)
        _, row = self.best_with(prefix)
        if row is None:
            pool = np.flatnonzero(self.ok)
            row = int(pool[np.argmin(self.y_raw[pool])])
        u = rng.random((m, self.enc.n_dims))
        half = m // 2
        if half:
            base = np.repeat(np.nan_to_num(self.x[row], nan=0.5)[None, :], half, axis=0)
            u[:half] = self.perturbed(base, SUFFIX_SD, rng, rest)
        u[:, cols] = np.nan_to_num(prefix.values, nan=0.5)
        return u
