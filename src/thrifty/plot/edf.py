"""The empirical distribution of the objective's values: how good a typical trial of a study is,
and, with several studies on one picture, which search spends its trials better."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from thrifty.errors import ValidationError
from thrifty.plot._common import objective_of, plotly_go, value_of

if TYPE_CHECKING:
    from thrifty.study import Study


def edf_plot(studies: Study | Sequence[Study], *, objective: str | None = None) -> Any:
    """For each study, the share of its counted trials (COMPLETED, constraints met, finite value)
    whose value is at most x, as a step line (one line per study, named after it). The studies
    must share the objective's name; its direction is the first study's."""
    go = plotly_go()
    many = [studies] if not isinstance(studies, Sequence) else list(studies)
    if not many:
        raise ValidationError("edf_plot needs at least one study")
    metric, direction = objective_of(many[0], objective)
    fig = go.Figure()
    for s in many:
        if metric not in s.objectives:
            raise ValidationError(f"study {s.name!r} has no objective {metric!r} (its: {', '.join(s.objectives)})")
        values = np.sort([v for v in (value_of(t, metric, s.constraints) for t in s.trials) if v is not None])
        shares = np.arange(1, len(values) + 1) / max(len(values), 1)
        fig.add_trace(go.Scatter(x=values, y=shares, mode="lines", name=f"{s.name} ({len(values)} trials)",
                                 line={"shape": "hv"}))
    fig.update_layout(title=f"Empirical distribution of {metric} ({direction})", xaxis_title=metric,
                      yaxis={"title": {"text": "share of trials with a value <= x"}, "range": [0, 1.02]})
    return fig
