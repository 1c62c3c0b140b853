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
  reporting intervals in flight at that moment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.errors import ValidationError

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


@dataclass(frozen=True)
class BudgetStop:
    """The circuit breaker's record: ``reason`` ("budget: ...", naming the limit) and ``at``
    (seconds since the epoch)."""

    reason: str
    at: float


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

    def exhausted(self, usage: Usage, *, running_limits_only: bool = False) -> tuple[str, str] | None:
        """The first limit that ``usage`` has reached, as ``(limit, message)``, else ``None``.

        ``running_limits_only`` leaves out ``trials`` (for the circuit breaker, which stops
        running trials only for dollars, GPU-hours and wall time).
        """
        if not running_limits_only and self.trials is not None and usage.trials >= self.trials:
            return "trials", f"the budget of {self.trials} trials is used up ({usage.trials} started)"
        if self.usd is not None and usage.usd >= self.usd:
            return "usd", f"the budget of ${self.usd:,.2f} is used up (${usage.usd:,.4f} spent)"
        if self.gpu_hours is not None and usage.gpu_hours >= self.gpu_hours:
            return "gpu_hours", f"the budget of {self.gpu_hours:g} GPU-hours is used up ({usage.gpu_hours:.3f} used)"
        if self.wall_s is not None and usage.wall_s >= self.wall_s:
            return "wall_s", f"the budget of {self.wall_s:g} s of wall time is used up ({usage.wall_s:.1f} s active)"
        return None

    def remaining_usd(self, usage: Usage) -> float | None:
        """Dollars left, or ``None`` without a dollar limit."""
        return None if self.usd is None else max(self.usd - usage.usd, 0.0)
