"""Search strategies (where to look), chosen by name or by instance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.strategies.base import Context, Strategy


def available() -> list[str]:
    """Names accepted by ``strategy=...``."""
    from thrifty._registry import names

    return names("strategy")


def make_strategy(spec: str | Mapping[str, Any] | Strategy) -> Strategy:
    """Build a strategy from a name (``"sobol"``), a spec (``{"name": "grid", "points_per_float": 3}``)
    or return an instance unchanged (:mod:`thrifty._registry`)."""
    from thrifty._registry import build

    return build("strategy", spec, Strategy)


__all__ = ["Context", "Strategy", "available", "make_strategy"]
