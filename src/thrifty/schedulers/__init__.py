"""Schedulers (how long to run a trial), chosen by name or by instance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.schedulers.base import AskPlan, Decision, NoStopping, Scheduler, Successor


def available() -> list[str]:
    """Names accepted by ``scheduler=...``."""
    from thrifty._registry import names

    return names("scheduler")


def make_scheduler(spec: str | Mapping[str, Any] | Scheduler | None) -> Scheduler:
    """Build a scheduler from a name, a spec dict, an instance, or ``None`` (no stopping)
    (:mod:`thrifty._registry`)."""
    from thrifty._registry import build

    if spec is None:
        return NoStopping()
    return build("scheduler", spec, Scheduler)


__all__ = ["AskPlan", "Decision", "NoStopping", "Scheduler", "Successor", "available", "make_scheduler"]
