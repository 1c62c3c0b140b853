"""Threshold stopping: stop diverged trials at once, and trials below a bar after a grace period.

A report whose metric is NaN or infinite stops the trial immediately (divergence). With a
``value``, a trial whose last report at a resource >= ``min_resource`` is worse than ``value``
(below it when maximizing, above it when minimizing) is stopped too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from thrifty.schedulers.curves import curve, objective_of
from thrifty.schedulers.base import Decision, Scheduler
from thrifty.specs.schedulers import ThresholdSpec
from thrifty.trial import Trial


class Threshold(Scheduler):
    """Stop on NaN/inf at once; stop below ``value`` after ``min_resource``."""

    name = "threshold"
    needs_history = False

    def __init__(
        self, value: float | None = None, min_resource: float = 1.0, stop_on_nonfinite: bool = True,
        metric: str | None = None, resource: str = "step",
    ) -> None:
        self.spec = spec = ThresholdSpec(value, min_resource, stop_on_nonfinite, metric, resource)
        self.value = spec.value
        self.min_resource = spec.min_resource
        self.stop_on_nonfinite = spec.stop_on_nonfinite
        self.metric = spec.metric
        self.resource = spec.resource

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        metric, sign = objective_of(objectives, self.metric, "Threshold")
        pts = curve(trial, metric, sign, self.resource)
        if not pts:
            return Decision.CONTINUE
        r, v = pts[-1]
        if not math.isfinite(v):
            return Decision.STOP if self.stop_on_nonfinite else Decision.CONTINUE
        if self.value is not None and r >= self.min_resource and v < sign * self.value:
            return Decision.STOP
        return Decision.CONTINUE
