"""The arguments of every strategy (:mod:`thrifty.strategies`), as validated specs.

Each field is a constructor argument of the strategy of the same registry name, with its default
and rule; the strategy's stored spec is ``{"name": ..., **spec.params()}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.specs.base import Spec, StudyShape, arg
from thrifty.specs.rules import BOOLEAN, POSITIVE, PROBABILITY, Rule, integer, maybe_boolean, number

#: Most grid points :class:`~thrifty.strategies.grid.GridSearch` agrees to enumerate.
MAX_GRID_POINTS = 1_000_000

_REDUCTION = number(above=1)
_STRATEGY = Rule("a strategy name or spec, e.g. 'tpe' or {'name': 'gp', 'n_startup': 8}",
                 lambda v: isinstance(v, str) or (isinstance(v, Mapping) and isinstance(v.get("name"), str)),
                 lambda v: v if isinstance(v, str) else dict(v))
_MULTI = "use strategy='auto', 'tpe', 'gp' or 'nsga2', or a single objective"


@dataclass(frozen=True)
class StrategySpec(Spec):
    """A strategy's arguments."""

    kind: ClassVar[str] = "strategy"
    instead: ClassVar[str] = _MULTI


@dataclass(frozen=True)
class RandomSpec(StrategySpec):
    name: ClassVar[str] = "random"
    owner: ClassVar[str] = "RandomSearch"


@dataclass(frozen=True)
class SobolSpec(StrategySpec):
    name: ClassVar[str] = "sobol"
    owner: ClassVar[str] = "SobolSearch"


@dataclass(frozen=True)
class GridSpec(StrategySpec):
    name: ClassVar[str] = "grid"
    owner: ClassVar[str] = "GridSearch"

    points_per_float: int = arg(5, integer(1))
    shuffle: bool = arg(False, BOOLEAN)

    def size(self, space: Any) -> int:
        """How many points the grid of ``space`` has at most (every parameter active): the product
        of each parameter's values (``points_per_float`` for a float)."""
        from thrifty.space import Categorical, Float, Int

        def count(p: Any) -> int:
            if isinstance(p, Categorical):
                return len(p.choices)
            if isinstance(p, Int):
                return int(p.n_values)
            return self.points_per_float if isinstance(p, Float) else 1

        return math.prod(count(space[n]) for n in space)

    def too_big(self, space: Any) -> str | None:
        """Why the grid of ``space`` is too large to enumerate, or ``None``."""
        size = self.size(space)
        if size <= MAX_GRID_POINTS:
            return None
        return (f"the grid has up to {size:,} points (more than {MAX_GRID_POINTS:,}); lower points_per_float "
                "or use strategy='sobol'")

    def misfit(self, study: StudyShape) -> str | None:
        why = self.too_big(study.space)
        return f"strategy 'grid': {why}" if why else super().misfit(study)


@dataclass(frozen=True)
class GPSpec(StrategySpec):
    name: ClassVar[str] = "gp"
    owner: ClassVar[str] = "GP"

    n_startup: int | None = arg(None, integer(1).or_none())
    cost_aware: bool | None = arg(None, maybe_boolean("on with a dollar budget"))
    n_candidates: int = arg(1024, integer(16))
    max_points: int = arg(300, integer(20))


@dataclass(frozen=True)
class TPESpec(StrategySpec):
    name: ClassVar[str] = "tpe"
    owner: ClassVar[str] = "TPE"

    n_startup: int = arg(10, integer(0))
    n_candidates: int = arg(24, integer(1))
    gamma: float = arg(0.1, number(above=0, at_most=1))
    max_good: int = arg(25, integer(1))
    prior_weight: float = arg(1.0, POSITIVE)
    cost_aware: bool | None = arg(None, maybe_boolean("automatic"))


@dataclass(frozen=True)
class NSGA2Spec(StrategySpec):
    name: ClassVar[str] = "nsga2"
    owner: ClassVar[str] = "NSGA2"

    population_size: int = arg(20, integer(4))
    crossover_prob: float = arg(0.9, PROBABILITY)
    eta_crossover: float = arg(15.0, POSITIVE)
    eta_mutation: float = arg(20.0, POSITIVE)


@dataclass(frozen=True)
class BOHBSpec(StrategySpec):
    """BOHB fits its model on one objective's values at a resource level."""

    name: ClassVar[str] = "bohb"
    owner: ClassVar[str] = "BOHB"
    one_objective: ClassVar[bool] = True

    min_resource: float = arg(1.0, POSITIVE)
    reduction_factor: float = arg(3.0, _REDUCTION)
    min_points: int | None = arg(None, integer(2).or_none("dims + 2"))
    inner: str | dict[str, Any] = arg("tpe", _STRATEGY)
    impute_stopped: bool = arg(True, BOOLEAN)
    random_fraction: float = arg(0.0, PROBABILITY, added=True)


@dataclass(frozen=True)
class MFGPSpec(StrategySpec):
    """MFGP models one objective over (configuration, resource); the resource is one more input,
    the parameter :attr:`RESOURCE` of the augmented space."""

    name: ClassVar[str] = "mfgp"
    owner: ClassVar[str] = "MFGP"
    one_objective: ClassVar[bool] = True
    #: The resource input's name in the augmented space (a space may not use it).
    RESOURCE: ClassVar[str] = "__resource__"

    min_resource: float = arg(1.0, POSITIVE)
    reduction_factor: float = arg(3.0, _REDUCTION)
    n_startup: int | None = arg(None, integer(1).or_none())
    n_candidates: int = arg(1024, integer(16))
    max_points: int = arg(300, integer(20))
    random_fraction: float = arg(0.0, PROBABILITY, added=True)
    cost_premium: bool = arg(True, BOOLEAN, added=True)

    def misfit(self, study: StudyShape) -> str | None:
        if self.RESOURCE in study.space:
            return (f"strategy 'mfgp': the space may not have a parameter named {self.RESOURCE!r} (the resource "
                    "input of its model): rename it")
        return super().misfit(study)


@dataclass(frozen=True)
class EEIPUSpec(StrategySpec):
    """EEIPU models one objective and each pipeline stage's cost
    (:mod:`thrifty.strategies.eeipu`). ``cost_exponent``: ``None`` cools the exponent of the cost
    from 1 to 0 as the dollar budget is spent; a number holds it there (0: cost-blind)."""

    name: ClassVar[str] = "eeipu"
    owner: ClassVar[str] = "EEIPU"
    one_objective: ClassVar[bool] = True

    n_startup: int | None = arg(None, integer(1).or_none("max(5, 2 * dims)"))
    n_candidates: int = arg(512, integer(16))
    completions: int = arg(32, integer(1))
    max_prefixes: int = arg(64, integer(1))
    cost_exponent: float | None = arg(None, number(at_least=0, at_most=1).or_none("cools from 1 to 0"))
    max_points: int = arg(300, integer(20))


@dataclass(frozen=True)
class AutoSpec(StrategySpec):
    name: ClassVar[str] = "auto"
    owner: ClassVar[str] = "Auto"


#: Every strategy spec, by registry name.
SPECS: dict[str, type[StrategySpec]] = {s.name: s for s in (
    RandomSpec, SobolSpec, GridSpec, GPSpec, TPESpec, NSGA2Spec, BOHBSpec, MFGPSpec, EEIPUSpec, AutoSpec)}
