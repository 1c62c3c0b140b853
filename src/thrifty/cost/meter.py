"""Metering: the one place where a trial's seconds become dollars.

A :class:`Meter` belongs to one trial: the study's :class:`~thrifty.cost.pricing.Pricing` and the
resources the trial holds (e.g. ``{"gpu": 1, "cpu": 4}``). Each interval of the trial (from its
start or its previous report to this report, or to its final ``tell``) is charged once:

    cost_usd  = price of the resources per hour * elapsed_s / 3600 + the cost_usd the objective reported
    gpu_s     = elapsed_s * GPUs held

The resulting :class:`Charge` goes into the interval's measurement; the storage adds it to the
study's ledgers in the measurement's own transaction, where the budget guard reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from thrifty.cost.pricing import Pricing, check_resources
from thrifty.trial import check_cost, check_seconds


@dataclass(frozen=True)
class Charge:
    """What one interval of a trial cost: ``cost_usd`` (dollars: metered compute plus what the
    objective reported), ``elapsed_s`` (wall seconds) and ``gpu_s`` (GPU-seconds held)."""

    cost_usd: float
    elapsed_s: float
    gpu_s: float


@dataclass(frozen=True)
class Meter:
    """Charges the intervals of one trial that holds ``resources`` under ``pricing`` (see the
    module docstring). Holds no clock: the caller measures the interval."""

    pricing: Pricing
    resources: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resources", MappingProxyType(check_resources(self.resources)))

    def charge(self, elapsed_s: float, cost_usd: float = 0.0) -> Charge:
        """The charge of an interval of ``elapsed_s`` seconds in which the objective reported
        ``cost_usd`` dollars beyond the metered compute. Raises
        :class:`~thrifty.errors.ValidationError` for a negative or non-finite amount."""
        elapsed = check_seconds(elapsed_s)
        reported = check_cost(cost_usd)
        metered = self.pricing.cost_usd(elapsed, self.resources)
        return Charge(cost_usd=metered + reported, elapsed_s=elapsed,
                      gpu_s=elapsed * self.pricing.gpus_held(self.resources))
