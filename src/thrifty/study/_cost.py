"""The study's cost model, kept fitted between asks, and the soft budget admission it serves.

The model is refitted outside any transaction when trials have finished since the last fit
(every new finished trial up to 50, then every 10% more). Once the study has a dollar budget
(stored at load, or first seen by an ask), it is kept fitted before each ask; the admission, run
by the storage inside the ask transaction, refuses a trial whose forecast median dollars exceed
the dollars left.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from thrifty.cost.budget import Budget, Usage
from thrifty.cost.forecast import CostModel
from thrifty.errors import StudyExhausted
from thrifty.ranking import measured
from thrifty.strategies import Strategy
from thrifty.strategies.base import Context
from thrifty.study._state import StudyState
from thrifty.trial import Trial, TrialState

#: The trial states a cost model learns from.
FINISHED_STATES = [TrialState.COMPLETED, TrialState.STOPPED, TrialState.FAILED, TrialState.INFEASIBLE]


def full_resource(history: Sequence[Trial]) -> float:
    """The resource a full trial reaches: the largest step of any trial that ran to its end
    (:func:`thrifty.ranking.measured`; 1 if none)."""
    steps = [t.last_step for t in history if measured(t) and t.last_step is not None]
    return float(max(steps)) if steps else 1.0


class CostGate:
    """One study object's cached cost model and the admission of a new trial against the dollars
    left."""

    def __init__(self, state: StudyState) -> None:
        self._state = state
        self._model: tuple[int, CostModel, float] | None = None  #: (finished trials, model, full resource)
        #: Whether this object has seen a dollar budget: from then on the model is kept fitted.
        self.usd_budget_seen = bool(state.record.budget.get("usd"))

    def fit(self) -> CostModel:
        """A cost model fitted on the study's finished trials now (not cached)."""
        history = self._state.storage.get_trials(self._state.study_id, FINISHED_STATES)
        return CostModel(self._state.settings.space).fit(history)

    def refresh(self) -> None:
        """Refit the cached model when trials have finished since the last fit (every new trial up
        to 50, then every 10% more), outside any transaction."""
        counts = self._state.storage.count_trials(self._state.study_id)
        finished = sum(n for st, n in counts.items() if st.is_finished)
        if self._model is not None:
            seen = self._model[0]
            if finished == seen or (seen > 50 and finished < seen * 1.1):
                return
        history = self._state.storage.get_trials(self._state.study_id, FINISHED_STATES)
        self._model = (finished, CostModel(self._state.settings.space).fit(history), full_resource(history))

    def admit(self, params: Mapping[str, Any], resources: Mapping[str, float], usage: Usage, budget: Budget) -> None:
        """The soft budget check, inside the ask transaction: refuse a trial whose forecast cost
        (the cost model's median dollars for these params at the full resource: as likely to be
        above as below) exceeds the dollars left."""
        if budget.usd is None:
            return
        if not self.usd_budget_seen:
            self.usd_budget_seen = True  # from now on the model is kept fitted before each ask
            return
        if self._model is None or not self._model[1].is_fitted:
            return
        _, model, resource = self._model
        forecast = model.predict(params, resource).median_usd
        left = budget.usd - usage.usd
        if forecast > left * (1 + 1e-9):
            raise StudyExhausted(
                f"the next trial's forecast cost ${forecast:,.4f} exceeds the ${left:,.4f} left of the "
                f"${budget.usd:,.2f} budget (${usage.usd:,.4f} spent)",
                "usd",
            )

    def basic_context(self) -> Context:
        """The strategy's :class:`~thrifty.strategies.base.Context` before any proposal: the
        objectives and constraints (the cost model comes per proposal)."""
        s = self._state.settings
        return Context(objectives=dict(s.objectives), constraints=dict(s.constraints),
                       budget_trials=Budget.from_dict(self._state.record.budget).trials)

    def proposal_context(self, strategy: Strategy) -> Context:
        """The :class:`~thrifty.strategies.base.Context` of the next proposal: with the cost model
        when the strategy wants it or the study has a dollar budget, and the dollars left."""
        model, resource = None, 1.0
        if strategy.wants_cost_model or self.usd_budget_seen:
            self.refresh()
            if self._model is not None and self._model[1].is_fitted:
                model, resource = self._model[1], self._model[2]
        s = self._state.settings
        record = self._state.storage.study_status(self._state.study_id)
        budget = Budget.from_dict(record.budget)
        spent = record.usage(time.time()).usd if budget.usd is not None else 0.0
        return Context(objectives=dict(s.objectives), cost_model=model, max_resource=resource,
                       budget_usd=budget.usd, spent_usd=spent, budget_trials=budget.trials,
                       constraints=dict(s.constraints))
