"""Where the good values were: parallel coordinates over the parameters and one slice per
parameter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from thrifty.errors import ValidationError
from thrifty.plot._common import counted_trials, objective_of, plotly_go, scatter_type
from thrifty.space import Categorical, Float, Int

if TYPE_CHECKING:
    from thrifty.study import Study
    from thrifty.trial import Trial


def _params_of(study: Study, params: Sequence[str] | None) -> list[str]:
    names = [n for n, p in study.space.items() if isinstance(p, (Float, Int, Categorical))]
    if params is None:
        return names
    unknown = [p for p in params if p not in study.space]
    if unknown:
        raise ValidationError(f"params={list(params)!r}: {', '.join(unknown)} not in the study's space "
                              f"({', '.join(study.space)})")
    return list(params)



def _axis(study: Study, name: str, trials: list[tuple[Trial, float]]) -> dict[str, Any]:
    """One parallel-coordinates dimension: log parameters on a log10 scale, choices as indices,
    and a trial where the parameter is inactive (conditional) at a mark below the range."""
    p = study.space[name]
    raw = [t.params.get(name) for t, _ in trials]
    if isinstance(p, Categorical):
        labels = [str(c) for c in p.choices]
        values = [float(p.index(v)) if v is not None else -1.0 for v in raw]
        ticks = list(range(len(labels)))
        dim: dict[str, Any] = {"label": name, "values": values, "tickvals": ticks, "ticktext": labels,
                               "range": [-1 if any(v is None for v in raw) else 0, len(labels) - 1]}
        if any(v is None for v in raw):
            dim["tickvals"] = [-1, *ticks]
            dim["ticktext"] = ["inactive", *labels]
        return dim
    log = bool(getattr(p, "log", False))
    lo, hi = (math.log10(p.low), math.log10(p.high)) if log else (float(p.low), float(p.high))
    below = lo - 0.1 * (hi - lo if hi > lo else 1.0)
    values = [below if v is None else (math.log10(v) if log else float(v)) for v in raw]
    dim = {"label": f"{name} (log10)" if log else name, "values": values,
           "range": [below if any(v is None for v in raw) else lo, hi]}
    return dim


def parallel_coordinate(study: Study, *, objective: str | None = None, params: Sequence[str] | None = None,
                        trials: Sequence[Trial] | None = None) -> Any:
    """One line per counted trial (COMPLETED, constraints met) through the objective and each
    parameter, coloured by the objective (darker: better). ``trials``: the study's trials if
    already read."""
    go = plotly_go()
    metric, direction = objective_of(study, objective)
    names = _params_of(study, params)
    counted = counted_trials(study, metric, trials)
    values = np.array([v for _, v in counted])
    dims = [{"label": metric, "values": values}] + [_axis(study, n, counted) for n in names]
    for d in dims:  # packed arrays: a small figure at any size
        d["values"] = np.asarray(d["values"], dtype=float)
    line = {"color": values, "colorscale": "Viridis", "reversescale": direction == "max", "showscale": True,
            "colorbar": {"title": {"text": metric}}} if len(values) else {}
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line))
    fig.update_layout(title=f"Parallel coordinates: {len(counted)} trials, {metric} ({direction})")
    return fig


def slice_plot(study: Study, *, objective: str | None = None, params: Sequence[str] | None = None,
               trials: Sequence[Trial] | None = None) -> Any:
    """One panel per parameter: each counted trial's value against the parameter's value (log
    axes for log parameters), coloured by trial number (Viridis: later trials yellower). ``trials``:
    the study's trials if already read."""
    go = plotly_go()
    from plotly.subplots import make_subplots

    metric, direction = objective_of(study, objective)
    names = _params_of(study, params)
    counted = counted_trials(study, metric, trials)
    cols = max(1, min(len(names), 3))
    rows = max(1, math.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, shared_yaxes=True)
    for i, name in enumerate(names):
        r, c = divmod(i, cols)
        shown = [(t, v) for t, v in counted if t.params.get(name) is not None]
        p = study.space[name]
        xs = [str(t.params[name]) if isinstance(p, Categorical) else t.params[name] for t, _ in shown]
        fig.add_trace(scatter_type(go, len(shown))(
            x=xs, y=[v for _, v in shown], mode="markers", name=name, showlegend=False,
            marker={"color": [t.number for t, _ in shown], "colorscale": "Viridis", "size": 6},
            customdata=[t.number for t, _ in shown],
            hovertemplate=f"trial %{{customdata}}<br>{name} %{{x}}<br>{metric} %{{y}}<extra></extra>",
        ), row=r + 1, col=c + 1)
        if getattr(p, "log", False):
            fig.update_xaxes(type="log", row=r + 1, col=c + 1)
    fig.update_layout(title=f"Slices: {metric} ({direction}) against each parameter", height=300 * rows)
    fig.update_yaxes(title_text=metric, col=1)
    return fig
