"""Scheduler mediation: whether a running trial should stop now, and what follows a stop.

At each ``should_stop`` of a trial: a stop requested in storage (the budget's circuit breaker, a
user) stops it; otherwise the study's scheduler decides from the stored history. STOP may come
with a successor (population-based training's exploit: a clone of a better trial that continues
its checkpoint with new params, enqueued here and its checkpoint copied at once); PAUSE marks the
trial pausing (``optimize`` tells it PAUSED). A scheduler built with ``budget_aware=True`` and a
``max_resource`` also stops a trial that cannot reach it within its share of the dollars left
(:mod:`thrifty.schedulers.budget_aware`). The reason of each stop is set on the trial's handle.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from thrifty.checkpoints import copy_checkpoint
from thrifty.cost.budget import Budget
from thrifty.schedulers import Decision, NoStopping, Scheduler
from thrifty.schedulers.base import Successor
from thrifty.schedulers.budget_aware import cannot_finish
from thrifty.study._state import StudyState
from thrifty.trial import Trial


class Stoppable(Protocol):
    """The running trial a decision is about (a :class:`~thrifty.handle.TrialHandle`)."""

    stop_reason: str | None
    pausing: bool

    @property
    def id(self) -> int: ...

    def snapshot(self) -> Trial: ...


def should_stop(state: StudyState, handle: Stoppable) -> bool:
    """Whether ``handle``'s trial should end now (see the module docstring); sets its
    ``stop_reason`` (and ``pausing``) when so."""
    scheduler = state.settings.scheduler
    if state.storage.stop_requested(handle.id):
        return True
    if isinstance(scheduler, NoStopping):
        return False
    history: Sequence[Trial]
    if scheduler.needs_history:
        history = state.read_history()
        current = history.trial(handle.id)
        if current is None:
            return True
    else:
        history, current = [], handle.snapshot()
    objectives = state.settings.objectives
    decision = scheduler.decide(current, history, objectives)
    if decision is Decision.STOP:
        handle.stop_reason = f"scheduler: {scheduler.name}"
        successor = scheduler.successor(current, history, objectives)
        if successor is not None:
            clone = start_successor(state, successor)
            handle.stop_reason = (f"scheduler: {scheduler.name}: replaced by trial {clone.number} "
                                  f"(clone of trial {successor.parent} at step {successor.start_step:g})")
        return True
    if decision is Decision.PAUSE:
        handle.stop_reason = f"scheduler: {scheduler.name}: paused at step {current.last_step:g}"
        handle.pausing = True
        return True
    if scheduler.budget_aware and scheduler.max_resource is not None:
        return budget_says_stop(state, scheduler, handle, current)
    return False


def budget_says_stop(state: StudyState, scheduler: Scheduler, handle: Stoppable, current: Trial) -> bool:
    """The budget-aware rule (:mod:`thrifty.schedulers.budget_aware`)."""
    record = state.storage.study_status(state.study_id)
    budget = Budget.from_dict(record.budget)
    if budget.usd is None:
        return False
    left = budget.usd - record.usage(time.time()).usd
    assert scheduler.max_resource is not None
    if cannot_finish(current, scheduler.max_resource, left, max(record.n_running, 1)):
        handle.stop_reason = (f"scheduler: {scheduler.name}: budget-aware: cannot reach "
                              f"{scheduler.max_resource:g} within its share of the ${left:,.4f} left")
        return True
    return False


def start_successor(state: StudyState, successor: Successor) -> Trial:
    """Enqueue the trial that continues ``successor.parent``'s checkpoint with new params, and
    copy that checkpoint into the new trial's folder (a snapshot: the parent goes on)."""
    s = state.settings
    params = s.space.validate(successor.params)
    clone = state.label(state.storage.enqueue(
        state.study_id, params, time.time(), resources=s.resources or None,
        parent=successor.parent, start_step=float(successor.start_step),
    ))
    copy_checkpoint(state, successor.parent, clone.number)
    return clone
