"""Cost: budgets (and, later, prices, metering and forecasts)."""

from thrifty.cost.budget import Budget

__all__ = ["Budget"]
