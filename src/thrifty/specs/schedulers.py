"""The arguments of every scheduler (:mod:`thrifty.schedulers`), as validated specs.

Each field is a constructor argument of the scheduler of the same registry name, with its default
and rule; the scheduler's stored spec is ``{"name": ..., **spec.params()}``. Every scheduler but
``none`` and ``auto`` ranks trials by one metric: the study's one objective, or ``metric=`` (one of
its objectives) when it has several.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from thrifty.errors import ValidationError
from thrifty.specs.base import Spec, arg
from thrifty.specs.rules import BOOLEAN, METRIC, POSITIVE, PROBABILITY, Rule, integer, number, one_of

#: What a scheduler's resource can be: the report's ``step`` (epochs, ...) or the dollars spent.
RESOURCES = ("step", "cost_usd")

_RESOURCE = one_of(*RESOURCES, why="'step': epochs, ...; 'cost_usd': dollars")
_REDUCTION = number(above=1)
_AT_LEAST_ZERO = number(at_least=0)
_MIN_COMPLETE = integer(3, why="a rank correlation needs a few completed trials")
_RHO_MIN = number(at_least=-1, below=1)
_FACTORS = Rule("two positive multipliers, e.g. (0.8, 1.2)",
                lambda v: isinstance(v, (list, tuple)) and len(v) == 2
                and all(POSITIVE.test(x) for x in v), lambda v: (float(v[0]), float(v[1])))


@dataclass(frozen=True)
class SchedulerSpec(Spec):
    """A scheduler's arguments."""

    kind: ClassVar[str] = "scheduler"
    one_objective: ClassVar[bool] = True
    instead: ClassVar[str] = "use scheduler='none', give the scheduler metric= one of them, or a single objective"

    def _above_min(self, min_resource: float, max_resource: float) -> None:
        if max_resource <= min_resource:
            raise ValidationError(f"{self.owner}(min_resource={min_resource:g}, max_resource={max_resource:g}): "
                                  "max_resource must exceed min_resource")


@dataclass(frozen=True)
class NoStoppingSpec(SchedulerSpec):
    name: ClassVar[str] = "none"
    owner: ClassVar[str] = "NoStopping"
    one_objective: ClassVar[bool] = False


@dataclass(frozen=True)
class PercentileSpec(SchedulerSpec):
    name: ClassVar[str] = "percentile"
    owner: ClassVar[str] = "Percentile"

    q: float = arg(25.0, number(above=0, below=100, words="a percentile strictly between 0 and 100"))
    min_resource: float = arg(1.0, _AT_LEAST_ZERO)
    min_trials: int = arg(5, integer(1))
    statistic: str = arg("best", one_of("best", "mean"))
    metric: str | None = arg(None, METRIC)
    resource: str = arg("step", _RESOURCE)


@dataclass(frozen=True)
class MedianSpec(SchedulerSpec):
    name: ClassVar[str] = "median"
    owner: ClassVar[str] = "Median"

    min_resource: float = arg(1.0, _AT_LEAST_ZERO)
    min_trials: int = arg(5, integer(1))
    statistic: str = arg("best", one_of("best", "mean"))
    metric: str | None = arg(None, METRIC)
    resource: str = arg("step", _RESOURCE)


@dataclass(frozen=True)
class ThresholdSpec(SchedulerSpec):
    name: ClassVar[str] = "threshold"
    owner: ClassVar[str] = "Threshold"

    value: float | None = arg(None, number().or_none("stop only on NaN or infinity"))
    min_resource: float = arg(1.0, _AT_LEAST_ZERO)
    stop_on_nonfinite: bool = arg(True, BOOLEAN)
    metric: str | None = arg(None, METRIC)
    resource: str = arg("step", _RESOURCE)

    def check_args(self) -> None:
        if self.value is None and not self.stop_on_nonfinite:
            raise ValidationError("Threshold(value=None, stop_on_nonfinite=False): it would never stop anything; "
                                  "give a value or stop_on_nonfinite=True")


@dataclass(frozen=True)
class PatienceSpec(SchedulerSpec):
    name: ClassVar[str] = "patience"
    owner: ClassVar[str] = "Patience"

    patience: float = arg(5.0, POSITIVE)
    min_delta: float = arg(0.0, _AT_LEAST_ZERO)
    adaptive: bool = arg(False, BOOLEAN)
    growth: float = arg(0.5, _AT_LEAST_ZERO)
    metric: str | None = arg(None, METRIC)
    resource: str = arg("step", _RESOURCE)


@dataclass(frozen=True)
class ASHASpec(SchedulerSpec):
    name: ClassVar[str] = "asha"
    owner: ClassVar[str] = "ASHA"

    min_resource: float = arg(1.0, POSITIVE)
    max_resource: float = arg(81.0, POSITIVE)
    reduction_factor: float = arg(3.0, _REDUCTION)
    metric: str | None = arg(None, METRIC)
    resource: str = arg("step", _RESOURCE)
    mode: str = arg("stopping", one_of("stopping", "promotion", why="losers stop, or losers pause"))
    budget_aware: bool = arg(False, BOOLEAN)
    check_rungs: bool = arg(True, Rule(
        "True (rungs judge only while the study's data say they predict the end) or False (classic ASHA)",
        lambda v: isinstance(v, bool)))
    min_complete: int = arg(5, _MIN_COMPLETE)
    rho_min: float = arg(0.5, _RHO_MIN)

    def check_args(self) -> None:
        self._above_min(self.min_resource, self.max_resource)


@dataclass(frozen=True)
class HyperbandSpec(SchedulerSpec):
    name: ClassVar[str] = "hyperband"
    owner: ClassVar[str] = "Hyperband"

    min_resource: float = arg(1.0, POSITIVE)
    max_resource: float = arg(81.0, POSITIVE)
    reduction_factor: float = arg(3.0, _REDUCTION)
    seed: int = arg(0, integer())
    metric: str | None = arg(None, METRIC)
    resource: str = arg("step", _RESOURCE)
    synchronous: bool = arg(False, BOOLEAN)
    budget_aware: bool = arg(False, BOOLEAN)

    def check_args(self) -> None:
        self._above_min(self.min_resource, self.max_resource)
        if self.synchronous and self.resource != "step":
            raise ValidationError(f"Hyperband(synchronous=True, resource={self.resource!r}): the synchronous "
                                  "variant needs resource='step' (trials pause at whole steps)")


@dataclass(frozen=True)
class PBTSpec(SchedulerSpec):
    name: ClassVar[str] = "pbt"
    owner: ClassVar[str] = "PBT"

    population_size: int = arg(8, integer(2))
    perturbation_interval: float = arg(4.0, POSITIVE)
    max_resource: float = arg(81.0, POSITIVE)
    quantile: float = arg(0.25, number(above=0, at_most=0.5))
    resample_probability: float = arg(0.25, PROBABILITY)
    factors: tuple[float, float] = arg((0.8, 1.2), _FACTORS)
    metric: str | None = arg(None, METRIC)
    seed: int = arg(0, integer())
    budget_aware: bool = arg(False, BOOLEAN)

    def check_args(self) -> None:
        if self.perturbation_interval >= self.max_resource:
            raise ValidationError(f"PBT(perturbation_interval={self.perturbation_interval:g}): must be below "
                                  f"max_resource ({self.max_resource:g}), or nothing is ever perturbed")


@dataclass(frozen=True)
class AdaptiveASHASpec(SchedulerSpec):
    name: ClassVar[str] = "adaptive"
    owner: ClassVar[str] = "AdaptiveASHA"

    min_resource: float = arg(1.0, POSITIVE)
    max_resource: float = arg(81.0, POSITIVE)
    reduction_factor: float = arg(3.0, _REDUCTION)
    min_complete: int = arg(5, _MIN_COMPLETE)
    rho_min: float = arg(0.5, _RHO_MIN)
    metric: str | None = arg(None, METRIC)
    resource: str = arg("step", _RESOURCE)
    budget_aware: bool = arg(False, BOOLEAN)

    def check_args(self) -> None:
        self._above_min(self.min_resource, self.max_resource)


@dataclass(frozen=True)
class AutoStoppingSpec(SchedulerSpec):
    """The default scheduler: with several objectives and no ``metric`` it has no single ranking
    to judge by, so it stops nothing (it fits any study)."""

    name: ClassVar[str] = "auto"
    owner: ClassVar[str] = "AutoStopping"
    one_objective: ClassVar[bool] = False

    reduction_factor: float = arg(3.0, _REDUCTION)
    min_resource: float | None = arg(None, POSITIVE.or_none("the smallest first step reported"))
    metric: str | None = arg(None, METRIC)
    min_complete: int = arg(5, _MIN_COMPLETE)
    rho_min: float = arg(0.5, _RHO_MIN)


#: Every scheduler spec, by registry name.
SPECS: dict[str, type[SchedulerSpec]] = {s.name: s for s in (
    NoStoppingSpec, PercentileSpec, MedianSpec, ThresholdSpec, PatienceSpec, ASHASpec, HyperbandSpec, PBTSpec,
    AdaptiveASHASpec, AutoStoppingSpec)}
