"""Cost: prices, metering, budgets and the cost model."""

from thrifty.cost.budget import Budget, Usage
from thrifty.cost.pricing import Catalogue, InstanceType, Pricing

__all__ = ["Budget", "Catalogue", "InstanceType", "Pricing", "Usage"]
