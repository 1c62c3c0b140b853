"""Pictures of a study, each a plotly figure (``plotly.graph_objects.Figure``) made from a
:class:`~thrifty.study.Study` through its public API, read-only.

The contract of every function here: it reads the study once (its trials, and for the cost
pictures the cost report), never writes to it, and returns a figure you can ``.show()``,
``.write_html()`` or ``.write_image()``. Trials that count for "best" are COMPLETED, meet the
study's constraints and have a finite value, as in :meth:`Study.best`. Dollars are the study's
ledger (every trial, whatever its state). Bad arguments raise a one-line
:class:`~thrifty.errors.ValidationError`. Needs plotly (``pip install 'thrifty[plot]'``).

Cost pictures no peer has: :func:`best_vs_cost` (best value against dollars spent),
:func:`spend_by_state` (with what early stopping saved), :func:`budget_burndown` (with the
forecast to finish). The peers' usual ones: :func:`optimization_history`,
:func:`intermediate_values` (with each stop decision and its reason), :func:`parallel_coordinate`,
:func:`slice_plot`, :func:`contour_plot`, :func:`rank_plot`, :func:`edf_plot` (several studies on one
picture), :func:`timeline` (when each trial ran, on which worker), :func:`pareto_front`,
:func:`param_importances` (fANOVA). :func:`html_report` / :func:`write_html_report` put them
all, with the cost report, in one self-contained file (``thrifty report STUDY --html FILE``).
"""

from thrifty.plot.curves import intermediate_values
from thrifty.plot.edf import edf_plot
from thrifty.plot.history import best_vs_cost, optimization_history
from thrifty.plot.html import html_report, write_html_report
from thrifty.plot.importance import param_importances
from thrifty.plot.pairs import contour_plot, rank_plot
from thrifty.plot.params import parallel_coordinate, slice_plot
from thrifty.plot.pareto import pareto_front
from thrifty.plot.spend import budget_burndown, spend_by_state
from thrifty.plot.timeline import timeline

__all__ = [
    "best_vs_cost",
    "budget_burndown",
    "contour_plot",
    "edf_plot",
    "html_report",
    "intermediate_values",
    "optimization_history",
    "parallel_coordinate",
    "param_importances",
    "pareto_front",
    "rank_plot",
    "slice_plot",
    "spend_by_state",
    "timeline",
    "write_html_report",
]
