"""The storage protocol: where all of a study's state lives.

Every operation that must be atomic across processes and machines is one storage call: asking for
a trial (claim an enqueued one or create a new one, checking limits), finishing a trial (only if it
is still running), reaping trials whose worker stopped sending heartbeats. Strategies and
schedulers never touch storage; they get the history that the storage returns.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from thrifty.cost.budget import Budget, BudgetStop, Usage
from thrifty.trial import Measurement, StopReason, Trial, TrialState

#: Version of the database schema written by this version of thrifty (3: typed stop reasons, the
#: trials' ``stop_kind``/``stop_limit`` and the study's ``budget_stop_limit``).
SCHEMA_VERSION = 3


@dataclass(frozen=True)
class StudyRecord:
    """What the storage keeps about a study (everything needed to load it elsewhere)."""

    id: int
    name: str
    space: Mapping[str, Any]
    objectives: Mapping[str, str]
    strategy: Mapping[str, Any]
    scheduler: Mapping[str, Any]
    seed: int
    budget: Mapping[str, Any]
    settings: Mapping[str, Any]
    created_at: float
    n_started: int = 0
    spent_usd: float = 0.0
    gpu_s: float = 0.0
    n_running: int = 0
    active_s: float = 0.0
    active_since: float | None = None
    #: The circuit breaker's record: which hard limit stopped the running trials, and when
    #: (``None`` if it has not tripped since the budget was last set).
    budget_stop: BudgetStop | None = None

    def usage(self, now: float) -> Usage:
        """What the study has consumed, as budgets count it (active wall time up to ``now``)."""
        wall = self.active_s + (now - self.active_since if self.n_running > 0 and self.active_since else 0.0)
        return Usage(trials=self.n_started, usd=self.spent_usd, gpu_hours=self.gpu_s / 3600.0, wall_s=wall)


@dataclass(frozen=True)
class StudySummary:
    """One line of ``thrifty studies``."""

    name: str
    created_at: float
    objectives: Mapping[str, str]
    counts: Mapping[str, int]
    spent_usd: float


@dataclass(frozen=True)
class AskLimits:
    """A caller's limit checked atomically when a trial is started, on top of the study's stored
    budget (which the storage always applies): at most ``run_max_started`` trials tagged
    ``run_tag`` (``optimize(n_trials=...)``; a retried trial counts once)."""

    run_tag: str | None = None
    run_max_started: int | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """What to do with a trial whose worker died: how many times to re-run its params."""

    max_retries: int = 0
    heartbeat_grace_s: float = 60.0


# propose(number, load_history) -> params; called inside the ask transaction, so it must be quick.
#: ``propose(number, load_history)``: ``load_history()`` gives every trial with its measurements;
#: ``load_history(since)`` the trials numbered ``since`` and later, without measurements (cheap).
Proposer = Callable[[int, Callable[..., Sequence[Trial]]], Mapping[str, Any]]
# admit(params, resources, usage) raises StudyExhausted to refuse a trial about to start (e.g. its
# forecast cost exceeds the dollars left); called inside the ask transaction.
Admit = Callable[[Mapping[str, Any], Mapping[str, float], Usage, Budget], None]


@dataclass(frozen=True)
class AskResult:
    trial: Trial
    claimed_enqueued: bool = field(default=False)


class Storage(abc.ABC):
    """Abstract storage. Implementations must make each method one atomic transaction."""

    url: str

    # -- studies ------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_study(
        self,
        name: str,
        space: Mapping[str, Any],
        objectives: Mapping[str, str],
        strategy: Mapping[str, Any],
        scheduler: Mapping[str, Any],
        seed: int,
        budget: Mapping[str, Any],
        settings: Mapping[str, Any],
        load_if_exists: bool = False,
    ) -> tuple[StudyRecord, bool]:
        """Create a study; returns it and whether this call created it. If the name is taken:
        raise :class:`~thrifty.errors.DuplicateStudy`, or with ``load_if_exists`` return the
        existing study (the other arguments ignored). Atomic: of several processes creating one
        study at once, exactly one creates it, and the others load it (or get DuplicateStudy)."""

    @abc.abstractmethod
    def load_study(self, name: str) -> StudyRecord:
        """Return the study; raise :class:`~thrifty.errors.StudyNotFound` if absent."""

    @abc.abstractmethod
    def study_status(self, study_id: int) -> StudyRecord:
        """Re-read the study's counters (trials started, dollars spent)."""

    @abc.abstractmethod
    def list_studies(self) -> list[StudySummary]: ...

    @abc.abstractmethod
    def delete_study(self, name: str) -> None: ...

    @abc.abstractmethod
    def update_study(
        self,
        study_id: int,
        *,
        budget: Mapping[str, Any] | None = None,
        strategy: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Change a study's mutable settings in one transaction: the budget, the strategy's and the
        scheduler's specs, and ``settings`` keys (merged into the stored ones; others are kept).
        ``None`` leaves a field as it is. A new budget re-arms the circuit breaker: the study's
        budget stop is cleared, and so are the stop requests of running trials whose stop kind is
        BUDGET."""

    # -- trials -------------------------------------------------------------------------------
    @abc.abstractmethod
    def ask(
        self,
        study_id: int,
        worker_id: str,
        propose: Proposer,
        limits: AskLimits,
        now: float,
        resources: Mapping[str, float] | None = None,
        admit: Admit | None = None,
    ) -> AskResult:
        """Start a trial atomically: claim the oldest PENDING one or create one with ``propose``.

        Raises :class:`~thrifty.errors.StudyExhausted` when a limit is reached (nothing is
        written then).
        """

    @abc.abstractmethod
    def enqueue(
        self,
        study_id: int,
        params: Mapping[str, Any],
        now: float,
        user_attrs: Mapping[str, Any] | None = None,
        resources: Mapping[str, float] | None = None,
        parent: int | None = None,
        start_step: float | None = None,
    ) -> Trial:
        """Add a PENDING trial with fixed params; it gets the next trial number. ``parent`` and
        ``start_step``: the trial continues another's checkpoint from that step (a PBT clone)."""

    @abc.abstractmethod
    def add_trial(self, study_id: int, trial: Trial, now: float) -> Trial:
        """Insert a finished trial with known results; it gets the next number. Not started
        here: no trial budget counts it and its cost is not added to the study's ledger."""

    @abc.abstractmethod
    def resume(self, study_id: int, number: int, worker_id: str, run_tag: str | None, now: float) -> Trial | None:
        """Claim a PAUSED trial (RUNNING again, ``start_step`` = its last step, its stop reason
        cleared); ``None`` if it is no longer paused. The stored budget applies
        (:class:`~thrifty.cost.budget.BudgetGuard`, moment RESUME: raises
        :class:`~thrifty.errors.StudyExhausted` naming the limit); the trial count does not change."""

    @abc.abstractmethod
    def report(self, study_id: int, trial_id: int, measurement: Measurement, now: float) -> StopReason | None:
        """Append a measurement to a RUNNING trial (also counts as a heartbeat) and add it to the
        study's ledgers; if :meth:`~thrifty.cost.budget.BudgetGuard.check` (moment MEASUREMENT)
        names a limit, trip the circuit breaker in the same transaction (every RUNNING trial is
        asked to stop with that budget reason; the study records the stop). Returns the reason
        if the trial has been asked to stop (by the breaker or a user), else None."""

    @abc.abstractmethod
    def finish(
        self,
        study_id: int,
        trial_id: int,
        state: TrialState,
        metrics: Mapping[str, float] | None,
        measurement: Measurement | None,
        error: str | None,
        now: float,
        stop: StopReason | None = None,
    ) -> Trial:
        """Finish a RUNNING trial; raise :class:`~thrifty.errors.TrialNotRunning` otherwise.

        A STOPPED or PAUSED trial records why: ``stop`` if given; else the reason recorded while
        it ran (the breaker's or a user's request); else ``StopKind.USER`` without words. Other
        states record no stop reason. A ``measurement`` goes through the ledger and the
        circuit breaker as in :meth:`report`."""

    @abc.abstractmethod
    def heartbeat(self, trial_ids: Sequence[int], now: float) -> None: ...

    @abc.abstractmethod
    def reap(
        self, study_id: int, policy: RetryPolicy, now: float, worker_id: str | None = None, reason: str | None = None
    ) -> list[int]:
        """Fail RUNNING trials whose heartbeat is older than the grace period (or, if
        ``worker_id`` is given, every RUNNING trial of that worker, which is known dead or being
        stopped; ``reason`` then replaces the stored error's default words) and re-enqueue their
        params if retries are left. Returns the numbers of the failed trials."""

    @abc.abstractmethod
    def request_stop(self, trial_id: int, reason: str = "user: stop requested") -> None:
        """Ask a running trial to stop (it sees ``should_stop() == True``), saying why in
        ``reason``; its stop kind is ``StopKind.USER``."""

    @abc.abstractmethod
    def stop_requested(self, trial_id: int) -> bool: ...

    @abc.abstractmethod
    def get_trial(self, trial_id: int) -> Trial: ...

    @abc.abstractmethod
    def get_trials(
        self,
        study_id: int,
        states: Sequence[TrialState] | None = None,
        with_measurements: bool = True,
        offset: int = 0,
        limit: int | None = None,
        finished_after: int | None = None,
    ) -> list[Trial]:
        """Trials in number order. ``finished_after``: only unfinished trials and those whose
        ``finish_order`` is larger (finished trials never change, so callers may cache them)."""

    @abc.abstractmethod
    def count_trials(self, study_id: int) -> dict[TrialState, int]: ...

    @abc.abstractmethod
    def count_run(self, study_id: int, run_tag: str) -> int:
        """Trials started under ``run_tag`` (one ``optimize`` call); a retried trial counts once."""

    @abc.abstractmethod
    def close(self) -> None: ...
