"""The validated argument record every algorithm is built from, and the study shape it must fit.

A :class:`Spec` is a frozen dataclass: one field per constructor argument, in the constructor's
order, each with the :class:`~thrifty.specs.rules.Rule` it must satisfy (declared with
:func:`arg`). Creating one checks every field, then the rules between fields (:meth:`Spec.check_args`),
so an algorithm holding a spec holds valid arguments. :meth:`Spec.params` is what the study stores.

What an algorithm can serve is declared on its spec and checked by :meth:`Spec.misfit` against a
:class:`StudyShape` (objectives, space, dollar budget) before ``Study.create`` writes anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from thrifty.specs.rules import Rule

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.space import Space


def arg(default: Any = dataclasses.MISSING, rule: Rule | None = None, *, added: bool = False) -> Any:
    """A spec field with its default and rule (no default: the argument is required). ``added``:
    an argument added after specs were first stored; :meth:`Spec.params` leaves it out while it
    holds its default, so specs stored before it existed store back unchanged."""
    return dataclasses.field(default=default, metadata={"rule": rule, "added": added})


@dataclasses.dataclass(frozen=True)
class StudyShape:
    """What a study looks like to an algorithm: its objectives (metric -> ``"min"``/``"max"``),
    its space and its dollar budget (``None``: none)."""

    objectives: Mapping[str, str]
    space: Space
    budget_usd: float | None = None

    @property
    def objective_list(self) -> str:
        """``"2 (acc, cost_usd)"``: how many objectives and which."""
        return f"{len(self.objectives)} ({', '.join(self.objectives)})"


@dataclasses.dataclass(frozen=True)
class Spec:
    """Validated, frozen arguments of one algorithm (see the module docstring)."""

    #: ``"strategy"``, ``"scheduler"`` or ``"criterion"``.
    kind: ClassVar[str]
    #: The registry name (``strategy="grid"``).
    name: ClassVar[str]
    #: The class named in messages, e.g. ``"GridSearch"`` in ``GridSearch(points_per_float=0): ...``.
    owner: ClassVar[str]
    #: Whether the algorithm ranks trials by one objective (a spec with a ``metric`` field that is
    #: set ranks by that metric instead, whatever the number of objectives).
    one_objective: ClassVar[bool] = False
    #: What to use instead when there are several objectives (said in the refusal).
    instead: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            rule = f.metadata.get("rule")
            if rule is not None:
                object.__setattr__(self, f.name, rule(self.owner, f.name, getattr(self, f.name)))
        self.check_args()

    def check_args(self) -> None:
        """Rules between arguments (each field is already valid); raise ``ValidationError``."""

    def params(self) -> dict[str, Any]:
        """The arguments as stored (plain JSON data: tuples become lists), in constructor order;
        an ``added`` argument only when it differs from its default."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.metadata.get("added") and v == f.default:
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def misfit(self, study: StudyShape) -> str | None:
        """Why this algorithm cannot serve ``study`` (one line that says what fits), or ``None``.

        Declared rules: a ``metric`` must be one of the objectives; a ``one_objective`` algorithm
        without a ``metric`` needs a single objective; ``budget_aware=True`` needs a dollar budget.
        Subclasses add rules about the space."""
        label = f"{'stop_when' if self.kind == 'criterion' else self.kind} {self.name!r}"
        metric = getattr(self, "metric", None)
        names = ", ".join(study.objectives)
        if metric is not None and metric not in study.objectives:
            return (f"{label} watches metric {metric!r}, which is not an objective of this study ({names}): "
                    f"give metric= one of {names}, or None")
        if self.one_objective and metric is None and len(study.objectives) > 1:
            return f"{label} judges one objective; this study has {study.objective_list}: {self.instead}"
        if getattr(self, "budget_aware", False) and study.budget_usd is None:
            return (f"{label} has budget_aware=True, which acts only under a dollar budget, and this study has "
                    "none: give budget={'usd': ...} or budget_aware=False")
        return None
