"""``scheduler="auto"`` (the default): stop early only where the study's own data show it pays.

Nothing about the trials has to be declared: no maximum resource, no rungs. The rule, from the
history at each report (so every worker reaches the same decision), is thrifty's ASHA with
measured rungs (:mod:`thrifty.schedulers.asha`) with the rungs found instead of declared:

1. rungs sit at ``min_resource * reduction_factor**k`` (``min_resource`` default: the smallest
   first step any trial reported, usually 1), but only below the largest step any trial of the
   study has reported: a rung judges only once some trial has gone past it, so no trial is ever
   judged at what may be its last step;
2. until ``min_complete`` trials (default 5) have completed, the lowest rung stops nobody (the
   rank after the least training is the least reliable) and the others keep the top
   ``1/reduction_factor`` of the trials that reached them (ASHA: Li et al., MLSys 2020);
3. from then on a rung judges only while Spearman's rank correlation between a trial's value
   there and its final value, over the completed trials that reached it, is at least ``rho_min``
   (default 0.5); the other rungs stop nobody.

Once a trial has completed, this decides exactly as ``ASHA(min_resource, max_resource=<the full
resource>, reduction_factor)`` with its default measured rungs. On the LCBench surrogate a rung
one epoch in has a rank correlation of -0.6 to 0.4 with the end, and a classic ASHA stops the
eventual winners there: measured rungs turn that loss into a gain (``benchmarks/RESULTS.md``).
Trials that report no steps are never stopped. Pass ``scheduler="none"`` to let every trial run
to its end, or an ``ASHA``/``Hyperband`` for a declared schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from thrifty.schedulers._curves import curve, objective_of
from thrifty.schedulers._index import CurveIndex, Indexed
from thrifty.schedulers._rank import check_calibration
from thrifty.schedulers.asha import ASHA, open_levels, rung_decision, rungs
from thrifty.schedulers.base import Decision, Scheduler
from thrifty.trial import Trial


class AutoStopping(Indexed, Scheduler):
    """ASHA with measured rungs found from the history instead of declared (module doc)."""

    name = "auto"

    def __init__(self, reduction_factor: float = 3.0, min_resource: float | None = None, metric: str | None = None,
                 min_complete: int = 5, rho_min: float = 0.5) -> None:
        if (isinstance(reduction_factor, bool) or not isinstance(reduction_factor, (int, float))
                or not math.isfinite(reduction_factor) or reduction_factor <= 1):
            raise ValueError(f"AutoStopping(reduction_factor={reduction_factor!r}): expected a number > 1")
        if min_resource is not None and (isinstance(min_resource, bool) or not isinstance(min_resource, (int, float))
                                         or not math.isfinite(min_resource) or min_resource <= 0):
            raise ValueError(f"AutoStopping(min_resource={min_resource!r}): expected a number > 0, or None (the "
                             "smallest first step reported)")
        self.reduction_factor = float(reduction_factor)
        self.min_resource = None if min_resource is None else float(min_resource)
        self.metric = metric
        self.min_complete, self.rho_min = check_calibration("AutoStopping", min_complete, rho_min)

    def params(self) -> dict[str, Any]:
        return {"reduction_factor": self.reduction_factor, "min_resource": self.min_resource, "metric": self.metric,
                "min_complete": self.min_complete, "rho_min": self.rho_min}

    def schedule(self, history: Sequence[Trial], objectives: Mapping[str, str]) -> ASHA | None:
        """The ASHA the history calls for now (rungs below the furthest step reported), or None
        while there is no rung yet."""
        metric, sign = objective_of(objectives, self.metric, "AutoStopping")
        with self.indexed(history, metric, sign, "step") as index:
            span = self._span(index)
        if span is None:
            return None
        return ASHA(min_resource=span[0], max_resource=span[1], reduction_factor=self.reduction_factor, metric=metric,
                    check_rungs=True, min_complete=self.min_complete, rho_min=self.rho_min)

    def _span(self, index: CurveIndex) -> tuple[float, float] | None:
        """(lowest rung, furthest step reported), or None while there is no rung yet."""
        if index.first_min is None:
            return None
        low = self.min_resource if self.min_resource is not None else max(index.first_min, 1e-12)
        furthest = index.last_max()
        return None if furthest <= low else (low, furthest)

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        metric, sign = objective_of(objectives, self.metric, "AutoStopping")
        pts = curve(trial, metric, sign)
        if not pts:
            return Decision.CONTINUE
        with self.indexed(history, metric, sign, "step") as index:
            span = self._span(index)
            if span is None:
                return Decision.CONTINUE
            levels = rungs(span[0], span[1], self.reduction_factor)

            def opened() -> list[float]:
                return open_levels(index, levels, self.min_complete, self.rho_min)

            return rung_decision(trial.number, pts, index, levels, self.reduction_factor, open_levels=opened)
