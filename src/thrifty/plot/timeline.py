"""When each trial ran: a bar per trial from start to finish, coloured by its final state (what
the workers did with the time you paid for; gaps between bars are idle workers)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from thrifty.errors import ValidationError
from thrifty.plot._common import STATE_COLOURS, plotly_go

if TYPE_CHECKING:
    from thrifty.study import Study
    from thrifty.trial import Trial


def timeline(study: Study, *, max_trials: int = 1000, trials: Sequence[Trial] | None = None,
             now: float | None = None) -> Any:
    """One horizontal bar per started trial (its number on the y axis) from when it started to
    when it finished (a running trial: to ``now``, default the current time), coloured by state,
    with its worker, cost and stop reason on hover. Only the ``max_trials`` latest started trials
    (by number) are drawn; the title says how many were left out. Times are wall-clock (the
    x axis is a date axis). ``trials``: the study's trials if already read."""
    import datetime

    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise ValidationError(f"max_trials={max_trials!r}: expected an integer >= 1")
    go = plotly_go()
    end_of_running = time.time() if now is None else now
    started = [t for t in (study.trials if trials is None else trials) if t.started_at is not None]
    shown = started[-max_trials:]
    fig = go.Figure()

    def stamp(seconds: float) -> str:
        return datetime.datetime.fromtimestamp(seconds).isoformat(timespec="milliseconds")

    for state in STATE_COLOURS:
        mine = [t for t in shown if t.state.value == state]
        if not mine:
            continue
        ends = [t.finished_at if t.finished_at is not None else end_of_running for t in mine]
        fig.add_trace(go.Bar(
            base=[stamp(t.started_at) for t in mine],  # type: ignore[arg-type]
            x=[max(e - t.started_at, 0.0) * 1000.0 for t, e in zip(mine, ends)],  # type: ignore[operator]
            y=[t.number for t in mine], orientation="h", name=state, marker={"color": STATE_COLOURS[state]},
            customdata=[[t.worker_id or "-", t.cost_usd, t.elapsed_s, t.reason or ""] for t in mine],
            hovertemplate="trial %{y}<br>%{customdata[2]:.1f} s, $%{customdata[1]:,.4f}<br>worker %{customdata[0]}"
                          "<br>%{customdata[3]}<extra></extra>",
        ))
    left_out = len(started) - len(shown)
    title = f"Timeline: {len(shown)} trials" + (f" (the latest; {left_out} earlier not drawn)" if left_out else "")
    fig.update_layout(title=title, barmode="overlay", xaxis={"type": "date", "title": {"text": "wall-clock time"}},
                      yaxis={"title": {"text": "trial"}}, bargap=0.1)
    return fig
