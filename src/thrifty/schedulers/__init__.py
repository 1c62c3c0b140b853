"""Schedulers (how long to run a trial), chosen by name or by instance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.schedulers.base import AskPlan, Decision, NoStopping, Scheduler, Successor

_REGISTRY = {
    "none": "thrifty.schedulers.base:NoStopping",
    "median": "thrifty.schedulers.percentile:Median",
    "percentile": "thrifty.schedulers.percentile:Percentile",
    "threshold": "thrifty.schedulers.threshold:Threshold",
    "patience": "thrifty.schedulers.patience:Patience",
    "asha": "thrifty.schedulers.asha:ASHA",
    "hyperband": "thrifty.schedulers.hyperband:Hyperband",
    "pbt": "thrifty.schedulers.pbt:PBT",
    "adaptive": "thrifty.schedulers.adaptive:AdaptiveASHA",
    "auto": "thrifty.schedulers.auto:AutoStopping",
}


def available() -> list[str]:
    """Names accepted by ``scheduler=...``."""
    return sorted(_REGISTRY)


def make_scheduler(spec: str | Mapping[str, Any] | Scheduler | None) -> Scheduler:
    """Build a scheduler from a name, a spec dict, an instance, or ``None`` (no stopping)."""
    from thrifty._registry import build

    if spec is None:
        return NoStopping()
    return build(spec, Scheduler, _REGISTRY, "scheduler")


__all__ = ["AskPlan", "Decision", "NoStopping", "Scheduler", "Successor", "available", "make_scheduler"]
