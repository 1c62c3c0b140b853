"""The ask flow: which trial starts next (a paused one the scheduler resumes, an enqueued one, or a
new proposal), started by the storage under the study's lock.

Steps of :meth:`Asker.ask`: reap trials whose worker died; prepare the strategy once; check the
completion criteria; let a scheduler that plans asks resume a PAUSED trial; keep the cost model
fitted once the study has a dollar budget; let a slow strategy propose before the transaction
(from the history, pending and running trials included); then the storage's ask claims the oldest
enqueued trial or creates one from the proposal, applying the limits and the soft budget
admission inside its transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from thrifty.errors import StudyExhausted
from thrifty.ranking import judged
from thrifty.storage import AskLimits
from thrifty.strategies.base import params_key
from thrifty.study._cost import CostGate
from thrifty.study._heartbeat import Heartbeats
from thrifty.study._state import StudyState
from thrifty.trial import Trial, TrialState


def check_criteria(state: StudyState) -> None:
    """Raise :class:`~thrifty.errors.StudyExhausted` (reason ``"criterion"``) when one of the
    study's completion criteria holds on its finished trials."""
    metric, direction = next(iter(state.settings.objectives.items()))
    constraints = state.settings.constraints
    finished = [judged(t, constraints)  # trials recorded before breakers were marked
                for t in state.storage.get_trials(state.study_id, with_measurements=False) if t.is_finished]
    for criterion in state.settings.criteria:
        why = criterion.check(finished, metric, direction)
        if why is not None:
            raise StudyExhausted(f"the study is complete: {why}", "criterion")


class Asker:
    """Starts trials for one study object (it prepares the strategy once)."""

    def __init__(self, state: StudyState, cost: CostGate, heartbeats: Heartbeats) -> None:
        self._state = state
        self._cost = cost
        self._heartbeats = heartbeats
        self._prepared = False

    def ask(self, limits: AskLimits) -> Trial:
        """Start a trial (see the module docstring) and return it, RUNNING under this object's
        worker id. Raises :class:`~thrifty.errors.StudyExhausted` with nothing written when no
        trial may start."""
        state, cost = self._state, self._cost
        strategy, space, seed = state.settings.strategy, state.settings.space, state.settings.seed
        self._heartbeats.reap()
        if not self._prepared:
            strategy.prepare(space)
            self._prepared = True
        if state.settings.criteria:
            check_criteria(state)
        scheduler = state.settings.scheduler
        plan = None
        if scheduler.plans_asks:
            plan = scheduler.plan(state.read_history().trials(), state.settings.objectives)
            for number in plan.resume:
                resumed = state.storage.resume(state.study_id, number, state.worker_id, limits.run_tag, time.time())
                if resumed is not None:
                    return resumed
        if cost.usd_budget_seen:
            cost.refresh()

        early: Mapping[str, Any] | None = None
        next_number = 0
        if strategy.slow and (plan is None or plan.new):
            history = state.read_history().trials()
            # An enqueued trial goes first: no proposal is needed (nor wasted) then.
            if not any(t.state is TrialState.PENDING for t in history):
                strategy.bind(cost.proposal_context(strategy))
                next_number = max((t.number for t in history), default=-1) + 1
                early = strategy.propose(space, history, seed=seed, number=next_number, n=1)[0]

        def propose(number: int, load_history: Callable[[], Sequence[Trial]]) -> Mapping[str, Any]:
            if plan is not None and not plan.new:
                raise StudyExhausted(f"the scheduler starts no new trial: {plan.why}", "scheduler")
            if early is not None:
                # Another worker may have proposed the same point from the same snapshot and
                # started it meanwhile: then propose again from the history as it is now (rare,
                # and then inside the lock, which is the price of never running a duplicate).
                key = params_key(early)
                if not any(params_key(t.params) == key for t in load_history(next_number)):  # type: ignore[call-arg]
                    return early
                return strategy.propose(space, load_history(), seed=seed, number=number, n=1)[0]
            history = load_history() if strategy.needs_history else ()
            return strategy.propose(space, history, seed=seed, number=number, n=1)[0]

        result = state.storage.ask(
            state.study_id, state.worker_id, propose, limits, time.time(),
            resources=state.settings.resources, admit=cost.admit,
        )
        return result.trial
