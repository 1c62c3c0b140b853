"""The spending rules of a study with a dollar budget: a pure decision about one running trial.

They apply to every study with a dollar budget, whatever its scheduler, at each ``should_stop``
after the scheduler itself said continue (:func:`thrifty.study._decisions.should_stop`). Two rules,
checked in this order, from the trial's own measurements, the study's history and the budget:

1. **Unproven trials spend at most** :data:`UNPROVEN_SHARE` **of the budget.** A trial whose
   measured dollars exceed that share of the dollar budget is stopped unless it has *proven* itself:
   at its latest step its value is the best among at least :data:`PROOF_PEERS` other trials that
   reached that step (their first report at or after it). So a study's very first trial, priced by
   nothing, cannot eat the budget: on a budget of 30 full trainings, a first configuration that
   would cost 31 is stopped at a quarter of the budget, and the study goes on to cheaper ones.
2. **A trial that cannot finish stops** (the budget-aware rule of
   :mod:`thrifty.schedulers.budget_aware`, on by default under a dollar budget): once some trial has
   run to its end (the study's full resource is then its last step), a trial whose own price per
   unit of resource times the resource it still needs exceeds its share of the dollars left (shared
   equally among the trials running) is stopped: it would be cut by the breaker anyway, and the
   money goes to trials that can finish.

Trials that report no steps are judged by rule 1 alone (their dollars are still measured).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from thrifty.ranking import full_resource
from thrifty.schedulers.budget_aware import cannot_finish
from thrifty.schedulers.curves import curve, first_at_or_after, objective_of
from thrifty.trial import Trial

#: The share of a dollar budget one trial may spend before it has proven itself (rule 1).
UNPROVEN_SHARE = 0.25
#: How many other trials must have reached a trial's step for its rank there to count (rule 1).
PROOF_PEERS = 2


def proven(trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> bool:
    """Whether ``trial``'s value at its latest step is the best among at least
    :data:`PROOF_PEERS` other trials that reached that step (rule 1 of the module doc). A study
    with several objectives has no single ranking: no trial is proven there."""
    if len(objectives) != 1:
        return False
    metric, sign = objective_of(objectives, None, "spending rules")
    own = curve(trial, metric, sign)
    if not own:
        return False
    step, value = own[-1]
    better = peers = 0
    for other in history:
        if other.number == trial.number:
            continue
        v = first_at_or_after(curve(other, metric, sign), step)
        if v is None or not math.isfinite(v):
            continue
        peers += 1
        better += v > value  # curves are signed so that larger is better
    return peers >= PROOF_PEERS and better == 0


def spending_verdict(trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str], *,
                     budget_usd: float, usd_left: float, n_running: int) -> str | None:
    """Why ``trial`` should stop under the spending rules (module doc), or ``None`` to let it go
    on. ``usd_left``: dollars left of the ``budget_usd`` budget; ``n_running``: trials running
    now, this one included."""
    spent = math.fsum(m.cost_usd for m in trial.measurements)
    if budget_usd > 0 and spent > UNPROVEN_SHARE * budget_usd and not proven(trial, history, objectives):
        return (f"spent ${spent:,.4f}, more than {UNPROVEN_SHARE:.0%} of the ${budget_usd:,.2f} budget, "
                f"without ranking first among at least {PROOF_PEERS} other trials at its step")
    full = full_resource(history)
    if full is not None and cannot_finish(trial, full, usd_left, max(n_running, 1)):
        return f"cannot reach step {full:g} (the study's full resource) within its share of the ${usd_left:,.4f} left"
    return None
