"""``Study.optimize``: run an objective on this machine, in this process or in worker processes.

Each worker (this process, or each of ``n_workers`` forked processes) runs the same pull loop:
``ask`` a trial, run the objective, ``tell`` the outcome. The storage keeps them consistent.

The supervisor of a multi-process run owns its workers (rules, each with its test):

- **Forks carry no database connection** (:mod:`thrifty.storage._fork`); every worker opens its own.
- **A worker dies with its parent**: a worker whose supervisor is gone (even killed with SIGKILL)
  gets SIGTERM from the kernel (:mod:`thrifty.process`), fails its running trial with
  that reason (re-enqueued if ``max_retries`` allows) and exits.
- **SIGTERM is a clean stop, like Ctrl-C**: SIGINT or SIGTERM to the supervisor (or to the one
  process of a single-worker run) starts no new trial, stops every worker at once, fails their
  running trials as "interrupted by SIGTERM" (re-enqueued if retries are left), and raises
  :class:`~thrifty.errors.StopSignal` (a ``KeyboardInterrupt``) after at most
  ``stop_grace_s`` + 5 seconds. ``thrifty run`` prints its summary and exits 130 (SIGINT) or 143
  (SIGTERM).
- **Crash loops are a stated failure**: a worker that dies (killed, crashed) has its running trial
  failed (re-enqueued if retries are left) and is replaced after a back-off of
  ``0.25 s * 2**(k-1)`` (at most 10 s), ``k`` the worker deaths in a row with no trial finished in
  between; after ``max_worker_deaths`` such deaths (default: twice the workers, at least 5) the run
  raises :class:`~thrifty.errors.WorkersKeepDying` with the last death's cause and trial.
- **A worker's error is the run's error**: a worker that cannot go on (study deleted, disk full,
  database gone) prints nothing; the supervisor stops the others and raises that error, one line.
- **Time limits end processes**: with ``trial_timeout_s`` every trial runs in a worker process
  (even with one worker), and a trial still running after that many seconds is failed ("timeout
  after N s", re-enqueued if retries are left), its worker ended (SIGTERM, SIGKILL 5 s later) and
  replaced. With ``timeout_s`` no trial starts after the deadline, and trials still running
  ``stop_grace_s`` later are ended the same way ("interrupted: the run's timeout_s ..."), so
  ``optimize`` returns within ``timeout_s + stop_grace_s`` plus a few seconds. In a single-worker
  run without ``trial_timeout_s`` the objective runs in this process and is interrupted by an
  exception at that time (code stuck inside a C call is interrupted only when it returns).
- **Supervision keeps real time; the study keeps its clock**: the deadlines above, kills, back-offs
  and polling read the system clock (they act on real processes), while what the study records
  (metered intervals, timestamps, heartbeats, active wall time) comes from the study's clock
  (:mod:`thrifty.clock`). Worker processes open the study with the system clock, so a study whose
  clock is not the system clock (a :class:`~thrifty.clock.ManualClock`, which moves only in this
  process) is refused with ``n_workers > 1`` or ``trial_timeout_s``.
- **Idle workers may leave**: with ``idle_exit_s``, a worker that may start nothing now but could
  get work later (a trial running elsewhere may come back as a retry, a paused one be resumed)
  gives up after that many seconds without a trial (``RunResult.reason`` ``"idle"``); without it,
  it waits as long as such work may come (``thrifty worker --idle-exit``).
- **Every trial's resource use is measured**: the process running it (this one, or its worker)
  and that process's descendants are read while the trial runs (CPU, resident memory, and GPU
  utilisation and memory where NVML sees a GPU: :mod:`thrifty.runners.sampling`); what they used
  is stored on the trial while it runs and with its end (``Trial.usage``, see
  :mod:`thrifty.runners._trial` for when). In a single-worker run without ``trial_timeout_s``
  that process is the caller's, so whatever else it runs counts too.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from thrifty import process
from thrifty.clock import SystemClock
from thrifty.cost.budget import BudgetGuard, Moment
from thrifty.errors import (
    StopSignal,
    StudyExhausted,
    ThriftyError,
    TooManyFailures,
    ValidationError,
    WorkerError,
    WorkersKeepDying,
)
from thrifty.runners._trial import run_trial
from thrifty.runners.pool import Slot, plan_slots
from thrifty.storage import AskLimits
from thrifty.trial import Trial, TrialState

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.study import Objective, Study

    #: How a worker process opens the study: ``Study.load(name, storage=url, worker_id=...)``.
    Load = Callable[..., Study]

log = logging.getLogger("thrifty")

#: Exit status of a worker process that gave up after too many consecutive failures.
EXIT_TOO_MANY_FAILURES = 3
#: Exit status of a worker process that stopped on an error (sent to the supervisor first).
EXIT_WORKER_ERROR = 4
#: Exit status of a worker process stopped by a signal or by the run's time limit.
EXIT_INTERRUPTED = 130
#: Seconds a worker asked to stop (SIGTERM) has before it is killed (SIGKILL).
KILL_AFTER_S = 5.0
#: Back-off before replacing a dead worker: ``BACKOFF_S * 2**(k-1)``, at most ``BACKOFF_MAX_S``.
BACKOFF_S = 0.25
BACKOFF_MAX_S = 10.0

Events = Callable[[tuple[Any, ...]], None]


def check_run_args(
    n_trials: Any, n_workers: Any, timeout_s: Any, max_consecutive_failures: Any,
    trial_timeout_s: Any = None, stop_grace_s: Any = 10.0, max_worker_deaths: Any = None, idle_exit_s: Any = None,
) -> None:
    """Validate ``optimize``'s run arguments (a ValidationError names the first bad one)."""
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1):
        raise ValidationError(f"n_trials={n_trials!r}: expected an integer >= 1 (or None for no limit)")
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValidationError(f"n_workers={n_workers!r}: expected an integer >= 1")
    for name, value, allow_zero in (("timeout_s", timeout_s, False), ("trial_timeout_s", trial_timeout_s, False),
                                    ("stop_grace_s", stop_grace_s, True), ("idle_exit_s", idle_exit_s, True)):
        if value is None and name != "stop_grace_s":
            continue
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or value < 0 or (value == 0 and not allow_zero)):
            more = ">= 0" if allow_zero else "> 0 (or None)"
            raise ValidationError(f"{name}={value!r}: expected a number of seconds {more}")
    for name, value in (("max_consecutive_failures", max_consecutive_failures),
                        ("max_worker_deaths", max_worker_deaths)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValidationError(f"{name}={value!r}: expected an integer >= 1 (or None)")


def worker_loop(
    study: Study,
    objective: Objective,
    run_tag: str,
    n_trials: int | None,
    deadline: float | None,
    max_consecutive_failures: int | None,
    events: Events | None = None,
    idle_exit_s: float | None = None,
) -> StudyExhausted | None:
    """Ask, run, tell until nothing is left. Returns why it stopped (None: the deadline).
    ``events`` hears ``("start", number, time)`` and ``("end", number, state)`` per trial.
    ``idle_exit_s``: while nothing may start but work may still come (a trial running elsewhere
    may come back as a retry, a paused one may be resumed), give up after that many seconds
    without a trial (reason ``"idle"``); ``None`` waits as long as such work may come."""
    consecutive = 0
    poll_s = min(1.0, study.heartbeat_grace_s / 4)
    idle_since = time.time()
    while True:
        if deadline is not None and time.time() >= deadline:
            return None
        try:
            handle = study.ask(limits=AskLimits(run_tag=run_tag, run_max_started=n_trials))
        except StudyExhausted as exc:
            if exc.reason in ("trials", "n_trials", "scheduler") and work_may_come(study, exc.reason):
                if idle_exit_s is not None and time.time() - idle_since >= idle_exit_s:
                    return StudyExhausted(f"nothing to run for {idle_exit_s:g} s (idle_exit_s) while {exc}",
                                          "idle")
                time.sleep(poll_s if idle_exit_s is None else max(0.05, min(poll_s, idle_exit_s / 4)))
                continue
            return exc
        if events is not None:
            events(("start", handle.number, time.time()))
        state, error = run_trial(study, objective, handle)
        if events is not None:
            events(("end", handle.number, state.value))
        if state is TrialState.FAILED:
            consecutive += 1
            first_line = (error or "").strip().splitlines()[-1:] or ["failed"]
            log.warning("trial %d failed: %s", handle.number, first_line[0])
            if max_consecutive_failures is not None and consecutive >= max_consecutive_failures:
                raise TooManyFailures(
                    f"{consecutive} trials failed in a row in study {study.name!r}; the last error: "
                    f"{first_line[0]} (see `thrifty trials {study.name}`; raise max_consecutive_failures "
                    "to go on regardless)"
                )
        else:
            consecutive = 0
        idle_since = time.time()


def work_may_come(study: Study, reason: str) -> bool:
    """Nothing new may start, but a running trial may still bring work: fail and come back as a
    retry, pause where the scheduler will promote it, or be replaced by a clone (PBT); or the
    reaper, run here, has just enqueued the retry of a trial whose worker died."""
    retries = study.max_retries > 0 and reason in ("trials", "n_trials")
    if not retries and not study.scheduler.plans_asks:
        return False
    study.reap()  # may fail trials whose worker died and enqueue their retries: work to run now
    if study.counts().get(TrialState.RUNNING, 0) > 0:
        return True
    return retries and any(t.retry_of is not None for t in study.storage.get_trials(study.id, [TrialState.PENDING]))


@dataclass(frozen=True)
class RunLimits:
    """What one ``optimize`` call may do (validated by :func:`check_run_args`)."""

    n_trials: int | None
    timeout_s: float | None
    deadline: float | None  #: epoch seconds after which no trial starts (``timeout_s`` from the start)
    max_consecutive_failures: int | None
    trial_timeout_s: float | None
    stop_grace_s: float
    max_worker_deaths: int
    idle_exit_s: float | None = None

    @classmethod
    def of(cls, n_trials: int | None, n_workers: int, timeout_s: float | None, max_consecutive_failures: int | None,
           trial_timeout_s: float | None, stop_grace_s: float, max_worker_deaths: int | None,
           idle_exit_s: float | None) -> RunLimits:
        """The limits of a run starting now (``optimize``'s checked arguments; ``max_worker_deaths``
        defaults to twice the workers, at least 5)."""
        return cls(
            n_trials=n_trials, timeout_s=timeout_s, deadline=time.time() + timeout_s if timeout_s is not None else None,
            max_consecutive_failures=max_consecutive_failures, trial_timeout_s=trial_timeout_s,
            stop_grace_s=float(stop_grace_s),
            max_worker_deaths=max_worker_deaths if max_worker_deaths is not None else max(5, 2 * n_workers),
            idle_exit_s=idle_exit_s,
        )

    @property
    def hard_end(self) -> float | None:
        """When trials still running are ended: the deadline plus the grace."""
        return None if self.deadline is None else self.deadline + self.stop_grace_s

    @property
    def timeout_reason(self) -> str:
        if self.timeout_s is None:
            return "interrupted: no time limit"  # never recorded: nothing is ended without a limit
        return (f"interrupted: the run's timeout_s={self.timeout_s:g} s passed and the trial did not finish "
                f"within stop_grace_s={self.stop_grace_s:g} s")


def run_optimize(
    study: Study,
    objective: Objective,
    n_trials: int | None,
    n_workers: int,
    timeout_s: float | None,
    max_consecutive_failures: int | None,
    progress: bool | str | None,
    gpus: Sequence[int | str] | None = None,
    trial_timeout_s: float | None = None,
    stop_grace_s: float = 10.0,
    max_worker_deaths: int | None = None,
    idle_exit_s: float | None = None,
) -> RunResult:
    check_run_args(n_trials, n_workers, timeout_s, max_consecutive_failures, trial_timeout_s, stop_grace_s,
                   max_worker_deaths, idle_exit_s)
    if (n_workers > 1 or trial_timeout_s is not None) and not isinstance(study.clock, SystemClock):
        what = "n_workers > 1" if n_workers > 1 else "trial_timeout_s (each trial runs in a worker process)"
        raise ValidationError(
            f"{what} with clock={study.clock!r}: worker processes read the system clock; "
            "a study with its own clock runs its trials in this process (n_workers=1, no trial_timeout_s)"
        )
    slots = plan_slots(study.resources, n_workers, gpus)
    if len(slots) < n_workers:
        log.warning("this machine has room for %d trials at once with resources %s; running %d workers, not %d",
                    len(slots), dict(study.resources), len(slots), n_workers)
    n_workers = len(slots)
    if not callable(objective):
        raise ValidationError(f"objective={objective!r}: expected a function taking a trial")
    in_process = n_workers == 1 and trial_timeout_s is None
    if not in_process and study.storage_url in ("memory", ":memory:", "sqlite://"):
        what = "n_workers > 1" if n_workers > 1 else "trial_timeout_s (each trial runs in a worker process)"
        raise ValidationError(
            f"{what} needs a storage that processes share: use storage='sqlite:///thrifty.db' "
            "(or PostgreSQL), not 'memory'"
        )
    progress = check_progress(progress)
    limits = RunLimits.of(n_trials, n_workers, timeout_s, max_consecutive_failures, trial_timeout_s, stop_grace_s,
                          max_worker_deaths, idle_exit_s)
    run_tag = uuid.uuid4().hex[:16]

    def body() -> StudyExhausted | None:
        if in_process:
            return _run_here(study, objective, run_tag, slots[0], limits)
        return _Supervisor(study, objective, run_tag, slots, limits).run()

    return run_with_progress(study, progress, n_trials, run_tag, body)


def check_progress(progress: bool | str | None) -> bool | str:
    """``optimize``'s ``progress``, checked; ``None`` becomes whether standard output is a terminal."""
    if progress is None:
        progress = sys.stdout.isatty()
    if not isinstance(progress, bool) and progress != "lines":
        raise ValidationError(f"progress={progress!r}: expected True, False, None or 'lines'")
    return progress


def run_with_progress(study: Study, progress: bool | str, n_trials: int | None, run_tag: str,
                      body: Callable[[], StudyExhausted | None]) -> RunResult:
    """Run ``body`` (a runner's loop, returning why it stopped) with the progress view asked for and
    SIGINT/SIGTERM raising :class:`~thrifty.errors.StopSignal`; returns the run's result."""
    from thrifty.progress import LineProgress, ProgressView

    began = time.time()
    view: ProgressView | LineProgress | None = None
    if progress == "lines":
        view = LineProgress(study)
    elif progress:
        view = ProgressView(study, n_trials, run_tag)
    try:
        if view is not None:
            view.start()
        with process.stop_signals_raise():
            why = body()
    finally:
        if view is not None:
            view.stop()
    return run_result(study, run_tag, why, began)


def _run_here(
    study: Study, objective: Objective, run_tag: str, slot: Slot, limits: RunLimits
) -> StudyExhausted | None:
    """The single-worker run, in this process."""
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    if slot.gpus:  # in this process: only the GPU choice, no CPU pinning of the caller
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(slot.gpus)
    try:
        with process.interrupt_at(limits.hard_end, limits.timeout_reason):
            return worker_loop(study, objective, run_tag, limits.n_trials, limits.deadline,
                               limits.max_consecutive_failures, idle_exit_s=limits.idle_exit_s)
    except KeyboardInterrupt as exc:
        reason = exc.reason if isinstance(exc, StopSignal) else "interrupted by SIGINT"
        study.reap(worker_id=study.worker_id, reason=reason)
        if isinstance(exc, StopSignal) and exc.signum is None:
            return None  # the run's time limit: a timeout, not an interruption
        raise
    finally:
        if slot.gpus:
            if saved is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = saved


@dataclass(frozen=True)
class RunResult:
    """Why an ``optimize`` call ended and where the study stands.

    ``reason``: ``"n_trials"`` (this call's trials all ran), a budget limit (``"trials"``,
    ``"usd"``, ``"gpu_hours"``, ``"wall_s"``), ``"criterion"``, ``"strategy"`` (nothing left to
    propose), ``"timeout"`` or ``"idle"`` (``idle_exit_s`` passed with nothing to run).
    ``message`` says it in words, with the numbers. ``counts``: this call's trials by the state they ended in (those its workers finished or paused; a trial another
    process ran is not counted). ``all_failed``: this call ran trials and every one FAILED.
    ``near_duplicates``: the study's completed trials whose configuration is within 1% of an earlier
    completed one's (:data:`thrifty.encoding.NEAR`): on a deterministic objective, paid twice.
    """

    reason: str
    message: str
    n_trials: int
    spent_usd: float
    best: Trial | None
    counts: Mapping[TrialState, int] = field(default_factory=dict)
    near_duplicates: int = 0

    @property
    def all_failed(self) -> bool:
        return sum(self.counts.values()) > 0 and set(self.counts) == {TrialState.FAILED}

    def __str__(self) -> str:
        best = ""
        if self.best is not None:
            best = f"; best {self.best.value:.6g} (trial {self.best.number})"
        return f"stopped: {self.message}; ${self.spent_usd:,.4f} spent in total{best}"


def why_stopped(study: Study, run_tag: str, n_trials: int | None, deadline: float | None) -> StudyExhausted | None:
    """Why worker processes stopped asking, found without starting anything: a budget limit, a
    completion criterion, this call's trial count, the deadline (None), or else the strategy ran
    out."""
    hit = BudgetGuard(study.budget).check(study.usage(), Moment.START)
    if hit is not None:
        return StudyExhausted(hit.message, hit.limit)
    if study.criteria:
        try:
            study.check_criteria()
        except StudyExhausted as exc:
            return exc
    if n_trials is not None and study.started_in_run(run_tag) >= n_trials:
        return StudyExhausted(f"this call's {n_trials} trials have started", "n_trials")
    if deadline is not None and time.time() >= deadline:
        return None
    return StudyExhausted("the strategy has nothing left to propose", "strategy")


def run_result(study: Study, run_tag: str, why: StudyExhausted | None, began: float) -> RunResult:
    best = None
    if not study.is_multi_objective:
        try:
            best = study.best
        except ThriftyError:
            best = None
    if why is None:
        reason, message = "timeout", "the time limit was reached"
    else:
        reason, message = why.reason, str(why)
    n = study.started_in_run(run_tag)
    # This call's trials: settled since it began by this process's worker (its id) or by a worker
    # process it started (ids "<its id>/w<k>"), a dead one's trial failed by the reaper included.
    ours, counts = study.worker_id, Counter[TrialState]()
    for t in study.get_trials(with_measurements=False):
        if t.state.is_settled and (t.finished_at or 0.0) >= began and t.worker_id is not None and (
                t.worker_id == ours or t.worker_id.startswith(ours + "/")):
            counts[t.state] += 1
    from thrifty.analysis.report import near_duplicate_completions  # numpy: only when a run ends

    twice, _ = near_duplicate_completions(study.space, study.get_trials(with_measurements=False))
    return RunResult(reason=reason, message=message, n_trials=n, spent_usd=study.cost_usd, best=best,
                     counts=dict(counts), near_duplicates=twice)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text and isinstance(exc, ThriftyError) else f"{type(exc).__name__}: {' '.join(text)}"


def _child_main(
    load: Load,
    url: str,
    name: str,
    objective: Objective,
    run_tag: str,
    limits: RunLimits,
    worker_id: str,
    slot: Slot,
    conn: Any,
    parent_pid: int,
) -> None:
    """A worker process: the pull loop, telling the supervisor what it does through ``conn``.
    ``load`` opens the study (``Study.load``: the supervisor passes its study's class's)."""

    def send(event: tuple[Any, ...]) -> None:
        try:
            conn.send(event)
        except OSError:
            pass  # the supervisor is gone; the parent-death signal ends this process

    study: Study | None = None
    try:
        process.install_worker_handlers(parent_pid)
        slot.apply()
        study = load(name, storage=url, worker_id=worker_id)
        why = worker_loop(study, objective, run_tag, limits.n_trials, limits.deadline,
                          limits.max_consecutive_failures, send, limits.idle_exit_s)
        send(("done", None if why is None else (why.reason, str(why))))
    except TooManyFailures:
        sys.exit(EXIT_TOO_MANY_FAILURES)  # the supervisor raises it for the whole run
    except KeyboardInterrupt as exc:
        reason = exc.reason if isinstance(exc, StopSignal) else "interrupted by SIGINT"
        if study is not None:
            try:
                study.reap(worker_id=worker_id, reason=reason)
            except (ThriftyError, OSError, KeyboardInterrupt):
                pass  # the supervisor reaps what is left
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the supervisor reports it, once
        try:
            send(("error", one_line(exc)))
        except KeyboardInterrupt:
            pass  # stopped while telling: the supervisor is stopping the run (or gone); no traceback
        sys.exit(EXIT_WORKER_ERROR)


@dataclass
class _Worker:
    wid: str
    slot: Slot
    proc: Any
    conn: Any
    trial: int | None = None
    trial_started: float = 0.0
    ending: str | None = None  #: why the supervisor is ending this worker (its trials get this reason)
    kill_at: float | None = None
    events: list[tuple[Any, ...]] = field(default_factory=list)


class _Supervisor:
    """Runs workers in slots until they are all done (see the module docstring for the rules)."""

    def __init__(self, study: Study, objective: Objective, run_tag: str, slots: Sequence[Slot],
                 limits: RunLimits) -> None:
        self.study, self.objective, self.run_tag, self.slots, self.limits = study, objective, run_tag, slots, limits
        self.ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
        self.workers: dict[str, _Worker] = {}
        self.pending: list[tuple[float, Slot]] = []  #: (when, slot): replacements waiting out a back-off
        self.counter = 0
        self.deaths_in_a_row = 0
        self.last_reason: tuple[str, str] | None = None
        self.got_done = False
        self.error: str | None = None
        self.too_many = False
        self.timed_out = False
        self.unrecorded: set[str] = set()  #: reap errors already logged

    # -- workers ---------------------------------------------------------------------------------
    def spawn(self, slot: Slot) -> None:
        wid = f"{self.study.worker_id}/w{self.counter}"
        self.counter += 1
        reader, writer = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(
            target=_child_main,
            args=(type(self.study).load, self.study.storage_url, self.study.name, self.objective, self.run_tag, self.limits, wid, slot,
                  writer, os.getpid()),
            name=f"thrifty-worker-{self.counter}",
        )
        with process.stop_signals_deferred():
            proc.start()
            writer.close()
            self.workers[wid] = _Worker(wid, slot, proc, reader)

    def end(self, w: _Worker, reason: str, now: float) -> None:
        """Fail the worker's trial with ``reason`` first (so it is recorded, whatever the process
        does next), then ask it to stop; it is killed ``KILL_AFTER_S`` later if still alive."""
        if w.ending is not None:
            return
        w.ending = reason
        self.reap(w, reason)
        self._signal(w, signal.SIGTERM)
        w.kill_at = now + KILL_AFTER_S

    def reap(self, w: _Worker, reason: str | None = None) -> list[int]:
        try:
            return self.study.reap(worker_id=w.wid, reason=reason)
        except ThriftyError as exc:
            if str(exc) not in self.unrecorded:  # once per cause, not once per worker
                self.unrecorded.add(str(exc))
                log.warning("could not record the end of worker %s's trial (nor of others failing the same way): %s; "
                            "such a trial stays RUNNING until the next ask or reap finds its heartbeat older than "
                            "heartbeat_grace_s=%g s", w.wid, exc, self.study.heartbeat_grace_s)
            return []

    @staticmethod
    def _signal(w: _Worker, signum: int) -> None:
        try:
            os.kill(w.proc.pid, signum)
        except ProcessLookupError:
            pass

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> StudyExhausted | None:
        try:
            for slot in self.slots:
                self.spawn(slot)
            while self.workers or self.pending:
                self._wait()
                now = time.time()
                self._read_events()
                self._collect_exits(now)
                self._enforce_time_limits(now)
                self._start_replacements(now)
        except KeyboardInterrupt as exc:
            reason = exc.reason if isinstance(exc, StopSignal) else "interrupted by SIGINT"
            self.stop_all(reason)
            raise
        if self.error is not None:
            raise WorkerError(self.error)
        if self.too_many:
            raise TooManyFailures(
                f"workers of study {self.study.name!r} gave up after {self.limits.max_consecutive_failures} "
                f"consecutive failed trials (see `thrifty trials {self.study.name}`)"
            )
        if self.timed_out:
            return None
        if not self.got_done:
            return why_stopped(self.study, self.run_tag, self.limits.n_trials, self.limits.deadline)
        return None if self.last_reason is None else StudyExhausted(self.last_reason[1], self.last_reason[0])

    def _wait(self) -> None:
        timeout = 1.0
        if self.pending:
            timeout = min(timeout, max(0.0, min(t for t, _ in self.pending) - time.time()))
        waitables = [w.proc.sentinel for w in self.workers.values()] + [w.conn for w in self.workers.values()]
        if waitables:
            mp.connection.wait(waitables, timeout=timeout)
        else:
            time.sleep(timeout)

    def _read_events(self) -> None:
        for w in self.workers.values():
            try:
                while w.conn.poll():
                    self._on_event(w, w.conn.recv())
            except (EOFError, OSError):
                continue

    def _on_event(self, w: _Worker, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "start":
            w.trial, w.trial_started = int(event[1]), float(event[2])
        elif kind == "end":
            w.trial = None
            self.deaths_in_a_row = 0
        elif kind == "done":
            self.got_done = True
            if event[1] is not None:
                self.last_reason = (str(event[1][0]), str(event[1][1]))
        elif kind == "error":
            self.error = self.error or str(event[1])

    def _collect_exits(self, now: float) -> None:
        for wid, w in list(self.workers.items()):
            if wid not in self.workers:
                break  # stop_all (a worker's error) has collected every worker
            if w.proc.exitcode is None:
                continue
            try:
                while w.conn.poll():
                    self._on_event(w, w.conn.recv())
            except (EOFError, OSError):
                pass
            w.conn.close()
            del self.workers[wid]
            code = w.proc.exitcode
            if code == 0 and w.ending is None:
                continue
            if code == EXIT_TOO_MANY_FAILURES:
                self.too_many = True
                continue
            if code == EXIT_WORKER_ERROR and self.error is not None:
                self.reap(w, f"the worker stopped on an error: {self.error}")
                self.stop_all(f"interrupted: another worker stopped on an error ({self.error})")
                continue
            failed = self.reap(w, w.ending)
            if w.ending is not None:  # ended by the supervisor (a time limit): not a crash
                if not self.timed_out:
                    self._replace(w.slot, now)
                continue
            self._on_death(w, code, failed, now)

    def _on_death(self, w: _Worker, code: int | None, failed: list[int], now: float) -> None:
        how = f"by signal {-code} ({process.signal_name(-code)})" if code is not None and code < 0 else \
            f"with status {code}"
        where = f" in trial {failed[0]}" if failed else (f" in trial {w.trial}" if w.trial is not None else "")
        log.warning("worker %s exited %s%s; its running trial was failed%s", w.wid, how, where,
                    " and re-enqueued" if failed and self.study.max_retries else "")
        self.deaths_in_a_row += 1
        if self.deaths_in_a_row >= self.limits.max_worker_deaths:
            self.stop_all("interrupted: the run gave up on workers that keep dying")
            raise WorkersKeepDying(
                f"workers keep dying: {self.deaths_in_a_row} exits in a row with no trial finished; the last "
                f"exited {how}{where} (study {self.study.name!r}; raise max_worker_deaths to keep replacing them)"
            )
        if self.limits.deadline is None or now < self.limits.deadline:
            self._replace(w.slot, now + min(BACKOFF_S * 2 ** (self.deaths_in_a_row - 1), BACKOFF_MAX_S))

    def _replace(self, slot: Slot, when: float) -> None:
        self.pending.append((when, slot))

    def _start_replacements(self, now: float) -> None:
        due = [p for p in self.pending if p[0] <= now]
        self.pending = [p for p in self.pending if p[0] > now]
        for _, slot in due:
            if self.error is None and not self.too_many:
                self.spawn(slot)

    def _enforce_time_limits(self, now: float) -> None:
        lim = self.limits
        for w in self.workers.values():
            if w.kill_at is not None and now >= w.kill_at and w.proc.exitcode is None:
                self._signal(w, signal.SIGKILL)
                w.kill_at = None
            elif lim.trial_timeout_s is not None and w.trial is not None and w.ending is None \
                    and now - w.trial_started > lim.trial_timeout_s:
                self.end(w, f"timeout after {lim.trial_timeout_s:g} s (trial_timeout_s)", now)
        if lim.hard_end is not None and now >= lim.hard_end and not self.timed_out:
            self.timed_out = True
            self.pending.clear()
            for w in self.workers.values():
                self.end(w, lim.timeout_reason, now)

    def stop_all(self, reason: str) -> None:
        """Stop every worker now: their trials are failed with ``reason`` (re-enqueued if retries
        are left); each has ``KILL_AFTER_S`` to exit before it is killed."""
        self.pending.clear()
        for w in self.workers.values():
            if w.ending is None:
                w.ending = reason
                self._signal(w, signal.SIGTERM)
        end = time.time() + KILL_AFTER_S
        for w in self.workers.values():
            w.proc.join(timeout=max(0.0, end - time.time()))
        for w in self.workers.values():
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=5)
            self.reap(w, w.ending)
            w.conn.close()
        self.workers.clear()
