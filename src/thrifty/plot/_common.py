"""What every picture shares: plotly's import, the choice of objective, and the study's progress
in the order money was spent (a pure function of the trials)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thrifty.errors import ThriftyError
from thrifty.ranking import Constraints, chosen_objective, is_feasible
from thrifty.trial import Trial, TrialState

if TYPE_CHECKING:
    from thrifty.study import Study

#: Colours by trial state, the same in every picture (and in the dashboard).
STATE_COLOURS: Mapping[str, str] = {
    "completed": "#1f77b4", "stopped": "#ff7f0e", "failed": "#d62728", "infeasible": "#9467bd",
    "running": "#2ca02c", "paused": "#8c564b", "pending": "#7f7f7f",
}


#: Above this many points a scatter is drawn with WebGL (``Scattergl``): an SVG point per trial
#: makes a browser crawl at tens of thousands.
WEBGL_ABOVE = 2000


def scatter_type(go: Any, n_points: int) -> Any:
    """``go.Scatter`` for a few points, ``go.Scattergl`` above :data:`WEBGL_ABOVE`."""
    return go.Scattergl if n_points > WEBGL_ABOVE else go.Scatter


def steps_only(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """A step line (``shape="hv"``) with only its corners: the points where ``y`` changes, and the
    last one (the same picture, a fraction of the points)."""
    keep_x: list[float] = []
    keep_y: list[float] = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if not keep_y or y != keep_y[-1] or i == len(ys) - 1:
            keep_x.append(x)
            keep_y.append(y)
    return keep_x, keep_y


def packed(values: Sequence[float]) -> dict[str, str]:
    """``values`` as plotly.js's packed typed array (float64, base64): what plotly writes for a
    numpy array in a trace, for the places it does not (a button's restyle arguments)."""
    import base64

    import numpy as np

    return {"dtype": "f8", "bdata": base64.b64encode(np.asarray(values, dtype="<f8").tobytes()).decode("ascii")}


def plotly_go() -> Any:
    """``plotly.graph_objects``, or a one-line error saying how to install it."""
    try:
        import plotly.graph_objects as go
    except ImportError:  # pragma: no cover - plotly is installed with thrifty[plot] and in the tests
        raise ThriftyError("thrifty.plot needs plotly: pip install 'thrifty[plot]'") from None
    return go


def objective_of(study: Study, objective: str | None) -> tuple[str, str]:
    """(name, direction) of the objective a picture shows: ``objective``, or the study's only one."""
    return chosen_objective(study.objectives, objective, study.name)


def value_of(trial: Trial, metric: str, constraints: Constraints) -> float | None:
    """The trial's finite value of ``metric`` if it counts for the best (COMPLETED, every
    constraint met), else ``None``."""
    if trial.state is not TrialState.COMPLETED or (constraints and not is_feasible(trial, constraints)):
        return None
    v = trial.metrics.get(metric)
    return float(v) if v is not None and math.isfinite(v) else None


def counted_trials(study: Study, metric: str, trials: Sequence[Trial] | None) -> list[tuple[Trial, float]]:
    """(trial, value) of every trial that counts for the best (:func:`value_of`), in the order
    given (``trials``: the study's trials if already read; default: read them)."""
    out = []
    for t in study.trials if trials is None else trials:
        v = value_of(t, metric, study.constraints)
        if v is not None:
            out.append((t, v))
    return out


def finish_sorted(trials: Sequence[Trial]) -> list[Trial]:
    """The finished trials in the order they finished (``finish_order``; trials of an older store
    without one: by finish time, then number)."""
    done = [t for t in trials if t.state.is_finished]
    return sorted(done, key=lambda t: (t.finish_order is None, t.finish_order or 0, t.finished_at or 0.0, t.number))


@dataclass(frozen=True)
class ProgressPoint:
    """One finished trial in the order money was spent: ``finished`` (how many trials had
    finished, this one included), ``spent_usd`` (dollars of every finished trial so far, whatever
    its state), ``value`` (this trial's value if it counts, else ``None``) and ``best`` (the best
    value so far, ``None`` before the first)."""

    number: int
    state: str
    finished: int
    spent_usd: float
    value: float | None
    best: float | None


def progress(trials: Sequence[Trial], metric: str, direction: str,
             constraints: Constraints | None = None) -> list[ProgressPoint]:
    """The study's progress trial by trial, in finish order (see :class:`ProgressPoint`)."""
    better = (lambda a, b: a < b) if direction == "min" else (lambda a, b: a > b)
    out: list[ProgressPoint] = []
    spent = 0.0
    best: float | None = None
    for i, t in enumerate(finish_sorted(trials), start=1):
        spent += t.cost_usd
        v = value_of(t, metric, constraints or {})
        if v is not None and (best is None or better(v, best)):
            best = v
        out.append(ProgressPoint(t.number, t.state.value, i, spent, v, best))
    return out
