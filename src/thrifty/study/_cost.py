"""The study's cost model, kept fitted between asks, and the soft budget admission it serves.

The model is refitted from an ask's snapshot, outside any transaction, when trials have finished
since the last fit (every new finished trial up to 50, then every 10% more), whenever the stored
budget has a dollar limit or the strategy wants the model. The admission, part of the ask's
decision, refuses a trial whose forecast median dollars exceed the dollars left in that snapshot.
Both read only the snapshot: no per-process state decides anything.

:mod:`thrifty.cost.forecast` (and scipy with it) is imported at the first fit, not with the study,
so ``import thrifty`` and every ``thrifty`` command that fits no model start fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from thrifty.cost.budget import Budget
from thrifty.errors import StudyExhausted
from thrifty.history import History
from thrifty.ranking import measured
from thrifty.strategies import Strategy
from thrifty.storage.base import Snapshot, StudyStatus
from thrifty.strategies.base import Context
from thrifty.study._state import StudyState
from thrifty.trial import Trial, TrialState

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.cost.forecast import CostModel

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

    def fit(self) -> CostModel:
        """A cost model fitted on the study's finished trials now (not cached)."""
        from thrifty.cost.forecast import CostModel  # scipy: loaded when a model is first fitted

        history = self._state.storage.get_trials(self._state.study_id, FINISHED_STATES)
        return CostModel(self._state.settings.space).fit(history)

    def refresh(self, snapshot: Snapshot, trials: History) -> None:
        """Refit the cached model on the snapshot's finished ``trials`` when trials have finished
        since the last fit (every new trial up to 50, then every 10% more)."""
        finished = trials.n_finished
        if self._model is not None:
            seen = self._model[0]
            if finished == seen or (seen > 50 and finished < seen * 1.1):
                return
        from thrifty.cost.forecast import CostModel  # scipy: loaded when a model is first fitted

        done = [t for t in trials if t.is_finished]
        self._model = (finished, CostModel(self._state.settings.space).fit(done), full_resource(done))

    def admit(self, params: Mapping[str, Any], status: StudyStatus) -> None:
        """The soft budget check, from a snapshot's ``status``: refuse a trial whose forecast cost
        (the cost model's median dollars for these params at the full resource: as likely to be
        above as below) exceeds the dollars left."""
        budget = status.budget
        if budget.usd is None or self._model is None or not self._model[1].is_fitted:
            return
        _, model, resource = self._model
        forecast = model.predict(params, resource).median_usd
        left = budget.usd - status.spent_usd
        if forecast > left * (1 + 1e-9):
            raise StudyExhausted(
                f"the next trial's forecast cost ${forecast:,.4f} exceeds the ${left:,.4f} left of the "
                f"${budget.usd:,.2f} budget (${status.spent_usd:,.4f} spent)",
                "usd",
            )

    def basic_context(self) -> Context:
        """The strategy's :class:`~thrifty.strategies.base.Context` before any proposal: the
        objectives and constraints (the cost model comes per proposal)."""
        s = self._state.settings
        return Context(objectives=dict(s.objectives), constraints=dict(s.constraints),
                       budget_trials=Budget.from_dict(self._state.record.budget).trials)

    def proposal_context(self, strategy: Strategy, snapshot: Snapshot, trials: History) -> Context:
        """The :class:`~thrifty.strategies.base.Context` of a proposal made from ``snapshot``: with
        the cost model when the strategy wants it or the study has a dollar budget, and the
        dollars spent."""
        budget = snapshot.status.budget
        model, resource = None, 1.0
        if strategy.wants_cost_model or budget.usd is not None:
            self.refresh(snapshot, trials)
            if self._model is not None and self._model[1].is_fitted:
                model, resource = self._model[1], self._model[2]
        s = self._state.settings
        spent = snapshot.status.spent_usd if budget.usd is not None else 0.0
        return Context(objectives=dict(s.objectives), cost_model=model, max_resource=resource,
                       budget_usd=budget.usd, spent_usd=spent, budget_trials=budget.trials,
                       constraints=dict(s.constraints))
