"""Adaptive successive halving: stop early only where the study's own data say stopping pays.

Fixed schedules (ASHA, Hyperband) assume that a configuration's rank after a few epochs predicts
its rank at the end. On many workloads it does not (on the LCBench surrogate the rank after one
epoch says little about the rank after 52), and then early stopping throws away the configurations
that would have won. This scheduler measures that, per rung, from the trials of the study that ran
to ``max_resource``:

1. **Calibration.** Until ``min_complete`` trials have completed, nothing is stopped (they are the
   evidence). Rungs sit at ``min_resource * reduction_factor**k`` as in ASHA.
2. **Rank correlation per rung.** For rung ``r``, ``rho_r`` is Spearman's rank correlation between
   the value at ``r`` (first report at or after it) and the final value, over the completed trials
   (at least ``min_complete`` of them).
3. **Keep fraction.** A trial reaching rung ``r`` continues if its value there is in the top
   ``keep_r`` of the values at that rung (all trials that reached it, itself included), with

       keep_r = 1                                           if rho_r <= rho_min
       keep_r = 1/eta + (1 - 1/eta) * (1 - rho_r) / (1 - rho_min)   otherwise

   so a rung that predicts the end perfectly is as aggressive as ASHA (keep ``1/eta``), and one
   that predicts it no better than ``rho_min`` (default 0.5) stops nobody. The best trial at a
   rung always continues. NaN or infinite values stop at once (divergence).

Everything is computed from the history, so every worker reaches the same decision; the rule gets
more (or less) aggressive as completed trials accumulate. ``budget_aware=True`` adds the rule of
:mod:`thrifty.schedulers.budget_aware`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from thrifty.schedulers.curves import curve, objective_of
from thrifty.schedulers._index import Indexed
from thrifty.schedulers.asha import rungs
from thrifty.schedulers.base import Decision, Scheduler
from thrifty.specs.schedulers import AdaptiveASHASpec
from thrifty.trial import Trial


class AdaptiveASHA(Indexed, Scheduler):
    """Successive halving whose aggressiveness per rung follows the measured rank correlation
    between that rung and the end (see the module docstring)."""

    name = "adaptive"

    def __init__(
        self, min_resource: float = 1.0, max_resource: float = 81.0, reduction_factor: float = 3.0,
        min_complete: int = 5, rho_min: float = 0.5, metric: str | None = None, resource: str = "step",
        budget_aware: bool = False,
    ) -> None:
        self.spec = spec = AdaptiveASHASpec(min_resource, max_resource, reduction_factor, min_complete, rho_min,
                                            metric, resource, budget_aware)
        self.min_resource, self.max_resource = spec.min_resource, spec.max_resource
        self.reduction_factor = spec.reduction_factor
        self.min_complete, self.rho_min = spec.min_complete, spec.rho_min
        self.metric = spec.metric
        self.resource = spec.resource
        self.budget_aware = spec.budget_aware

    @property
    def rungs(self) -> list[float]:
        return rungs(self.min_resource, self.max_resource, self.reduction_factor)

    def correlations(self, history: Sequence[Trial], objectives: Mapping[str, str]) -> dict[float, float | None]:
        """Rung -> Spearman correlation with the final value over the completed trials (``None``
        while fewer than ``min_complete`` completed trials reached the rung)."""
        metric, sign = objective_of(objectives, self.metric, "AdaptiveASHA")
        with self.indexed(history, metric, sign, self.resource) as index:
            return index.correlations(self.rungs, self.min_complete)

    def keep_fraction(self, rho: float | None) -> float:
        """The share of a rung's trials that continue, given its rank correlation with the end."""
        if rho is None or rho <= self.rho_min:
            return 1.0
        eta = self.reduction_factor
        return 1.0 / eta + (1.0 - 1.0 / eta) * (1.0 - rho) / (1.0 - self.rho_min)

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        metric, sign = objective_of(objectives, self.metric, "AdaptiveASHA")
        pts = curve(trial, metric, sign, self.resource)
        if not pts:
            return Decision.CONTINUE
        if not math.isfinite(pts[-1][1]):
            return Decision.STOP
        before = pts[-2][0] if len(pts) > 1 else -math.inf
        crossed = [r for r in self.rungs if before < r <= pts[-1][0]]
        if not crossed:
            return Decision.CONTINUE
        with self.indexed(history, metric, sign, self.resource) as index:
            rhos = index.correlations(self.rungs, self.min_complete)
            for level in crossed:
                keep = self.keep_fraction(rhos[level])
                if keep >= 1.0:
                    continue
                table = index.rung(level)  # every trial's value at the rung, this one's as in the history
                mine = table.values.get(trial.number)
                if mine is None:
                    continue
                n_keep = max(1, int(math.floor(len(table.values) * keep)))
                if table.better(mine) >= n_keep:
                    return Decision.STOP
        return Decision.CONTINUE
