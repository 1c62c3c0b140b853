"""``mfgp``: one Gaussian process over (configuration, resource), in the spirit of MOBSTER
(Klein et al. 2020) and Hyper-Tune (Li et al. 2022).

:mod:`~thrifty.strategies.bohb` fits its model at one resource level and ignores what the trials
stopped below it say. This strategy fits a single GP to every trial's values at every level it
reached: the resource is one more input, ``u = log(r / min_resource) / log(top / min_resource)``
in ``[0, 1]`` (``top`` = the largest resource a completed trial reached, or the largest reported
while none has completed), with its own Matérn length scale, so the model learns how far a
low-resource value says something about the end. A trial contributes its first report at or
beyond each level ``min_resource * reduction_factor**k`` (below its last report) and its last
report. Proposals maximise log expected improvement *at the full resource* (``u = 1``, held fixed
during the search: :meth:`thrifty.strategies.gp.GP.propose_pinned`), against the best value a
completed trial reached; a configuration already tried at any resource is never proposed again,
nor a near-duplicate (:data:`thrifty.encoding.NEAR`: every parameter within 1% of its range) of
one trained to the full resource. A near-duplicate of a configuration the scheduler stopped early
may be proposed: it gives a configuration stopped at an unreliable low rung another chance.
Forbidding it too was measured (LCBench, ten tasks, seeds 10..29, the defaults): 84% of runs
reached 1% regret against 88%; it also removed cheap repeats (four near-identical trials stopped
at epoch 3 in a row on a held-out task).
Running, pending and paused trials are in flight at ``u = 1`` (kriging believer); failed ones and
infeasible ones without metrics count as the worst value at ``u = 1`` (a trial recorded
INFEASIBLE for breaking a constraint contributes its curve like a completed one).

``random_fraction`` (default 0): the share of proposals, once the model is in use, that are
space-filling Sobol' points instead of the model's (:mod:`thrifty.strategies._spread`, as
``bohb``'s).

``cost_premium`` (default on): once the study's cost model is fitted, a configuration pays in
expected improvement for what its forecast full training costs *above the space's typical
configuration* (``log EI - alpha * max(0, log cost - log typical)``, "Cost premium" in
:mod:`thrifty.strategies.gp`; ``alpha`` cools from 1 to 0 as a dollar budget is spent, and is 1
without one). Why: without it the model, drawn to where the values are best so far, proposed
configurations costing 10-37 typical trainings (largest nets, smallest batches) and trained them
to the end; on LCBench most of the 50-unit budget of a failed run went to such trials (issue 13).
Cheap configurations get no bonus: EI per unit cost drifts to cheap, poor corners. Measured with
the default scheduler's rule 4 (``benchmarks/RESULTS.md``, issue 13, session 13): on 236 LCBench
runs of the ten tasks, runs above 5% regret 1 against 5 and p90 1.99% against 2.54% on the same
cells, the share within 1% unchanged (84%); on the 24 held-out tasks 87% within 1% against 79%, 1
run above 5% against 8; on real scikit-learn MLP training the p90 went from 43% to 20%.

Pair it with an early-stopping scheduler (``scheduler="asha"``): the scheduler decides how long each
trial runs, this strategy which configurations start. Without steps in the history (no trial
reported two or more), it is the plain ``gp``. One objective only: ``Study.create`` refuses it for
several (use ``gp``, whose ParEGO scalarisation models several, or ``nsga2``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from thrifty.errors import ValidationError
from thrifty.ranking import measured
from thrifty.schedulers.curves import curve, first_at_or_after
from thrifty.space import Float, ParamValue, Space
from thrifty.specs.strategies import MFGPSpec
from thrifty.strategies._spread import with_spread
from thrifty.strategies.base import Context, Strategy, restated
from thrifty.strategies.gp import GP
from thrifty.trial import Trial, TrialState

#: The resource input's name in the augmented space.
RESOURCE = MFGPSpec.RESOURCE


class MFGP(Strategy):
    """A GP over (configuration, resource) proposing at the full resource (module doc)."""

    name = "mfgp"
    needs_history = True
    slow = True

    def __init__(self, min_resource: float = 1.0, reduction_factor: float = 3.0, n_startup: int | None = None,
                 n_candidates: int = 1024, max_points: int = 300, random_fraction: float = 0.0,
                 cost_premium: bool = True) -> None:
        self.spec = spec = MFGPSpec(min_resource, reduction_factor, n_startup, n_candidates, max_points,
                                    random_fraction, cost_premium)
        self.random_fraction = spec.random_fraction
        self.min_resource = spec.min_resource
        self.reduction_factor = spec.reduction_factor
        self.gp = GP(n_startup=spec.n_startup, cost_aware=spec.cost_premium, n_candidates=spec.n_candidates,
                     max_points=spec.max_points)
        self.gp.cost_premium = spec.cost_premium
        self.wants_cost_model = spec.cost_premium
        self._spaces: dict[Space, Space] = {}
        # Memos of observations(): curves by (number, reports), rows by what they depend on.
        self._memo_metric: str | None = None
        self._curves: dict[tuple[int, int], list[tuple[float, float]]] = {}
        self._rows: dict[tuple[Any, ...], list[Trial]] = {}

    def bind(self, context: Context) -> None:
        super().bind(context)
        self.gp.bind(context)

    def prepare(self, space: Space) -> None:
        self.gp.prepare(space)

    def augmented(self, space: Space) -> Space:
        """``space`` plus the resource input ``RESOURCE`` (a float in [0, 1])."""
        if RESOURCE in space:
            raise ValidationError(f"strategy 'mfgp': the space may not have a parameter named {RESOURCE!r}")
        if space not in self._spaces:
            self._spaces[space] = Space({**{n: space[n] for n in space}, RESOURCE: Float(0.0, 1.0)})
        return self._spaces[space]

    def levels(self, top: float) -> list[float]:
        """The resource levels below ``top`` at which trials' values enter the model."""
        out, r = [], self.min_resource
        while r < top * (1 - 1e-9):
            out.append(r)
            r *= self.reduction_factor
        return out

    def observations(self, space: Space, history: Sequence[Trial]) -> list[Trial] | None:
        """The history as trials of the augmented space (one per trial and level; in-flight,
        failed and infeasible ones at the full resource), or None without steps to learn from.
        Trial ``k``'s rows are numbered ``k * 64 + j``. Each trial's curve and rows are memoised
        on what they depend on (its number, state and count of reports, and the full resource), so
        a proposal at 1,000 trials rebuilds only what changed."""
        if len(self.context.objectives) != 1:
            return None
        metric = next(iter(self.context.objectives))
        if metric != self._memo_metric or len(self._curves) > 4 * len(history) + 64:
            self._curves, self._rows, self._memo_metric = {}, {}, metric
        curves = {}
        for t in history:
            key = (t.number, len(t.measurements))
            pts = self._curves.get(key)
            if pts is None:
                pts = self._curves[key] = curve(t, metric, 1.0)
            curves[t.number] = pts
        if not any(len(pts) >= 2 for pts in curves.values()):
            return None
        done = [pts[-1][0] for t in history if measured(t) and (pts := curves[t.number])]
        top = max(done) if done else max(pts[-1][0] for pts in curves.values() if pts)
        if top <= self.min_resource:
            return None
        if len(self._rows) > 4 * len(history) + 64:
            self._rows = {}
        out: list[Trial] = []
        for t in history:
            key = (t.number, t.state, len(t.measurements), t.retried, top)
            rows = self._rows.get(key)
            if rows is None:
                rows = self._rows[key] = self._rows_of(t, curves[t.number], metric, top)
            out.extend(rows)
        return out

    def _rows_of(self, t: Trial, pts: list[tuple[float, float]], metric: str, top: float) -> list[Trial]:
        """Trial ``t``'s rows of the augmented space (see :meth:`observations`)."""
        span = math.log(top / self.min_resource)
        out: list[Trial] = []

        def add(u: float, **changes: Any) -> None:
            params = {**t.params, RESOURCE: min(max(u, 0.0), 1.0)}
            out.append(restated(t, number=t.number * 64 + len(out), params=params, **changes))

        if t.state in (TrialState.RUNNING, TrialState.PENDING, TrialState.PAUSED):
            add(1.0, state=TrialState.RUNNING, measurements=(), metrics={})
        elif t.state is TrialState.FAILED or (t.state is TrialState.INFEASIBLE and not measured(t)):
            if not (t.state is TrialState.FAILED and t.retried):
                add(1.0, measurements=())
        elif pts:
            last_r = pts[-1][0]
            seen = [(level, first_at_or_after(pts, level)) for level in self.levels(top) if level < last_r]
            seen.append((last_r, pts[-1][1]))
            for level, value in seen:
                if value is not None and math.isfinite(value):
                    u = 1.0 if level >= top else math.log(level / self.min_resource) / span
                    add(u, state=TrialState.COMPLETED, metrics={metric: value}, measurements=())
        return out

    def propose(self, space: Space, history: Sequence[Trial], *, seed: int, number: int,
                n: int = 1) -> list[dict[str, ParamValue]]:
        view = self.observations(space, history)
        if view is None:
            return self.gp.propose(space, history, seed=seed, number=number, n=n)
        wide = self.augmented(space)

        def model(k: int) -> list[dict[str, ParamValue]]:
            got = self.gp.propose_pinned(wide, view, seed=seed, number=number, n=k, pinned={RESOURCE: 1.0},
                                         also_taken=[dict(t.params) for t in history])
            return [{name: v for name, v in params.items() if name != RESOURCE} for params in got]

        return with_spread(model, self.random_fraction, space, history, seed=seed, number=number, n=n)

