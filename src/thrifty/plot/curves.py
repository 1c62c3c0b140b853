"""Learning curves: every trial's reports against their step, each early stop marked with its
reason."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from thrifty.errors import ValidationError
from thrifty.plot._common import STATE_COLOURS, plotly_go

if TYPE_CHECKING:
    from thrifty.study import Study
    from thrifty.trial import Trial


def intermediate_values(study: Study, *, metric: str | None = None, max_trials: int = 1000,
                        trials: Sequence[Trial] | None = None) -> Any:
    """The reports of each trial (``metric`` against step; default: the objective), one line per
    trial coloured by its state, and a cross at the last report of every STOPPED trial whose hover
    text is the stop's reason (who stopped it and why).

    Only the ``max_trials`` latest trials (by number) with a report of the metric are drawn, so a
    large study stays readable; the title says how many were left out. All the lines of one
    state are one trace (gaps between trials), so the figure stays small at any size. ``trials``:
    the study's trials if already read.
    """
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise ValidationError(f"max_trials={max_trials!r}: expected an integer >= 1")
    go = plotly_go()
    if metric is None:
        metric = next(iter(study.objectives))  # the first objective
    with_curve = []
    for t in study.trials if trials is None else trials:
        pts = [(m.step, m.metrics[metric]) for m in t.measurements
               if m.step is not None and metric in m.metrics and math.isfinite(m.metrics[metric])]
        if pts:
            with_curve.append((t, pts))
    shown = with_curve[-max_trials:]
    fig = go.Figure()
    by_state: dict[str, tuple[list, list, list]] = {}
    stops_x, stops_y, stops_text = [], [], []
    for t, pts in shown:
        xs, ys, names = by_state.setdefault(t.state.value, ([], [], []))
        for step, v in pts:
            xs.append(step)
            ys.append(v)
            names.append(t.number)
        xs.append(None)
        ys.append(None)
        names.append(None)
        if t.state.value == "stopped":
            step, v = pts[-1]
            stops_x.append(step)
            stops_y.append(v)
            stops_text.append(f"trial {t.number} stopped at step {step:g}: {t.reason or 'no reason recorded'}")
    for state, (xs, ys, names) in by_state.items():
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", name=state, customdata=names, connectgaps=False,
            line={"color": STATE_COLOURS.get(state, "#7f7f7f"), "width": 1}, opacity=0.6,
            hovertemplate="trial %{customdata}<br>step %{x}<br>" + metric + " %{y}<extra>" + state + "</extra>",
        ))
    if stops_x:
        fig.add_trace(go.Scatter(
            x=stops_x, y=stops_y, mode="markers", name="stop decision", text=stops_text,
            marker={"symbol": "x", "size": 8, "color": STATE_COLOURS["stopped"]},
            hovertemplate="%{text}<extra></extra>",
        ))
    left_out = len(with_curve) - len(shown)
    title = f"Learning curves: {metric} by step"
    if left_out:
        title += f" (latest {len(shown)} trials; {left_out} earlier ones not drawn)"
    elif not shown:
        title += " (no trial has reported it with a step yet)"
    fig.update_layout(title=title, xaxis_title="step", yaxis_title=metric)
    return fig
