"""Budget-aware early stopping: the rule applied on top of any scheduler with ``budget_aware=True``.

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
