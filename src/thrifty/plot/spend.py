"""Where the money went: spend by trial state with what early stopping saved, and the budget's
burn-down with the forecast to finish."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from thrifty.plot._common import STATE_COLOURS, finish_sorted, plotly_go, scatter_type

if TYPE_CHECKING:
    from thrifty.analysis.report import CostReport
    from thrifty.study import Study
    from thrifty.trial import Trial


def _report(study: Study, report: CostReport | None, trials: Sequence[Trial] | None) -> CostReport:
    if report is not None:
        return report
    from thrifty.analysis.report import cost_report

    return cost_report(study, trials=trials)


def spend_by_state(study: Study, *, report: CostReport | None = None, trials: Sequence[Trial] | None = None) -> Any:
    """Dollars spent by the trials of each state (completed, stopped early, failed, infeasible,
    and running, paused or pending when there are any), each bar labelled with its trial count;
    beside them, hatched, the *estimate* of what early stopping saved (the cost model's forecast
    of running the stopped trials to the full resource, minus what they cost) with the range of
    that estimate; the title names what the trials whose GPU sat idle cost. ``report``: a :func:`~thrifty.analysis.report.cost_report` already made;
    ``trials``: the study's trials if already read."""
    go = plotly_go()
    rep = _report(study, report, trials)
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=[s.state for s in rep.by_state], y=[s.cost_usd for s in rep.by_state], name="spent",
        marker={"color": [STATE_COLOURS.get(s.state, "#7f7f7f") for s in rep.by_state]},
        text=[f"{s.trials} trial{'s' if s.trials != 1 else ''}" for s in rep.by_state], textposition="outside",
        hovertemplate="%{x}: $%{y:,.4f}<br>%{text}<extra></extra>",
    ))
    saved = rep.saved_by_early_stopping
    fig.add_trace(go.Bar(
        x=["saved by stopping early (estimate)"], y=[saved.usd], name="saved (estimate)",
        marker={"color": "#ffffff", "line": {"color": STATE_COLOURS["stopped"], "width": 2},
                "pattern": {"shape": "/", "fgcolor": STATE_COLOURS["stopped"]}},
        error_y={"type": "data", "symmetric": False, "array": [max(saved.high_usd - saved.usd, 0.0)],
                 "arrayminus": [max(saved.usd - saved.low_usd, 0.0)]},
        hovertext=[saved.note], hovertemplate="$%{y:,.4f}<br>%{hovertext}<extra></extra>",
    ))
    title = f"Spend by trial state: ${rep.spent_usd:,.4f} in total"
    if rep.idle_gpu_trials:  # idle paid hardware: the first thing to cut
        n = len(rep.idle_gpu_trials)
        title += f"; {n} trial{'s' if n != 1 else ''} held an idle GPU (${rep.idle_gpu_usd:,.4f})"
    fig.update_layout(title=title, yaxis_title="dollars", showlegend=False)
    return fig


def budget_burndown(study: Study, *, report: CostReport | None = None, trials: Sequence[Trial] | None = None) -> Any:
    """Dollars spent against trials finished (in the order they finished), the dollar budget as a
    line, and, with a trial limit, the forecast to finish: the expected spend once the remaining
    trials have run (dashed) with the 90% interval of that total (the cost model's Monte Carlo over
    random configurations at the full resource: :func:`~thrifty.analysis.report.forecast_trials`).
    ``report`` and ``trials``: as in :func:`spend_by_state`."""
    go = plotly_go()
    every = study.trials if trials is None else trials
    rep = _report(study, report, every)
    done = finish_sorted(every)
    xs, ys, spent = [0], [0.0], 0.0
    for i, t in enumerate(done, start=1):
        spent += t.cost_usd
        xs.append(i)
        ys.append(spent)
    fig = go.Figure()
    fig.add_trace(scatter_type(go, len(xs))(x=np.array(xs), y=np.array(ys), mode="lines", name="spent",
                                            line={"color": "#000000", "shape": "hv"},
                             hovertemplate="after %{x} trials: $%{y:,.4f}<extra></extra>"))
    limits = {lim.limit: lim for lim in rep.budget.limits}
    if "usd" in limits:
        fig.add_hline(y=float(limits["usd"].value), line_dash="dot", line_color="#d62728",
                      annotation_text=f"{'hard' if rep.budget.hard else 'soft'} budget ${float(limits['usd'].value):,.2f}")
    fc = rep.forecast_to_finish
    title = f"Budget: ${rep.spent_usd:,.4f} spent"
    if fc.usd is not None and fc.remaining_trials:
        end_x = len(done) + fc.remaining_trials
        end_y = spent + fc.usd
        low = high = None
        interval = _interval(study, fc.remaining_trials, every)
        if interval is not None:
            low, high = spent + interval[0], spent + interval[1]
            if fc.capped:  # a hard dollar budget stops the study at its limit
                low, high = min(low, end_y), min(high, end_y)
        fig.add_trace(go.Scatter(
            x=[len(done), end_x], y=[spent, end_y], mode="lines+markers", name="forecast to finish",
            line={"dash": "dash", "color": "#1f77b4"}, hovertext=["now", fc.note],
            error_y=None if low is None else {"type": "data", "symmetric": False, "array": [0.0, high - end_y],
                                              "arrayminus": [0.0, end_y - low]},
            hovertemplate="%{hovertext}<br>$%{y:,.4f}<extra></extra>",
        ))
        title += f"; forecast to finish ${end_y:,.4f}"
        if low is not None:
            title += f" (90%: ${low:,.4f} to ${high:,.4f})"
    fig.update_layout(title=title, xaxis_title="trials finished", yaxis_title="dollars spent")
    return fig


def _interval(study: Study, remaining: int, trials: Sequence[Trial]) -> tuple[float, float] | None:
    """The 90% interval of the remaining trials' total, or ``None`` without a fitted cost model."""
    from thrifty.analysis.report import fit_cost_model, forecast_trials
    from thrifty.ranking import full_resource

    try:
        model = fit_cost_model(study, trials)
        if not model.is_fitted:
            return None
        full = full_resource(trials) or 1.0
        f = forecast_trials(model, study.space, remaining, full, seed=study.seed)
    except Exception:  # noqa: BLE001 - a picture must not fail on an estimate
        return None
    return f.low_usd, f.high_usd
