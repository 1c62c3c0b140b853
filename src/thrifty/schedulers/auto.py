"""``scheduler="auto"`` (the default): stop early only where the study's own data show it pays.

Nothing about the trials has to be declared: no maximum resource, no rungs. The rule, from the
history at each report (so every worker reaches the same decision), is thrifty's ASHA with
measured rungs (:mod:`thrifty.schedulers.asha`) with the rungs found instead of declared:

1. rungs sit at ``min_resource * reduction_factor**k`` (``min_resource`` default: the smallest
   first step any trial reported, usually 1), but only below the largest step any trial of the
   study has reported: a rung judges only once some trial has gone past it, so no trial is ever
   judged at what may be its last step;
2. until ``min_complete`` trials (default 5) have completed, the lowest rung stops nobody (the
   rank after the least training is the least reliable) and the others keep the top
   ``1/reduction_factor`` of the trials that reached them (ASHA: Li et al., MLSys 2020);
3. from then on a rung judges only while Spearman's rank correlation between a trial's value
   there and its final value, over the completed trials that reached it, is at least ``rho_min``
   (default 0.5); the other rungs stop nobody;
4. **no unproven trial outspends the rest of the study**: a trial whose measured dollars exceed
   both everything the other trials have spent and ``OUTSPEND_TYPICAL`` (3) times the median
   dollars of a completed trial stops, unless it has *proven* itself: at its latest step it is at
   least as good as every other trial that reached that step, and at least ``PROOF_PEERS`` (2)
   did. With or without a budget. Why: before any rung can judge, a configuration costing 30
   typical trainings (the second trial of a study, say) ran to its end on a single comparison and
   took two thirds of a 50-unit LCBench run; a budget's own rule (:mod:`thrifty.cost.spend`) only
   exists when a budget is given. Trials without dollars (no cost reported nor metered) are never
   stopped by this rule.

Once a trial has completed, this decides exactly as ``ASHA(min_resource, max_resource=<the full
resource>, reduction_factor)`` with its default measured rungs. On the LCBench surrogate a rung
one epoch in has a rank correlation of -0.6 to 0.4 with the end, and a classic ASHA stops the
eventual winners there: measured rungs turn that loss into a gain (``benchmarks/RESULTS.md``).
Trials that report no steps are never stopped, nor are the trials of a study with several
objectives unless ``metric=`` names the one to judge by (there is no single ranking). Pass
``scheduler="none"`` to let every trial run to its end, or an ``ASHA``/``Hyperband`` for a declared
schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from thrifty.schedulers.curves import curve, objective_of
from thrifty.schedulers._index import CurveIndex, Indexed
from thrifty.schedulers.asha import ASHA, open_levels, rung_decision, rungs
from thrifty.schedulers.base import BudgetSnapshot, Decision, Scheduler, Verdict
from thrifty.cost.spend import PROOF_PEERS
from thrifty.specs.schedulers import AutoStoppingSpec
from thrifty.trial import Trial


#: Rule 4: an unproven trial may spend this many completed trials' median dollars in any case.
OUTSPEND_TYPICAL = 3.0


class AutoStopping(Indexed, Scheduler):
    """ASHA with measured rungs found from the history instead of declared (module doc)."""

    name = "auto"

    def __init__(self, reduction_factor: float = 3.0, min_resource: float | None = None, metric: str | None = None,
                 min_complete: int = 5, rho_min: float = 0.5) -> None:
        self.spec = spec = AutoStoppingSpec(reduction_factor, min_resource, metric, min_complete, rho_min)
        self.reduction_factor = spec.reduction_factor
        self.min_resource = spec.min_resource
        self.metric = spec.metric
        self.min_complete, self.rho_min = spec.min_complete, spec.rho_min

    def schedule(self, history: Sequence[Trial], objectives: Mapping[str, str]) -> ASHA | None:
        """The ASHA the history calls for now (rungs below the furthest step reported), or None
        while there is no rung yet (or no single objective to judge by)."""
        if self.metric is None and len(objectives) > 1:
            return None
        metric, sign = objective_of(objectives, self.metric, "AutoStopping")
        with self.indexed(history, metric, sign, "step") as index:
            span = self._span(index)
        if span is None:
            return None
        return ASHA(min_resource=span[0], max_resource=span[1], reduction_factor=self.reduction_factor, metric=metric,
                    check_rungs=True, min_complete=self.min_complete, rho_min=self.rho_min)

    def _span(self, index: CurveIndex) -> tuple[float, float] | None:
        """(lowest rung, furthest step reported), or None while there is no rung yet."""
        if index.first_min is None:
            return None
        low = self.min_resource if self.min_resource is not None else max(index.first_min, 1e-12)
        furthest = index.last_max()
        return None if furthest <= low else (low, furthest)

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        return self.verdict(trial, history, objectives, None).decision

    def verdict(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str],
                budget: BudgetSnapshot | None) -> Verdict:
        """The decision of rules 1-3 (the rungs) and, when they let the trial go on, rule 4 (with
        its reason as the note)."""
        if self.metric is None and len(objectives) > 1:
            return Verdict(Decision.CONTINUE)  # several objectives and no metric: no single ranking
        metric, sign = objective_of(objectives, self.metric, "AutoStopping")
        pts = curve(trial, metric, sign)
        if not pts:
            return Verdict(Decision.CONTINUE)
        with self.indexed(history, metric, sign, "step") as index:
            span = self._span(index)
            if span is None:
                return Verdict(Decision.CONTINUE)
            levels = rungs(span[0], span[1], self.reduction_factor)

            def opened() -> list[float]:
                return open_levels(index, levels, self.min_complete, self.rho_min)

            decision = rung_decision(trial.number, pts, index, levels, self.reduction_factor, open_levels=opened)
            if decision is Decision.CONTINUE:
                why = outspends(trial, pts, index)
                if why is not None:
                    return Verdict(Decision.STOP, why)
            return Verdict(decision)


def outspends(trial: Trial, pts: Sequence[tuple[float, float]], index: CurveIndex) -> str | None:
    """Rule 4 of the module doc for ``trial`` (its signed curve ``pts``; ``index`` follows the
    study's history): why it has spent more than the rest of the study and ``OUTSPEND_TYPICAL``
    completed trials' median without having proven itself, or ``None`` if it has not."""
    own = math.fsum(m.cost_usd for m in trial.measurements)
    if own <= 0.0:
        return None
    entry = index.entries.get(trial.number)
    rest = index.spent_total - (entry.spent if entry is not None else 0.0)
    if own <= rest:  # the common case, checked first: this runs at every report
        return None
    typical = index.median_measured_spent()
    if typical is None or own <= OUTSPEND_TYPICAL * typical:
        return None
    step, value = pts[-1]
    if index.leads(trial.number, step, value, PROOF_PEERS):
        return None
    return (f"spent ${own:,.4f}, more than the rest of the study (${rest:,.4f}) and {OUTSPEND_TYPICAL:g} times "
            f"a completed trial's median (${typical:,.4f}), without leading at least {PROOF_PEERS} other "
            f"trials at step {step:g}")
