"""Percentile and median stopping rules.

At each report at resource ``r`` (after ``min_resource``), the trial's statistic up to ``r`` (its
best value so far, or with ``statistic="mean"`` its running average) is compared with the same
statistic of every COMPLETED trial up to ``r``. :class:`Percentile` stops the trial when it is
worse than the ``q``-th percentile of them (``q=25``: stop trials in the bottom quarter);
:class:`Median` is ``q=50``, the median stopping rule of Vizier and SageMaker. Nothing is stopped
until ``min_trials`` trials have completed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from thrifty.schedulers.curves import best_so_far, curve, mean_so_far, objective_of
from thrifty.schedulers._index import Indexed
from thrifty.schedulers.base import Decision, Scheduler
from thrifty.specs.schedulers import MedianSpec, PercentileSpec
from thrifty.trial import Trial


class Percentile(Indexed, Scheduler):
    """Stop a trial worse than the ``q``-th percentile of completed trials at the same resource."""

    name = "percentile"

    def __init__(
        self, q: float = 25.0, min_resource: float = 1.0, min_trials: int = 5, statistic: str = "best",
        metric: str | None = None, resource: str = "step",
    ) -> None:
        spec = PercentileSpec(q, min_resource, min_trials, statistic, metric, resource)
        self._apply(spec, spec.q)

    def _apply(self, spec: PercentileSpec | MedianSpec, q: float) -> None:
        """Take the validated arguments of ``spec`` (``q``: the percentile, 50 for the median)."""
        self.spec = spec
        self.q = float(q)
        self.min_resource = spec.min_resource
        self.min_trials = spec.min_trials
        self.statistic = spec.statistic
        self.metric = spec.metric
        self.resource = spec.resource

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        metric, sign = objective_of(objectives, self.metric, type(self).__name__)
        mine = curve(trial, metric, sign, self.resource)
        if not mine:
            return Decision.CONTINUE
        r = mine[-1][0]
        if r < self.min_resource:
            return Decision.CONTINUE
        stat = best_so_far if self.statistic == "best" else mean_so_far
        with self.indexed(history, metric, sign, self.resource) as index:
            completed = len(index.measured) - (trial.number in index.measured)
            if completed < self.min_trials:
                return Decision.CONTINUE
            values = index.measured_stats(r, stat)  # measured trial -> its statistic up to r
            others = list(values.values()) if trial.number not in values else \
                [v for n, v in values.items() if n != trial.number]
        if not others:
            return Decision.CONTINUE
        current = stat(mine, r)
        if current is None:  # only NaN/inf so far: worse than anything finite
            return Decision.STOP
        # Signed values are "higher is better": the q-th percentile from the bottom.
        cutoff = float(np.percentile(others, self.q))
        return Decision.STOP if current < cutoff else Decision.CONTINUE


class Median(Percentile):
    """The median stopping rule: stop a trial whose statistic is below the median of completed
    trials at the same resource."""

    name = "median"

    def __init__(
        self, min_resource: float = 1.0, min_trials: int = 5, statistic: str = "best", metric: str | None = None,
        resource: str = "step",
    ) -> None:
        self._apply(MedianSpec(min_resource, min_trials, statistic, metric, resource), 50.0)
