"""Two parameters at a time: the objective's contour over each pair, and each pair's trials
coloured by their rank.

Axes are the parameters' own scales (log axes for log parameters); a categorical parameter's
choices sit at 0, 1, ... with their names as ticks. A trial counts as in every picture (COMPLETED,
constraints met, finite value); a trial where a conditional parameter is inactive is left out of
that parameter's pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from thrifty.errors import ValidationError
from thrifty.plot._common import counted_trials, objective_of, plotly_go, scatter_type
from thrifty.space import Categorical

if TYPE_CHECKING:
    from thrifty.study import Study
    from thrifty.trial import Trial

#: Grid points per axis of a contour (the objective interpolated linearly between trials).
CONTOUR_GRID = 60
#: At most this many trials (a seeded sample) are interpolated per pair; every one is drawn.
CONTOUR_MAX_POINTS = 2000
#: Pairs drawn when ``params`` is not given: the first this many parameters (all their pairs).
DEFAULT_MAX_PARAMS = 4


def _names(study: Study, params: Sequence[str] | None) -> list[str]:
    names = list(study.space) if params is None else list(params)
    unknown = [n for n in names if n not in study.space]
    if unknown:
        raise ValidationError(f"params={names!r}: {', '.join(unknown)} not in the study's space ({', '.join(study.space)})")
    if params is None:
        names = names[:DEFAULT_MAX_PARAMS]
    if len(names) < 2:
        raise ValidationError(f"a pair picture needs two parameters; got {names!r}: pass params=[a, b, ...]")
    return names


def _coord(study: Study, name: str, value: Any) -> float | None:
    """The value on the picture's axis: a choice's index for a categorical parameter."""
    if value is None:
        return None
    p = study.space[name]
    return float(p.index(value)) if isinstance(p, Categorical) else float(value)


def _axis(study: Study, name: str) -> dict[str, Any]:
    p = study.space[name]
    if isinstance(p, Categorical):
        return {"title": {"text": name}, "tickvals": list(range(len(p.choices))),
                "ticktext": [str(c) for c in p.choices]}
    return {"title": {"text": name}, "type": "log" if getattr(p, "log", False) else "linear"}



def _grid(fig: Any, names: list[str]) -> list[tuple[int, int, str, str]]:
    """(row, col, x name, y name) of each pair in a lower-triangular matrix (one panel for a pair)."""
    if len(names) == 2:
        return [(1, 1, names[0], names[1])]
    return [(r + 1, c + 1, names[c], names[r + 1]) for r in range(len(names) - 1) for c in range(r + 1)]


def _subplots(names: list[str]) -> Any:
    from plotly.subplots import make_subplots

    n = max(1, len(names) - 1)
    return make_subplots(rows=n, cols=n, horizontal_spacing=0.06, vertical_spacing=0.08)


def _style_axes(fig: Any, study: Study, row: int, col: int, xname: str, yname: str) -> None:
    for update, name in ((fig.update_xaxes, xname), (fig.update_yaxes, yname)):
        ax = _axis(study, name)
        update(title_text=ax["title"]["text"], row=row, col=col,
               **{k: v for k, v in ax.items() if k != "title"})


def contour_plot(study: Study, *, params: Sequence[str] | None = None, objective: str | None = None,
                 trials: Sequence[Trial] | None = None) -> Any:
    """The objective over each pair of ``params`` (default: every pair of the first
    :data:`DEFAULT_MAX_PARAMS` parameters): interpolated linearly between the counted trials on a
    :data:`CONTOUR_GRID` x :data:`CONTOUR_GRID` grid (on the log scale for log parameters;
    nothing is drawn outside the trials' convex hull), with the trials on top. A pair with fewer
    than 3 distinct points shows the points only. ``trials``: the study's trials if already read."""
    from scipy.interpolate import griddata

    go = plotly_go()
    metric, direction = objective_of(study, objective)
    names = _names(study, params)
    counted = counted_trials(study, metric, trials)
    fig = _subplots(names)
    for row, col, xn, yn in _grid(fig, names):
        pts = [(_coord(study, xn, t.params.get(xn)), _coord(study, yn, t.params.get(yn)), v, t.number)
               for t, v in counted]
        pts = [p for p in pts if p[0] is not None and p[1] is not None]
        xs = np.array([p[0] for p in pts], dtype=float)
        ys = np.array([p[1] for p in pts], dtype=float)
        zs = np.array([p[2] for p in pts], dtype=float)
        logx, logy = (bool(getattr(study.space[n], "log", False)) for n in (xn, yn))
        if len({(x, y) for x, y in zip(xs, ys)}) >= 3 and np.ptp(xs) > 0 and np.ptp(ys) > 0:
            gx, gy = (np.log10(xs) if logx else xs), (np.log10(ys) if logy else ys)
            zi = zs
            if len(gx) > CONTOUR_MAX_POINTS:  # Delaunay on 100,000 points takes seconds a pair
                pick = np.random.default_rng(0).choice(len(gx), CONTOUR_MAX_POINTS, replace=False)
                gx, gy, zi = gx[pick], gy[pick], zs[pick]
            ax = np.linspace(gx.min(), gx.max(), CONTOUR_GRID)
            ay = np.linspace(gy.min(), gy.max(), CONTOUR_GRID)
            mx, my = np.meshgrid(ax, ay)
            try:
                z = griddata((gx, gy), zi, (mx, my), method="linear")
            except Exception:  # noqa: BLE001 - e.g. every point on one line (Qhull): points only
                z = None
            if z is not None:
                fig.add_trace(go.Contour(
                    x=10 ** ax if logx else ax, y=10 ** ay if logy else ay, z=z, colorscale="Viridis",
                    reversescale=direction == "max", showscale=(row, col) == (1, 1), connectgaps=False,
                    colorbar={"title": {"text": metric}}, contours={"coloring": "heatmap"},
                    hovertemplate=f"{xn} %{{x}}<br>{yn} %{{y}}<br>{metric} ~%{{z}}<extra></extra>",
                ), row=row, col=col)
        fig.add_trace(scatter_type(go, len(pts))(
            x=xs, y=ys, mode="markers", showlegend=False, customdata=np.array([p[3] for p in pts]),
            marker={"color": "#000000", "size": 4, "opacity": 0.7},
            hovertemplate=f"trial %{{customdata}}<br>{xn} %{{x}}<br>{yn} %{{y}}<extra></extra>",
        ), row=row, col=col)
        _style_axes(fig, study, row, col, xn, yn)
    fig.update_layout(title=f"Contour: {metric} ({direction}) over pairs of parameters, {len(counted)} trials",
                      height=max(420, 320 * (len(names) - 1)))
    return fig


def rank_plot(study: Study, *, params: Sequence[str] | None = None, objective: str | None = None,
              trials: Sequence[Trial] | None = None) -> Any:
    """Each pair of ``params`` (as in :func:`contour_plot`) with every counted trial at its
    values, coloured by its rank among them as a fraction (0: the best, 1: the worst; ties share
    the lower rank), so where the good trials sit shows even when the values span decades."""
    go = plotly_go()
    metric, direction = objective_of(study, objective)
    names = _names(study, params)
    counted = counted_trials(study, metric, trials)
    values = np.array([v for _, v in counted], dtype=float)
    order = values if direction == "min" else -values
    ranks = np.searchsorted(np.sort(order), order, side="left") / max(len(values) - 1, 1)
    fig = _subplots(names)
    for row, col, xn, yn in _grid(fig, names):
        keep = [i for i, (t, _) in enumerate(counted) if t.params.get(xn) is not None and t.params.get(yn) is not None]
        fig.add_trace(scatter_type(go, len(keep))(
            x=np.array([_coord(study, xn, counted[i][0].params[xn]) for i in keep], dtype=float),
            y=np.array([_coord(study, yn, counted[i][0].params[yn]) for i in keep], dtype=float),
            mode="markers", showlegend=False,
            marker={"color": ranks[keep] if keep else [], "colorscale": "RdYlBu", "cmin": 0.0, "cmax": 1.0,
                    "size": 6, "showscale": (row, col) == (1, 1), "colorbar": {"title": {"text": "rank"}}},
            customdata=np.array([[counted[i][0].number, values[i]] for i in keep]).reshape(-1, 2),
            hovertemplate=f"trial %{{customdata[0]}}<br>{metric} %{{customdata[1]}}<br>rank %{{marker.color:.2f}}"
                          "<extra></extra>",
        ), row=row, col=col)
        _style_axes(fig, study, row, col, xn, yn)
    fig.update_layout(title=f"Rank of {metric} ({direction}) over pairs of parameters (0: best)",
                      height=max(420, 320 * (len(names) - 1)))
    return fig

