"""The Pareto front of a study with several objectives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from thrifty.errors import ValidationError
from thrifty.plot._common import plotly_go, scatter_type
from thrifty.ranking import eligible, ranked_fronts

if TYPE_CHECKING:
    from thrifty.study import Study
    from thrifty.trial import Trial


def pareto_front(study: Study, *, objectives: Sequence[str] | None = None, trials: Sequence[Trial] | None = None) -> Any:
    """Every counted trial (COMPLETED, constraints met, finite values) in the space of two or
    three objectives; the trials of the study's Pareto front (:meth:`Study.pareto_front`, over
    all its objectives) highlighted, the others grey. ``trials``: the study's trials if already
    read."""
    go = plotly_go()
    names = list(objectives) if objectives is not None else list(study.objectives)
    unknown = [n for n in names if n not in study.objectives]
    if unknown:
        raise ValidationError(f"objectives={names!r}: {', '.join(unknown)} not among the study's "
                              f"({', '.join(study.objectives)})")
    if len(names) not in (2, 3):
        raise ValidationError(f"pareto_front shows 2 or 3 objectives; study {study.name!r} has {len(names)}: "
                              "pass objectives=[...] with 2 or 3 of them")
    every = study.trials if trials is None else trials
    front = {t.number for t in next(iter(ranked_fronts(every, study.objectives, study.constraints)), [])}
    shown = {n: study.objectives[n] for n in names}
    points = eligible(every, shown, study.constraints)
    fig = go.Figure()
    for on_front, label, colour in ((False, "dominated", "#c7c7c7"), (True, "Pareto front", "#d62728")):
        pts = [(v, t) for v, t in points if (t.number in front) == on_front]
        coords = {axis: [v[i] for v, _ in pts] for i, axis in enumerate("xyz"[:len(names)])}
        common = {"mode": "markers", "name": label, "marker": {"color": colour, "size": 7 if on_front else 5},
                  "customdata": [t.number for _, t in pts]}
        if len(names) == 2:
            fig.add_trace(scatter_type(go, len(pts))(**coords, **common, hovertemplate="trial %{customdata}<br>"
                                     f"{names[0]} %{{x}}<br>{names[1]} %{{y}}<extra></extra>"))
        else:
            fig.add_trace(go.Scatter3d(**coords, **common))
    dirs = [f"{n} ({shown[n]})" for n in names]
    if len(names) == 2:
        fig.update_layout(xaxis_title=dirs[0], yaxis_title=dirs[1])
    else:
        fig.update_layout(scene={"xaxis_title": dirs[0], "yaxis_title": dirs[1], "zaxis_title": dirs[2]})
    fig.update_layout(title=f"Pareto front: {len(front)} of {len(points)} trials")
    return fig
