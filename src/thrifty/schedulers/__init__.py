"""Schedulers (how long to run a trial), chosen by name or by instance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.schedulers.base import AskPlan, BudgetSnapshot, Decision, NoStopping, Scheduler, Successor, Verdict


def available() -> list[str]:
    """Names accepted by ``scheduler=...``."""
    from thrifty._registry import names

    return names("scheduler")


def make_scheduler(spec: str | Mapping[str, Any] | Scheduler | None) -> Scheduler:
    """Build a scheduler from a name, a spec dict, an instance, or ``None`` (no stopping). One
    with ``budget_aware=True`` comes wrapped in
    :class:`~thrifty.schedulers.budget_aware.BudgetAware`."""
    from thrifty._registry import build
    from thrifty.schedulers.budget_aware import BudgetAware

    if spec is None:
        return NoStopping()
    scheduler = build("scheduler", spec, Scheduler)
    if scheduler.budget_aware and not isinstance(scheduler, BudgetAware):
        return BudgetAware(scheduler)
    return scheduler


__all__ = ["AskPlan", "BudgetSnapshot", "Decision", "NoStopping", "Scheduler", "Successor", "Verdict", "available",
           "make_scheduler"]
