"""Learning curves read from trials, for the schedulers.

A curve is the list of ``(resource, value)`` pairs of one metric, in report order, where the
resource is the report's ``step`` (epochs, ...) or, with ``resource="cost_usd"``, the dollars the
trial had spent by that report. Values are turned into "higher is better" (minimized metrics are
negated), so every rule can compare with ``>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from thrifty.errors import ValidationError
from thrifty.trial import Trial

def objective_of(objectives: Mapping[str, str], metric: str | None, owner: str) -> tuple[str, float]:
    """The metric a scheduler watches and its sign (+1 to maximize, -1 to minimize)."""
    if metric is None:
        if len(objectives) != 1:
            raise ValidationError(f"{owner}: the study has several objectives; give metric=NAME")
        metric = next(iter(objectives))
    direction = objectives.get(metric, "max")
    return metric, (1.0 if direction == "max" else -1.0)


def curve(trial: Trial, metric: str, sign: float, resource: str = "step") -> list[tuple[float, float]]:
    """``(resource, signed value)`` for each report carrying ``metric`` (NaN kept as NaN)."""
    out: list[tuple[float, float]] = []
    spent = 0.0
    for m in trial.measurements:
        spent += m.cost_usd
        r = m.step if resource == "step" else spent
        if r is None or metric not in m.metrics:
            continue
        out.append((float(r), sign * m.metrics[metric]))
    return out


def value_at(points: Sequence[tuple[float, float]], r: float) -> float | None:
    """The last value reported at a resource <= ``r`` (None if none)."""
    v = None
    for res, val in points:
        if res > r:
            break
        v = val
    return v


def first_at_or_after(points: Sequence[tuple[float, float]], r: float) -> float | None:
    """The value of the first report at a resource >= ``r`` (the value "at the rung")."""
    for res, val in points:
        if res >= r:
            return val
    return None


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def best_so_far(points: Sequence[tuple[float, float]], r: float) -> float | None:
    vals = [v for res, v in points if res <= r and math.isfinite(v)]
    return max(vals) if vals else None


def mean_so_far(points: Sequence[tuple[float, float]], r: float) -> float | None:
    vals = [v for res, v in points if res <= r and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None
