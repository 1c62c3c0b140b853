"""The storage protocol: where all of a study's state lives.

Every operation that must be atomic across processes and machines is one storage call, and no
storage call ever calls back into the study. Starting a trial is two of them:

1. :meth:`Storage.snapshot`: one read of everything a decision needs (the study's status and
   budget, the trials settled since the caller's last snapshot and every unsettled one; its cost
   does not grow with the study's settled trials);
2. the caller decides outside any lock (scheduler plan, strategy proposal, admission), then
   :meth:`Storage.start` writes its :class:`StartRequest` (a new trial, a claimed enqueued one or a
   resumed paused one) in one conditional transaction that checks the limits and either starts the
   trial or answers :class:`Conflict` when the snapshot it was decided from is stale.

Finishing a trial (only if it is still running) and reaping trials whose worker stopped sending
heartbeats are one call each too. Strategies and schedulers never touch storage; they get the
history that the storage returns.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from thrifty.cost.budget import Budget, BudgetStop, Usage
from thrifty.errors import ValidationError
from thrifty.storage.rules import usage_of
from thrifty.trial import Measurement, StopReason, Trial, TrialState
from thrifty.usage import ResourceUsage

#: Version of the database schema written by this version of thrifty (3: typed stop reasons, the
#: trials' ``stop_kind``/``stop_limit`` and the study's ``budget_stop_limit``; 4: the trials'
#: ``usage``, what a trial's processes used while it ran; 5: the memo cache's index of a pipeline
#: study's stage outputs and each trial's stage runs, :class:`CacheEntry` and :class:`StageRun`).
SCHEMA_VERSION = 5


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
        return usage_of(self.n_started, self.spent_usd, self.gpu_s, self.n_running, self.active_s, self.active_since,
                        now)


@dataclass(frozen=True)
class StudyStatus:
    """The changing part of a study, as one snapshot read it: its budget and ledgers, the next
    trial number and the circuit breaker. Times are seconds since the epoch."""

    budget: Budget
    #: Trials started (a retried trial counts once), dollars and GPU-seconds spent.
    n_started: int
    spent_usd: float
    gpu_s: float
    #: Trials running now; active wall time: closed periods plus, while one runs, since ``active_since``.
    n_running: int
    active_s: float
    active_since: float | None
    #: The number the next trial created (started, enqueued or retried) will get.
    next_number: int
    #: How many times a trial settled (finished or paused): the largest ``finish_order`` so far.
    n_settled: int
    #: The circuit breaker's record: which hard limit stopped the running trials, and when
    #: (``None`` if it has not tripped since the budget was last set), as in :class:`StudyRecord`.
    budget_stop: BudgetStop | None = None

    def usage(self, now: float) -> Usage:
        """What the study has consumed, as budgets count it (active wall time up to ``now``)."""
        return usage_of(self.n_started, self.spent_usd, self.gpu_s, self.n_running, self.active_s, self.active_since,
                        now)


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of a study (one read transaction; see :meth:`Storage.snapshot`).

    ``trials``: in number order, with their measurements, every unsettled trial (PENDING, RUNNING)
    and every trial settled (finished or PAUSED) with a ``finish_order`` above the ``since`` the
    caller gave: what changed since its last snapshot. A caller that keeps the settled ones
    (:class:`thrifty.history.TrialLog`) has the whole history.
    """

    study_id: int
    status: StudyStatus
    trials: tuple[Trial, ...]
    #: Trials started under the ``run_tag`` the caller gave (a retried trial counts once), else ``None``.
    run_started: int | None = None

    @property
    def pending(self) -> Trial | None:
        """The oldest enqueued trial (lowest number), which the next start claims, else ``None``."""
        return next((t for t in self.trials if t.state is TrialState.PENDING), None)


#: What a start request does: start a ``"new"`` trial, ``"claim"`` an enqueued (PENDING) one, or
#: ``"resume"`` a PAUSED one.
StartKind = Literal["new", "claim", "resume"]


@dataclass(frozen=True)
class StartRequest:
    """What :meth:`Storage.start` is asked to start (build it with :meth:`new`, :meth:`claim` or
    :meth:`resume`); decided from a snapshot, so the storage checks that the snapshot still holds.

    ``"new"``: a trial with ``params``, refused (a :class:`Conflict`) while any trial is PENDING
    (enqueued work goes first), and: if ``exact``, unless ``number`` is still the next trial number
    (a compare-and-swap: the proposal was made for that number) or ``ahead`` holds the proposal for
    the number that is next now (``ahead[i]`` is the proposal for ``number + 1 + i``: a worker that
    lost the race to other workers proposes for a few numbers past its snapshot, so it is not
    starved); if not ``exact`` (a model-based proposal, valid at any number), or when a proposal
    from ``ahead`` is taken, if a trial numbered ``number`` or later, i.e. created since the
    snapshot, has the same params (two workers never start a duplicate from one snapshot). With
    ``exact`` and ``number`` still next nothing was created since the snapshot, so no duplicate can
    have been either. :meth:`params_for` applies the numbers rule; the storage the rest.
    ``"claim"``: the PENDING trial ``number``; a conflict if it is no longer pending.
    ``"resume"``: the PAUSED trial ``number``; a conflict if it is no longer paused.
    """

    kind: StartKind
    number: int
    params: Mapping[str, Any] | None = None
    exact: bool = True
    ahead: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def new(cls, params: Mapping[str, Any], number: int, *, exact: bool = True,
            ahead: Sequence[Mapping[str, Any]] = ()) -> StartRequest:
        return cls("new", number, dict(params), exact, tuple(dict(p) for p in ahead))

    def params_for(self, next_number: int) -> Mapping[str, Any] | None:
        """The params of a ``"new"`` request if the study's next trial number is ``next_number``:
        any number for a non-``exact`` request; else the proposal made for that number (``params``
        or one from ``ahead``), ``None`` when there is none (a conflict)."""
        if not self.exact or next_number == self.number:
            return self.params
        i = next_number - self.number - 1
        return self.ahead[i] if 0 <= i < len(self.ahead) else None

    @classmethod
    def claim(cls, number: int) -> StartRequest:
        return cls("claim", number)

    @classmethod
    def resume(cls, number: int) -> StartRequest:
        return cls("resume", number)


@dataclass(frozen=True)
class Started:
    """:meth:`Storage.start` started this trial (RUNNING, this worker's)."""

    trial: Trial


@dataclass(frozen=True)
class Conflict:
    """:meth:`Storage.start` wrote no trial: the snapshot the request was decided from is stale
    (``reason`` says how). Take a new snapshot and decide again."""

    reason: str


@dataclass(frozen=True)
class CacheEntry:
    """One stage output of a pipeline study's memo cache, as the study's index records it
    (:mod:`thrifty.pipelines.cache` keeps the outputs on disk; the index says what exists and what
    it cost, so every worker and the strategy see the same facts).

    ``key``: the content address (a hash of the stages' names and versions and the prefix's
    parameters, :meth:`thrifty.pipelines.Pipeline.key`). ``stage``: 0-based index of the prefix's
    last stage. ``params``: every parameter of stages ``0..stage``. ``size_bytes``: the entry's
    size on disk. ``run_s`` / ``run_cost_usd``: wall seconds and dollars computing the whole prefix
    from nothing took, as measured (an earlier stage read from the cache counts at what computing
    it had cost). ``read_s`` / ``read_cost_usd``: the last measured read (before any read: the
    write). ``created_at``: epoch seconds. ``hits``: how many times a trial read it.
    """

    key: str
    stage: int
    params: Mapping[str, Any]
    size_bytes: int
    run_s: float
    run_cost_usd: float
    read_s: float
    read_cost_usd: float
    created_at: float
    hits: int = 0


#: What a pipeline stage did in a trial: computed (``"run"``), read from the memo cache
#: (``"hit"``), or neither because a later stage's output was read (``"skipped"``).
StageOutcome = Literal["run", "hit", "skipped"]


@dataclass(frozen=True)
class StageRun:
    """One stage of one trial of a pipeline study: what it did and what that cost.

    ``stage``: 0-based index; ``name``: the stage's name. ``outcome``: see :data:`StageOutcome`.
    ``miss``: the stage was run although its output is cacheable (nothing usable was stored).
    ``elapsed_s`` / ``cost_usd``: what the trial paid for it (running it, or reading its output;
    0 when skipped). ``saved_s`` / ``saved_usd``: for a hit, what computing the prefix had cost
    minus what reading it cost (never negative); else 0.
    """

    trial_id: int
    stage: int
    name: str
    outcome: StageOutcome
    miss: bool
    elapsed_s: float
    cost_usd: float
    saved_s: float = 0.0
    saved_usd: float = 0.0


@dataclass(frozen=True)
class TokenRecord:
    """A bearer token of the HTTP service (:mod:`thrifty.server.tokens`), as stored: never the
    token itself, only its public ``id`` and the SHA-256 ``digest`` (hex) of its secret part.

    ``study``: the name of the one study it opens (it may be created before the study exists, and
    outlives the study's deletion). ``role``: ``"read"``, ``"write"`` or ``"admin"``.
    ``created_at`` / ``revoked_at``: epoch seconds (``revoked_at`` ``None`` while it is valid).
    """

    id: str
    study: str
    role: str
    digest: str
    created_at: float
    revoked_at: float | None = None


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
    def snapshot(self, study_id: int, since: int = 0, run_tag: str | None = None, *,
                 history: bool = True) -> Snapshot:
        """Read the study in one read transaction (a consistent view): its status and the
        trials unsettled or settled with a ``finish_order`` above ``since`` (pass the
        largest ``finish_order`` of the previous snapshot, 0 the first time); with ``run_tag``, how
        many trials have started under it. ``history=False``: of the trials only the enqueued
        (PENDING) ones, for a decision that reads no history (``since`` is then ignored: the read
        costs the same however many trials run or settled). Writes nothing."""

    @abc.abstractmethod
    def start(
        self,
        study_id: int,
        request: StartRequest,
        *,
        worker_id: str,
        now: float,
        limits: AskLimits = AskLimits(),
        resources: Mapping[str, float] | None = None,
        reap: RetryPolicy | None = None,
    ) -> Started | Conflict:
        """Start the trial ``request`` names, in one write transaction, for ``worker_id``.

        With ``reap``, trials whose heartbeat is older than its grace period are reaped first, in
        the same transaction; if any was, that is committed and the answer is a :class:`Conflict`
        (the snapshot no longer holds). Then the limits: :class:`~thrifty.errors.StudyExhausted`
        naming the limit when the stored budget (:class:`~thrifty.cost.budget.BudgetGuard`,
        moment START for a new or claimed trial, RESUME for a resumed one) or ``limits`` refuse
        the trial (see :func:`thrifty.storage.rules.check_start`); nothing is written then. Then
        the request's own condition (see :class:`StartRequest`): a :class:`Conflict` if the
        snapshot is stale, else the trial is RUNNING and returned. ``resources`` apply to a new
        trial and to an enqueued one that names none. A resumed trial goes on from its last step
        (``start_step``), its stop reason cleared; the trial count does not change.
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

    def add_trials(self, study_id: int, trials: Sequence[Trial], now: float) -> int:
        """:meth:`add_trial` for many trials, all or none (one transaction where the storage has
        them), numbered in the order given; returns how many were added. Checks every trial
        before writing any."""
        for t in trials:
            if not t.state.is_finished:
                raise ValidationError(f"add_trials: state {t.state.value!r} is not a finished state")
        for t in trials:
            self.add_trial(study_id, t, now)
        return len(trials)

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
        usage: ResourceUsage | None = None,
    ) -> Trial:
        """Finish a RUNNING trial; raise :class:`~thrifty.errors.TrialNotRunning` otherwise.

        A STOPPED or PAUSED trial records why: ``stop`` if given; else the reason recorded while
        it ran (the breaker's or a user's request); else ``StopKind.USER`` without words. Other
        states record no stop reason. A ``measurement`` goes through the ledger and the
        circuit breaker as in :meth:`report`. ``usage``: what the trial's processes used, stored
        in the same transaction (``None`` keeps what :meth:`record_usage` stored, if anything)."""

    @abc.abstractmethod
    def heartbeat(self, trial_ids: Sequence[int], now: float) -> None: ...

    @abc.abstractmethod
    def record_usage(self, trial_id: int, usage: ResourceUsage) -> bool:
        """Store ``usage`` (:mod:`thrifty.usage`) as what the trial's processes used so far, in
        place of what was stored, in one short transaction of its own that takes no study lock.
        Only a RUNNING trial's usage changes: the runner records it every few seconds while the
        trial runs, and its final usage comes with :meth:`finish`, so a finished trial never
        changes (readers may cache it). Returns whether it was stored (``False``: the trial is
        not running, or no such trial; not an error: a reading must never fail a trial). Not a
        heartbeat."""

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

    # -- the memo cache of pipeline studies (schema 5) -----------------------------------------
    @abc.abstractmethod
    def cache_put(self, study_id: int, entry: CacheEntry) -> None:
        """Record that ``entry`` exists (its output was written to the cache's folder), replacing
        an earlier record of the same key in this study; one transaction, no study lock."""

    @abc.abstractmethod
    def cache_entries(self, study_id: int) -> list[CacheEntry]:
        """The study's cache index, by stage then key."""

    @abc.abstractmethod
    def cache_read(self, study_id: int, key: str, read_s: float, read_cost_usd: float) -> bool:
        """Record a read of entry ``key`` (a hit): one more hit, and the measured read as its
        ``read_s``/``read_cost_usd``. Returns whether the study's index holds ``key`` (``False``:
        nothing changed; not an error)."""

    @abc.abstractmethod
    def cache_forget(self, keys: Sequence[str]) -> int:
        """Remove ``keys`` from every study's index (their outputs were evicted or found missing);
        returns how many records were removed."""

    @abc.abstractmethod
    def record_stage_runs(self, study_id: int, runs: Sequence[StageRun]) -> None:
        """Store what each stage of a trial did (:class:`StageRun`), in one transaction."""

    @abc.abstractmethod
    def stage_runs(self, study_id: int) -> list[StageRun]:
        """Every stage run recorded for the study's trials, by trial id then stage."""

    # -- bearer tokens of the HTTP service (a table of their own, no study lock) -----------------
    @abc.abstractmethod
    def add_token(self, token: TokenRecord) -> None:
        """Store ``token`` (its id must be new: :class:`~thrifty.errors.ValidationError` otherwise)."""

    @abc.abstractmethod
    def get_token(self, token_id: str) -> TokenRecord | None:
        """The token with this public id (revoked ones included), else ``None``."""

    @abc.abstractmethod
    def list_tokens(self, study: str | None = None) -> list[TokenRecord]:
        """The tokens (of ``study`` only, if given), oldest first, revoked ones included."""

    @abc.abstractmethod
    def revoke_token(self, token_id: str, now: float) -> bool:
        """Mark the token revoked at ``now`` (epoch seconds); ``False`` if no valid token has that id."""

    @abc.abstractmethod
    def close(self) -> None: ...
