"""Patience (early stopping on a plateau), plain and adaptive.

The trial's best value so far is tracked; an improvement is a new best that beats the previous one
by more than ``min_delta``. The trial stops when ``patience`` units of resource have passed since
its last improvement (counting from its first report). The adaptive variant lengthens the
patience while the curve keeps climbing: the patience at resource ``r`` is
``max(patience, growth * r_last)``, where ``r_last`` is the resource of the last improvement, so a
trial that was still improving late gets proportionally more time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from thrifty.schedulers.curves import curve, objective_of
from thrifty.schedulers.base import Decision, Scheduler
from thrifty.specs.schedulers import PatienceSpec
from thrifty.trial import Trial


class Patience(Scheduler):
    """Stop after ``patience`` units of resource without an improvement larger than ``min_delta``."""

    name = "patience"
    needs_history = False

    def __init__(
        self, patience: float = 5.0, min_delta: float = 0.0, adaptive: bool = False, growth: float = 0.5,
        metric: str | None = None, resource: str = "step",
    ) -> None:
        self.spec = spec = PatienceSpec(patience, min_delta, adaptive, growth, metric, resource)
        self.patience = spec.patience
        self.min_delta = spec.min_delta
        self.adaptive = spec.adaptive
        self.growth = spec.growth
        self.metric = spec.metric
        self.resource = spec.resource

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        metric, sign = objective_of(objectives, self.metric, "Patience")
        pts = [(r, v) for r, v in curve(trial, metric, sign, self.resource) if math.isfinite(v)]
        if not pts:
            return Decision.CONTINUE
        best, last_improvement = pts[0][1], pts[0][0]
        for r, v in pts[1:]:
            if v > best + self.min_delta:  # an improvement resets the clock; smaller gains do not count
                best, last_improvement = v, r
        now = pts[-1][0]
        allowed = max(self.patience, self.growth * last_improvement) if self.adaptive else self.patience
        return Decision.STOP if now - last_improvement >= allowed else Decision.CONTINUE
