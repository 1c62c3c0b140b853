"""The rules every storage applies alike, as plain functions of plain values.

The SQL storage and the in-process one keep their state differently but must decide alike: what a
study has used, whether a trial may start, when the circuit breaker trips and what a reaped trial's
error says. Each rule is written here once and both call it inside their own atomic step; the
study calls :func:`check_start` on its snapshot too, so a refusal it decides reads the same. Every
budget decision goes through :func:`limit_reached`, the one call to the budget rule
(:class:`~thrifty.cost.budget.BudgetGuard`, at the moment the caller names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thrifty.cost.budget import Budget, BudgetGuard, BudgetStop, Moment, Usage
from thrifty.errors import StudyExhausted

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.storage.base import AskLimits, StartKind


def usage_of(
    n_started: int, spent_usd: float, gpu_s: float, n_running: int, active_s: float, active_since: float | None,
    now: float, added_usd: float = 0.0, added_gpu_s: float = 0.0,
) -> Usage:
    """What a study has consumed up to ``now`` (seconds since the epoch), as budgets count it, plus
    a measurement being added (``added_usd`` dollars, ``added_gpu_s`` GPU-seconds): active wall
    time is the closed periods ``active_s`` plus, while a trial runs, ``now - active_since``."""
    wall = active_s + (now - active_since if n_running > 0 and active_since is not None else 0.0)
    return Usage(trials=n_started, usd=spent_usd + added_usd, gpu_hours=(gpu_s + added_gpu_s) / 3600.0, wall_s=wall)


def limit_reached(budget: Budget, usage: Usage, moment: Moment) -> BudgetStop | None:
    """The one call to the budget rule: the :class:`~thrifty.cost.budget.BudgetGuard`'s answer
    for ``budget`` at ``moment`` (the first limit ``usage`` has reached, typed), else ``None``."""
    return BudgetGuard(budget).check(usage, moment)


def check_start(kind: StartKind, budget: Budget, usage: Usage, limits: AskLimits, run_started: int | None) -> None:
    """Raise :class:`StudyExhausted` (naming the limit) if a trial of this ``kind`` may not start now.

    A new or claimed trial is checked at :attr:`Moment.START` (every limit of the stored budget),
    then against ``limits.run_max_started`` trials of ``limits.run_tag`` (``run_started``, counted
    by the caller; a retried trial counts once). A resumed trial is not a new trial: it is checked
    at :attr:`Moment.RESUME` (dollars, GPU-hours and wall time) and the caller's limit does not
    apply to it.
    """
    hit = limit_reached(budget, usage, Moment.RESUME if kind == "resume" else Moment.START)
    if hit is not None:
        raise StudyExhausted(hit.message, hit.limit)
    if kind != "resume" and limits.run_max_started is not None and run_started is not None:
        if run_started >= limits.run_max_started:
            raise StudyExhausted(f"this call's {limits.run_max_started} trials have started", "n_trials")


def breaker_stop(budget: Budget, usage: Usage) -> BudgetStop | None:
    """The circuit breaker: the limit that stops every running trial when ``usage`` (the ledger
    with the measurement being recorded) reaches a hard dollar, GPU-hour or wall-time limit
    (:attr:`Moment.MEASUREMENT`), else ``None`` (no hard budget, or no limit reached). The stop's
    ``at`` is unset: the storage records when it tripped."""
    return limit_reached(budget, usage, Moment.MEASUREMENT)


def reap_error(
    worker_id: str | None, known_dead: bool, given: str | None, silent_s: float, grace_s: float,
    retry_number: int | None, attempt: int, max_retries: int,
) -> str:
    """The error a reaped trial is recorded with: why its worker is presumed lost (its worker is
    ``known_dead``, in ``given`` words if any; or it sent no heartbeat for ``silent_s`` seconds, more
    than ``grace_s``) and, if it is re-enqueued, as which trial number and which retry."""
    if known_dead:
        why = given or f"worker lost: worker {worker_id} died while running the trial"
    else:
        why = f"worker lost: no heartbeat from worker {worker_id} for {silent_s:.1f} s (grace period {grace_s:g} s)"
    if retry_number is not None:
        why += f"; re-enqueued as trial {retry_number} (retry {attempt + 1} of {max_retries})"
    return why

