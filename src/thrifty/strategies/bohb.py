"""BOHB-style model-based multi-fidelity (Falkner et al. 2018): a model per resource level.

With an early-stopping scheduler most trials end at a low resource, so a model fitted on finished
trials' final values would compare apples with oranges. This strategy fits its inner model (TPE by
default) on the values at one resource *level*: the highest level among ``min_resource *
reduction_factor**k`` that at least ``min_points`` trials have reached (their first report at or
beyond it), falling back to lower levels while the higher ones are thin, exactly as BOHB picks the
largest budget with enough observations. Pending, running and paused trials are passed on as
pending (the inner model treats them as such: constant liar), so parallel workers still spread
out. Trials the scheduler *stopped* below the level count with the worst value seen at the level
(``impute_stopped=True``, the default): a measured scheduler stops a trial only at a rung whose
ranks predict the end, so it is evidence against that region, and without it the model, blind to
them, proposes the same doomed region again and again (on LCBench: a hundred trials stopped at
epoch 3 in one run, 44 of its 50 units). ``impute_stopped=False`` leaves them out, as BOHB does. It pairs with ``scheduler="asha"``, ``"hyperband"`` or
``"adaptive"``: the scheduler decides how long each trial runs, this strategy which trials start.
One objective only: ``Study.create`` refuses it for several (its levels rank one metric).

``random_fraction`` (default 0; ``auto`` uses 1/3, as BOHB does): the share of proposals, once the
model is in use, that are space-filling Sobol' points instead of the model's (point ``number`` of
the study's scrambled sequence, or the next one that is not a near-duplicate of a tried point;
whether trial ``number`` gets one is a seeded draw, so every worker agrees). It is what keeps a model that is wrong about a region from never looking there again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from thrifty.errors import ValidationError
from thrifty.schedulers.curves import curve, first_at_or_after
from thrifty.space import ParamValue, Space
from thrifty.specs.strategies import BOHBSpec
from thrifty.strategies._spread import with_spread
from thrifty.strategies.base import Context, Strategy, restated
from thrifty.trial import Trial, TrialState


class BOHB(Strategy):
    """A model per resource level feeding an inner strategy (see the module docstring)."""

    name = "bohb"
    needs_history = True
    slow = True

    def __init__(self, min_resource: float = 1.0, reduction_factor: float = 3.0, min_points: int | None = None,
                 inner: str | dict[str, Any] = "tpe", impute_stopped: bool = True,
                 random_fraction: float = 0.0) -> None:
        from thrifty.strategies import make_strategy

        self.spec = spec = BOHBSpec(min_resource, reduction_factor, min_points, inner, impute_stopped,
                                       random_fraction)
        self.min_resource = spec.min_resource
        self.reduction_factor = spec.reduction_factor
        self.min_points = spec.min_points
        self.inner_spec = spec.inner
        self.impute_stopped = spec.impute_stopped
        self.random_fraction = spec.random_fraction
        try:
            self.inner = make_strategy(spec.inner)
        except ValidationError as exc:
            raise ValidationError(f"BOHB(inner={spec.inner!r}): {exc}") from None
        self.wants_cost_model = self.inner.wants_cost_model

    def level(self, space: Space, history: Sequence[Trial]) -> tuple[float | None, dict[int, float]]:
        """The resource level the model is fitted at and each trial's value there (signed as
        reported, not negated)."""
        if len(self.context.objectives) != 1:
            return None, {}
        metric = next(iter(self.context.objectives))
        need = self.min_points if self.min_points is not None else space.n_dims + 2
        curves = {t.number: curve(t, metric, 1.0) for t in history if t.state is not TrialState.PENDING}
        top = max((pts[-1][0] for pts in curves.values() if pts), default=0.0)
        levels = []
        r = self.min_resource
        while r <= top * (1 + 1e-9):
            levels.append(r)
            r *= self.reduction_factor
        if top and (not levels or levels[-1] < top):
            levels.append(top)  # the full resource (a completed trial's last step)
        for level in reversed(levels):
            values = {n: v for n, pts in curves.items()
                      if (v := first_at_or_after(pts, level)) is not None and math.isfinite(v)}
            if len(values) >= need:
                return level, values
        return None, {}

    def propose(self, space: Space, history: Sequence[Trial], *, seed: int, number: int,
                n: int = 1) -> list[dict[str, ParamValue]]:
        level, values = self.level(space, history)
        self.inner.bind(self.context)
        if level is None:  # too little data at any level: the inner strategy's own start-up
            return self.inner.propose(space, history, seed=seed, number=number, n=n)
        return with_spread(
            lambda k: self._model_propose(space, history, level, values, seed=seed, number=number, n=k),
            self.random_fraction, space, history, seed=seed, number=number, n=n)

    def _model_propose(self, space: Space, history: Sequence[Trial], level: float, values: dict[int, float], *,
                       seed: int, number: int, n: int) -> list[dict[str, ParamValue]]:
        metric = next(iter(self.context.objectives))
        worst = (min if self.context.objectives[metric] == "max" else max)(values.values())
        view = []
        for t in history:
            if t.number in values:
                view.append(restated(t, state=TrialState.COMPLETED, metrics={metric: values[t.number]}))
            elif t.state in (TrialState.RUNNING, TrialState.PENDING, TrialState.PAUSED):
                view.append(restated(t, state=TrialState.RUNNING))
            elif t.state in (TrialState.FAILED, TrialState.INFEASIBLE):
                view.append(t)  # the inner model learns to avoid these
            elif t.state is TrialState.STOPPED and t.measurements and self.impute_stopped:
                # Stopped below the level (the scheduler judged it among the worst at a rung that
                # predicts): the worst value seen at the level, so the model learns to avoid it.
                view.append(restated(t, state=TrialState.COMPLETED, metrics={metric: worst}))
            # stopped below the level before any report: says nothing, left out
        return self.inner.propose(space, view, seed=seed, number=number, n=n)

    def bind(self, context: Context) -> None:
        super().bind(context)
        self.inner.bind(context)
