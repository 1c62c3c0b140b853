"""One self-contained HTML file with a study's pictures and its cost report, for sharing without
a server: plotly.js is embedded once (no network needed to open it), every string from the study
is escaped."""

from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.errors import NotEnoughData
from thrifty.plot.curves import intermediate_values
from thrifty.plot.history import best_vs_cost, optimization_history
from thrifty.plot.importance import param_importances
from thrifty.plot.pairs import contour_plot
from thrifty.plot.params import parallel_coordinate, slice_plot
from thrifty.plot.pareto import pareto_front
from thrifty.plot.spend import budget_burndown, spend_by_state
from thrifty.plot.timeline import timeline

if TYPE_CHECKING:
    from thrifty.analysis.report import CostReport
    from thrifty.study import Study

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.figure { margin: 2em 0; }
.note { color: #555; font-size: 90%; }
"""


def _usd(x: float | None) -> str:
    return "-" if x is None else f"${x:,.4f}"


def _summary(rep: CostReport) -> str:
    rows = [("spent", f"{_usd(rep.spent_usd)} in total (every trial, failed ones included)"),
            ("trials", f"{rep.trials_started} started, {rep.trials_total} in the study")]
    for lim in rep.budget.limits:
        unit = "$" if lim.limit == "usd" else ""
        rows.append((f"budget ({lim.limit})", (f"{unit}{lim.used:,.4g} used of {unit}{lim.value:,.4g}, "
                                               f"{unit}{lim.left:,.4g} left ({'hard' if rep.budget.hard else 'soft'})")))
    saved = rep.saved_by_early_stopping
    rows.append(("saved by stopping early", (f"{_usd(saved.usd)} (estimate; range {_usd(saved.low_usd)} to "
                                             f"{_usd(saved.high_usd)}): {saved.note}")))
    fc = rep.forecast_to_finish
    rows.append(("forecast to finish", f"{_usd(fc.usd)}: {fc.note}" if fc.usd is not None else fc.note))
    if rep.near_duplicate_full_trainings:
        rows.append(("paid twice", (f"{rep.near_duplicate_full_trainings} completed trials within 1% of an "
                                    f"earlier one's configuration ({_usd(rep.near_duplicate_usd)})")))
    if rep.idle_gpu_trials:
        shown = ", ".join(str(n) for n in rep.idle_gpu_trials[:20]) + (" ..." if len(rep.idle_gpu_trials) > 20 else "")
        rows.append(("idle GPUs", (f"{len(rep.idle_gpu_trials)} trials held a GPU that sat idle most of the time "
                                   f"({_usd(rep.idle_gpu_usd)}): trials {shown}")))
    if rep.memo_cache is not None:
        mc = rep.memo_cache
        rows.append(("memo cache", (f"{mc.hits} hits, {mc.misses} misses, {_usd(mc.saved_usd)} saved "
                                    f"({mc.saved_s:,.0f} s of compute)")))
    if rep.best is not None:
        b = rep.best
        params = ", ".join(f"{k}={v!r}" for k, v in b.params.items())
        best = f"trial {b.number}: {b.metric} = {b.value:.6g} ({b.direction}), cost {_usd(b.cost_usd)}; {params}"
        rows.append(("best", best))
    rows += [("note", n) for n in rep.notes]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _ledger(rep: CostReport, top: int) -> str:
    head = ("<tr><th class='num'>trial</th><th>state</th><th class='num'>cost $</th><th class='num'>seconds</th>"
            "<th class='num'>last step</th><th>note</th></tr>")
    rows = []
    for t in rep.most_expensive(top):
        step = "-" if t.last_step is None else f"{t.last_step:g}"
        rows.append(f"<tr><td class='num'>{t.number}</td><td>{html.escape(t.state)}</td>"
                    f"<td class='num'>{t.cost_usd:,.4f}</td><td class='num'>{t.elapsed_s:,.1f}</td>"
                    f"<td class='num'>{step}</td><td>{html.escape(t.note or '')}</td></tr>")
    return (f"<h2>Trials by cost (top {len(rows)} of {len(rep.trials)})</h2>"
            f"<table>{head}{''.join(rows)}</table>")


def figures(study: Study, report: CostReport) -> list[tuple[str, Any]]:
    """The report's pictures, (heading, figure), in the order shown."""
    out: list[tuple[str, Any]] = []
    if len(study.objectives) == 1:
        out.append(("Best value against dollars spent", best_vs_cost(study)))
        out.append(("Optimisation history", optimization_history(study)))
    elif len(study.objectives) in (2, 3):
        out.append(("Pareto front", pareto_front(study)))
    out.append(("Learning curves and stop decisions", intermediate_values(study)))
    if len(study.objectives) == 1:
        out.append(("Parallel coordinates", parallel_coordinate(study)))
        out.append(("Slices", slice_plot(study)))
        if len(study.space) >= 2:
            out.append(("Contours over pairs of parameters", contour_plot(study)))
        try:
            out.append(("Parameter importance", param_importances(study)))
        except NotEnoughData:
            pass  # fewer than 8 counted trials: the picture would say nothing
    out.append(("Spend by trial state", spend_by_state(study, report=report)))
    out.append(("Budget burn-down", budget_burndown(study, report=report)))
    out.append(("Timeline of the trials", timeline(study)))
    return out


def html_report(study: Study, *, top: int = 20) -> str:
    """The study's report as one self-contained HTML document (a string)."""
    from thrifty.analysis.report import cost_report

    rep = cost_report(study)
    when = _dt.datetime.fromtimestamp(rep.generated_at, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    objectives = ", ".join(f"{k} ({v})" for k, v in rep.objectives.items())
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>thrifty report: {html.escape(study.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Study {html.escape(study.name)}</h1>",
        (f"<p class='note'>objectives: {html.escape(objectives)}; storage: {html.escape(rep.storage)}; "
         f"generated {when} by thrifty</p>"),
        "<h2>Where the money went</h2>", _summary(rep),
    ]
    for i, (heading, fig) in enumerate(figures(study, rep)):
        div = fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="480px",
                          div_id=f"figure-{i}", config={"displaylogo": False})
        parts.append(f"<div class='figure'><h2>{html.escape(heading)}</h2>{div}</div>")
    parts.append(_ledger(rep, top))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html_report(study: Study, path: str | Path, *, top: int = 20) -> Path:
    """Write :func:`html_report` to ``path`` (UTF-8) and return the path. The file is written whole
    or not at all (a temporary file renamed into place)."""
    target = Path(path)
    text = html_report(study, top=top)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target
