"""Objectives that fold cost into one number.

Several objectives (``{"val_acc": "max", "cost_usd": "min"}``) make a multi-objective study whose
Pareto front shows the trade-off; thrifty fills in ``cost_usd`` (and ``elapsed_s``) from the
trial's ledger. Users who want a single number use a :class:`CostUtility` instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.errors import ValidationError

#: Metrics thrifty fills in from the trial's ledger when the objective does not report them.
LEDGER_METRICS = ("cost_usd", "elapsed_s")

#: The words a direction (an objective's, a script metric's goal) may be written with (any
#: case), and what each means. Here, below the study, so the script runner reads them too.
DIRECTIONS = {"max": "max", "maximize": "max", "maximise": "max", "min": "min", "minimize": "min", "minimise": "min"}


@dataclass(frozen=True)
class CostUtility:
    """Maximize ``metric ** power / cost_usd`` (e.g. accuracy squared per dollar, ``power=2``).

    The metric must be positive for the ratio to mean "more is better"; a trial that cost
    nothing gets NaN (recorded, never best), since its utility is undefined.
    """

    metric: str
    power: float = 2.0
    name: str = "utility"

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValidationError(f"CostUtility(metric={self.metric!r}): expected the name of a metric")
        if self.metric in LEDGER_METRICS or self.metric == self.name:
            raise ValidationError(f"CostUtility(metric={self.metric!r}): use the quality metric, not {self.metric}")
        if isinstance(self.power, bool) or not isinstance(self.power, (int, float)) or not (
            math.isfinite(self.power) and self.power > 0
        ):
            raise ValidationError(f"CostUtility(power={self.power!r}): expected a number above zero")

    def value(self, metrics: Mapping[str, float], cost_usd: float) -> float:
        """The utility of a trial with these final metrics and total cost (dollars)."""
        if self.metric not in metrics:
            raise ValidationError(
                f"the objective returned {sorted(metrics)!r} but the utility needs {self.metric!r}"
            )
        if cost_usd <= 0:
            return math.nan
        return float(metrics[self.metric]) ** self.power / cost_usd

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "power": self.power, "name": self.name}


def accuracy_squared_per_dollar(metric: str = "accuracy") -> CostUtility:
    """The named utility ``metric² / cost_usd``."""
    return CostUtility(metric=metric, power=2.0)
