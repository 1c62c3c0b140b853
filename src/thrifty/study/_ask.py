"""The ask flow: one snapshot, a decision outside any lock, one conditional start.

Steps of :meth:`Asker.ask`, at most two storage transactions when nothing races it:

1. **Snapshot** (:meth:`~thrifty.storage.base.Storage.snapshot`, one read; on SQL one
   statement): the study's status (budget, ledger, next trial number, breaker), the trials
   settled since this object's last snapshot and every unfinished one. The history log
   (:mod:`thrifty.history`) folds the delta in, so reading the history does not grow with the
   study. A decision that reads no history (a cheap strategy that ignores it, no scheduler plan,
   no completion criteria, no dollar budget) reads a light snapshot instead: the status and the
   enqueued trials, whose cost does not grow with the number of workers either.
2. **Decide** (:meth:`Asker.decide`, pure: the snapshot, the settings and the seed): the completion
   criteria; the scheduler's plan (a paused trial to resume first); the hard limits and the
   caller's run limit (:func:`thrifty.storage.rules.check_start`); the oldest enqueued trial, else
   the strategy's proposal; both pass the soft budget check (:class:`~thrifty.study._cost.CostGate`:
a proposal forecast to cost more than the dollars left gives way to the nearest affordable one).
3. **Start** (:meth:`~thrifty.storage.base.Storage.start`, one write transaction): the storage
   re-checks the hard limits under the study's lock and starts what was decided, or answers
   "conflict" when another worker changed what the decision rests on (a new trial under a cheap
   strategy needs the same next number; a model's proposal must not duplicate a trial created
   since). A reap of dead workers' trials, when due, rides in this transaction.

On a conflict a new snapshot is read and the decision made again, up to
:data:`MAX_START_ATTEMPTS` times (from the third, after a short random pause). A cheap strategy
also proposes for a few numbers after its snapshot's next one, so that a worker racing many
others on one study still lands: each number's proposal is the one the strategy makes for that
number, as a single worker would. How many grows with each conflict (``2k + 1``, at most
:data:`MAX_AHEAD`); after a start it is twice how far the number had moved since the snapshot, or
one less than before if that is more, so workers racing on one study keep proposing as far ahead as
they race, and a lone worker proposes only for its own number. At the bound :class:`~thrifty.errors.StorageError` says so. Nothing is written when no trial may start
(:class:`~thrifty.errors.StudyExhausted`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from thrifty.errors import StorageError, StudyExhausted
from thrifty.history import History
from thrifty.ranking import judged
from thrifty.storage import AskLimits
from thrifty.storage.base import Snapshot, Started, StartRequest
from thrifty.storage.rules import check_start
from thrifty.study._cost import CostGate
from thrifty.study._heartbeat import Heartbeats
from thrifty.study._state import StudyState
from thrifty.trial import Trial, TrialState

#: How many times one ``ask`` reads a snapshot and tries to start what it decided.
MAX_START_ATTEMPTS = 32
#: The most numbers past its snapshot a cheap strategy proposes for after conflicts.
MAX_AHEAD = 63


def check_criteria(state: StudyState, finished: Sequence[Trial] | None = None) -> None:
    """Raise :class:`~thrifty.errors.StudyExhausted` (reason ``"criterion"``) when one of the
    study's completion criteria holds on its ``finished`` trials (number order; ``None``: read
    them from the storage)."""
    metric, direction = next(iter(state.settings.objectives.items()))
    if finished is None:
        finished = [t for t in state.storage.get_trials(state.study_id, with_measurements=False) if t.is_finished]
    judged_trials = [judged(t, state.settings.constraints) for t in finished]  # trials recorded before breakers
    for criterion in state.settings.criteria:
        why = criterion.check(judged_trials, metric, direction, space=state.settings.space)
        if why is not None:
            raise StudyExhausted(f"the study is complete: {why}", "criterion")


class Asker:
    """Starts trials for one study object (it prepares the strategy once)."""

    def __init__(self, state: StudyState, cost: CostGate, heartbeats: Heartbeats) -> None:
        self._state = state
        self._cost = cost
        self._heartbeats = heartbeats
        self._prepared = False
        #: How many numbers past the next one a cheap strategy proposes for: doubles with each
        #: conflict (other workers took the number); after a start, twice how far the number had
        #: moved, or one less than before, so a lone worker never proposes more than it starts.
        self._ahead = 0
        #: Whether the last full snapshot showed a dollar budget (then the next ask reads a full
        #: one at once, not a light one first).
        self._dollar_budget = False

    def ask(self, limits: AskLimits) -> Trial:
        """Start a trial (see the module docstring) and return it, RUNNING under this object's
        worker id."""
        state = self._state
        if not self._prepared:
            state.settings.strategy.prepare(state.settings.space)
            self._prepared = True
        conflict = ""
        for attempt in range(MAX_START_ATTEMPTS):
            snapshot = self._snapshot(limits)
            history = state.log.read(state.label_all(list(snapshot.trials)))
            request = self.decide(snapshot, history, limits, ahead=self._ahead)
            now = state.clock.time()
            result = state.storage.start(
                state.study_id, request, worker_id=state.worker_id, now=now, limits=limits,
                resources=state.settings.resources, reap=self._heartbeats.reap_due(now),
            )
            if isinstance(result, Started):
                # How far the number moved while this worker decided: keep proposing twice as far
                # ahead; without a race (a lone worker: 0) the margin shrinks one number per ask.
                moved = result.trial.number - request.number
                self._ahead = min(max(2 * moved, self._ahead - 1), MAX_AHEAD)
                return result.trial
            conflict = result.reason
            self._ahead = min(2 * self._ahead + 1, MAX_AHEAD)
            if attempt >= 2:  # the first retries go at once: proposing ahead is what makes them land
                # A real pause, whatever the study's clock: it lets the racing worker's transaction end.
                time.sleep(random.uniform(0.0, min(0.001 * 2 ** attempt, 0.05)))
        raise StorageError(
            f"study {state.name!r}: no trial could be started in {MAX_START_ATTEMPTS} attempts: each time another "
            f"worker had changed the study since this one read it (last: {conflict}); ask again"
        )

    def _snapshot(self, limits: AskLimits) -> Snapshot:
        """The snapshot a decision reads: a light one (the status and the enqueued trials, the
        same cost however many trials run or settled) when the decision reads no history (no
        completion criteria, no scheduler plan, a strategy that ignores the history, no dollar
        budget); else the history's delta since this object's last read."""
        state, s = self._state, self._state.settings
        light = not (s.criteria or s.scheduler.plans_asks or s.strategy.slow or s.strategy.needs_history)
        if light and not self._dollar_budget:
            snapshot = state.storage.snapshot(state.study_id, run_tag=limits.run_tag, history=False)
            if snapshot.status.budget.usd is None:
                return snapshot
        snapshot = state.storage.snapshot(state.study_id, since=state.log.seen, run_tag=limits.run_tag)
        # A budget can be changed from another process: each full read says whether it still holds.
        self._dollar_budget = snapshot.status.budget.usd is not None
        return snapshot

    def decide(self, snapshot: Snapshot, history: History, limits: AskLimits, ahead: int = 0) -> StartRequest:
        """What to start, decided from one snapshot (and the seed) alone, outside any lock (see the
        module docstring, step 2); a cheap strategy also proposes for the ``ahead`` numbers after
        the next one. Raises :class:`~thrifty.errors.StudyExhausted` when nothing may start."""
        s, cost = self._state.settings, self._cost
        strategy = s.strategy
        if s.criteria:
            check_criteria(self._state, [t for t in history if t.is_finished])
        plan = None
        if s.scheduler.plans_asks:
            plan = s.scheduler.plan(history.trials(), s.objectives)
            paused = {t.number for t in history if t.state is TrialState.PAUSED}
            for number in plan.resume:
                if number in paused:
                    return StartRequest.resume(number)
        status = snapshot.status
        if status.budget.usd is not None:
            cost.refresh(snapshot, history)
        check_start("new", status.budget, status.usage(self._state.clock.time()), limits, snapshot.run_started)
        pending = snapshot.pending
        if pending is not None:
            cost.admit(pending.params, status)
            return StartRequest.claim(pending.number)
        if plan is not None and not plan.new:
            raise StudyExhausted(f"the scheduler starts no new trial: {plan.why}", "scheduler")
        number = status.next_number
        if strategy.slow:
            strategy.bind(cost.proposal_context(strategy, snapshot, history))
        # The history in number order, built only when something reads it (a cheap strategy
        # without a scheduler plan, criteria or a dollar budget does not).
        seen = history.trials() if (strategy.slow or strategy.needs_history) else []
        params = strategy.propose(s.space, seen, seed=s.seed, number=number, n=1)[0]
        params = cost.admit_or_cheaper(params, status, s.space, seed=s.seed, number=number, strategy=strategy)
        if strategy.slow:  # a model's proposal holds at any number (see StartRequest)
            return StartRequest.new(params, number, exact=False)
        later = []  # a cheap strategy's holds only at its own number: propose for the next ones too
        for n in range(number + 1, number + 1 + ahead):
            try:
                proposal = strategy.propose(s.space, seen, seed=s.seed, number=n, n=1)[0]
                proposal = cost.admit_or_cheaper(proposal, status, s.space, seed=s.seed, number=n, strategy=strategy)
            except StudyExhausted:
                break
            later.append(proposal)
        return StartRequest.new(params, number, exact=True, ahead=later)
