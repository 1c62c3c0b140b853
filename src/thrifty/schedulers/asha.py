"""Asynchronous successive halving (ASHA; Li et al., MLSys 2020), stopping variant.

Rungs sit at ``min_resource * reduction_factor**k`` below ``max_resource``. When a trial's report
first reaches a rung, its value there (the first report at or beyond the rung) is ranked among the
values at that rung of every trial of the study that reached it (itself included): it continues
only if it is in the top ``1/reduction_factor`` (at least the best one always continues). Each
trial is judged once per rung, when it gets there, from the history at that moment, so any worker
reaches the same decision. With ``resource="cost_usd"`` the rungs are in dollars the trial has
spent instead of epochs.

The promotion variant (trials pause at a rung and the best paused one resumes) needs checkpoints
and a runner that can pause trials; it is not implemented here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from thrifty.schedulers._curves import check_resource_name, curve, first_at_or_after, objective_of
from thrifty.schedulers.base import Decision, Scheduler
from thrifty.trial import Trial


def _positive(owner: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}({name}={value!r}): expected a number > 0")
    return float(value)


def rungs(min_resource: float, max_resource: float, reduction_factor: float) -> list[float]:
    """Rung levels strictly below ``max_resource`` (the top is where trials complete)."""
    out, r = [], min_resource
    while r < max_resource * (1 - 1e-9):
        out.append(r)
        r *= reduction_factor
    return out


def rung_decision(
    trial: Trial, history: Sequence[Trial], metric: str, sign: float, resource: str, levels: Sequence[float],
    reduction_factor: float, members: set[int] | None = None,
) -> Decision:
    """The ASHA stopping decision for ``trial`` at its latest report (see the module docstring).
    ``members`` restricts the comparison to those trial numbers (a Hyperband bracket)."""
    pts = curve(trial, metric, sign, resource)
    if not pts:
        return Decision.CONTINUE
    now = pts[-1][0]
    before = pts[-2][0] if len(pts) > 1 else -math.inf
    crossed = [r for r in levels if before < r <= now]
    if not crossed:
        return Decision.CONTINUE
    for level in crossed:
        mine = first_at_or_after(pts, level)
        assert mine is not None
        if not math.isfinite(mine):
            return Decision.STOP
        values = [mine]
        for t in history:
            if t.number == trial.number or (members is not None and t.number not in members):
                continue
            v = first_at_or_after(curve(t, metric, sign, resource), level)
            if v is not None:
                values.append(v if math.isfinite(v) else -math.inf)
        keep = max(1, int(len(values) // reduction_factor))
        rank = sum(1 for v in values if v > mine)  # trials strictly better than this one
        if rank >= keep:
            return Decision.STOP
    return Decision.CONTINUE


class ASHA(Scheduler):
    """Asynchronous successive halving, stopping variant (see the module docstring)."""

    name = "asha"

    def __init__(
        self, min_resource: float = 1.0, max_resource: float = 81.0, reduction_factor: float = 3.0,
        metric: str | None = None, resource: str = "step",
    ) -> None:
        self.min_resource = _positive("ASHA", "min_resource", min_resource)
        self.max_resource = _positive("ASHA", "max_resource", max_resource)
        if self.max_resource <= self.min_resource:
            raise ValueError(f"ASHA(min_resource={min_resource}, max_resource={max_resource}): max must exceed min")
        self.reduction_factor = _positive("ASHA", "reduction_factor", reduction_factor)
        if self.reduction_factor <= 1:
            raise ValueError(f"ASHA(reduction_factor={reduction_factor!r}): expected a number > 1")
        self.metric = metric
        self.resource = check_resource_name(resource, "ASHA")

    @property
    def rungs(self) -> list[float]:
        return rungs(self.min_resource, self.max_resource, self.reduction_factor)

    def params(self) -> dict[str, Any]:
        return {"min_resource": self.min_resource, "max_resource": self.max_resource,
                "reduction_factor": self.reduction_factor, "metric": self.metric, "resource": self.resource}

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        metric, sign = objective_of(objectives, self.metric, "ASHA")
        return rung_decision(trial, history, metric, sign, self.resource, self.rungs, self.reduction_factor)
