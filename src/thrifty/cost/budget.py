"""Study budgets: limits on what a study may consume, persisted with the study.

Limits: ``trials`` (trials started over the study's life; a trial re-run after its worker died
counts once), ``usd`` (dollars in the study's ledger), ``gpu_hours`` (GPU-hours held by its trials)
and ``wall_s`` (seconds of wall-clock time during which at least one trial was running, so a study
paused for a week and resumed is not charged the week). Several may be set; the first reached wins.

Two checks use them:

- **Before a trial starts** (inside the atomic ``ask``): no trial starts once any limit is reached;
  with a dollar limit, no trial starts whose forecast cost exceeds what is left (the soft check,
  made by the study from its cost model).
- **While trials run** (``hard=True``, the default): when a report or a finished trial brings the
  dollar, GPU-hour or wall-time ledger to its limit, the same transaction asks every running trial
  to stop (the circuit breaker). Their next report is recorded, then the trial ends as STOPPED
  with reason ``budget``. So the recorded spend exceeds the limit by at most the cost of the
  reporting intervals in flight at that moment. A pipeline stage is one such interval (it is
  charged when it ends), so pipeline studies also bound it before it starts: no stage starts that
  the dollars left cannot pay at what it cost in recent runs (:mod:`thrifty.pipelines.guard`).

Both checks are one function, :meth:`BudgetGuard.check`: given the budget, the usage and the
moment (a new trial starting, a paused one resuming, a measurement being recorded) it says which
limit, if any, is exhausted, as a typed :class:`BudgetStop`. Storage calls it inside the
transaction that starts, resumes or records, so the answer is atomic with the write.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.errors import ValidationError
from thrifty.trial import StopKind, StopReason

_LIMITS = ("trials", "usd", "gpu_hours", "wall_s")


@dataclass(frozen=True)
class Usage:
    """What a study has consumed: trials started, dollars, GPU-hours, active wall seconds."""

    trials: int = 0
    usd: float = 0.0
    gpu_hours: float = 0.0
    wall_s: float = 0.0


_WHAT = {"usd": ("a number of dollars", "a dollar budget"), "gpu_hours": ("a number of GPU-hours", "a GPU-hour budget"),
         "wall_s": ("a number of seconds", "a wall-time budget")}


class Moment(str, enum.Enum):
    """When the budget is checked: a new trial is about to START (every limit), a PAUSED trial is
    about to RESUME (every limit but ``trials``: it is not a new trial), or a MEASUREMENT (a
    report or a finished trial's last interval) has just been added to the ledger (the circuit
    breaker: dollars, GPU-hours and wall time, and only for a hard budget)."""

    START = "start"
    RESUME = "resume"
    MEASUREMENT = "measurement"


@dataclass(frozen=True)
class BudgetStop:
    """A budget limit that is used up: ``limit`` (``"trials"``, ``"usd"``, ``"gpu_hours"`` or
    ``"wall_s"``), ``message`` (in words, with the numbers) and, for the circuit breaker's record,
    ``at`` (when it tripped, seconds since the epoch; ``None`` for a check's answer)."""

    limit: str
    message: str
    at: float | None = None

    def __post_init__(self) -> None:
        if self.limit not in _LIMITS:
            raise ValidationError(f"BudgetStop(limit={self.limit!r}): expected one of {', '.join(_LIMITS)}")

    @property
    def kind(self) -> StopKind:
        """Always :attr:`StopKind.BUDGET`."""
        return StopKind.BUDGET

    @property
    def reason(self) -> str:
        """The words a stopped trial records: ``"budget: <message>"``."""
        return f"budget: {self.message}"

    def stop_reason(self) -> StopReason:
        """The typed reason of the trials this stop ends."""
        return StopReason(StopKind.BUDGET, self.reason, self.limit)


def _positive(name: str, value: Any) -> float | None:
    if value is None:
        return None
    unit, what = _WHAT[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"Budget({name}={value!r}): expected {unit}")
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(
            f"Budget({name}={value!r}): {what} must be a finite amount above zero (or leave it unset)"
        )
    return float(value)


@dataclass(frozen=True)
class Budget:
    """Limits of a study (see the module docstring). ``hard``: stop running trials when the
    dollar, GPU-hour or wall-time limit is reached (default True); if False, a limit only keeps
    new trials from starting."""

    trials: int | None = None
    usd: float | None = None
    gpu_hours: float | None = None
    wall_s: float | None = None
    hard: bool = True

    def __post_init__(self) -> None:
        if self.trials is not None and (isinstance(self.trials, bool) or not isinstance(self.trials, int)):
            raise ValidationError(f"Budget(trials={self.trials!r}): expected a whole number of trials")
        if self.trials is not None and self.trials <= 0:
            raise ValidationError(
                f"Budget(trials={self.trials}): a budget must allow at least one trial (or leave it unset)"
            )
        for name in ("usd", "gpu_hours", "wall_s"):
            object.__setattr__(self, name, _positive(name, getattr(self, name)))
        if not isinstance(self.hard, bool):
            raise ValidationError(f"Budget(hard={self.hard!r}): expected True or False")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in _LIMITS if getattr(self, k) is not None}
        if not self.hard:
            d["hard"] = False
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Budget:
        if data is None:
            return cls()
        if isinstance(data, Budget):
            return data
        if not isinstance(data, Mapping):
            raise ValidationError(f"budget={data!r}: expected th.Budget(...) or a mapping like {{'trials': 100}}")
        unknown = sorted(set(data) - set(_LIMITS) - {"hard"})
        if unknown:
            raise ValidationError(f"budget: unknown limit(s) {', '.join(unknown)}; known: {', '.join(_LIMITS)}, hard")
        return cls(**data)

    def __bool__(self) -> bool:
        return any(getattr(self, k) is not None for k in _LIMITS)

    def remaining_usd(self, usage: Usage) -> float | None:
        """Dollars left, or ``None`` without a dollar limit."""
        return None if self.usd is None else max(self.usd - usage.usd, 0.0)


#: The limits each moment checks (see :class:`Moment`); in this order, the first reached wins.
_CHECKED = {
    Moment.START: _LIMITS,
    Moment.RESUME: ("usd", "gpu_hours", "wall_s"),
    Moment.MEASUREMENT: ("usd", "gpu_hours", "wall_s"),
}


@dataclass(frozen=True)
class BudgetGuard:
    """Decides, for one :class:`Budget`, which limit (if any) stops the study at a given moment.

    The only place that compares usage with limits: the storage (inside the transaction that
    starts or resumes a trial or records a measurement), ``optimize``'s account of why it ended and
    the cost report all ask it. It holds nothing but the budget, so any storage can call it.
    """

    budget: Budget

    def check(self, usage: Usage, moment: Moment) -> BudgetStop | None:
        """The first limit that ``usage`` has reached at ``moment``, or ``None``.

        START checks every limit; RESUME every limit but ``trials``; MEASUREMENT (the circuit
        breaker) dollars, GPU-hours and wall time, and only if the budget is hard.
        """
        b = self.budget
        if moment is Moment.MEASUREMENT and not b.hard:
            return None
        for limit in _CHECKED[moment]:
            stop = _reached(b, usage, limit)
            if stop is not None:
                return stop
        return None


def _reached(b: Budget, usage: Usage, limit: str) -> BudgetStop | None:
    """``limit``'s stop if it is set and ``usage`` has reached it."""
    if limit == "trials" and b.trials is not None and usage.trials >= b.trials:
        return BudgetStop("trials", f"the budget of {b.trials} trials is used up ({usage.trials} started)")
    if limit == "usd" and b.usd is not None and usage.usd >= b.usd:
        return BudgetStop("usd", f"the budget of ${b.usd:,.2f} is used up (${usage.usd:,.4f} spent)")
    if limit == "gpu_hours" and b.gpu_hours is not None and usage.gpu_hours >= b.gpu_hours:
        return BudgetStop("gpu_hours",
                          f"the budget of {b.gpu_hours:g} GPU-hours is used up ({usage.gpu_hours:.3f} used)")
    if limit == "wall_s" and b.wall_s is not None and usage.wall_s >= b.wall_s:
        return BudgetStop("wall_s",
                          f"the budget of {b.wall_s:g} s of wall time is used up ({usage.wall_s:.1f} s active)")
    return None
