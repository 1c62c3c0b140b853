"""The Study: the one object users hold. A thin facade over storage, strategy and scheduler."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import threading
import random
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from thrifty.cost.budget import Budget, BudgetStop, Usage
from thrifty.cost.meter import Meter
from thrifty.cost.forecast import CostModel
from thrifty.cost.pricing import Pricing, check_resources
from thrifty.criteria import Criterion, make_criteria
from thrifty.objectives import CostUtility
from thrifty.ranking import infeasibility, is_feasible, judged, measured, rank, ranked_fronts
from thrifty.errors import (
    StorageError,
    StudyExhausted,
    ThriftyError,
    TrialFailed,
    TrialInfeasible,
    TrialNotRunning,
    TrialStopped,
    ValidationError,
)
from thrifty._history import History, TrialLog
from thrifty._registry import check_fit
from thrifty.specs.base import StudyShape
from thrifty.handle import TrialHandle
from thrifty.schedulers import BudgetSnapshot, Decision, NoStopping, Scheduler, make_scheduler
from thrifty.space import Space
from thrifty.storage import DEFAULT_STORAGE, AskLimits, RetryPolicy, Storage, StudyRecord, open_storage
from thrifty.storage.rules import check_start
from thrifty.storage.base import Snapshot, Started, StartRequest, StudyStatus
from thrifty.strategies import Strategy, make_strategy
from thrifty.trial import Measurement, StopKind, StopReason, Trial, TrialState, check_cost, check_metrics

Objective = Callable[[TrialHandle], Any]

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.runners.local import RunResult

#: How many times one ``ask`` reads a snapshot and tries to start what it decided (see ``Study.ask``).
MAX_START_ATTEMPTS = 32

_DIRECTIONS = {"max": "max", "maximize": "max", "maximise": "max", "min": "min", "minimize": "min", "minimise": "min"}


def parse_objectives(objective: str | Mapping[str, str]) -> dict[str, str]:
    """``"max"`` -> ``{"value": "max"}``; ``{"acc": "maximize"}`` -> ``{"acc": "max"}``.

    A direction is one of min, max, minimize, maximize, minimise, maximise, in any case; anything
    else (a typo, a non-string) is a :class:`ValidationError` that lists these words.
    """
    if isinstance(objective, str):
        objective = {"value": objective}
    if not isinstance(objective, Mapping) or not objective:
        raise ValidationError(
            f"objective={objective!r}: expected 'min', 'max' or a mapping like {{'val_acc': 'max'}}"
        )
    out = {}
    for name, direction in objective.items():
        if not isinstance(name, str) or not name:
            raise ValidationError(f"objective metric name {name!r}: must be a non-empty string")
        d = _DIRECTIONS.get(direction.strip().lower()) if isinstance(direction, str) else None
        if d is None:
            raise ValidationError(
                f"objective {name!r}: direction {direction!r} must be one of {', '.join(_DIRECTIONS)}"
            )
        out[name] = d
    return out


def _default_name() -> str:
    return time.strftime("study-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ValidationError(f"name={name!r}: a study name must be a non-empty string of at most 255 characters")
    return name


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """A study's settings, validated and in the form the storage keeps (see :func:`normalize_settings`)."""

    space: Space
    objectives: dict[str, str]
    strategy: Strategy
    scheduler: Scheduler
    seed: int
    budget: Budget
    #: The stored ``settings`` column: max_retries, heartbeat_grace_s, pricing, resources,
    #: stop_when, utility, artifact_root, keep_checkpoints, constraints.
    settings: dict[str, Any]

    def comparable(self) -> dict[str, Any]:
        """Every setting as plain JSON data under its ``thrifty run`` config key (``objective`` for
        the objectives): equal values mean equal settings."""
        out: dict[str, Any] = {
            "space": self.space.to_dict(), "objective": self.objectives, "strategy": self.strategy.to_spec(),
            "scheduler": self.scheduler.to_spec(), "seed": self.seed, "budget": self.budget.to_dict(),
            **self.settings,
        }
        return json.loads(json.dumps(out, default=str))  # tuples -> lists, as stored

    @classmethod
    def of_record(cls, record: StudyRecord) -> StudySettings:
        """The settings of a stored study, read back through :func:`normalize_settings` (a key
        missing from an older record takes the default :meth:`Study.create` gives it)."""
        s = record.settings
        objective: Any = dict(record.objectives)
        wanted = normalize_settings(
            record.space, objective, strategy=record.strategy, scheduler=record.scheduler, seed=record.seed,
            budget=record.budget, max_retries=s.get("max_retries", 0),
            heartbeat_grace_s=s.get("heartbeat_grace_s", 60.0), pricing=s.get("pricing"),
            resources=s.get("resources"), stop_when=s.get("stop_when"),
            artifact_root=s.get("artifact_root", "thrifty_artifacts"), keep_checkpoints=s.get("keep_checkpoints", 3),
            constraints=s.get("constraints"),
        )
        return dataclasses.replace(wanted, settings={**wanted.settings, "utility": s.get("utility")})


def normalize_settings(
    space: Space | Mapping[str, Any],
    objective: str | Mapping[str, str] | CostUtility = "max",
    *,
    strategy: str | Mapping[str, Any] | Strategy = "auto",
    scheduler: str | Mapping[str, Any] | Scheduler | None = "auto",
    seed: int = 0,
    budget: Budget | Mapping[str, Any] | None = None,
    max_retries: int = 0,
    heartbeat_grace_s: float = 60.0,
    pricing: Pricing | str | Mapping[str, Any] | None = None,
    resources: Mapping[str, float] | None = None,
    stop_when: Sequence[Criterion | Mapping[str, Any]] | Criterion | None = None,
    artifact_root: str = "thrifty_artifacts",
    keep_checkpoints: int | None = 3,
    constraints: Mapping[str, Sequence[Any]] | None = None,
) -> StudySettings:
    """Validate :meth:`Study.create`'s settings (raising :class:`ValidationError` on the first bad
    one) and return them as the study stores them. Nothing is written."""
    space = space if isinstance(space, Space) else Space(space)
    utility: CostUtility | None = None
    if isinstance(objective, CostUtility):
        utility, objective = objective, {objective.name: "max"}
    objectives = parse_objectives(objective)
    pricing_obj = Pricing.parse(pricing)
    resources_obj = check_resources(resources)
    pricing_obj.usd_per_hour_for(resources_obj)  # e.g. more GPUs than the instance has
    criteria = make_criteria(stop_when)
    strat = make_strategy(strategy)
    sched = make_scheduler(scheduler)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationError(f"seed={seed!r}: expected an integer")
    budget_obj = Budget.from_dict(budget)
    constraints_obj = _check_constraints(constraints)
    if keep_checkpoints is not None and (isinstance(keep_checkpoints, bool) or not isinstance(keep_checkpoints, int)
                                         or keep_checkpoints < 0):
        raise ValidationError(f"keep_checkpoints={keep_checkpoints!r}: expected an integer >= 0 or None (keep all)")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValidationError(f"max_retries={max_retries!r}: expected an integer >= 0")
    if (
        isinstance(heartbeat_grace_s, bool)
        or not isinstance(heartbeat_grace_s, (int, float))
        or not math.isfinite(heartbeat_grace_s)
        or heartbeat_grace_s <= 0
    ):
        raise ValidationError(f"heartbeat_grace_s={heartbeat_grace_s!r}: expected a number of seconds > 0")
    check_fit(strat, sched, criteria, StudyShape(objectives, space, budget_obj.usd))  # what fits together
    return StudySettings(
        space=space, objectives=objectives, strategy=strat, scheduler=sched, seed=seed, budget=budget_obj,
        settings={
            "max_retries": max_retries,
            "heartbeat_grace_s": float(heartbeat_grace_s),
            "pricing": pricing_obj.to_dict(),
            "resources": resources_obj,
            "stop_when": [c.to_spec() for c in criteria],
            "utility": utility.to_dict() if utility else None,
            "artifact_root": str(artifact_root),
            "keep_checkpoints": keep_checkpoints,
            "constraints": constraints_obj,
        },
    )


class Study:
    """A hyperparameter study stored in a database. Create with :meth:`create`, resume with
    :meth:`load`; many processes and machines may work on one study at once."""

    def __init__(self, storage: Storage, record: StudyRecord) -> None:
        self._storage = storage
        self._record = record
        self.space = Space(record.space)
        self.objectives: dict[str, str] = dict(record.objectives)
        self.strategy: Strategy = make_strategy(record.strategy)
        self.scheduler: Scheduler = make_scheduler(record.scheduler)
        self.scheduler.bind(self.space)
        self.seed = record.seed
        self.max_retries = int(record.settings.get("max_retries", 0))
        self.heartbeat_grace_s = float(record.settings.get("heartbeat_grace_s", 60.0))
        self.pricing: Pricing = Pricing.parse(record.settings.get("pricing"))
        self.resources: dict[str, float] = check_resources(record.settings.get("resources"))
        self.criteria: list[Criterion] = make_criteria(record.settings.get("stop_when"))
        #: Folder of the trials' artifact folders (logs, checkpoints), relative to the working folder.
        self.artifact_root: str = str(record.settings.get("artifact_root", "thrifty_artifacts"))
        #: metric -> (op, bound): a trial is feasible when each holds (see ``Study.create``).
        self.constraints: dict[str, tuple[str, float]] = {
            k: (str(v[0]), float(v[1])) for k, v in (record.settings.get("constraints") or {}).items()
        }
        self._bind_basic_context()
        keep = record.settings.get("keep_checkpoints", 3)
        #: Checkpoints of finished trials are deleted except those of the best ``keep_checkpoints``
        #: (``None``: keep all). Paused, running and pending trials always keep theirs.
        self.keep_checkpoints: int | None = None if keep is None else int(keep)
        utility = record.settings.get("utility")
        self.utility: CostUtility | None = CostUtility(**utility) if utility else None
        self._cost_model: tuple[int, CostModel, float] | None = None
        self._default_metric = next(iter(self.objectives)) if len(self.objectives) == 1 else "value"
        self._worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._last_reap = 0.0
        self._active: dict[int, TrialHandle] = {}
        self._active_lock = threading.Lock()
        self._heartbeat: _Heartbeat | None = None
        self._prepared = False
        self._log = TrialLog()  # settled trials read so far: history() reads only what changed since
        #: Whether Study.create inserted this study (False: loaded, e.g. by ``load_if_exists``).
        self._created = False

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        space: Space | Mapping[str, Any],
        objective: str | Mapping[str, str] = "max",
        *,
        name: str | None = None,
        storage: str | Storage = DEFAULT_STORAGE,
        strategy: str | Mapping[str, Any] | Strategy = "auto",
        scheduler: str | Mapping[str, Any] | Scheduler | None = "auto",
        seed: int = 0,
        budget: Budget | Mapping[str, Any] | None = None,
        max_retries: int = 0,
        heartbeat_grace_s: float = 60.0,
        pricing: Pricing | str | Mapping[str, Any] | None = None,
        resources: Mapping[str, float] | None = None,
        stop_when: Sequence[Criterion | Mapping[str, Any]] | Criterion | None = None,
        artifact_root: str = "thrifty_artifacts",
        keep_checkpoints: int | None = 3,
        constraints: Mapping[str, Sequence[Any]] | None = None,
        warm_start: Sequence[str] | None = None,
        load_if_exists: bool = False,
    ) -> Study:
        """Create a study (every argument is validated before anything is written).

        ``objective``: ``"max"``/``"min"`` (one metric called ``"value"``), ``{metric: direction}``
        (several metrics make a multi-objective study; ``"cost_usd"`` and ``"elapsed_s"`` are filled
        in by thrifty from the trial's ledger if the objective does not return them), or a
        :class:`~thrifty.objectives.CostUtility` (one number, e.g. accuracy squared per dollar).
        ``max_retries``: how many times the params of a trial whose worker died are re-run.
        ``heartbeat_grace_s``: seconds without a heartbeat after which a RUNNING trial's worker is
        presumed dead. ``pricing``: how trial time becomes dollars (see
        :class:`~thrifty.cost.pricing.Pricing`; ``None``: a trial costs what the objective reports).
        ``resources``: what each trial holds and pays for, e.g. ``{"gpu": 1, "cpu": 4}``.
        ``stop_when``: completion criteria (:mod:`thrifty.criteria`).
        ``keep_checkpoints``: after each trial finishes, delete the checkpoint folders of finished
            trials except the best k (``None``: keep all; see :mod:`thrifty.checkpoints`).
        ``constraints``: ``{metric: ("<=" | ">=", bound)}``: a completed trial whose reported
            metric breaks a bound is infeasible (never the best; strategies model it).
        ``warm_start``: names of earlier studies in the same storage; see :mod:`thrifty.warm_start`.
        ``load_if_exists``: if a study of this name exists, load it (the other arguments are then
            ignored, once checked). Atomic: of several processes creating one study at once, one
            creates it and the others load it.
        ``strategy``: which configurations to try (default ``"auto"``:
            :mod:`thrifty.strategies.auto`). ``scheduler``: how long each trial runs, for trials
            that report steps (default ``"auto"``: ASHA whose rungs are found from the
            history and judge only while the completed trials show their ranks predict the end,
            :mod:`thrifty.schedulers.auto`; ``None`` or ``"none"``: every trial runs to its end).
        """
        name = _default_name() if name is None else _check_name(name)
        wanted = normalize_settings(
            space, objective, strategy=strategy, scheduler=scheduler, seed=seed, budget=budget,
            max_retries=max_retries, heartbeat_grace_s=heartbeat_grace_s, pricing=pricing, resources=resources,
            stop_when=stop_when, artifact_root=artifact_root, keep_checkpoints=keep_checkpoints,
            constraints=constraints,
        )
        space, objectives, strat, sched = wanted.space, wanted.objectives, wanted.strategy, wanted.scheduler
        store = open_storage(storage)
        if load_if_exists:
            from thrifty.errors import StudyNotFound

            try:
                return cls(store, store.load_study(name))
            except StudyNotFound:
                pass
        sources = []
        if warm_start:
            from thrifty.warm_start import load_sources

            sources = load_sources(store, warm_start, objectives)
        spec: dict[str, Any] = dict(
            name=name,
            space=space.to_dict(),
            objectives=objectives,
            strategy=strat.to_spec(),
            scheduler=sched.to_spec(),
            seed=wanted.seed,
            budget=wanted.budget.to_dict(),
            settings=wanted.settings,
        )
        # Atomic with load_if_exists: another process may be creating it right now.
        record, created = store.create_study(**spec, load_if_exists=load_if_exists)
        if not created:
            return cls(store, record)
        study = cls(store, record)
        study._created = True
        # Keep the caller's instances (they may carry state the spec cannot, e.g. callbacks).
        study.strategy, study.scheduler = strat, sched
        sched.bind(study.space)
        study._bind_basic_context()
        if sources:
            from thrifty.warm_start import seed

            seed(study, sources)
        return study

    @classmethod
    def load(cls, name: str, storage: str | Storage = DEFAULT_STORAGE) -> Study:
        """Open an existing study; it continues where it stopped."""
        store = open_storage(storage)
        return cls(store, store.load_study(_check_name(name)))

    # -- properties ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._record.name

    @property
    def storage_url(self) -> str:
        return self._storage.url

    @property
    def storage(self) -> Storage:
        return self._storage

    @property
    def budget(self) -> Budget:
        """The study's budget as stored now (another process may have changed it)."""
        return Budget.from_dict(self._storage.study_status(self._record.id).budget)

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def cost_usd(self) -> float:
        """Dollars the study has spent so far (its ledger), all trials and states included."""
        return self._storage.study_status(self._record.id).spent_usd

    @property
    def trials(self) -> list[Trial]:
        """Every trial, in number order, with its measurements."""
        return self.get_trials()

    def get_trials(
        self, states: Sequence[TrialState | str] | None = None, *, with_measurements: bool = True,
        offset: int = 0, limit: int | None = None,
    ) -> list[Trial]:
        parsed = [TrialState.parse(s) for s in states] if states else None
        return self._wrap_all(self._storage.get_trials(self._record.id, parsed, with_measurements, offset, limit))

    def counts(self) -> dict[TrialState, int]:
        """How many trials are in each state."""
        return self._storage.count_trials(self._record.id)

    def _wrap(self, trial: Trial) -> Trial:
        if len(self.objectives) == 1 and trial.objective is None:
            return dataclasses.replace(trial, objective=self._default_metric)
        return trial

    def _wrap_all(self, trials: list[Trial]) -> list[Trial]:
        return [self._wrap(t) for t in trials]

    # -- best and Pareto front ----------------------------------------------------------------
    def ranked(self) -> list[Trial]:
        """The eligible trials, best first, by :func:`thrifty.ranking.rank`: COMPLETED, finite
        objective values, every constraint met; ordered by the objective (several: by Pareto
        front), ties by the lower trial number. Without measurements."""
        completed = self._storage.get_trials(self._record.id, [TrialState.COMPLETED], with_measurements=False)
        return self._wrap_all(rank(completed, self.objectives, self.constraints))

    @property
    def best(self) -> Trial:
        """The first trial of :meth:`ranked`: the COMPLETED trial with the best finite objective
        value that meets the ``constraints`` (ties: the earliest), with its measurements.

        Stopped, failed and infeasible trials never count, nor do NaN or infinite values.
        """
        if self.is_multi_objective:
            raise ThriftyError(
                f"study {self.name!r} has {len(self.objectives)} objectives; use study.pareto_front()"
            )
        ranked = self.ranked()
        if not ranked:
            raise ThriftyError(f"study {self.name!r} has no completed trial with a finite objective value yet")
        return self._wrap(self._storage.get_trial(ranked[0].id))  # type: ignore[arg-type]

    def pareto_front(self) -> list[Trial]:
        """The feasible COMPLETED trials with finite values that no other such trial dominates on
        every objective (the first front of :func:`thrifty.ranking.ranked_fronts`), in number order."""
        completed = self._storage.get_trials(self._record.id, [TrialState.COMPLETED], with_measurements=False)
        first = next(iter(ranked_fronts(completed, self.objectives, self.constraints)), [])
        return self._wrap_all(first)

    # -- ask / tell ---------------------------------------------------------------------------
    def _retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_retries=self.max_retries, heartbeat_grace_s=self.heartbeat_grace_s)

    def reap(self, force: bool = False) -> list[int]:
        """Fail (and, if allowed, re-enqueue) RUNNING trials whose worker stopped sending
        heartbeats. ``ask`` does this every few seconds; returns the failed trial numbers."""
        now = time.time()
        if not force and now - self._last_reap < min(self.heartbeat_grace_s / 4, 5.0):
            return []
        self._last_reap = now
        return self._storage.reap(self._record.id, self._retry_policy(), now)

    def ask(self, *, _run: tuple[str, int | None] | None = None) -> TrialHandle:
        """Start a trial: a paused one the scheduler resumes, the oldest enqueued one, or a new one
        from the strategy.

        Raises :class:`~thrifty.errors.StudyExhausted` if a budget is used up, the next trial's
        forecast cost exceeds the dollars left, a completion criterion holds, or the strategy has
        nothing left to propose. Nothing is written then.

        Two storage transactions: a snapshot of the study, then one conditional start of what was
        decided from it (the reap, when due, rides in the start). When another worker changed
        the study in between (the start answers "conflict"), a new snapshot is read and the
        decision made again, up to :data:`MAX_START_ATTEMPTS` times with a short random pause
        after each conflict; then :class:`~thrifty.errors.StorageError` says so.
        """
        run_tag, run_max = _run if _run is not None else (None, None)
        limits = AskLimits(run_tag=run_tag, run_max_started=run_max)
        if not self._prepared:
            self.strategy.prepare(self.space)
            self._prepared = True
        conflict = ""
        for attempt in range(MAX_START_ATTEMPTS):
            now = time.time()
            reap_due = now - self._last_reap >= min(self.heartbeat_grace_s / 4, 5.0)
            snapshot = self._storage.snapshot(self._record.id, since=self._log.seen, run_tag=run_tag)
            history = self._log.read(self._wrap_all(list(snapshot.trials)))
            request = self._decide(snapshot, history, limits)
            result = self._storage.start(
                self._record.id, request, worker_id=self._worker_id, now=time.time(), limits=limits,
                resources=self.resources, reap=self._retry_policy() if reap_due else None,
            )
            if reap_due:
                self._last_reap = now
            if isinstance(result, Started):
                return self._hand_out(result.trial)
            conflict = result.reason
            time.sleep(random.uniform(0.0, min(0.001 * 2 ** attempt, 0.05)))
        raise StorageError(
            f"study {self.name!r}: no trial could be started in {MAX_START_ATTEMPTS} attempts: each time another "
            f"worker had changed the study since this one read it (last: {conflict}); ask again"
        )

    def _decide(self, snapshot: Snapshot, history: History, limits: AskLimits) -> StartRequest:
        """What to start, decided from one snapshot (and the seed) alone, outside any lock: the
        completion criteria, the scheduler's plan (a paused trial to resume first), the budget and
        the caller's ``limits``, then the oldest enqueued trial, else the strategy's proposal; both
        pass the soft budget check. Raises :class:`~thrifty.errors.StudyExhausted` when nothing
        may start."""
        # The history in number order, built only when something reads it (a cheap strategy
        # without a scheduler plan, criteria or a dollar budget does not).
        if self.criteria:
            self._check_criteria([t for t in history if t.is_finished])
        plan = None
        if self.scheduler.plans_asks:
            plan = self.scheduler.plan(history.trials(), self.objectives)
            paused = {t.number for t in history if t.state is TrialState.PAUSED}
            for number in plan.resume:
                if number in paused:
                    return StartRequest.resume(number)
        status = snapshot.status
        if status.budget.usd is not None:
            self._refresh_cost_model(snapshot, history)
        check_start("new", status.budget, status.usage(time.time()), limits, snapshot.run_started)
        pending = snapshot.pending
        if pending is not None:
            self._admit(pending.params, pending.resources or self.resources, status)
            return StartRequest.claim(pending.number)
        if plan is not None and not plan.new:
            raise StudyExhausted(f"the scheduler starts no new trial: {plan.why}", "scheduler")
        number = status.next_number
        if self.strategy.slow:
            self.strategy.bind(self._strategy_context(snapshot, history))
        seen = history.trials() if (self.strategy.slow or self.strategy.needs_history) else []
        params = self.strategy.propose(self.space, seen, seed=self.seed, number=number, n=1)[0]
        self._admit(params, self.resources, status)
        # A model's proposal holds at any number, a cheap strategy's only at its own (see StartRequest).
        return StartRequest.new(params, number, exact=not self.strategy.slow)

    def _bind_basic_context(self) -> None:
        """Give the strategy the objectives and constraints (the cost model comes per proposal)."""
        from thrifty.strategies.base import Context

        self.strategy.bind(Context(objectives=dict(self.objectives), constraints=dict(self.constraints),
                                   budget_trials=Budget.from_dict(self._record.budget).trials))

    def _strategy_context(self, snapshot: Snapshot, trials: Sequence[Trial]) -> Any:
        """The :class:`~thrifty.strategies.base.Context` of a proposal made from ``snapshot``."""
        from thrifty.strategies.base import Context

        budget = snapshot.status.budget
        model, resource = None, 1.0
        if self.strategy.wants_cost_model or budget.usd is not None:
            self._refresh_cost_model(snapshot, trials)
            if self._cost_model is not None and self._cost_model[1].is_fitted:
                model, resource = self._cost_model[1], self._cost_model[2]
        spent = snapshot.status.spent_usd if budget.usd is not None else 0.0
        return Context(objectives=dict(self.objectives), cost_model=model, max_resource=resource,
                       budget_usd=budget.usd, spent_usd=spent, budget_trials=budget.trials,
                       constraints=dict(self.constraints))

    def _hand_out(self, trial: Trial) -> TrialHandle:
        handle = TrialHandle(self, self._wrap(trial))
        with self._active_lock:
            self._active[handle.id] = handle
        self._ensure_heartbeat()
        return handle

    # -- budgets, forecasts and completion criteria -------------------------------------------
    def usage(self) -> Usage:
        """What the study has consumed so far (trials started, dollars, GPU-hours, active wall s)."""
        return self._storage.study_status(self._record.id).usage(time.time())

    @property
    def budget_stop(self) -> BudgetStop | None:
        """If a hard budget stopped the running trials (the circuit breaker): which limit and when
        (seconds since the epoch); ``None`` otherwise or after the budget was changed."""
        return self._storage.study_status(self._record.id).budget_stop

    def _admit(self, params: Mapping[str, Any], resources: Mapping[str, float], status: StudyStatus) -> None:
        """The soft budget check, from the snapshot's ``status``: refuse a trial whose forecast cost
        (the cost model's median dollars for these params at the full resource: as likely to be
        above as below) exceeds the dollars left. ``resources``: what the trial will hold."""
        budget = status.budget
        if budget.usd is None or self._cost_model is None or not self._cost_model[1].is_fitted:
            return
        _, model, resource = self._cost_model
        forecast = model.predict(params, resource).median_usd
        left = budget.usd - status.spent_usd
        if forecast > left * (1 + 1e-9):
            raise StudyExhausted(
                f"the next trial's forecast cost ${forecast:,.4f} exceeds the ${left:,.4f} left of the "
                f"${budget.usd:,.2f} budget (${status.spent_usd:,.4f} spent)",
                "usd",
            )

    def _refresh_cost_model(self, snapshot: Snapshot, trials: Sequence[Trial]) -> None:
        """Refit the cost model on the snapshot's finished ``trials`` when trials have finished
        since the last fit (every new trial up to 50, then every 10% more), outside any transaction."""
        finished = sum(n for st, n in snapshot.counts.items() if st.is_finished)
        if self._cost_model is not None:
            seen = self._cost_model[0]
            if finished == seen or (seen > 50 and finished < seen * 1.1):
                return
        done = [t for t in trials if t.is_finished]
        self._cost_model = (finished, CostModel(self.space).fit(done), self._full_resource(done))

    @staticmethod
    def _full_resource(history: Sequence[Trial]) -> float:
        """The resource a full trial reaches: the largest step of any trial that ran to its end
        (:func:`thrifty.ranking.measured`; 1 if none)."""
        steps = [t.last_step for t in history if measured(t) and t.last_step is not None]
        return float(max(steps)) if steps else 1.0

    def cost_model(self) -> CostModel:
        """A cost model fitted on the study's finished trials (see :mod:`thrifty.cost.forecast`)."""
        history = self._storage.get_trials(self._record.id, [TrialState.COMPLETED, TrialState.STOPPED,
                                                             TrialState.FAILED, TrialState.INFEASIBLE])
        return CostModel(self.space).fit(history)

    def _check_criteria(self, finished: Sequence[Trial] | None = None) -> None:
        """Raise :class:`~thrifty.errors.StudyExhausted` when a completion criterion holds on the
        ``finished`` trials (number order; ``None``: read them from the storage)."""
        metric, direction = next(iter(self.objectives.items()))
        if finished is None:
            finished = [t for t in self._storage.get_trials(self._record.id, with_measurements=False) if t.is_finished]
        judged_trials = [judged(t, self.constraints) for t in finished]  # trials recorded before breakers were marked
        for criterion in self.criteria:
            why = criterion.check(judged_trials, metric, direction)
            if why is not None:
                raise StudyExhausted(f"the study is complete: {why}", "criterion")

    def tell(
        self,
        trial: TrialHandle | Trial | int,
        value: float | Mapping[str, float] | None = None,
        *,
        state: TrialState | str | None = None,
        cost_usd: float = 0.0,
        elapsed_s: float | None = None,
        error: str | None = None,
        reason: str | None = None,
    ) -> Trial:
        """Finish a RUNNING trial.

        With a ``value`` (a number or a mapping of metrics) the trial is COMPLETED, or INFEASIBLE
        if the metrics break one of the study's ``constraints`` (the reason, e.g. ``"constraint
        nnz <= 100 broken: nnz = 140"``, is its ``error``; its metrics and cost are kept). ``state`` may
        be ``"failed"`` (give ``error``), ``"infeasible"`` (give the reason as ``error``) or
        ``"stopped"`` (keeps ``value`` or, if none, the last report; ``reason`` says why, in
        words; the trial's ``stop_kind`` is what stopped it, as the handle was told (the budget,
        the scheduler, a user's request), else USER).
        ``cost_usd`` is what the trial spent since its last report beyond its metered compute;
        ``elapsed_s`` the seconds since then (measured if the trial came from ``ask``). Returns the
        finished trial.
        """
        handle = trial if isinstance(trial, TrialHandle) else None
        trial_id, number = self._resolve(trial)
        check_cost(cost_usd)
        st = TrialState.parse(state) if state is not None else None
        if st is None:
            if value is None:
                if handle is not None and handle.last_metrics is not None:
                    st = TrialState.STOPPED
                else:
                    raise ValidationError(
                        f"tell(trial {number}): give a value (the objective) or a state "
                        "('failed', 'infeasible', 'stopped')"
                    )
            else:
                st = TrialState.COMPLETED
        if not st.is_settled:
            raise ValidationError(f"tell(state={st.value!r}): a trial can only be told a finished state or 'paused'")
        metrics: dict[str, float] | None = None
        if value is not None:
            metrics = check_metrics(value, default_name=self._default_metric)
        elif st in (TrialState.STOPPED, TrialState.PAUSED) and handle is not None and handle.last_metrics is not None:
            metrics = dict(handle.last_metrics)
        if st in (TrialState.FAILED, TrialState.INFEASIBLE):
            if error is None:
                error = "failed" if st is TrialState.FAILED else "infeasible"
        elif error is not None:
            raise ValidationError(f"tell(error=...) is only for failed or infeasible trials, not {st.value}")
        if reason is not None and st not in (TrialState.STOPPED, TrialState.PAUSED):
            raise ValidationError(f"tell(reason=...) is for stopped or paused trials, not {st.value}")
        # The last interval: metered time plus the reported cost.
        if handle is not None:
            charge = handle._charge(elapsed_s, cost_usd)
            elapsed, cost, gpu_s = charge.elapsed_s, charge.cost_usd, charge.gpu_s
            total_cost, total_elapsed = handle.cost_usd + cost, handle._elapsed_s + elapsed
        else:
            charge = Meter(self.pricing, self.resources).charge(0.0 if elapsed_s is None else elapsed_s, cost_usd)
            elapsed, cost, gpu_s = charge.elapsed_s, charge.cost_usd, charge.gpu_s
            before = self._storage.get_trial(trial_id) if (metrics is not None) else None
            total_cost = (before.cost_usd if before else 0.0) + cost
            total_elapsed = (before.elapsed_s if before else 0.0) + elapsed
        if metrics is not None:
            for name, amount in (("cost_usd", total_cost), ("elapsed_s", total_elapsed)):
                if name in self.objectives and name not in metrics:
                    metrics[name] = amount
            if self.utility is not None and (st is TrialState.COMPLETED or self.utility.metric in metrics):
                metrics[self.utility.name] = self.utility.value(metrics, total_cost)
        if st is TrialState.COMPLETED:
            assert metrics is not None
            missing = [k for k in self.objectives if k not in metrics]
            if missing:
                raise ValidationError(
                    f"trial {number} returned {sorted(metrics)!r} but the objective needs {missing!r}; "
                    f"return a mapping with {sorted(self.objectives)!r}"
                )
            error = infeasibility(metrics, self.constraints)
            if error is not None:
                st = TrialState.INFEASIBLE
        # Why it stopped: what the handle was told (a user's words replace only the words), else
        # the user's; None lets the storage keep a reason recorded while it ran (Storage.finish).
        stop = handle.stop if handle is not None else None
        if reason is not None:
            stop = StopReason(StopKind.USER, reason) if stop is None else dataclasses.replace(stop, text=reason)
        if st not in (TrialState.STOPPED, TrialState.PAUSED):
            stop = None
        measurement = None
        if metrics is not None or cost > 0 or elapsed > 0:
            step = handle.last_step if handle is not None else None
            measurement = Measurement(
                step=step, metrics=metrics if (metrics is not None and value is not None) else {},
                cost_usd=cost, elapsed_s=elapsed, gpu_s=gpu_s, timestamp=time.time(),
            )
        finished = self._storage.finish(
            self._record.id, trial_id, st, metrics, measurement, error, time.time(), stop=stop
        )
        if handle is not None:
            handle.finished = True
        with self._active_lock:
            self._active.pop(trial_id, None)
        if st.is_finished and self.keep_checkpoints is not None:
            from thrifty.checkpoints import clean_checkpoints

            clean_checkpoints(self, self.keep_checkpoints)
        return self._wrap(finished)

    def _resolve(self, trial: TrialHandle | Trial | int) -> tuple[int, int]:
        if isinstance(trial, TrialHandle):
            return trial.id, trial.number
        if isinstance(trial, Trial):
            if trial.id is None:
                raise ValidationError("tell: this Trial has no storage id; pass the handle from study.ask()")
            return trial.id, trial.number
        if isinstance(trial, int) and not isinstance(trial, bool):
            for t in self._storage.get_trials(self._record.id, [TrialState.RUNNING], with_measurements=False):
                if t.number == trial:
                    assert t.id is not None
                    return t.id, t.number
            raise TrialNotRunning(f"study {self.name!r} has no RUNNING trial number {trial}")
        raise ValidationError(f"tell: expected a trial from study.ask() or a trial number, got {trial!r}")

    def enqueue(self, params: Mapping[str, Any], *, user_attrs: Mapping[str, Any] | None = None) -> Trial:
        """Add a trial with given params (expert guesses, warm starts); the next ``ask`` runs it."""
        valid = self.space.validate(params)
        return self._wrap(self._storage.enqueue(self._record.id, valid, time.time(), user_attrs))

    def add_trial(
        self, params: Mapping[str, Any], value: float | Mapping[str, float], *,
        user_attrs: Mapping[str, Any] | None = None, infeasible: str | None = None,
    ) -> Trial:
        """Record a COMPLETED trial whose results are known (run elsewhere, by hand, in an earlier
        study): strategies learn from it. It was not run here: it costs nothing in this study and
        counts against no trial budget. It is INFEASIBLE instead if ``infeasible`` gives a reason
        (e.g. it broke a constraint of the study it came from), or if its metrics break one of
        this study's ``constraints`` (with that reason, as in :meth:`tell`)."""
        valid = self.space.validate(params)
        metrics = check_metrics(value, default_name=self._default_metric)
        missing = [k for k in self.objectives if k not in metrics]
        if missing:
            raise ValidationError(f"add_trial: the metrics {sorted(metrics)!r} lack the objective(s) {missing!r}")
        why = infeasible or infeasibility(metrics, self.constraints)
        trial = Trial(number=0, state=TrialState.INFEASIBLE if why else TrialState.COMPLETED, params=valid,
                      metrics=metrics, error=why, user_attrs=dict(user_attrs or {}))
        return self._wrap(self._storage.add_trial(self._record.id, trial, time.time()))

    def reevaluate_top(self, k: int = 3, repeats: int = 2) -> list[Trial]:
        """Enqueue the best ``k`` distinct configurations ``repeats`` more times each (e.g. other
        seeds of a noisy training), tagged ``user_attrs["repeat_of"]``; see :meth:`robust_best`."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValidationError(f"reevaluate_top(k={k!r}): expected an integer >= 1")
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ValidationError(f"reevaluate_top(repeats={repeats!r}): expected an integer >= 1")
        out: list[Trial] = []
        seen: set[str] = set()
        for t in self.ranked():
            key = json.dumps(sorted(t.params.items()), default=str)
            if key in seen:
                continue
            seen.add(key)
            out += [self.enqueue(t.params, user_attrs={"repeat_of": t.number}) for _ in range(repeats)]
            if len(seen) == k:
                break
        return out

    def robust_best(self) -> tuple[dict[str, Any], float, float, int]:
        """The configuration with the best *mean* objective over its evaluations that
        :meth:`ranked` counts (repeats of the same params, see :meth:`reevaluate_top`):
        ``(params, mean, std, n)``. Ties: more evaluations, then the configuration evaluated first."""
        metric, direction = next(iter(self.objectives.items()))
        groups: dict[str, list[Trial]] = {}
        for t in sorted(self.ranked(), key=lambda t: t.number):
            groups.setdefault(json.dumps(sorted(t.params.items()), default=str), []).append(t)
        if not groups:
            raise ThriftyError(f"study {self.name!r} has no completed trial with a finite objective value yet")
        sign = 1.0 if direction == "max" else -1.0
        stats = []
        for ts in groups.values():
            vals = [t.metrics[metric] for t in ts]
            mean = math.fsum(vals) / len(vals)
            std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
            stats.append((sign * mean, len(vals), ts[0].params, mean, std))
        best = max(stats, key=lambda x: (x[0], x[1]))
        return dict(best[2]), best[3], best[4], best[1]

    def stop_trial(self, number: int) -> None:
        """Ask a running trial to stop: its ``should_stop()`` becomes true."""
        trial_id, _ = self._resolve(number)
        self._storage.request_stop(trial_id, "user: stop requested")

    def set_budget(self, budget: Budget | Mapping[str, Any] | None) -> None:
        """Replace the study's budget (raising it lets a finished study continue)."""
        b = Budget.from_dict(budget)
        self._storage.update_study(self._record.id, budget=b.to_dict())

    def lineage(self, number: int) -> list[Trial]:
        """Trial ``number`` and the trials whose checkpoints it continues (population-based
        training's clones), root first. See :func:`thrifty.schedulers.pbt.schedule` for the
        hyperparameter schedule they make up."""
        by_number = {t.number: t for t in self.get_trials()}
        if number not in by_number:
            raise ValidationError(f"study {self.name!r} has no trial number {number}")
        chain = [by_number[number]]
        while chain[-1].parent is not None and chain[-1].parent in by_number and len(chain) <= len(by_number):
            chain.append(by_number[chain[-1].parent])
        return chain[::-1]

    def history(self) -> list[Trial]:
        """Every trial with its measurements, in number order, read incrementally: finished
        trials never change, so only unfinished ones and those finished since the last read are
        fetched."""
        return self._read_history().trials()

    def _read_history(self) -> History:
        """The history as of now, with the delta since the last read (what schedulers keep their
        state from: :mod:`thrifty._history`)."""
        fresh = self._storage.get_trials(self._record.id, finished_after=self._log.seen)
        return self._log.read(self._wrap_all(fresh))

    def _should_stop(self, handle: TrialHandle) -> bool:
        if self._storage.stop_requested(handle.id):
            return True
        if isinstance(self.scheduler, NoStopping):
            return False
        history: Sequence[Trial]
        if self.scheduler.needs_history:
            history = self._read_history()
            current = history.trial(handle.id)
            if current is None:
                return True
        else:
            history, current = [], handle.snapshot()
        verdict = self.scheduler.verdict(current, history, self.objectives,
                                         self._budget_snapshot() if self.scheduler.needs_budget else None)
        said = f"scheduler: {self.scheduler.name}"
        if verdict.decision is Decision.STOP:
            handle.stop = StopReason(StopKind.SCHEDULER, said if verdict.note is None else f"{said}: {verdict.note}")
            successor = self.scheduler.successor(current, history, self.objectives) if verdict.note is None else None
            if successor is not None:
                clone = self._start_successor(current, successor)
                handle.stop = StopReason(StopKind.SCHEDULER, f"{said}: replaced by trial {clone.number} "
                                         f"(clone of trial {successor.parent} at step {successor.start_step:g})")
            return True
        if verdict.decision is Decision.PAUSE:
            handle.stop = StopReason(StopKind.SCHEDULER, f"{said}: paused at step {current.last_step:g}")
            handle.pausing = True
            return True
        return False

    def _budget_snapshot(self) -> BudgetSnapshot:
        """The study's budget as a scheduler's decision reads it (dollars left, trials running)."""
        record = self._storage.study_status(self._record.id)
        usd = Budget.from_dict(record.budget).usd
        left = None if usd is None else usd - record.usage(time.time()).usd
        return BudgetSnapshot(usd_left=left, n_running=record.n_running)

    def _start_successor(self, trial: Trial, successor: Any) -> Trial:
        """Enqueue the trial that continues ``successor.parent``'s checkpoint with new params, and
        copy that checkpoint into the new trial's folder (a snapshot: the parent goes on)."""
        from thrifty.checkpoints import copy_checkpoint

        params = self.space.validate(successor.params)
        clone = self._wrap(self._storage.enqueue(
            self._record.id, params, time.time(), resources=self.resources or None,
            parent=successor.parent, start_step=float(successor.start_step),
        ))
        copy_checkpoint(self, successor.parent, clone.number)
        return clone

    # -- heartbeats ---------------------------------------------------------------------------
    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or not self._heartbeat.is_alive():
            self._heartbeat = _Heartbeat(self)
            self._heartbeat.start()

    def _active_ids(self) -> list[int]:
        with self._active_lock:
            return [tid for tid, h in self._active.items() if not h.finished]

    def close(self) -> None:
        """Stop the heartbeat thread and release database connections."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        self._storage.close()

    # -- running ------------------------------------------------------------------------------
    def optimize(
        self,
        objective: Objective,
        n_trials: int | None = None,
        n_workers: int = 1,
        timeout_s: float | None = None,
        *,
        max_consecutive_failures: int | None = 20,
        progress: bool | None = None,
        gpus: Sequence[int | str] | None = None,
        trial_timeout_s: float | None = None,
        stop_grace_s: float = 10.0,
        max_worker_deaths: int | None = None,
    ) -> RunResult:
        """Run ``objective`` on trials until ``n_trials`` have started in this call, the budget or
        the strategy is used up, or ``timeout_s`` seconds have passed (no trial starts after that;
        running ones finish).

        ``n_workers > 1`` runs the trials in that many worker processes (the study's storage must
        be a file or a server). An exception in the objective marks the trial FAILED with its
        traceback and the study goes on; after ``max_consecutive_failures`` failures in a row
        :class:`~thrifty.errors.TooManyFailures` is raised. Ctrl-C or SIGTERM stops every worker at
        once and fails their running trials ("interrupted by SIGTERM", re-enqueued if ``max_retries``
        allows), then raises :class:`~thrifty.errors.StopSignal`: nothing is left RUNNING.

        ``trial_timeout_s``: a trial still running after that many seconds is failed ("timeout
        after N s", re-enqueued if retries are left) and its worker process ended and replaced;
        trials then always run in worker processes. ``timeout_s``: no trial starts after it, and
        trials still running ``stop_grace_s`` seconds later are ended, so ``optimize`` returns
        within ``timeout_s + stop_grace_s`` plus a few seconds. ``max_worker_deaths``: worker
        processes that die are replaced with a growing back-off; after this many deaths in a row
        with no trial finished (default: twice the workers, at least 5)
        :class:`~thrifty.errors.WorkersKeepDying` says why. The rules are in
        :mod:`thrifty.runners.local`.

        When the study's ``resources`` ask for GPUs or CPU cores, each worker process gets its own
        (``CUDA_VISIBLE_DEVICES``, CPU affinity) and no more workers run than the machine has room
        for; ``gpus`` lists the GPU ids to hand out (default: the visible ones).

        Returns a :class:`~thrifty.runners.local.RunResult`: why it ended (which limit, with the
        numbers), the study's spend and its best trial.
        """
        from thrifty.runners.local import run_optimize

        return run_optimize(self, objective, n_trials, n_workers, timeout_s, max_consecutive_failures, progress, gpus,
                            trial_timeout_s=trial_timeout_s, stop_grace_s=stop_grace_s,
                            max_worker_deaths=max_worker_deaths)

    def _run_trial(self, objective: Objective, handle: TrialHandle) -> tuple[TrialState, str | None]:
        """Run one trial in this process and record its outcome. Returns (state, error)."""
        try:
            result = objective(handle)
        except TrialNotRunning:
            return TrialState.FAILED, "the trial was finished elsewhere (its worker was presumed dead)"
        except TrialFailed as exc:
            self._finish_quietly(handle, TrialState.FAILED, str(exc))
            return TrialState.FAILED, str(exc)
        except TrialInfeasible as exc:
            self._finish_quietly(handle, TrialState.INFEASIBLE, str(exc))
            return TrialState.INFEASIBLE, str(exc)
        except TrialStopped as exc:
            try:
                return self.tell(handle, state=TrialState.STOPPED).state, None  # handle.stop says why
            except TrialNotRunning:
                return TrialState.STOPPED, None
        except KeyboardInterrupt:
            raise  # the runner fails the trial with the true reason (SIGINT, SIGTERM, a time limit)
        except Exception:  # noqa: BLE001 - failures are data
            tb = traceback.format_exc()
            self._finish_quietly(handle, TrialState.FAILED, tb)
            return TrialState.FAILED, tb
        if handle.finished:
            return TrialState.COMPLETED, None
        try:
            if result is None:
                if handle.last_metrics is None:
                    self._finish_quietly(
                        handle, TrialState.FAILED, "the objective returned None without reporting anything; "
                        "return the objective value (or report before stopping)"
                    )
                    return TrialState.FAILED, "returned None"
                if handle.pausing:
                    return self.tell(handle, state=TrialState.PAUSED).state, None
                return self.tell(handle, state=TrialState.STOPPED).state, None
            return self.tell(handle, result).state, None
        except ValidationError as exc:
            self._finish_quietly(handle, TrialState.FAILED, f"invalid result {result!r}: {exc}")
            return TrialState.FAILED, str(exc)
        except TrialNotRunning as exc:
            return TrialState.FAILED, str(exc)

    def _finish_quietly(self, handle: TrialHandle, state: TrialState, error: str) -> None:
        try:
            self.tell(handle, state=state, error=error)
        except TrialNotRunning:
            pass

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, storage={self.storage_url!r}, objectives={self.objectives!r})"


class _Heartbeat(threading.Thread):
    """Refreshes the heartbeat of this process's running trials so others know they are alive."""

    def __init__(self, study: Study) -> None:
        super().__init__(name=f"thrifty-heartbeat-{study.name}", daemon=True)
        self._study = study
        self._stop_event = threading.Event()
        self.interval_s = max(min(study.heartbeat_grace_s / 4, 10.0), 0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            ids = self._study._active_ids()
            if not ids:
                continue
            try:
                self._study._storage.heartbeat(ids, time.time())
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next interval
                pass


def _check_constraints(constraints: Mapping[str, Sequence[Any]] | None) -> dict[str, list[Any]]:
    """Validate ``{metric: (op, bound)}`` with op ``"<="`` or ``">="`` and a finite bound."""
    if constraints is None:
        return {}
    if not isinstance(constraints, Mapping):
        raise ValidationError(f"constraints={constraints!r}: expected {{metric: ('<=' or '>=', bound)}}")
    out: dict[str, list[Any]] = {}
    for metric, spec in constraints.items():
        if not isinstance(metric, str) or not metric:
            raise ValidationError(f"constraints: metric names must be non-empty strings, got {metric!r}")
        if isinstance(spec, (str, bytes)) or not isinstance(spec, Sequence) or len(spec) != 2:
            raise ValidationError(f"constraints[{metric!r}]={spec!r}: expected (op, bound), e.g. ('<=', 100)")
        op, bound = spec
        if op not in ("<=", ">="):
            raise ValidationError(f"constraints[{metric!r}]: op {op!r} is not '<=' or '>='")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise ValidationError(f"constraints[{metric!r}]: bound {bound!r} is not a finite number")
        out[metric] = [op, float(bound)]
    return out


__all__ = ["Study", "StudyExhausted", "is_feasible", "parse_objectives"]
