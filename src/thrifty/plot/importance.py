"""Parameter importance as a picture: each parameter's share of the objective's variance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from thrifty.plot._common import plotly_go

if TYPE_CHECKING:
    from thrifty.analysis.importance import ImportanceReport
    from thrifty.study import Study
    from thrifty.trial import Trial


def param_importances(study: Study, *, objective: str | None = None, report: ImportanceReport | None = None,
                      trials: Sequence[Trial] | None = None) -> Any:
    """Horizontal bars: the fANOVA share of the objective's variance each parameter explains by
    itself (:func:`thrifty.analysis.importance.param_importances`), most important on top, with
    one standard deviation over the forest's trees as the error bar; the title says how much is
    left to interactions. ``report``: an importance report already made; ``trials``: the study's
    trials if already read."""
    go = plotly_go()
    if report is None:
        from thrifty.analysis.importance import param_importances as compute

        report = compute(study, objective=objective, trials=trials)
    items = list(reversed(report.importances))  # plotly draws the first bar at the bottom
    fig = go.Figure(go.Bar(
        x=[i.fraction for i in items], y=[i.param for i in items], orientation="h",
        error_x={"type": "data", "array": [i.fraction_sd for i in items]},
        hovertemplate="%{y}: %{x:.1%} of the variance<extra></extra>",
    ))
    fig.update_layout(
        title=(f"Parameter importance for {report.objective} (fANOVA, {report.n_trials} trials; "
               f"interactions {report.interactions:.0%})"),
        xaxis={"title": "share of the variance explained alone", "tickformat": ".0%", "range": [0, 1]},
    )
    return fig
