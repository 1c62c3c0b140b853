"""Threshold stopping: stop diverged trials at once, and trials below a bar after a grace period.

A report whose metric is NaN or infinite stops the trial immediately (divergence). With a
``value``, a trial whose last report at a resource >= ``min_resource`` is worse than ``value``
(below it when maximizing, above it when minimizing) is stopped too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from thrifty.schedulers._curves import check_resource_name, curve, objective_of
from thrifty.schedulers.base import Decision, Scheduler
from thrifty.trial import Trial


class Threshold(Scheduler):
    """Stop on NaN/inf at once; stop below ``value`` after ``min_resource``."""

    name = "threshold"
    needs_history = False

    def __init__(
        self, value: float | None = None, min_resource: float = 1.0, stop_on_nonfinite: bool = True,
        metric: str | None = None, resource: str = "step",
    ) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
            raise ValueError(f"Threshold(value={value!r}): expected a finite number or None")
        if isinstance(min_resource, bool) or not isinstance(min_resource, (int, float)) or min_resource < 0:
            raise ValueError(f"Threshold(min_resource={min_resource!r}): expected a number >= 0")
        if value is None and not stop_on_nonfinite:
            raise ValueError("Threshold: with value=None and stop_on_nonfinite=False it would never stop anything")
        self.value = None if value is None else float(value)
        self.min_resource = float(min_resource)
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        self.metric = metric
        self.resource = check_resource_name(resource, "Threshold")

    def params(self) -> dict[str, Any]:
        return {"value": self.value, "min_resource": self.min_resource, "stop_on_nonfinite": self.stop_on_nonfinite,
                "metric": self.metric, "resource": self.resource}

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
