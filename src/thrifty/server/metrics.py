"""``/metrics``: the studies of a storage in Prometheus' text format (the official client library),
read at each scrape.

Per study (label ``study``): ``thrifty_trials{state=...}`` (trials by state), ``thrifty_spent_usd``,
``thrifty_budget_usd`` and ``thrifty_budget_left_usd`` (only with a dollar budget),
``thrifty_best_value{objective=..., direction=...}`` (the best counted value of a single-objective
study; absent before the first).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from thrifty.errors import StudyNotFound
from thrifty.server import _data
from thrifty.storage.base import Storage
from thrifty.trial import TrialState


class _StudiesCollector:
    def __init__(self, storage: Storage, best_value: Callable[[str], float | None]) -> None:
        self.storage = storage
        self.best_value = best_value

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        trials = GaugeMetricFamily("thrifty_trials", "Trials of the study by state", labels=["study", "state"])
        spent = GaugeMetricFamily("thrifty_spent_usd", "Dollars the study has spent", labels=["study"])
        budget = GaugeMetricFamily("thrifty_budget_usd", "The study's dollar budget", labels=["study"])
        left = GaugeMetricFamily("thrifty_budget_left_usd", "Dollars left of the study's budget", labels=["study"])
        best = GaugeMetricFamily("thrifty_best_value", "Best value of the objective so far",
                                 labels=["study", "objective", "direction"])
        for row in _data.studies(self.storage):
            name = row["name"]
            for state in TrialState:
                trials.add_metric([name, state.value], float(row["counts"].get(state.value, 0)))
            spent.add_metric([name], float(row["spent_usd"]))
            b = row["budget"]
            if b["usd"] is not None:
                budget.add_metric([name], float(b["usd"]))
                left.add_metric([name], float(b["usd_left"] or 0.0))
            if len(row["objectives"]) == 1:
                try:
                    value = self.best_value(name)
                except StudyNotFound:  # deleted since the list was read
                    value = None
                if value is not None and math.isfinite(value):
                    (objective, direction), = row["objectives"].items()
                    best.add_metric([name, objective, direction], float(value))
        yield from (trials, spent, budget, left, best)


def _best_of_stored(storage: Storage) -> Callable[[str], float | None]:
    def best(name: str) -> float | None:
        import thrifty as th

        try:
            return th.Study.load(name, storage=storage).best.value
        except th.ThriftyError:
            return None

    return best


def render_metrics(storage: Storage, best_value: Callable[[str], float | None] | None = None) -> tuple[bytes, str]:
    """(body, content type) of one scrape. ``best_value(name)``: a study's best counted value or
    ``None`` (default: read from the storage; the dashboard passes its incremental reader's)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StudiesCollector(storage, best_value or _best_of_stored(storage)))  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST
