"""Scheduler mediation: whether a running trial should stop now, and what follows a stop.

At each ``should_stop`` of a trial: a stop requested in storage (the budget's circuit breaker, a
user) stops it; otherwise the study's scheduler decides from the stored history. STOP may come
with a successor (population-based training's exploit: a clone of a better trial that continues
its checkpoint with new params, enqueued here and its checkpoint copied at once); PAUSE marks the
trial pausing (``optimize`` tells it PAUSED). Under a dollar budget, when the scheduler says
continue, the spending rules of :mod:`thrifty.cost.spend` may still stop the trial. A scheduler that reads the budget (the
:class:`~thrifty.schedulers.budget_aware.BudgetAware` wrapper, built by ``budget_aware=True``) gets
a :class:`~thrifty.schedulers.base.BudgetSnapshot` with its decision. The typed reason of each
stop is set on the trial's handle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from thrifty.checkpoints import copy_checkpoint
from thrifty.cost.budget import Budget
from thrifty.cost.spend import spending_verdict
from thrifty.schedulers import BudgetSnapshot, Decision, NoStopping
from thrifty.schedulers.base import Successor
from thrifty.storage.base import StudyStatus
from thrifty.study._state import StudyState
from thrifty.trial import StopKind, StopReason, Trial, TrialState


class Stoppable(Protocol):
    """The running trial a decision is about (a :class:`~thrifty.handle.TrialHandle`)."""

    stop: StopReason | None
    pausing: bool
    #: The last report's transaction found no stop requested (and nothing was asked since).
    stop_checked: bool

    @property
    def id(self) -> int: ...

    def snapshot(self) -> Trial: ...


def should_stop(state: StudyState, handle: Stoppable) -> bool:
    """Whether ``handle``'s trial should end now (see the module docstring); sets its typed
    ``stop`` (and ``pausing``) when so."""
    scheduler = state.settings.scheduler
    history: Sequence[Trial]
    status: StudyStatus | None = None
    # Under a dollar budget the spending rules read the history and the budget too.
    spending = Budget.from_dict(state.record.budget).usd is not None
    if scheduler.needs_history or spending:  # one read: the trial's stop request comes with the history
        snapshot, history = state.read_snapshot()
        status = snapshot.status
        current = history.trial(handle.id)
        if current is None or current.state is not TrialState.RUNNING or current.stop_kind is not None:
            return True  # gone, ended elsewhere (reaped), or a stop was requested
    else:
        if not handle.stop_checked and state.storage.stop_requested(handle.id):
            return True
        if isinstance(scheduler, NoStopping):
            return False
        history, current = [], handle.snapshot()
    objectives = state.settings.objectives
    verdict = scheduler.verdict(current, history, objectives,
                                budget_snapshot(state, status) if scheduler.needs_budget else None)
    said = f"scheduler: {scheduler.name}"
    if verdict.decision is Decision.STOP:
        handle.stop = StopReason(StopKind.SCHEDULER, said if verdict.note is None else f"{said}: {verdict.note}")
        successor = scheduler.successor(current, history, objectives) if verdict.note is None else None
        if successor is not None:
            clone = start_successor(state, successor)
            handle.stop = StopReason(StopKind.SCHEDULER, f"{said}: replaced by trial {clone.number} "
                                     f"(clone of trial {successor.parent} at step {successor.start_step:g})")
        return True
    if verdict.decision is Decision.PAUSE:
        handle.stop = StopReason(StopKind.SCHEDULER, f"{said}: paused at step {current.last_step:g}")
        handle.pausing = True
        return True
    if status is not None and status.budget.usd is not None:
        money = budget_snapshot(state, status)
        assert money.usd_left is not None
        why = spending_verdict(current, history, objectives, budget_usd=status.budget.usd,
                               usd_left=money.usd_left, n_running=money.n_running)
        if why is not None:
            handle.stop = StopReason(StopKind.SCHEDULER, f"spending rule: {why}")
            return True
    return False


def budget_snapshot(state: StudyState, status: StudyStatus | None = None) -> BudgetSnapshot:
    """The study's budget as a scheduler's decision reads it (dollars left, trials running), from
    a snapshot's ``status`` (else read now)."""
    if status is None:
        record = state.storage.study_status(state.study_id)
        usd = Budget.from_dict(record.budget).usd
        left = None if usd is None else usd - record.usage(state.clock.time()).usd
        return BudgetSnapshot(usd_left=left, n_running=record.n_running)
    usd = status.budget.usd
    left = None if usd is None else usd - status.usage(state.clock.time()).usd
    return BudgetSnapshot(usd_left=left, n_running=status.n_running)


def start_successor(state: StudyState, successor: Successor) -> Trial:
    """Enqueue the trial that continues ``successor.parent``'s checkpoint with new params, and
    copy that checkpoint into the new trial's folder (a snapshot: the parent goes on)."""
    s = state.settings
    params = s.space.validate(successor.params)
    clone = state.label(state.storage.enqueue(
        state.study_id, params, state.clock.time(), resources=s.resources or None,
        parent=successor.parent, start_step=float(successor.start_step),
    ))
    copy_checkpoint(state, successor.parent, clone.number)
    return clone
