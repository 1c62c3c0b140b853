"""The best value against dollars spent (thrifty's first picture) and the optimisation history
against trial numbers (the peers' usual one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from thrifty.errors import ValidationError
from thrifty.plot._common import (
    STATE_COLOURS,
    WEBGL_ABOVE,
    objective_of,
    packed,
    plotly_go,
    progress,
    scatter_type,
    steps_only,
    value_of,
)

if TYPE_CHECKING:
    from thrifty.study import Study
    from thrifty.trial import Trial

AGAINST = ("usd", "trials")


def best_vs_cost(study: Study, *, objective: str | None = None, against: str = "usd",
                 trials: Sequence[Trial] | None = None, toggle: bool = True) -> Any:
    """The best value so far against the dollars spent so far, one point per counted trial.

    Trials are taken in the order they finished; the x of a trial is the dollars of every trial
    finished up to it (stopped, failed and infeasible ones cost money too), or, with
    ``against="trials"``, the number of trials finished. Points: each COMPLETED trial that meets
    the constraints, at its own value; the line: the best so far. A toggle in the figure switches
    between the two x axes; it carries the other axis's value of every point, so ``toggle=False``
    (no toggle) makes a smaller figure that draws faster. ``trials``: the study's trials if
    already read (default: read them).
    Returns a ``plotly.graph_objects.Figure``.
    """
    if against not in AGAINST:
        raise ValidationError(f"against={against!r}: expected 'usd' or 'trials'")
    go = plotly_go()
    metric, direction = objective_of(study, objective)
    points = progress(study.trials if trials is None else trials, metric, direction, study.constraints)
    counted = [p for p in points if p.value is not None]
    stepped = [p for p in points if p.best is not None]
    # Arrays (sent base64-packed in the figure's JSON) and a best line of its corners only: a
    # 100,000-trial study stays a figure of a few megabytes.
    xs = {
        "usd": (np.array([p.spent_usd for p in counted]), steps_only([p.spent_usd for p in stepped],
                                                                    [p.best for p in stepped])),
        "trials": (np.array([p.finished for p in counted]), steps_only([p.finished for p in stepped],
                                                                      [p.best for p in stepped])),
    }
    titles = {"usd": "dollars spent (all trials finished so far)", "trials": "trials finished"}
    fig = go.Figure()
    fig.add_trace(scatter_type(go, len(counted))(
        x=xs[against][0], y=np.array([p.value for p in counted]), mode="markers", name="trial",
        # Many points (WebGL): smaller, opaque markers draw faster and show the density better.
        marker={"color": STATE_COLOURS["completed"], "size": 6 if len(counted) <= WEBGL_ABOVE else 4,
                "opacity": 0.6 if len(counted) <= WEBGL_ABOVE else 1.0},
        customdata=np.array([p.number for p in counted]),
        hovertemplate=f"trial %{{customdata}}<br>{metric} %{{y}}<br>%{{x}}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=xs[against][1][0], y=xs[against][1][1], mode="lines", name="best so far",
        line={"shape": "hv", "color": "#000000", "width": 2},
    ))
    fig.update_layout(
        title=f"Best {metric} ({direction}) against {'dollars spent' if against == 'usd' else 'trials finished'}",
        xaxis_title=titles[against], yaxis_title=metric,
    )
    if toggle:
        buttons = [
            {"label": label, "method": "update",
             "args": [{"x": [packed(xs[key][0]), xs[key][1][0]]}, {"xaxis.title.text": titles[key]}]}
            for key, label in (("usd", "against dollars"), ("trials", "against trials"))
        ]
        fig.update_layout(updatemenus=[{"type": "buttons", "direction": "left", "buttons": buttons, "x": 1.0,
                                        "xanchor": "right", "y": 1.15, "yanchor": "top",
                                        "active": AGAINST.index(against)}])
    return fig


def optimization_history(study: Study, *, objective: str | None = None, trials: Sequence[Trial] | None = None) -> Any:
    """Each counted trial's value against its trial number, and the best so far in number order
    (the peers' picture: ``optuna.visualization.plot_optimization_history``). ``trials``: as in
    :func:`best_vs_cost`."""
    go = plotly_go()
    metric, direction = objective_of(study, objective)
    better = min if direction == "min" else max
    xs, ys, best_x, best_y = [], [], [], []
    best = None
    for t in study.trials if trials is None else trials:
        v = value_of(t, metric, study.constraints)
        if v is None:
            continue
        best = v if best is None else better(best, v)
        xs.append(t.number)
        ys.append(v)
        best_x.append(t.number)
        best_y.append(best)
    fig = go.Figure()
    fig.add_trace(scatter_type(go, len(xs))(x=np.array(xs), y=np.array(ys), mode="markers", name=metric,
                                            marker={"color": STATE_COLOURS["completed"], "size": 6}))
    best_x, best_y = steps_only(best_x, best_y)
    fig.add_trace(go.Scatter(x=best_x, y=best_y, mode="lines", name="best so far",
                             line={"shape": "hv", "color": "#000000"}))
    fig.update_layout(title=f"Optimisation history: {metric} ({direction})", xaxis_title="trial",
                      yaxis_title=metric)
    return fig
