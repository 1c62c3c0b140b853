"""Completion criteria: when a study has found enough and further trials are not worth their cost.

A criterion looks at the study's finished trials (in number order) and either lets the study go
on (``None``) or says why it is done. The study checks its criteria before starting each trial;
once one holds, no trial starts (``StudyExhausted`` with reason ``"criterion"``); trials already
running finish. Criteria are stored with the study, so every worker applies the same ones.

Only single-objective studies use them; "better" follows the objective's direction. The best
value after each trial is the running best over the trials :func:`thrifty.ranking.rank` ranks
(COMPLETED, finite value; a trial that broke a constraint is INFEASIBLE, so it never counts).

- :class:`TargetReached`: a completed trial reached ``value`` (>= for max, <= for min).
- :class:`NoImprovement`: over the last ``trials`` finished trials, or over the last ``usd``
  dollars spent, the best improved by less than ``min_improvement`` (relative to ``|best|``, or
  absolute with ``relative=False``). It needs that window to have elapsed.
- :class:`ImprovementNotWorthCost`: the value of the improvement the next trial can be expected
  to bring is below its expected cost. Rule: the expected gain of one more trial is the best's
  improvement over the last ``window`` finished trials divided by ``window`` (the recent rate of
  progress); its worth is that gain times ``usd_per_unit`` (what one unit of the objective is
  worth to you, in dollars); the expected cost is the mean cost of those ``window`` trials. Stop
  when worth < cost. It needs ``window`` finished trials after the first completed one.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from thrifty.errors import ValidationError
from thrifty.ranking import rank
from thrifty.specs.base import Spec, arg
from thrifty.specs.rules import BOOLEAN, POSITIVE, integer, number
from thrifty.trial import Trial


@dataclass(frozen=True)
class Criterion(Spec, abc.ABC):
    """A rule that says when a single-objective study is done. A criterion is its own validated
    spec (:class:`~thrifty.specs.base.Spec`): frozen, its fields the constructor's arguments."""

    kind: ClassVar[str] = "criterion"
    one_objective: ClassVar[bool] = True
    instead: ClassVar[str] = "drop stop_when, or use a single objective"

    @abc.abstractmethod
    def check(self, finished: Sequence[Trial], metric: str, direction: str) -> str | None:
        """Why the study is done, or ``None``. ``finished``: finished trials in number order."""

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}


def running_best(finished: Sequence[Trial], metric: str, direction: str) -> list[float | None]:
    """After each finished trial, the value of the best trial so far by :func:`thrifty.ranking.rank`
    (``None`` while no trial is ranked)."""
    best: Trial | None = None
    out: list[float | None] = []
    for t in finished:
        best = next(iter(rank([t] if best is None else [best, t], {metric: direction})), best)
        out.append(None if best is None else best.metrics[metric])
    return out


@dataclass(frozen=True)
class TargetReached(Criterion):
    """Done once a completed trial reaches ``value``."""

    name: ClassVar[str] = "target"
    owner: ClassVar[str] = "TargetReached"

    value: float = arg(rule=number())

    def check(self, finished: Sequence[Trial], metric: str, direction: str) -> str | None:
        best = running_best(finished, metric, direction)
        b = best[-1] if best else None
        if b is not None and (b >= self.value if direction == "max" else b <= self.value):
            return f"target reached: {metric} = {b:.6g} ({'>=' if direction == 'max' else '<='} {self.value:g})"
        return None


@dataclass(frozen=True)
class NoImprovement(Criterion):
    """Done when the best improved by less than ``min_improvement`` over a window of the last
    ``trials`` finished trials or the last ``usd`` dollars (give exactly one)."""

    name: ClassVar[str] = "no_improvement"
    owner: ClassVar[str] = "NoImprovement"

    min_improvement: float = arg(0.01, number(at_least=0))
    trials: int | None = arg(None, integer(1).or_none())
    usd: float | None = arg(None, POSITIVE.or_none())
    relative: bool = arg(True, BOOLEAN)

    def check_args(self) -> None:
        if (self.trials is None) == (self.usd is None):
            raise ValidationError(f"NoImprovement(trials={self.trials!r}, usd={self.usd!r}): give exactly one "
                                  "window, trials=N or usd=X")

    def check(self, finished: Sequence[Trial], metric: str, direction: str) -> str | None:
        best = running_best(finished, metric, direction)
        if not best or best[-1] is None:
            return None
        if self.trials is not None:
            if len(finished) <= self.trials:
                return None
            before = best[-1 - self.trials]
            window = f"the last {self.trials} trials"
        else:
            assert self.usd is not None
            spent = 0.0
            i = len(finished)
            while i > 0 and spent < self.usd:
                i -= 1
                spent += finished[i].cost_usd
            if spent < self.usd or i == 0:
                return None
            before = best[i - 1]
            window = f"the last ${spent:,.2f}"
        if before is None:
            return None
        gain = (best[-1] - before) if direction == "max" else (before - best[-1])
        scale = abs(before) if self.relative and before != 0 else 1.0
        if gain / scale < self.min_improvement:
            kind = " (relative)" if self.relative and before != 0 else ""
            return (f"no improvement: the best {metric} improved by {gain / scale:.3g}{kind} over {window}, "
                    f"less than {self.min_improvement:g}")
        return None


@dataclass(frozen=True)
class ImprovementNotWorthCost(Criterion):
    """Done when the expected gain of one more trial is worth less than its expected cost (see
    the module docstring for the rule)."""

    name: ClassVar[str] = "not_worth_cost"
    owner: ClassVar[str] = "ImprovementNotWorthCost"

    usd_per_unit: float = arg(rule=POSITIVE)
    window: int = arg(10, integer(2))

    def check(self, finished: Sequence[Trial], metric: str, direction: str) -> str | None:
        best = running_best(finished, metric, direction)
        first = next((i for i, b in enumerate(best) if b is not None), None)
        if first is None or len(finished) - 1 - first < self.window:
            return None
        now, before = best[-1], best[-1 - self.window]
        assert now is not None and before is not None
        gain = abs(now - before) / self.window
        worth = gain * self.usd_per_unit
        cost = math.fsum(t.cost_usd for t in finished[-self.window:]) / self.window
        if worth < cost:
            return (f"not worth the cost: the next trial is expected to improve {metric} by {gain:.3g}, worth "
                    f"${worth:,.4f}, less than its expected cost ${cost:,.4f}")
        return None

