"""``scheduler="auto"`` (the default): stop early only where the study's own data show it pays.

Nothing about the trials has to be declared: no maximum resource, no rungs. The rule, from the
history at each report (so every worker reaches the same decision):

1. until ``min_complete`` trials (default 5) have *completed* after reporting two or more steps,
   nobody is stopped: there is no evidence yet that an early value says anything about the end;
2. from then on, the full resource is the largest last step of those completed trials, and rungs
   sit at ``min_resource * reduction_factor**k`` below it (``min_resource`` default: the smallest
   first step any trial reported, usually 1);
3. a rung judges only while Spearman's rank correlation between a trial's value there and its
   final value, over the completed trials that reached it, is at least ``rho_min`` (default 0.5);
   a judging rung keeps the top ``1/reduction_factor`` of the trials that reached it (ASHA: Li et
   al., MLSys 2020) and stops the rest.

From rule 2 on it decides exactly as ``ASHA(min_resource, max_resource=<inferred>,
reduction_factor, check_rungs=True)`` (:mod:`thrifty.schedulers.asha`, measured rungs); before
that it is more careful than that ASHA, whose upper rungs judge from the first trials on. On the
LCBench surrogate a rung one epoch in has a rank correlation of -0.6 to 0.4 with the end, and a
classic ASHA stops the eventual winners there: measured rungs turn that loss into a gain
(``benchmarks/RESULTS.md``). Trials that report no steps are never stopped. Pass
``scheduler="none"`` to let every trial run to its end, or an ``ASHA``/``Hyperband`` for a fixed
schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from thrifty.schedulers._curves import curve, objective_of
from thrifty.schedulers._rank import check_calibration
from thrifty.schedulers.asha import ASHA
from thrifty.schedulers.base import Decision, Scheduler
from thrifty.trial import Trial, TrialState


class AutoStopping(Scheduler):
    """ASHA with measured rungs and an inferred full resource, silent until calibrated (module doc)."""

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
        """The ASHA the history calls for now, or None while nobody may be stopped (rule 1)."""
        metric, sign = objective_of(objectives, self.metric, "AutoStopping")
        finals, firsts = [], []
        for t in history:
            pts = curve(t, metric, sign)
            if pts:
                firsts.append(pts[0][0])
            if t.state is TrialState.COMPLETED and len(pts) >= 2:
                finals.append(pts[-1][0])
        if len(finals) < self.min_complete:
            return None
        low = self.min_resource if self.min_resource is not None else max(min(firsts), 1e-12)
        top = max(finals)
        if top <= low:
            return None
        return ASHA(min_resource=low, max_resource=top, reduction_factor=self.reduction_factor, metric=metric,
                    check_rungs=True, min_complete=self.min_complete, rho_min=self.rho_min)

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        asha = self.schedule(history, objectives)
        return Decision.CONTINUE if asha is None else asha.decide(trial, history, objectives)
