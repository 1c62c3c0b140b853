"""Completion criteria: when a study has found enough and further trials are not worth their cost.

A criterion looks at the study's finished trials (in number order) and either lets the study go
on (``None``) or says why it is done. The study checks its criteria before starting each trial;
once one holds, no trial starts (``StudyExhausted`` with reason ``"criterion"``); trials already
running finish. Criteria are stored with the study, so every worker applies the same ones.

Only single-objective studies use them; "better" follows the objective's direction. The best
value after each trial is the running best over the trials :func:`thrifty.ranking.rank` ranks
(COMPLETED, finite value; a trial that broke a constraint is INFEASIBLE, so it never counts).

- :class:`TargetReached`: a completed trial reached ``value`` (>= for max, <= for min).
- :class:`NoImprovement`: over the last ``trials`` finished trials, or over the last ``usd``
  dollars spent, the best improved by less than ``min_improvement`` (relative to ``|best|``, or
  absolute with ``relative=False``). It needs that window to have elapsed.
- :class:`ImprovementNotWorthCost`: the value of the improvement the next trial can be expected
  to bring is below its expected cost. Rule: the expected gain of one more trial is the best's
  improvement over the last ``window`` finished trials divided by ``window`` (the recent rate of
  progress); its worth is that gain times ``usd_per_unit`` (what one unit of the objective is
  worth to you, in dollars); the expected cost is the mean cost of those ``window`` trials. Stop
  when worth < cost. It needs ``window`` finished trials after the first completed one.
- :class:`NoExpectedImprovement`: a Gaussian process fitted on the completed trials (the ``gp``
  strategy's model) expects no configuration of the space to improve the best by
  ``min_improvement`` or more (relative to ``|best|``, or absolute with ``relative=False``): the
  largest expected improvement over seeded space-filling candidates and steps around the best
  trials is below it (the stopping rule of Nguyen et al., ACML 2017, "Regret for expected
  improvement over the best-observed value and stopping condition"), and the best improved by
  less than that over the last ``confirm_trials`` finished trials (0: no confirmation). It needs
  ``min_trials`` completed trials. Why both: the model alone, fitted on 20-30 trials of a
  7-dimensional space, is sometimes sure too early (on LCBench one run in seven stopped more than
  half a point of regret short, the worst 10.5 points); a window without progress alone stops
  runs in which the model still sees a gain. Measured (``benchmarks/criteria.py``, ten LCBench
  tasks x 10 seeds, the defaults' GP search, up to 100 trials): the defaults (0.1%, 10 trials)
  save 21% of the spend at +0.02 points of median regret (90th percentile of the extra regret
  per run 0.5 points); 0.3% saves 32% at +0.14; ``NoImprovement(0.001, trials=40)`` saves 18% at
  +0.11, ``trials=25`` 37% at +0.20.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.errors import ValidationError
from thrifty.ranking import rank
from thrifty.space import Space
from thrifty.specs.base import Spec, arg
from thrifty.specs.rules import BOOLEAN, POSITIVE, integer, number
from thrifty.trial import Trial


@dataclass(frozen=True)
class Criterion(Spec, abc.ABC):
    """A rule that says when a single-objective study is done. A criterion is its own validated
    spec (:class:`~thrifty.specs.base.Spec`): frozen, its fields the constructor's arguments."""

    kind: ClassVar[str] = "criterion"
    one_objective: ClassVar[bool] = True
    instead: ClassVar[str] = "drop stop_when, or use a single objective"

    @abc.abstractmethod
    def check(self, finished: Sequence[Trial], metric: str, direction: str, *,
              space: Space | None = None) -> str | None:
        """Why the study is done, or ``None``. ``finished``: finished trials in number order;
        ``space``: the study's search space (the criteria that model the objective need it)."""

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}


def running_best(finished: Sequence[Trial], metric: str, direction: str) -> list[float | None]:
    """After each finished trial, the value of the best trial so far by :func:`thrifty.ranking.rank`
    (``None`` while no trial is ranked)."""
    best: Trial | None = None
    out: list[float | None] = []
    for t in finished:
        best = next(iter(rank([t] if best is None else [best, t], {metric: direction})), best)
        out.append(None if best is None else best.metrics[metric])
    return out


@dataclass(frozen=True)
class TargetReached(Criterion):
    """Done once a completed trial reaches ``value``."""

    name: ClassVar[str] = "target"
    owner: ClassVar[str] = "TargetReached"

    value: float = arg(rule=number())

    def check(self, finished: Sequence[Trial], metric: str, direction: str, *,
              space: Space | None = None) -> str | None:
        best = running_best(finished, metric, direction)
        b = best[-1] if best else None
        if b is not None and (b >= self.value if direction == "max" else b <= self.value):
            return f"target reached: {metric} = {b:.6g} ({'>=' if direction == 'max' else '<='} {self.value:g})"
        return None


@dataclass(frozen=True)
class NoImprovement(Criterion):
    """Done when the best improved by less than ``min_improvement`` over a window of the last
    ``trials`` finished trials or the last ``usd`` dollars (give exactly one)."""

    name: ClassVar[str] = "no_improvement"
    owner: ClassVar[str] = "NoImprovement"

    min_improvement: float = arg(0.01, number(at_least=0))
    trials: int | None = arg(None, integer(1).or_none())
    usd: float | None = arg(None, POSITIVE.or_none())
    relative: bool = arg(True, BOOLEAN)

    def check_args(self) -> None:
        if (self.trials is None) == (self.usd is None):
            raise ValidationError(f"NoImprovement(trials={self.trials!r}, usd={self.usd!r}): give exactly one "
                                  "window, trials=N or usd=X")

    def check(self, finished: Sequence[Trial], metric: str, direction: str, *,
              space: Space | None = None) -> str | None:
        best = running_best(finished, metric, direction)
        if not best or best[-1] is None:
            return None
        if self.trials is not None:
            if len(finished) <= self.trials:
                return None
            before = best[-1 - self.trials]
            window = f"the last {self.trials} trials"
        else:
            assert self.usd is not None
            spent = 0.0
            i = len(finished)
            while i > 0 and spent < self.usd:
                i -= 1
                spent += finished[i].cost_usd
            if spent < self.usd or i == 0:
                return None
            before = best[i - 1]
            window = f"the last ${spent:,.2f}"
        if before is None:
            return None
        gain = (best[-1] - before) if direction == "max" else (before - best[-1])
        scale = abs(before) if self.relative and before != 0 else 1.0
        if gain / scale < self.min_improvement:
            kind = " (relative)" if self.relative and before != 0 else ""
            return (f"no improvement: the best {metric} improved by {gain / scale:.3g}{kind} over {window}, "
                    f"less than {self.min_improvement:g}")
        return None


@dataclass(frozen=True)
class ImprovementNotWorthCost(Criterion):
    """Done when the expected gain of one more trial is worth less than its expected cost (see
    the module docstring for the rule)."""

    name: ClassVar[str] = "not_worth_cost"
    owner: ClassVar[str] = "ImprovementNotWorthCost"

    usd_per_unit: float = arg(rule=POSITIVE)
    window: int = arg(10, integer(2))

    def check(self, finished: Sequence[Trial], metric: str, direction: str, *,
              space: Space | None = None) -> str | None:
        best = running_best(finished, metric, direction)
        first = next((i for i, b in enumerate(best) if b is not None), None)
        if first is None or len(finished) - 1 - first < self.window:
            return None
        now, before = best[-1], best[-1 - self.window]
        assert now is not None and before is not None
        gain = abs(now - before) / self.window
        worth = gain * self.usd_per_unit
        cost = math.fsum(t.cost_usd for t in finished[-self.window:]) / self.window
        if worth < cost:
            return (f"not worth the cost: the next trial is expected to improve {metric} by {gain:.3g}, worth "
                    f"${worth:,.4f}, less than its expected cost ${cost:,.4f}")
        return None


#: Candidates :class:`NoExpectedImprovement` scores: seeded Sobol' points of the unit cube, and
#: Gaussian steps (``LOCAL_SD`` of the cube) around each of the ``LOCAL_AROUND`` best trials.
GLOBAL_CANDIDATES = 1024
LOCAL_AROUND, LOCAL_STEPS, LOCAL_SD = 5, 128, 0.05
#: The model is conditioned on at most ``MODEL_POINTS`` completed trials and its hyperparameters fitted
#: on at most ``FIT_POINTS`` (each time the best third and a seeded sample of the rest), so a check
#: costs about a second at most (2 cores) however long the study.
MODEL_POINTS, FIT_POINTS = 300, 100


@dataclass(frozen=True)
class NoExpectedImprovement(Criterion):
    """Done when a Gaussian process fitted on the completed trials expects no configuration of
    the space to improve the best by ``min_improvement`` or more, and the last ``confirm_trials``
    finished trials bore it out (see the module docstring)."""

    name: ClassVar[str] = "no_expected_improvement"
    owner: ClassVar[str] = "NoExpectedImprovement"

    min_improvement: float = arg(0.001, POSITIVE)
    relative: bool = arg(True, BOOLEAN)
    min_trials: int = arg(20, integer(3))
    confirm_trials: int = arg(10, integer(0))

    def check(self, finished: Sequence[Trial], metric: str, direction: str, *,
              space: Space | None = None) -> str | None:
        if space is None:
            return None  # without the space there is no model (the study always passes it)
        ranked = rank(finished, {metric: direction})
        if len(ranked) < self.min_trials or len(finished) <= self.confirm_trials:
            return None
        best = ranked[0].metrics[metric]
        scale = abs(best) if self.relative and best != 0 else 1.0
        if self.confirm_trials:  # the cheap half first: has the best moved lately?
            before = running_best(finished, metric, direction)[-1 - self.confirm_trials]
            if before is None or abs(best - before) / scale >= self.min_improvement:
                return None
        gain = largest_expected_improvement(space, [t.params for t in ranked],
                                            [t.metrics[metric] for t in ranked], direction)
        if gain / scale < self.min_improvement:
            kind = " (relative)" if self.relative and best != 0 else ""
            lately = (f", and the last {self.confirm_trials} trials improved it by less" if self.confirm_trials
                      else "")
            return (f"no expected improvement: a Gaussian process on the {len(ranked)} completed trials expects "
                    f"no configuration to improve the best {metric} by more than {gain / scale:.3g}{kind}, "
                    f"less than {self.min_improvement:g}{lately}")
        return None


def largest_expected_improvement(space: Space, params: Sequence[dict[str, Any]], values: Sequence[float],
                                 direction: str) -> float:
    """The largest expected improvement on the best of ``values`` (in the objective's units) that
    a Gaussian process on (``params``, ``values``) gives any of the candidates: the GP of the
    ``gp`` strategy (:mod:`thrifty.numerics.gp`, MAP hyperparameters from its two default starts),
    :data:`GLOBAL_CANDIDATES` seeded Sobol' points and :data:`LOCAL_STEPS` Gaussian steps around
    each of the :data:`LOCAL_AROUND` best points; conditioned on at most :data:`MODEL_POINTS` trials
    and fitted on at most :data:`FIT_POINTS` (the best third and a seeded sample of the rest). A
    function of its inputs alone (seeded)."""
    import numpy as np
    from scipy.stats import qmc

    from thrifty.encoding import encoder_of
    from thrifty.numerics.acquisition import log_ei
    from thrifty.numerics.features import GroupFeatures
    from thrifty.numerics.gp import GaussianProcess

    enc = encoder_of(space)
    feat = GroupFeatures(enc)
    y = np.asarray(values, dtype=float) * (-1.0 if direction == "max" else 1.0)  # minimised
    sampler = np.random.default_rng(1)

    def best_and_sample(v: Any, k: int) -> Any:
        """Indices of the best third of ``k`` and a seeded sample of the rest (all if ``len(v) <= k``)."""
        if len(v) <= k:
            return np.arange(len(v))
        order = np.argsort(v, kind="stable")
        return np.sort(np.r_[order[:k // 3], sampler.choice(order[k // 3:], k - k // 3, replace=False)])

    keep = best_and_sample(y, MODEL_POINTS)
    params, y = [params[i] for i in keep], y[keep]
    x = enc.snap(enc.encode(params))
    mu, sd = float(np.mean(y)), float(np.std(y))
    if sd <= 0.0:
        return 0.0
    ys = (y - mu) / sd
    gp = GaussianProcess(feat)
    f = feat.features(x)
    fit = best_and_sample(ys, FIT_POINTS)
    gp.condition(gp.fit(f[fit], ys[fit], gp.default_starts()), f, ys)
    rng = np.random.default_rng(0)
    sobol = qmc.Sobol(d=enc.n_dims, scramble=True, seed=rng).random(GLOBAL_CANDIDATES)
    around = np.nan_to_num(x[np.argsort(ys)[:LOCAL_AROUND]], nan=0.5)
    steps = around[:, None, :] + LOCAL_SD * rng.standard_normal((len(around), LOCAL_STEPS, enc.n_dims))
    cand = enc.snap(np.vstack([sobol, steps.reshape(-1, enc.n_dims)]))
    mean, var = gp.predict(feat.features(cand))
    return float(np.exp(np.max(log_ei(mean, var, float(np.min(ys)))))) * sd
