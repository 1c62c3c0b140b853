"""The best value against dollars spent (thrifty's first picture) and the optimisation history
against trial numbers (the peers' usual one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from thrifty.errors import ValidationError
from thrifty.plot._common import STATE_COLOURS, objective_of, plotly_go, progress, value_of

if TYPE_CHECKING:
    from thrifty.study import Study
    from thrifty.trial import Trial

AGAINST = ("usd", "trials")


def best_vs_cost(study: Study, *, objective: str | None = None, against: str = "usd",
                 trials: Sequence[Trial] | None = None) -> Any:
    """The best value so far against the dollars spent so far, one point per counted trial.

    Trials are taken in the order they finished; the x of a trial is the dollars of every trial
    finished up to it (stopped, failed and infeasible ones cost money too), or, with
    ``against="trials"``, the number of trials finished. Points: each COMPLETED trial that meets
    the constraints, at its own value; the line: the best so far. A toggle in the figure switches
    between the two x axes. ``trials``: the study's trials if already read (default: read them).
    Returns a ``plotly.graph_objects.Figure``.
    """
    if against not in AGAINST:
        raise ValidationError(f"against={against!r}: expected 'usd' or 'trials'")
    go = plotly_go()
    metric, direction = objective_of(study, objective)
    points = progress(study.trials if trials is None else trials, metric, direction, study.constraints)
    counted = [p for p in points if p.value is not None]
    stepped = [p for p in points if p.best is not None]
    xs = {
        "usd": ([p.spent_usd for p in counted], [p.spent_usd for p in stepped]),
        "trials": ([p.finished for p in counted], [p.finished for p in stepped]),
    }
    titles = {"usd": "dollars spent (all trials finished so far)", "trials": "trials finished"}
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=xs[against][0], y=[p.value for p in counted], mode="markers", name="trial",
        marker={"color": STATE_COLOURS["completed"], "size": 6, "opacity": 0.6},
        customdata=[[p.number, p.spent_usd, p.finished] for p in counted],
        hovertemplate=f"trial %{{customdata[0]}}<br>{metric} %{{y}}<br>spent $%{{customdata[1]:,.4f}} after "
                      "%{customdata[2]} trials<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=xs[against][1], y=[p.best for p in stepped], mode="lines", name="best so far",
        line={"shape": "hv", "color": "#000000", "width": 2},
    ))
    buttons = [
        {"label": label, "method": "update",
         "args": [{"x": [xs[key][0], xs[key][1]]}, {"xaxis.title.text": titles[key]}]}
        for key, label in (("usd", "against dollars"), ("trials", "against trials"))
    ]
    fig.update_layout(
        title=f"Best {metric} ({direction}) against {'dollars spent' if against == 'usd' else 'trials finished'}",
        xaxis_title=titles[against], yaxis_title=metric,
        updatemenus=[{"type": "buttons", "direction": "left", "buttons": buttons, "x": 1.0, "xanchor": "right",
                      "y": 1.15, "yanchor": "top", "active": AGAINST.index(against)}],
    )
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
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=metric,
                             marker={"color": STATE_COLOURS["completed"], "size": 6}))
    fig.add_trace(go.Scatter(x=best_x, y=best_y, mode="lines", name="best so far",
                             line={"shape": "hv", "color": "#000000"}))
    fig.update_layout(title=f"Optimisation history: {metric} ({direction})", xaxis_title="trial",
                      yaxis_title=metric)
    return fig
