"""Search strategies (where to look), chosen by name or by instance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.strategies.base import Context, Strategy

_REGISTRY = {
    "random": "thrifty.strategies.random:RandomSearch",
    "sobol": "thrifty.strategies.sobol:SobolSearch",
    "grid": "thrifty.strategies.grid:GridSearch",
    "gp": "thrifty.strategies.gp:GP",
    "tpe": "thrifty.strategies.tpe:TPE",
    "nsga2": "thrifty.strategies.nsga2:NSGA2",
    "bohb": "thrifty.strategies.bohb:BOHB",
    "mfgp": "thrifty.strategies.mfgp:MFGP",
    "auto": "thrifty.strategies.auto:Auto",
}


def available() -> list[str]:
    """Names accepted by ``strategy=...``."""
    return sorted(_REGISTRY)


def make_strategy(spec: str | Mapping[str, Any] | Strategy) -> Strategy:
    """Build a strategy from a name (``"sobol"``), a spec (``{"name": "grid", "points_per_float": 3}``)
    or return an instance unchanged."""
    from thrifty._registry import build

    return build(spec, Strategy, _REGISTRY, "strategy")


__all__ = ["Context", "Strategy", "available", "make_strategy"]
