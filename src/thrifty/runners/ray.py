"""``Study.optimize(fn, backend="ray")``: run the trials as Ray tasks on a Ray cluster.

The study's storage stays the source of truth; Ray only places and runs processes. The driver
(the process that calls ``optimize``) keeps up to ``n_workers`` Ray tasks in flight, each holding
one trial's resources (:mod:`thrifty.runners._ray_cluster`: ``num_cpus``, ``num_gpus``). A task
opens the study from its storage URL under a worker id of its own (``<driver's id>/r<k>``), starts
one trial with the same atomic ``ask`` the local workers use (this run's tag and ``n_trials``, the
budget, the strategy), runs the objective through :func:`~thrifty.runners._trial.run_trial` (the
same report / should_stop / tell path: schedulers stop trials, the budget's breaker stops them,
usage is sampled) and returns how it ended. So the rules of :mod:`thrifty.runners.local` hold:

- **Budgets** hold with the local workers' in-flight bound: at most ``n_workers`` trials run at
  once, so the recorded spend exceeds a hard dollar limit by at most the reporting intervals in
  flight when the breaker trips (:mod:`thrifty.cost.budget`).
- **A trial that does not report** cannot see a stop. The driver reads the storage every
  :data:`POLL_S` seconds: a trial asked to stop (the budget's breaker, ``thrifty stop``,
  ``Study.stop_trial``) that is still running ``stop_grace_s`` later is told STOPPED (with the
  request's reason, charged for the time since its last report) and its task is cancelled
  (``ray.cancel(force=True)``: its worker process is killed). ``trial_timeout_s`` fails a trial
  ("timeout after N s", re-enqueued if ``max_retries`` allows) and cancels its task the same way,
  counted from the trial's start in the storage (not from the task's submission: a task may wait
  for resources). ``timeout_s``: no task is submitted after the deadline, and trials still
  running ``stop_grace_s`` later are failed and cancelled.
- **Ctrl-C or SIGTERM** fails every running trial ("interrupted by SIGTERM", re-enqueued if retries
  are left), cancels the tasks and raises :class:`~thrifty.errors.StopSignal`.
- **A dead driver** (killed, even with SIGKILL): Ray ends the tasks of a driver that is gone;
  their trials stay RUNNING until their heartbeat is ``heartbeat_grace_s`` old, then the reaper
  (run by the next ``ask``) fails them and re-enqueues them if ``max_retries`` allows. Calling
  ``optimize`` again (or ``thrifty run`` again) continues where the storage says: finished trials
  are never run again, and a trial counts once against ``trials`` budgets however often retried.
- **A task that dies** (its worker process killed, a node lost) has its trial failed at once
  (re-enqueued if retries are left) and is replaced; after ``max_worker_deaths`` deaths in a row
  with no trial finished the run raises :class:`~thrifty.errors.WorkersKeepDying`. An error a task
  cannot get past (the study deleted, the database gone) stops the run with
  :class:`~thrifty.errors.WorkerError`, one line. ``max_consecutive_failures`` failed trials in a
  row raise :class:`~thrifty.errors.TooManyFailures`.

Code and files: the objective is pickled by Ray (cloudpickle). Each task runs in the driver's
working folder and with the driver's ``sys.path`` folders in front when those folders exist on its
node (on one machine, or with a shared file system, relative SQLite paths, artifact folders and
the objective's own modules then work as locally); on other nodes install the objective's package
and use absolute paths. Every timestamp the study records comes from the system clock (a study
with a :class:`~thrifty.clock.ManualClock` is refused).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from thrifty.clock import SystemClock
from thrifty.errors import (
    StopSignal,
    StudyExhausted,
    ThriftyError,
    TooManyFailures,
    TrialNotRunning,
    ValidationError,
    WorkerError,
    WorkersKeepDying,
)
from thrifty.runners import _ray_cluster as cluster
from thrifty.runners._ray_cluster import check_backend
from thrifty.runners._trial import run_trial
from thrifty.runners.local import (
    RunLimits,
    RunResult,
    check_progress,
    check_run_args,
    one_line,
    run_with_progress,
    why_stopped,
    work_may_come,
)
from thrifty.storage import AskLimits
from thrifty.trial import TrialState

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.study import Objective, Study
    from thrifty.trial import Trial

log = logging.getLogger("thrifty")

__all__ = ["POLL_S", "check_backend", "check_ray_run", "join_cluster", "run_ray"]

#: Seconds between the driver's reads of the storage (running trials, stop requests).
POLL_S = 0.5


def check_ray_run(study: Study, address: str | None) -> None:
    """What can be refused before Ray is touched: the storage and the clock."""
    check_backend("ray", address)
    cluster.check_storage_url(study.storage_url)
    if not isinstance(study.clock, SystemClock):
        raise ValidationError(f"backend='ray' with clock={study.clock!r}: Ray's worker processes read the system "
                              "clock; run a study with its own clock on the local backend")


def join_cluster(storage_url: str, address: str | None, resources: Mapping[str, float]) -> tuple[Any, dict[str, float]]:
    """Check the storage, join the cluster (see :mod:`thrifty.runners._ray_cluster`), check that
    its nodes reach the storage and that it has room for one trial holding ``resources``; returns
    the ``ray`` module and the trial tasks' Ray options. ``thrifty run`` calls it before it creates
    the study, so a run refused here writes nothing."""
    check_backend("ray", address)
    cluster.check_storage_url(storage_url)
    ray = cluster.connect(address)
    cluster.check_storage_reach(ray, storage_url)
    return ray, cluster.task_options(ray, resources)


def run_ray(
    study: Study,
    objective: Objective,
    n_trials: int | None,
    n_workers: int,
    timeout_s: float | None,
    max_consecutive_failures: int | None,
    progress: bool | str | None,
    address: str | None = None,
    trial_timeout_s: float | None = None,
    stop_grace_s: float = 10.0,
    max_worker_deaths: int | None = None,
    idle_exit_s: float | None = None,
) -> RunResult:
    """``optimize(backend="ray")`` (see the module docstring); ``address``: ``"auto"``,
    ``"HOST:PORT"`` or ``None`` (a private cluster on this machine for this process)."""
    check_run_args(n_trials, n_workers, timeout_s, max_consecutive_failures, trial_timeout_s, stop_grace_s,
                   max_worker_deaths, idle_exit_s)
    if not callable(objective):
        raise ValidationError(f"objective={objective!r}: expected a function taking a trial")
    progress = check_progress(progress)
    check_ray_run(study, address)
    ray, options = join_cluster(study.storage_url, address, study.resources)
    fits = cluster.room(ray, options)
    if fits < n_workers:
        log.warning("the Ray cluster has room for %d trials at once with resources %s; %d more wait for room",
                    fits, dict(study.resources), n_workers - fits)
    limits = RunLimits.of(n_trials, n_workers, timeout_s, max_consecutive_failures, trial_timeout_s, stop_grace_s,
                          max_worker_deaths, idle_exit_s)
    run_tag = uuid.uuid4().hex[:16]
    driver = _Driver(ray, study, objective, run_tag, n_workers, limits, options)
    return run_with_progress(study, progress, n_trials, run_tag, driver.run)


# -- the task (runs in a Ray worker process) -------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    """What one task needs: how to open the study, what to run, under which limits."""

    load: Any  #: ``Study.load`` of the driver's study class
    url: str
    name: str
    objective: Any
    run_tag: str
    n_trials: int | None
    deadline: float | None
    worker_id: str
    cwd: str
    paths: tuple[str, ...]


def _run_one(job: _Job) -> tuple[Any, ...]:
    """Start one trial and run it (see the module docstring). Returns ``("end", number, state,
    error)``, ``("exhausted", reason, message)`` or ``("deadline",)``; an error it cannot get past
    is raised (the driver stops the run with it)."""
    if job.deadline is not None and time.time() >= job.deadline:
        return ("deadline",)
    if os.path.isdir(job.cwd):
        os.chdir(job.cwd)
    for folder in reversed(job.paths):
        if folder not in sys.path and os.path.isdir(folder):
            sys.path.insert(0, folder)
    objective = job.objective
    if isinstance(objective, bytes):  # pickled by the driver, to be loaded once the paths are set
        import ray.cloudpickle

        objective = ray.cloudpickle.loads(objective)
    study = job.load(job.name, storage=job.url, worker_id=job.worker_id)
    try:
        try:
            handle = study.ask(limits=AskLimits(run_tag=job.run_tag, run_max_started=job.n_trials))
        except StudyExhausted as exc:
            return ("exhausted", exc.reason, str(exc))
        state, error = run_trial(study, objective, handle)
        return ("end", handle.number, state.value, error)
    except KeyboardInterrupt:
        study.reap(worker_id=job.worker_id, reason="interrupted: its Ray task was cancelled")
        raise
    finally:
        study.close()


# -- the driver ------------------------------------------------------------------------------------
@dataclass
class _Task:
    ref: Any
    wid: str
    trial: Trial | None = None  #: its trial, once the storage shows it RUNNING
    stop_seen: float | None = None  #: when the driver first saw a stop requested for its trial
    ending: str | None = None  #: why the driver cancelled it


class _Driver:
    """Submits tasks, watches their trials in the storage, collects their ends."""

    def __init__(self, ray: Any, study: Study, objective: Objective, run_tag: str, n_workers: int,
                 limits: RunLimits, options: Mapping[str, float]) -> None:
        self.ray, self.study, self.run_tag, self.n_workers, self.limits = ray, study, run_tag, n_workers, limits
        self.remote = ray.remote(max_retries=0, **options)(_run_one)
        self.tasks: dict[Any, _Task] = {}
        self.counter = 0
        try:
            self.objective = ray.cloudpickle.dumps(objective)
        except Exception as exc:  # noqa: BLE001 - any pickling failure is the same advice
            raise ValidationError(f"objective={objective!r} cannot be sent to Ray's workers ({one_line(exc)}); "
                                  "define it at module level, without open files, locks or connections") from None
        self.cwd = os.getcwd()
        self.paths = tuple(p for p in sys.path if p and os.path.isdir(p))
        self.submitting = True
        self.wait_until = 0.0  #: no submission before this time (waiting for work that may come)
        self.idle_since = time.time()
        self.why: StudyExhausted | None = None
        self.got_why = False
        self.failures_in_a_row = 0
        self.deaths_in_a_row = 0
        self.timed_out = False
        self.error: str | None = None
        self.last_poll = 0.0
        self.stop_signal: StopSignal | None = None  #: the stop signal that interrupted the run

    def run(self) -> StudyExhausted | None:
        with self._keeping_stop_signals():
            return self._run()

    @contextmanager
    def _keeping_stop_signals(self) -> Iterator[None]:
        """Remember the :class:`StopSignal` that SIGINT/SIGTERM raise (the run's handlers, see
        :func:`thrifty.process.stop_signals_raise`): raised inside a Ray call, it comes out of Ray as a
        plain ``KeyboardInterrupt``, and the trials must record the true reason."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def keep(signum: int, frame: FrameType | None) -> None:
            handler = previous[signum]
            try:
                if callable(handler):
                    handler(signum, frame)
                else:
                    raise StopSignal(signum, f"interrupted by {signal.Signals(signum).name}")
            except StopSignal as exc:
                self.stop_signal = exc
                raise

        for s in previous:
            signal.signal(s, keep)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _run(self) -> StudyExhausted | None:
        try:
            while True:
                now = time.time()
                self._submit(now)
                if not self.tasks:
                    if self.submitting and now < self.wait_until:
                        time.sleep(max(0.0, min(self.wait_until - now, POLL_S)))
                        continue
                    break
                ready, _ = self.ray.wait(list(self.tasks), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    self._collect(self.tasks.pop(ref))
                if time.time() - self.last_poll >= POLL_S:
                    self._watch(time.time())
        except KeyboardInterrupt as exc:
            stop = exc if isinstance(exc, StopSignal) else self.stop_signal
            self.cancel_all(stop.reason if stop is not None else "interrupted by SIGINT")
            if stop is not None and stop is not exc:
                raise stop from None
            raise
        except Exception as exc:  # the storage gone, the cluster gone: no task outlives the run
            self.cancel_all(f"interrupted: the driver stopped on an error ({one_line(exc)})")
            raise
        if self.error is not None:
            raise WorkerError(self.error)
        if self.timed_out:
            return None
        if not self.got_why:
            return why_stopped(self.study, self.run_tag, self.limits.n_trials, self.limits.deadline)
        return self.why

    # -- submitting ----------------------------------------------------------------------------
    def _submit(self, now: float) -> None:
        deadline = self.limits.deadline
        if deadline is not None and now >= deadline:
            self.submitting = False
        while self.submitting and now >= self.wait_until and len(self.tasks) < self.n_workers:
            wid = f"{self.study.worker_id}/r{self.counter}"
            self.counter += 1
            job = _Job(load=type(self.study).load, url=self.study.storage_url, name=self.study.name,
                       objective=self.objective, run_tag=self.run_tag, n_trials=self.limits.n_trials,
                       deadline=deadline, worker_id=wid, cwd=self.cwd, paths=self.paths)
            ref = self.remote.remote(job)
            self.tasks[ref] = _Task(ref, wid)

    # -- collecting ------------------------------------------------------------------------------
    def _collect(self, task: _Task) -> None:
        try:
            outcome = self.ray.get(task.ref)
        except self.ray.exceptions.TaskCancelledError:
            return
        except self.ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            self._stop_on_error(task, one_line(cause))
            return
        except self.ray.exceptions.RayError as exc:  # its worker process died, its node was lost
            if task.ending is None:
                self._on_death(task, exc)
            return
        if task.ending is not None:
            return
        kind = outcome[0]
        if kind == "end":
            self._on_end(int(outcome[1]), TrialState(outcome[2]), outcome[3])
        elif kind == "exhausted":
            self._on_exhausted(StudyExhausted(outcome[2], outcome[1]))
        else:  # "deadline"
            self.submitting = False

    def _on_end(self, number: int, state: TrialState, error: str | None) -> None:
        self.deaths_in_a_row = 0
        self.idle_since = time.time()
        if state is not TrialState.FAILED:
            self.failures_in_a_row = 0
            return
        self.failures_in_a_row += 1
        first = (error or "").strip().splitlines()[-1:] or ["failed"]
        log.warning("trial %d failed: %s", number, first[0])
        limit = self.limits.max_consecutive_failures
        if limit is not None and self.failures_in_a_row >= limit:
            self.cancel_all("interrupted: too many failed trials in a row")
            raise TooManyFailures(
                f"{self.failures_in_a_row} trials failed in a row in study {self.study.name!r}; the last error: "
                f"{first[0]} (see `thrifty trials {self.study.name}`; raise max_consecutive_failures to go on "
                "regardless)")

    def _on_exhausted(self, why: StudyExhausted) -> None:
        if why.reason in ("trials", "n_trials", "scheduler") and work_may_come(self.study, why.reason):
            idle = self.limits.idle_exit_s
            if idle is not None and time.time() - self.idle_since >= idle:
                why = StudyExhausted(f"nothing to run for {idle:g} s (idle_exit_s) while {why}", "idle")
            else:
                self.wait_until = time.time() + POLL_S
                return
        self.submitting = False
        if not self.got_why:
            self.why, self.got_why = why, True

    def _on_death(self, task: _Task, exc: BaseException) -> None:
        failed = self._reap(task, f"its Ray task died: {one_line(exc)}")
        where = f" in trial {failed[0]}" if failed else ""
        log.warning("Ray task %s died%s (%s); its trial was failed%s", task.wid, where, one_line(exc),
                    " and re-enqueued" if failed and self.study.max_retries else "")
        self.deaths_in_a_row += 1
        if self.deaths_in_a_row >= self.limits.max_worker_deaths:
            self.cancel_all("interrupted: the run gave up on Ray tasks that keep dying")
            raise WorkersKeepDying(
                f"Ray tasks keep dying: {self.deaths_in_a_row} in a row with no trial finished; the last{where}: "
                f"{one_line(exc)} (study {self.study.name!r}; raise max_worker_deaths to keep replacing them)")
        self.wait_until = time.time() + min(0.25 * 2 ** (self.deaths_in_a_row - 1), 10.0)

    def _stop_on_error(self, task: _Task, error: str) -> None:
        self._reap(task, f"the worker stopped on an error: {error}")
        self.error = self.error or error
        self.cancel_all(f"interrupted: another worker stopped on an error ({error})")

    # -- watching the storage ------------------------------------------------------------------------
    def _watch(self, now: float) -> None:
        """Match running trials to tasks; end those past a stop's grace or a time limit."""
        self.last_poll = now
        by_worker = {t.worker_id: t for t in self.study.get_trials([TrialState.RUNNING], with_measurements=False)}
        lim = self.limits
        for task in list(self.tasks.values()):
            trial = by_worker.get(task.wid)
            if trial is None or task.ending is not None:
                continue
            task.trial = trial
            if task.stop_seen is None and trial.id is not None and self.study.storage.stop_requested(trial.id):
                task.stop_seen = now
            if task.stop_seen is not None and now - task.stop_seen >= lim.stop_grace_s:
                self._end_stopped(task, now)
            elif lim.trial_timeout_s is not None and trial.started_at is not None \
                    and now - trial.started_at > lim.trial_timeout_s:
                self._end(task, f"timeout after {lim.trial_timeout_s:g} s (trial_timeout_s)")
        if lim.hard_end is not None and now >= lim.hard_end and not self.timed_out:
            self.timed_out = True
            self.submitting = False
            for task in list(self.tasks.values()):
                self._end(task, lim.timeout_reason)

    def _end_stopped(self, task: _Task, now: float) -> None:
        """A trial asked to stop that did not end within the grace: STOPPED with the request's
        reason, charged up to now; its task cancelled."""
        assert task.trial is not None and task.trial.id is not None
        task.ending = "stopped"
        try:
            stored = self.study.storage.get_trial(task.trial.id)
            since = max((m.timestamp for m in stored.measurements if m.timestamp is not None),
                        default=stored.started_at or now)
            self.study.tell(task.trial.number, state=TrialState.STOPPED, elapsed_s=max(0.0, now - since))
        except TrialNotRunning:
            pass  # it ended meanwhile
        except ThriftyError as exc:
            log.warning("could not record the stop of trial %d: %s", task.trial.number, exc)
        self._cancel(task)

    def _end(self, task: _Task, reason: str) -> None:
        """Fail the task's trial with ``reason`` (re-enqueued if retries are left), then cancel it."""
        if task.ending is not None:
            return
        task.ending = reason
        self._reap(task, reason)
        self._cancel(task)

    def _cancel(self, task: _Task) -> None:
        try:
            self.ray.cancel(task.ref, force=True)
        except Exception as exc:  # noqa: BLE001 - a task that already ended cannot be cancelled
            log.debug("ray.cancel(%s): %s", task.wid, exc)

    def _reap(self, task: _Task, reason: str) -> list[int]:
        try:
            return self.study.reap(worker_id=task.wid, reason=reason)
        except ThriftyError as exc:
            log.warning("could not record the end of Ray task %s's trial: %s; it stays RUNNING until its heartbeat "
                        "is heartbeat_grace_s=%g s old", task.wid, exc, self.study.heartbeat_grace_s)
            return []

    def cancel_all(self, reason: str) -> None:
        """Fail every running task's trial with ``reason`` and cancel the tasks."""
        self.submitting = False
        for task in list(self.tasks.values()):
            self._end(task, reason)
        self.tasks.clear()
