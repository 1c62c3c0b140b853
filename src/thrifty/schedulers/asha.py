"""Asynchronous successive halving (ASHA; Li et al., MLSys 2020): stopping and promotion variants.

Rungs sit at ``min_resource * reduction_factor**k`` below ``max_resource``. When a trial's report
first reaches a rung, its value there (the first report at or beyond the rung) is ranked among the
values at that rung of every trial of the study that reached it (itself included): it continues
only if it is in the top ``1/reduction_factor`` (at least the best one always continues). Each
trial is judged once per rung, when it gets there, from the history at that moment, so any worker
reaches the same decision. With ``resource="cost_usd"`` the rungs are in dollars the trial has
spent instead of epochs.

**Promotion variant** (``mode="promotion"``): a trial that reaches a rung outside the top
``1/reduction_factor`` is not stopped but PAUSED (with its checkpoint: it saves one before
reporting the first whole step at or after each rung, see ``should_checkpoint``). When a worker
asks for work, the paused trials are checked from the highest rung down: one that is now in the
top ``1/reduction_factor`` of its rung (the rung has grown since it paused) is resumed from its
checkpoint before any new trial starts. This is the paper's ``get_job`` with one simplification: a
trial already in the top when it reaches a rung goes straight on instead of pausing and being
promoted by the next free worker. Paused trials nobody promotes simply stay PAUSED (a later run of
the study may still promote them).

**Measured rungs** (``check_rungs=True``, the default). Fixed schedules assume a trial's rank at a
rung predicts its rank at the end; where it does not, ASHA stops the eventual winners and is no
better than running everything to the end (on the LCBench surrogate the rank after one epoch has a
Spearman correlation of -0.6 to 0.4 with the rank after 52: ``benchmarks/multifidelity.py``). So a
rung stops (or pauses) trials only while the study's own data let it:

1. until ``min_complete`` trials (default 5) have completed, the lowest rung stops nobody (the
   rank after the least training is the least reliable one) and the other rungs act as above;
2. from then on, a rung stops nobody while Spearman's rank correlation between the value at that
   rung and the final value, over the completed trials that reached it, is below ``rho_min``
   (default 0.5); every other rung keeps the top ``1/reduction_factor`` as above.

Everything comes from the history, so every worker reaches the same decision. ``check_rungs=False``
is the classic ASHA of the paper (every rung always judges). A rung that stopped judging releases
its paused trials in the promotion variant (they are promotable).

``budget_aware=True`` adds the rule of :mod:`thrifty.schedulers.budget_aware`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence

from thrifty.schedulers.curves import curve, first_at_or_after, objective_of
from thrifty.schedulers._index import CurveIndex, Indexed
from thrifty.schedulers.base import AskPlan, Decision, Scheduler
from thrifty.specs.schedulers import ASHASpec
from thrifty.trial import Trial, TrialState


def rungs(min_resource: float, max_resource: float, reduction_factor: float) -> list[float]:
    """Rung levels strictly below ``max_resource`` (the top is where trials complete)."""
    out, r = [], min_resource
    while r < max_resource * (1 - 1e-9):
        out.append(r)
        r *= reduction_factor
    return out


def rung_values(
    history: Sequence[Trial], metric: str, sign: float, resource: str, level: float, members: set[int] | None = None,
) -> dict[int, float]:
    """Trial number -> signed value at rung ``level`` (its first report at or beyond it; NaN and
    infinities count as the worst), for the trials that reached it."""
    out = {}
    for t in history:
        if members is not None and t.number not in members:
            continue
        v = first_at_or_after(curve(t, metric, sign, resource), level)
        if v is not None:
            out[t.number] = v if math.isfinite(v) else -math.inf
    return out


def promotable(
    history: Sequence[Trial], metric: str, sign: float, resource: str, levels: Sequence[float],
    reduction_factor: float, members: set[int] | None = None, open_levels: Sequence[float] = (),
) -> list[int]:
    """PAUSED trials now in the top ``1/reduction_factor`` of the rung they paused at, from the
    highest rung down and best first (ASHA's promotion order). At ``open_levels`` (rungs that no
    longer judge) every paused trial is promotable."""
    paused = {t.number: t for t in history if t.state is TrialState.PAUSED
              and (members is None or t.number in members)}
    if not paused:
        return []
    out: list[int] = []
    for k in range(len(levels) - 1, -1, -1):
        values = rung_values(history, metric, sign, resource, levels[k], members)
        keep = len(values) if levels[k] in open_levels else int(len(values) // reduction_factor)
        top = sorted(values, key=lambda n: -values[n])[:keep]
        upper = levels[k + 1] if k + 1 < len(levels) else math.inf
        for n in top:
            t = paused.get(n)
            if t is None or n in out:
                continue
            pts = curve(t, metric, sign, resource)
            if pts and pts[-1][0] < upper and math.isfinite(values[n]):
                out.append(n)
    return out


def rung_decision(
    number: int, pts: Sequence[tuple[float, float]], index: CurveIndex, levels: Sequence[float],
    reduction_factor: float, loser: Decision = Decision.STOP,
    open_levels: Callable[[], Sequence[float]] = tuple, group: Hashable = None,
    member: Callable[[int], bool] | None = None,
) -> Decision:
    """The ASHA stopping decision for trial ``number`` at its latest report (its curve ``pts``),
    against the rung tables of ``index`` (see the module docstring). ``member`` restricts the
    comparison to those trial numbers (a Hyperband bracket, one table per ``group``); rungs in
    ``open_levels()`` let every trial through (NaN or infinite values still stop)."""
    if not pts:
        return Decision.CONTINUE
    now = pts[-1][0]
    before = pts[-2][0] if len(pts) > 1 else -math.inf
    opened: Sequence[float] | None = None
    for level in [r for r in levels if before < r <= now]:
        mine = first_at_or_after(pts, level)
        assert mine is not None
        if not math.isfinite(mine):
            return Decision.STOP
        if opened is None:
            opened = open_levels()
        if level in opened:
            continue
        # The trials at the rung other than this one, and this one with its value now.
        table = index.rung(level, group, member)
        own = table.values.get(number)
        n = len(table.values) + (1 if own is None else 0)
        rank = table.better(mine) - (1 if own is not None and own > mine else 0)  # strictly better
        if rank >= max(1, int(n // reduction_factor)):
            return loser
    return Decision.CONTINUE


def open_levels(index: CurveIndex, levels: Sequence[float], min_complete: int, rho_min: float) -> list[float]:
    """The rungs that let every trial through now, by the measured rank correlations (see
    "Measured rungs" in the module docstring)."""
    rhos = index.correlations(levels, min_complete)
    if all(rho is None for rho in rhos.values()):  # still calibrating
        return list(levels[:1])
    return [level for level in levels if rhos[level] is None or rhos[level] < rho_min]


def at_rung(step: float, levels: Sequence[float]) -> bool:
    """Whether ``step`` is the first whole step at or after one of the rung ``levels``."""
    return any(abs(step - level) < 1e-9 or step == math.ceil(level - 1e-9) for level in levels)


class ASHA(Indexed, Scheduler):
    """Asynchronous successive halving, stopping or promotion variant (see the module docstring)."""

    name = "asha"

    def __init__(
        self, min_resource: float = 1.0, max_resource: float = 81.0, reduction_factor: float = 3.0,
        metric: str | None = None, resource: str = "step", mode: str = "stopping", budget_aware: bool = False,
        check_rungs: bool = True, min_complete: int = 5, rho_min: float = 0.5,
    ) -> None:
        self.spec = spec = ASHASpec(min_resource, max_resource, reduction_factor, metric, resource, mode,
                                    budget_aware, check_rungs, min_complete, rho_min)
        self.min_resource, self.max_resource = spec.min_resource, spec.max_resource
        self.reduction_factor = spec.reduction_factor
        self.metric = spec.metric
        self.resource = spec.resource
        self.mode = spec.mode
        self.budget_aware = spec.budget_aware
        self.check_rungs = spec.check_rungs
        self.min_complete, self.rho_min = spec.min_complete, spec.rho_min

    @property
    def plans_asks(self) -> bool:  # type: ignore[override]
        return self.mode == "promotion"

    @property
    def rungs(self) -> list[float]:
        return rungs(self.min_resource, self.max_resource, self.reduction_factor)

    def open_rungs(self, history: Sequence[Trial], objectives: Mapping[str, str]) -> list[float]:
        """The rungs that let every trial through now (see "Measured rungs" in the module docstring)."""
        if not self.check_rungs:
            return []
        metric, sign = objective_of(objectives, self.metric, "ASHA")
        with self.indexed(history, metric, sign, self.resource) as index:
            return open_levels(index, self.rungs, self.min_complete, self.rho_min)

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        metric, sign = objective_of(objectives, self.metric, "ASHA")
        loser = Decision.PAUSE if self.mode == "promotion" else Decision.STOP
        levels = self.rungs
        pts = curve(trial, metric, sign, self.resource)
        before = pts[-2][0] if len(pts) > 1 else -math.inf
        if not pts or not any(before < r <= pts[-1][0] for r in levels):
            return Decision.CONTINUE  # no rung crossed (as rung_decision would say): the history is not read
        with self.indexed(history, metric, sign, self.resource) as index:
            def opened() -> list[float]:
                return open_levels(index, levels, self.min_complete, self.rho_min) if self.check_rungs else []

            return rung_decision(trial.number, pts, index, levels, self.reduction_factor, loser, opened)

    def plan(self, history: Sequence[Trial], objectives: Mapping[str, str]) -> AskPlan:
        if self.mode != "promotion":
            return AskPlan()
        metric, sign = objective_of(objectives, self.metric, "ASHA")
        return AskPlan(resume=tuple(promotable(history, metric, sign, self.resource, self.rungs,
                                               self.reduction_factor, open_levels=self.open_rungs(history, objectives))))

    def checkpoint_at(self, step: float) -> bool:
        if self.mode != "promotion":
            return False
        return self.resource != "step" or at_rung(step, self.rungs)
