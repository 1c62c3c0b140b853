"""Study budgets: limits on what a study may consume, persisted with the study.

A budget is checked atomically when a trial starts: once a limit is reached, no new trial starts
(``StudyExhausted`` says which limit). Several limits may be set at once; the first reached wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.errors import ValidationError


@dataclass(frozen=True)
class Budget:
    """Limits of a study.

    ``trials``: how many trials may start in the study over its whole life (a trial re-run after
    its worker died counts once). ``usd``: dollars the study may spend (its ledger: the sum of all
    trials' measured costs); no trial starts once it is reached.
    """

    trials: int | None = None
    usd: float | None = None

    def __post_init__(self) -> None:
        if self.trials is not None:
            if isinstance(self.trials, bool) or not isinstance(self.trials, int):
                raise ValidationError(f"Budget(trials={self.trials!r}): expected a whole number of trials")
            if self.trials <= 0:
                raise ValidationError(
                    f"Budget(trials={self.trials}): a budget must allow at least one trial (or leave it unset)"
                )
        if self.usd is not None:
            if isinstance(self.usd, bool) or not isinstance(self.usd, (int, float)):
                raise ValidationError(f"Budget(usd={self.usd!r}): expected a number of dollars")
            if not math.isfinite(self.usd) or self.usd <= 0:
                raise ValidationError(
                    f"Budget(usd={self.usd!r}): a dollar budget must be a finite amount above zero (or leave it unset)"
                )
            object.__setattr__(self, "usd", float(self.usd))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("trials", self.trials), ("usd", self.usd)) if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Budget:
        if data is None:
            return cls()
        if isinstance(data, Budget):
            return data
        if not isinstance(data, Mapping):
            raise ValidationError(f"budget={data!r}: expected th.Budget(...) or a mapping like {{'trials': 100}}")
        unknown = sorted(set(data) - {"trials", "usd"})
        if unknown:
            raise ValidationError(f"budget: unknown limit(s) {', '.join(unknown)}; known: trials, usd")
        return cls(**data)

    def __bool__(self) -> bool:
        return self.trials is not None or self.usd is not None
