"""The :class:`Study` facade: the one object users hold.

It validates and delegates: settings (:mod:`._settings`), create/load (:mod:`._create`), the ask
flow (:mod:`._ask`), tell (:mod:`._tell`), the scheduler's decisions (:mod:`._decisions`, through
the handles' host :mod:`._host`), heartbeats and the reaper (:mod:`._heartbeat`), the cost model
and the soft budget admission (:mod:`._cost`), repeated evaluations (:mod:`._repeats`) and PBT
lineages (:mod:`._lineage`). Rankings come from :mod:`thrifty.ranking`; trials run in
:mod:`thrifty.runners`. Every time the study reads comes from its clock (:mod:`thrifty.clock`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from thrifty.checkpoints import clean_checkpoints
from thrifty.clock import Clock, check_clock
from thrifty.cost.budget import Budget, BudgetStop, Usage
from thrifty.cost.pricing import Pricing
from thrifty.criteria import Criterion
from thrifty.errors import SpaceError, ThriftyError, ValidationError
from thrifty.handle import TrialHandle
from thrifty.history import History
from thrifty.objectives import CostUtility
from thrifty.ranking import infeasibility, rank, ranked_fronts
from thrifty.schedulers import Scheduler
from thrifty.space import Space
from thrifty.storage import DEFAULT_STORAGE, AskLimits, Storage, StudyRecord, open_storage
from thrifty.strategies import Strategy
from thrifty.study._ask import Asker, check_criteria
from thrifty.study._cost import CostGate
from thrifty.study._create import created_settings, find_study, insert_study
from thrifty.study._heartbeat import Heartbeats
from thrifty.study._host import HandleHost
from thrifty.study._lineage import lineage
from thrifty.study._repeats import reevaluate_top, robust_best
from thrifty.study._settings import StudySettings, check_name, default_name, normalize_settings
from thrifty.study._state import StudyState, new_worker_id
from thrifty.study._tell import resolve, tell
from thrifty.trial import Trial, TrialState, check_metrics
from thrifty.usage import ResourceUsage

Objective = Callable[[TrialHandle], Any]

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.cost.forecast import CostModel
    from thrifty.pipelines import Pipeline
    from thrifty.runners.local import RunResult


class Study:
    """A hyperparameter study stored in a database. Create with :meth:`create`, resume with
    :meth:`load`; many processes and machines may work on one study at once."""

    def __init__(self, storage: Storage, record: StudyRecord, *, settings: StudySettings | None = None,
                 worker_id: str | None = None, clock: Clock | None = None, pipeline: Pipeline | None = None) -> None:
        """A study object over ``record`` (as loaded from ``storage``). ``settings``: the record's
        (default: read back from it). ``worker_id``: the id its trials start under (default:
        ``host:pid:random``, new for each object). ``clock``: see :meth:`create`. ``pipeline``:
        the pipeline a pipeline study runs (see :meth:`load`)."""
        self._storage = storage
        self._record = record
        state = StudyState(storage, record, settings or StudySettings.of_record(record), worker_id or new_worker_id(),
                           clock=check_clock(clock))
        self._state = state
        state.settings.scheduler.bind(state.settings.space)
        self._heartbeats = Heartbeats(state)
        self._cost = CostGate(state)
        self._asker = Asker(state, self._cost, self._heartbeats)
        self._host = HandleHost(self, state, self._heartbeats)
        state.settings.strategy.bind(self._cost.basic_context())
        #: Whether Study.create inserted this study (False: loaded, e.g. by ``load_if_exists``).
        self._created = False
        self._pipeline = _check_pipeline(state.settings, pipeline)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        space: Space | Mapping[str, Any] | None = None,
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
        clock: Clock | None = None,
        pipeline: Pipeline | None = None,
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
        ``clock``: where this study object reads the time (metered intervals, timestamps,
            heartbeats, active wall time); ``None``: the system clock. A
            :class:`~thrifty.clock.ManualClock` makes time pass only when advanced (tests,
            simulations); it is not stored with the study.
        ``pipeline``: a :class:`~thrifty.pipelines.Pipeline` instead of ``space``: the study's space
            is the union of its stages' spaces, its objective is the pipeline (``optimize()`` needs
            no objective), and stage outputs are memoised (:mod:`thrifty.pipelines`).
        """
        name = default_name() if name is None else check_name(name)
        clock = check_clock(clock)
        space = _space_of(space, pipeline)
        wanted = normalize_settings(
            space, objective, strategy=strategy, scheduler=scheduler, seed=seed, budget=budget,
            max_retries=max_retries, heartbeat_grace_s=heartbeat_grace_s, pricing=pricing, resources=resources,
            stop_when=stop_when, artifact_root=artifact_root, keep_checkpoints=keep_checkpoints,
            constraints=constraints, pipeline=pipeline.shape if pipeline is not None else None,
        )
        store = open_storage(storage)
        existing = find_study(store, name) if load_if_exists else None
        if existing is not None:
            return cls(store, existing, clock=clock, pipeline=pipeline)
        sources = []
        if warm_start:
            from thrifty.warm_start import load_sources

            sources = load_sources(warm_start, wanted.objectives, lambda source: cls.load(source, storage=store))
        record, created = insert_study(store, name, wanted, load_if_exists)
        if not created:
            return cls(store, record, clock=clock, pipeline=pipeline)
        study = cls(store, record, settings=created_settings(record, wanted), clock=clock, pipeline=pipeline)
        study._created = True
        if sources:
            from thrifty.warm_start import seed as seed_from

            seed_from(study, sources)
        return study

    @classmethod
    def load(cls, name: str, storage: str | Storage = DEFAULT_STORAGE, *, worker_id: str | None = None,
             clock: Clock | None = None, pipeline: Pipeline | None = None) -> Study:
        """Open an existing study; it continues where it stopped. ``worker_id``: the id its trials
        start under (``optimize``'s worker processes pass theirs; default: a new one). ``clock``:
        as in :meth:`create` (default: the system clock). ``pipeline``: a pipeline study's
        :class:`~thrifty.pipelines.Pipeline` (code is not stored), so that ``optimize()`` can run
        it; its stages and their parameters must be the stored ones (versions may have changed)."""
        clock = check_clock(clock)
        store = open_storage(storage)
        return cls(store, store.load_study(check_name(name)), worker_id=worker_id, clock=clock, pipeline=pipeline)

    # -- properties ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._record.name

    @property
    def id(self) -> int:
        """The study's id in its storage."""
        return self._record.id

    @property
    def storage_url(self) -> str:
        return self._storage.url

    @property
    def storage(self) -> Storage:
        return self._storage

    @property
    def worker_id(self) -> str:
        """The id the trials this object starts are recorded under (``Trial.worker_id``)."""
        return self._state.worker_id

    @property
    def clock(self) -> Clock:
        """Where this study object reads the time (:mod:`thrifty.clock`)."""
        return self._state.clock

    @property
    def created(self) -> bool:
        """Whether :meth:`create` inserted this study (``False``: it was loaded)."""
        return self._created

    @property
    def settings(self) -> StudySettings:
        """The study's settings as this object loaded them (validated, frozen)."""
        return self._state.settings

    @property
    def pipeline(self) -> Pipeline | None:
        """The pipeline this object runs (given to :meth:`create` or :meth:`load`), else ``None``."""
        return self._pipeline

    @property
    def space(self) -> Space:
        """The search space."""
        return self.settings.space

    @property
    def objectives(self) -> Mapping[str, str]:
        """metric -> 'max' or 'min'."""
        return self.settings.objectives

    @property
    def strategy(self) -> Strategy:
        """Which configurations to try (replaceable: the next ask proposes with the new one)."""
        return self.settings.strategy

    @strategy.setter
    def strategy(self, strategy: Strategy) -> None:
        self._state.settings = dataclasses.replace(self._state.settings, strategy=strategy)

    @property
    def scheduler(self) -> Scheduler:
        """How long each trial runs (replaceable: decisions from now on are the new one's)."""
        return self.settings.scheduler

    @scheduler.setter
    def scheduler(self, scheduler: Scheduler) -> None:
        self._state.settings = dataclasses.replace(self._state.settings, scheduler=scheduler)

    @property
    def seed(self) -> int:
        """The seed every proposal derives from."""
        return self.settings.seed

    @property
    def max_retries(self) -> int:
        """Re-runs of a trial whose worker died."""
        return self.settings.max_retries

    @property
    def heartbeat_grace_s(self) -> float:
        """Seconds without a heartbeat before a RUNNING trial's worker is presumed dead."""
        return self.settings.heartbeat_grace_s

    @property
    def pricing(self) -> Pricing:
        """How trial seconds become dollars."""
        return self.settings.pricing

    @property
    def resources(self) -> Mapping[str, float]:
        """What each trial holds and pays for."""
        return self.settings.resources

    @property
    def criteria(self) -> list[Criterion]:
        """The completion criteria."""
        return list(self.settings.criteria)

    @property
    def artifact_root(self) -> str:
        """Folder of the trials' artifact folders (logs, checkpoints), relative to the working folder."""
        return self.settings.artifact_root

    @property
    def constraints(self) -> Mapping[str, tuple[str, float]]:
        """metric -> (op, bound): a trial is feasible when each holds (see ``create``)."""
        return self.settings.constraints

    @property
    def keep_checkpoints(self) -> int | None:
        """Checkpoints of finished trials are deleted except those of the best k (``None``: all)."""
        return self.settings.keep_checkpoints

    @property
    def utility(self) -> CostUtility | None:
        """The :class:`~thrifty.objectives.CostUtility` the study maximises, or ``None``."""
        return self.settings.utility

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
        return self._state.trials(parsed, with_measurements=with_measurements, offset=offset, limit=limit)

    def counts(self) -> dict[TrialState, int]:
        """How many trials are in each state."""
        return self._storage.count_trials(self._record.id)

    def started_in_run(self, run_tag: str) -> int:
        """Trials started under ``run_tag`` (one ``optimize`` call, see :class:`AskLimits`); a
        retried trial counts once."""
        return self._storage.count_run(self._record.id, run_tag)

    def history(self, *, with_measurements: bool = True) -> list[Trial]:
        """Every trial in number order, read incrementally: finished trials never change, so only
        unfinished ones and those finished since the last read are fetched. ``with_measurements=False``:
        without the trials' reports (``Trial.measurements`` empty; much less to read on a large
        study), from a log of its own."""
        if not with_measurements:
            return self._state.read_light_history().trials()
        return self.read_history().trials()

    def read_history(self) -> History:
        """:meth:`history` as the schedulers read it: a sequence of trials that also carries the
        delta since this object's previous read (see :mod:`thrifty.history`)."""
        return self._state.read_history()

    # -- best and Pareto front ----------------------------------------------------------------
    def ranked(self) -> list[Trial]:
        """The eligible trials, best first, by :func:`thrifty.ranking.rank`: COMPLETED, finite
        objective values, every constraint met; ordered by the objective (several: by Pareto
        front), ties by the lower trial number. Without measurements."""
        completed = self._storage.get_trials(self._record.id, [TrialState.COMPLETED], with_measurements=False)
        return self._state.label_all(rank(completed, self.objectives, self.constraints))

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
        return self._state.trial(ranked[0].id)  # type: ignore[arg-type]

    def pareto_front(self) -> list[Trial]:
        """The feasible COMPLETED trials with finite values that no other such trial dominates on
        every objective (the first front of :func:`thrifty.ranking.ranked_fronts`), in number order."""
        completed = self._storage.get_trials(self._record.id, [TrialState.COMPLETED], with_measurements=False)
        first = next(iter(ranked_fronts(completed, self.objectives, self.constraints)), [])
        return self._state.label_all(first)

    # -- ask / tell ---------------------------------------------------------------------------
    def reap(self, force: bool = False, *, worker_id: str | None = None, reason: str | None = None) -> list[int]:
        """Fail (and, if allowed, re-enqueue) RUNNING trials whose worker stopped sending
        heartbeats. ``ask`` does this every few seconds (``force``: now). With ``worker_id``, fail
        every RUNNING trial of that worker at once, whatever its heartbeat (the worker is known dead
        or being stopped; ``reason`` says why). Returns the failed trial numbers."""
        return self._heartbeats.reap(force, worker_id, reason)

    def ask(self, *, limits: AskLimits | None = None, keep_alive: bool = True) -> TrialHandle:
        """Start a trial: the oldest enqueued one, or a new one from the strategy.

        ``limits``: a run's own trial limit (``optimize`` passes its run tag and ``n_trials``).
        ``keep_alive=False``: this object does not keep the trial's heartbeat (as after
        :meth:`release`, without starting the heartbeat thread): whoever runs it does.
        Raises :class:`~thrifty.errors.StudyExhausted` if a budget is used up, the next trial's
        forecast cost exceeds the dollars left, a completion criterion holds, or the strategy has
        nothing left to propose. Nothing is written then.
        """
        return self._host.hand_out(self._asker.ask(limits or AskLimits()), keep_alive)

    def attach(self, number: int) -> TrialHandle:
        """The handle of RUNNING trial ``number``, for a process that goes on with a trial started
        elsewhere or earlier (the HTTP service after a restart, :mod:`thrifty.server.service`).
        Its heartbeat is the caller's, as after :meth:`release`. Its next interval is measured from
        now (pass ``elapsed_s`` to ``report`` to charge the time before). Raises
        :class:`~thrifty.errors.TrialNotRunning` if the trial is not RUNNING."""
        trial_id, _ = resolve(self._state, number)
        return self._host.adopt(self._state.trial(trial_id))

    def release(self, handle: TrialHandle) -> None:
        """Stop keeping ``handle``'s heartbeat from this object: whoever runs the trial now (a
        remote client) keeps it alive through :meth:`heartbeat` or its reports, or the reaper fails
        it after ``heartbeat_grace_s`` seconds without (re-enqueued while ``max_retries`` allows).
        The heartbeat thread stops when this object keeps no trial alive any more."""
        self._heartbeats.untrack(handle.id)
        if not self._heartbeats.active_ids():
            self._heartbeats.stop()

    def heartbeat(self, handles: Sequence[TrialHandle]) -> None:
        """Record now (the study's clock) as the heartbeat of ``handles`` (RUNNING trials)."""
        if handles:
            self._storage.heartbeat([h.id for h in handles], self.clock.time())

    def check_criteria(self) -> None:
        """Raise :class:`~thrifty.errors.StudyExhausted` (reason ``"criterion"``) if one of the
        study's completion criteria holds now."""
        check_criteria(self._state)

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
        usage: ResourceUsage | None = None,
    ) -> Trial:
        """Finish a RUNNING trial.

        With a ``value`` (a number or a mapping of metrics) the trial is COMPLETED, or INFEASIBLE
        if the metrics break one of the study's ``constraints`` (the reason, e.g. ``"constraint
        nnz <= 100 broken: nnz = 140"``, is its ``error``; its metrics and cost are kept). ``state`` may
        be ``"failed"`` (give ``error``), ``"infeasible"`` (give the reason as ``error``) or
        ``"stopped"`` (keeps ``value`` or, if none, the last report; ``reason`` says why).
        ``cost_usd`` is what the trial spent since its last report beyond its metered compute;
        ``elapsed_s`` the seconds since then (measured if the trial came from ``ask``). ``usage``:
        what the trial's processes used (:class:`~thrifty.usage.ResourceUsage`; ``optimize``'s
        runners sample it), stored with its end; ``None`` keeps what was recorded while it ran.
        Returns the finished trial. After a trial finishes, checkpoints beyond
        ``keep_checkpoints`` are cleaned.
        """
        finished = tell(self._state, self._heartbeats, trial, value, to=state, cost_usd=cost_usd,
                        elapsed_s=elapsed_s, error=error, reason=reason, usage=usage)
        if finished.state.is_finished and self.keep_checkpoints is not None:
            clean_checkpoints(self, self.keep_checkpoints)
        return finished

    def enqueue(self, params: Mapping[str, Any], *, user_attrs: Mapping[str, Any] | None = None) -> Trial:
        """Add a trial with given params (expert guesses, warm starts); the next ``ask`` runs it."""
        valid = self.space.validate(params)
        return self._state.label(self._storage.enqueue(self._record.id, valid, self.clock.time(), user_attrs))

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
        metrics = check_metrics(value, default_name=self.settings.default_metric)
        missing = [k for k in self.objectives if k not in metrics]
        if missing:
            raise ValidationError(f"add_trial: the metrics {sorted(metrics)!r} lack the objective(s) {missing!r}")
        why = infeasible or infeasibility(metrics, self.constraints)
        trial = Trial(number=0, state=TrialState.INFEASIBLE if why else TrialState.COMPLETED, params=valid,
                      metrics=metrics, error=why, user_attrs=dict(user_attrs or {}))
        return self._state.label(self._storage.add_trial(self._record.id, trial, self.clock.time()))

    def add_trials(self, results: Sequence[tuple[Mapping[str, Any], float | Mapping[str, float]]]) -> int:
        """:meth:`add_trial` for many ``(params, value)`` results at once (an import of results
        obtained elsewhere): each checked as there, all checked before any is written, then written
        in one transaction, numbered in the order given. A result that breaks one of this study's
        ``constraints`` is INFEASIBLE. Returns how many were added."""
        records = []
        for i, (params, value) in enumerate(results):
            try:
                valid = self.space.validate(params)
                metrics = check_metrics(value, default_name=self.settings.default_metric)
            except (ValidationError, SpaceError) as exc:  # the same error, saying which result
                raise type(exc)(f"add_trials: result {i}: {exc}") from None
            missing = [k for k in self.objectives if k not in metrics]
            if missing:
                raise ValidationError(f"add_trials: result {i}: the metrics {sorted(metrics)!r} lack the "
                                      f"objective(s) {missing!r}")
            why = infeasibility(metrics, self.constraints)
            records.append(Trial(number=0, state=TrialState.INFEASIBLE if why else TrialState.COMPLETED,
                                 params=valid, metrics=metrics, error=why))
        return self._storage.add_trials(self._record.id, records, self.clock.time())

    def reevaluate_top(self, k: int = 3, repeats: int = 2) -> list[Trial]:
        """Enqueue the best ``k`` distinct configurations ``repeats`` more times each (e.g. other
        seeds of a noisy training), tagged ``user_attrs["repeat_of"]``; see :meth:`robust_best`."""
        return reevaluate_top(self.ranked(), k, repeats, lambda p, n: self.enqueue(p, user_attrs={"repeat_of": n}))

    def robust_best(self) -> tuple[dict[str, Any], float, float, int]:
        """The configuration with the best *mean* objective over its evaluations that
        :meth:`ranked` counts (repeats of the same params, see :meth:`reevaluate_top`):
        ``(params, mean, std, n)``. Ties: more evaluations, then the configuration evaluated first."""
        return robust_best(self.ranked(), self.objectives, self.name)

    def stop_trial(self, number: int) -> None:
        """Ask a running trial to stop: its ``should_stop()`` becomes true."""
        trial_id, _ = resolve(self._state, number)
        self._storage.request_stop(trial_id, "user: stop requested")

    # -- budgets and forecasts ----------------------------------------------------------------
    def usage(self) -> Usage:
        """What the study has consumed so far (trials started, dollars, GPU-hours, active wall s)."""
        return self._storage.study_status(self._record.id).usage(self.clock.time())

    @property
    def budget_stop(self) -> BudgetStop | None:
        """If a hard budget stopped the running trials (the circuit breaker): which limit and when
        (seconds since the epoch); ``None`` otherwise or after the budget was changed."""
        return self._storage.study_status(self._record.id).budget_stop

    def set_budget(self, budget: Budget | Mapping[str, Any] | None) -> None:
        """Replace the study's budget (raising it lets a finished study continue)."""
        b = Budget.from_dict(budget)
        self._storage.update_study(self._record.id, budget=b.to_dict())

    def cost_model(self) -> CostModel:
        """A cost model fitted on the study's finished trials (see :mod:`thrifty.cost.forecast`)."""
        return self._cost.fit()

    def lineage(self, number: int) -> list[Trial]:
        """Trial ``number`` and the trials whose checkpoints it continues (population-based
        training's clones), root first. See :func:`thrifty.schedulers.pbt.schedule` for the
        hyperparameter schedule they make up."""
        return lineage(self.get_trials(), number, self.name)

    def close(self) -> None:
        """Stop the heartbeat thread and release database connections."""
        self._heartbeats.stop()
        self._storage.close()

    # -- running ------------------------------------------------------------------------------
    def optimize(
        self,
        objective: Objective | None = None,
        n_trials: int | None = None,
        n_workers: int = 1,
        timeout_s: float | None = None,
        *,
        max_consecutive_failures: int | None = 20,
        progress: bool | str | None = None,
        gpus: Sequence[int | str] | None = None,
        trial_timeout_s: float | None = None,
        stop_grace_s: float = 10.0,
        max_worker_deaths: int | None = None,
        idle_exit_s: float | None = None,
        backend: str = "local",
        address: str | None = None,
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
        :class:`~thrifty.errors.WorkersKeepDying` says why. ``idle_exit_s``: while nothing may
        start but work may still come (trials running elsewhere may come back as retries), return
        after that many seconds without a trial (reason ``"idle"``; default: wait). The rules are in
        :mod:`thrifty.runners.local`.

        When the study's ``resources`` ask for GPUs or CPU cores, each worker process gets its own
        (``CUDA_VISIBLE_DEVICES``, CPU affinity) and no more workers run than the machine has room
        for; ``gpus`` lists the GPU ids to hand out (default: the visible ones).

        ``progress``: ``True`` a live view in the terminal, ``"lines"`` one line per finished trial
        (for logs and pipes), ``False`` nothing; ``None`` (default): the live view when standard
        output is a terminal, else nothing.

        Returns a :class:`~thrifty.runners.local.RunResult`: why it ended (which limit, with the
        numbers), the study's spend and its best trial.

        A pipeline study's objective is its pipeline: leave ``objective`` out
        (:class:`~thrifty.pipelines.PipelineObjective` runs the stages with the memo cache).

        ``backend``: ``"local"`` (default: this machine, as above) or ``"ray"``: each trial runs as a
        Ray task on the Ray cluster at ``address`` (``"auto"``, ``"HOST:PORT"``, or ``None``: a
        private one on this machine), holding the study's ``resources`` as ``num_cpus``/``num_gpus``;
        the storage must be PostgreSQL, or SQLite when the cluster is this machine. The rules are in
        :mod:`thrifty.runners.ray` (``gpus`` is for the local backend: Ray places GPUs itself).
        """
        from thrifty.runners.local import run_optimize
        from thrifty.runners.ray import check_backend

        check_backend(backend, address)
        if objective is None:
            objective = self._pipeline_objective()
        if backend == "ray":
            if gpus is not None:
                raise ValidationError("gpus= is for backend='local'; with backend='ray' Ray hands out the GPUs "
                                      "(resources={'gpu': ...})")
            from thrifty.runners.ray import run_ray

            return run_ray(self, objective, n_trials, n_workers, timeout_s, max_consecutive_failures, progress,
                           address=address, trial_timeout_s=trial_timeout_s, stop_grace_s=stop_grace_s,
                           max_worker_deaths=max_worker_deaths, idle_exit_s=idle_exit_s)

        return run_optimize(self, objective, n_trials, n_workers, timeout_s, max_consecutive_failures, progress, gpus,
                            trial_timeout_s=trial_timeout_s, stop_grace_s=stop_grace_s,
                            max_worker_deaths=max_worker_deaths, idle_exit_s=idle_exit_s)

    def _pipeline_objective(self) -> Objective:
        if self._pipeline is None:
            if self.settings.pipeline is not None:
                raise ValidationError(f"study {self.name!r} runs a pipeline, and code is not stored: pass it, "
                                      "Study.load(name, pipeline=th.Pipeline([...])), or give optimize an objective")
            raise ValidationError("optimize(objective=None): give the objective, a function taking a trial "
                                  "(only a pipeline study, Study.create(pipeline=...), runs without one)")
        from thrifty.pipelines import PipelineObjective

        return PipelineObjective(self._pipeline)

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, storage={self.storage_url!r}, objectives={self.objectives!r})"


def _space_of(space: Space | Mapping[str, Any] | None, pipeline: Pipeline | None) -> Space | Mapping[str, Any]:
    """The space :meth:`Study.create` validates: ``space``, or the union of ``pipeline``'s stages'."""
    if pipeline is None:
        if space is None:
            raise ValidationError("Study.create: give space= (the search space) or pipeline= (a th.Pipeline)")
        return space
    from thrifty.pipelines import Pipeline

    if not isinstance(pipeline, Pipeline):
        raise ValidationError(f"pipeline={pipeline!r}: expected a th.Pipeline([th.Stage(...), ...])")
    if space is not None:
        raise ValidationError("Study.create: give space= or pipeline=, not both (a pipeline's space is the union "
                              "of its stages' spaces)")
    return pipeline.space


def _check_pipeline(settings: StudySettings, pipeline: Pipeline | None) -> Pipeline | None:
    """``pipeline`` if it fits the study's stored one (the same stages and parameters), else a
    one-line :class:`ValidationError`."""
    if pipeline is None:
        return None
    from thrifty.pipelines import Pipeline

    if not isinstance(pipeline, Pipeline):
        raise ValidationError(f"pipeline={pipeline!r}: expected a th.Pipeline([th.Stage(...), ...])")
    stored = settings.pipeline
    if stored is None:
        raise ValidationError("pipeline=: this study has no pipeline (it was created with a space); "
                              "run it with optimize(objective)")
    given = [(s.name, s.params) for s in pipeline.shape.stages]
    wanted = [(s.name, s.params) for s in stored.stages]
    if given != wanted:
        raise ValidationError(f"pipeline=: its stages and parameters {given!r} are not the study's {wanted!r}")
    return pipeline
