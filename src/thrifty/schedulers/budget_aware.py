"""Budget-aware early stopping: :class:`BudgetAware`, a scheduler wrapped around another.

``budget_aware=True`` on a scheduler that runs trials to a ``max_resource`` (ASHA, adaptive ASHA,
Hyperband, PBT) makes :func:`~thrifty.schedulers.make_scheduler` wrap it; the stored spec stays the
inner scheduler's with ``budget_aware: true``, so studies stored before load alike.

Only trials trained to ``max_resource`` count as found models, and a hard dollar budget stops every
running trial when the ledger reaches the limit. So when the money left gets small relative to
the cost of finishing a trial, carrying on with a trial that cannot finish is pure loss. The rule,
checked at each report of a study with a dollar budget (after the scheduler itself said continue):

    projected = (dollars the trial has spent / resource it has used) * (max_resource - step)
    stop the trial if  projected > (budget.usd - spent) / n_running

i.e. the trial's own average price per unit of resource, times the resource it still needs, must
fit in its share of the dollars left (shared equally among the trials running now). Early in a
study this never triggers; near the end of the budget it stops the trials that would be cut by the
breaker anyway, and leaves the money to those that can finish. With ``resource="cost_usd"`` rungs
the same holds with dollars as the resource.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from thrifty.errors import ValidationError
from thrifty.schedulers.base import AskPlan, BudgetSnapshot, Decision, Scheduler, Successor, Verdict
from thrifty.specs.base import Spec
from thrifty.trial import Trial


def cannot_finish(trial: Trial, max_resource: float, dollars_left: float, n_running: int) -> bool:
    """Whether ``trial`` (its measurements so far) cannot reach ``max_resource`` within its share
    of ``dollars_left`` (see the module docstring)."""
    step = trial.last_step
    # A clone pays only from the step it started at; a resumed trial has paid from 0.
    start = (trial.start_step or 0.0) if trial.parent is not None else 0.0
    if step is None or step <= start or step >= max_resource:
        return False
    spent = math.fsum(m.cost_usd for m in trial.measurements)
    price = spent / (step - start)  # dollars per unit of resource, as run in this trial
    projected = price * (max_resource - step)
    return projected > dollars_left / max(n_running, 1)


class BudgetAware(Scheduler):
    """``inner``'s decisions, plus the budget-aware rule (see the module docstring) whenever
    ``inner`` says CONTINUE: a function of the trial and the study's :class:`BudgetSnapshot`
    (dollars left, trials running), which the study passes at each decision. Everything else
    (plans, checkpoints, successors, the spec) is ``inner``'s."""

    needs_budget = True

    def __init__(self, inner: Scheduler) -> None:
        if not isinstance(inner, Scheduler):
            raise ValidationError(f"BudgetAware({inner!r}): expected a scheduler, e.g. BudgetAware(ASHA(1, 81))")
        if isinstance(inner, BudgetAware):
            inner = inner.inner
        if inner.max_resource is None or "budget_aware" not in inner.params():
            raise ValidationError(
                f"BudgetAware({type(inner).__name__}): budget-aware stopping needs a scheduler that runs trials to a "
                "max_resource (asha, adaptive, hyperband, pbt)"
            )
        self.inner = inner
        self.max_resource = inner.max_resource
        self.budget_aware = True

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def needs_history(self) -> bool:  # type: ignore[override]
        return self.inner.needs_history

    @property
    def plans_asks(self) -> bool:  # type: ignore[override]
        return self.inner.plans_asks

    def bind(self, space: Any) -> None:
        self.inner.bind(space)

    def plan(self, history: Sequence[Trial], objectives: Mapping[str, str]) -> AskPlan:
        return self.inner.plan(history, objectives)

    def checkpoint_at(self, step: float) -> bool:
        return self.inner.checkpoint_at(step)

    def successor(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Successor | None:
        return self.inner.successor(trial, history, objectives)

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        """``inner``'s decision (without a budget snapshot the rule has nothing to go by)."""
        return self.inner.decide(trial, history, objectives)

    def verdict(
        self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str], budget: BudgetSnapshot | None
    ) -> Verdict:
        own = self.inner.verdict(trial, history, objectives, budget)
        if own.decision is not Decision.CONTINUE or budget is None or budget.usd_left is None:
            return own
        assert self.max_resource is not None
        if cannot_finish(trial, self.max_resource, budget.usd_left, max(budget.n_running, 1)):
            return Verdict(Decision.STOP, note=f"budget-aware: cannot reach {self.max_resource:g} within its share "
                                               f"of the ${budget.usd_left:,.4f} left")
        return own

    @property
    def spec(self) -> Spec | None:  # type: ignore[override]
        """The inner scheduler's validated spec (what is stored, and what ``check_fit`` judges)."""
        return self.inner.spec

    def params(self) -> dict[str, Any]:
        return {**self.inner.params(), "budget_aware": True}

    def __repr__(self) -> str:
        return f"BudgetAware({self.inner!r})"
