"""``Study.optimize``: run an objective on this machine, in this process or in worker processes.

Each worker (this process, or each of ``n_workers`` forked processes) runs the same pull loop:
``ask`` a trial, run the objective, ``tell`` the outcome. The storage keeps them consistent. The
supervisor of a multi-process run watches its workers: a worker that dies (killed, crashed) has its
running trial failed at once (re-enqueued if the study allows retries) and is replaced; Ctrl-C stops
every worker and leaves no trial RUNNING.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import multiprocessing.connection
import os
import queue
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from thrifty.errors import StudyExhausted, ThriftyError, TooManyFailures, ValidationError
from thrifty.runners.pool import Slot, plan_slots
from thrifty.trial import Trial, TrialState

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.study import Objective, Study

log = logging.getLogger("thrifty")

#: Exit status of a worker process that gave up after too many consecutive failures.
EXIT_TOO_MANY_FAILURES = 3
#: Exit status of a worker process stopped by Ctrl-C.
EXIT_INTERRUPTED = 130


def _check_args(
    n_trials: Any, n_workers: Any, timeout_s: Any, max_consecutive_failures: Any
) -> None:
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1):
        raise ValidationError(f"n_trials={n_trials!r}: expected an integer >= 1 (or None for no limit)")
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValidationError(f"n_workers={n_workers!r}: expected an integer >= 1")
    if timeout_s is not None and (
        isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0
        or not math.isfinite(timeout_s)
    ):
        raise ValidationError(f"timeout_s={timeout_s!r}: expected a number of seconds > 0 (or None)")
    if max_consecutive_failures is not None and (
        isinstance(max_consecutive_failures, bool)
        or not isinstance(max_consecutive_failures, int)
        or max_consecutive_failures < 1
    ):
        raise ValidationError(
            f"max_consecutive_failures={max_consecutive_failures!r}: expected an integer >= 1 (or None)"
        )


def worker_loop(
    study: Study,
    objective: Objective,
    run_tag: str,
    n_trials: int | None,
    deadline: float | None,
    max_consecutive_failures: int | None,
) -> StudyExhausted | None:
    """Ask, run, tell until nothing is left. Returns why it stopped (None: the deadline)."""
    consecutive = 0
    poll_s = min(1.0, study.heartbeat_grace_s / 4)
    while True:
        if deadline is not None and time.time() >= deadline:
            return None
        try:
            handle = study.ask(_run=(run_tag, n_trials))
        except StudyExhausted as exc:
            if exc.reason in ("trials", "n_trials", "scheduler") and _work_may_come(study, exc.reason):
                time.sleep(poll_s)
                continue
            return exc
        state, error = study._run_trial(objective, handle)
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


def _work_may_come(study: Study, reason: str) -> bool:
    """Nothing new may start, but a running trial may still bring work: fail and come back as a
    retry, pause where the scheduler will promote it, or be replaced by a clone (PBT)."""
    retries = study.max_retries > 0 and reason in ("trials", "n_trials")
    if not retries and not study.scheduler.plans_asks:
        return False
    study.reap()
    return study.counts().get(TrialState.RUNNING, 0) > 0


def run_optimize(
    study: Study,
    objective: Objective,
    n_trials: int | None,
    n_workers: int,
    timeout_s: float | None,
    max_consecutive_failures: int | None,
    progress: bool | None,
    gpus: Sequence[int | str] | None = None,
) -> RunResult:
    _check_args(n_trials, n_workers, timeout_s, max_consecutive_failures)
    slots = plan_slots(study.resources, n_workers, gpus)
    if len(slots) < n_workers:
        log.warning("this machine has room for %d trials at once with resources %s; running %d workers, not %d",
                    len(slots), dict(study.resources), len(slots), n_workers)
    n_workers = len(slots)
    if not callable(objective):
        raise ValidationError(f"objective={objective!r}: expected a function taking a trial")
    if n_workers > 1 and study.storage_url in ("memory", ":memory:", "sqlite://"):
        raise ValidationError(
            "n_workers > 1 needs a storage that processes share: use storage='sqlite:///thrifty.db' "
            "(or PostgreSQL), not 'memory'"
        )
    if progress is None:
        progress = sys.stdout.isatty()
    run_tag = uuid.uuid4().hex[:16]
    began = time.time()
    deadline = time.time() + timeout_s if timeout_s is not None else None
    from thrifty.progress import ProgressView

    view = ProgressView(study, n_trials, run_tag) if progress else None
    why: StudyExhausted | None = None
    try:
        if view is not None:
            view.start()
        if n_workers == 1:
            saved = os.environ.get("CUDA_VISIBLE_DEVICES")
            if slots[0].gpus:  # in this process: only the GPU choice, no CPU pinning of the caller
                os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(slots[0].gpus)
            try:
                why = worker_loop(study, objective, run_tag, n_trials, deadline, max_consecutive_failures)
            except KeyboardInterrupt:
                study._storage.reap(study._record.id, study._retry_policy(), time.time(), worker_id=study._worker_id)
                raise
            finally:
                if slots[0].gpus:
                    if saved is None:
                        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                    else:
                        os.environ["CUDA_VISIBLE_DEVICES"] = saved
        else:
            why = _supervise(study, objective, run_tag, n_trials, slots, deadline, max_consecutive_failures)
    finally:
        if view is not None:
            view.stop()
    return _result(study, run_tag, why, began)


@dataclass(frozen=True)
class RunResult:
    """Why an ``optimize`` call ended and where the study stands.

    ``reason``: ``"n_trials"`` (this call's trials all ran), a budget limit (``"trials"``,
    ``"usd"``, ``"gpu_hours"``, ``"wall_s"``), ``"criterion"``, ``"strategy"`` (nothing left to
    propose) or ``"timeout"``. ``message`` says it in words, with the numbers. ``counts``: this
    call's trials by the state they ended in (those its workers finished or paused; a trial another
    process ran is not counted). ``all_failed``: this call ran trials and every one FAILED.
    """

    reason: str
    message: str
    n_trials: int
    spent_usd: float
    best: Trial | None
    counts: Mapping[TrialState, int] = field(default_factory=dict)

    @property
    def all_failed(self) -> bool:
        return sum(self.counts.values()) > 0 and set(self.counts) == {TrialState.FAILED}

    def __str__(self) -> str:
        best = ""
        if self.best is not None:
            best = f"; best {self.best.value:.6g} (trial {self.best.number})"
        return f"stopped: {self.message}; ${self.spent_usd:,.4f} spent in total{best}"


def _why_stopped(study: Study, run_tag: str, n_trials: int | None, deadline: float | None) -> StudyExhausted | None:
    """Why worker processes stopped asking (they cannot tell the supervisor), found without
    starting anything: a budget limit, a completion criterion, this call's trial count, the
    deadline (None), or else the strategy ran out."""
    hit = study.budget.exhausted(study.usage())
    if hit is not None:
        return StudyExhausted(hit[1], hit[0])
    if study.criteria:
        try:
            study._check_criteria()
        except StudyExhausted as exc:
            return exc
    if n_trials is not None and study._storage.count_run(study._record.id, run_tag) >= n_trials:
        return StudyExhausted(f"this call's {n_trials} trials have started", "n_trials")
    if deadline is not None and time.time() >= deadline:
        return None
    return StudyExhausted("the strategy has nothing left to propose", "strategy")


def _result(study: Study, run_tag: str, why: StudyExhausted | None, began: float) -> RunResult:
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
    n = study._storage.count_run(study._record.id, run_tag)
    # This call's trials: settled since it began by this process's worker (its id) or by a worker
    # process it started (ids "<its id>/w<k>"), a dead one's trial failed by the reaper included.
    ours, counts = study._worker_id, Counter[TrialState]()
    for t in study._storage.get_trials(study._record.id, with_measurements=False):
        if t.state.is_settled and (t.finished_at or 0.0) >= began and t.worker_id is not None and (
                t.worker_id == ours or t.worker_id.startswith(ours + "/")):
            counts[t.state] += 1
    return RunResult(reason=reason, message=message, n_trials=n, spent_usd=study.cost_usd, best=best,
                     counts=dict(counts))


def _child_main(
    url: str,
    name: str,
    objective: Objective,
    run_tag: str,
    n_trials: int | None,
    deadline: float | None,
    max_consecutive_failures: int | None,
    worker_id: str,
    slot: Slot,
    reasons: Any,
) -> None:
    from thrifty.study import Study

    slot.apply()
    try:
        study = Study.load(name, storage=url)
        study._worker_id = worker_id
        why = worker_loop(study, objective, run_tag, n_trials, deadline, max_consecutive_failures)
        reasons.put((worker_id, None if why is None else (why.reason, str(why))))
    except TooManyFailures as exc:
        print(f"thrifty worker {worker_id}: {exc}", file=sys.stderr)
        sys.exit(EXIT_TOO_MANY_FAILURES)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


def _supervise(
    study: Study,
    objective: Objective,
    run_tag: str,
    n_trials: int | None,
    slots: Sequence[Slot],
    deadline: float | None,
    max_consecutive_failures: int | None,
) -> StudyExhausted | None:
    """Run workers in slots until they are all done; returns why the last one stopped."""
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    procs: dict[str, Any] = {}
    slot_of: dict[str, Slot] = {}
    reasons = ctx.Queue()
    seen: list[str] = []
    counter = 0

    def spawn(slot: Slot) -> None:
        nonlocal counter
        wid = f"{study._worker_id}/w{counter}"
        counter += 1
        p = ctx.Process(
            target=_child_main,
            args=(study.storage_url, study.name, objective, run_tag, n_trials, deadline, max_consecutive_failures, wid,
                  slot, reasons),
            name=f"thrifty-worker-{counter}",
        )
        p.start()
        procs[wid] = p
        slot_of[wid] = slot
        seen.append(wid)

    for slot in slots:
        spawn(slot)
    restarts_left = 2 * len(slots)
    too_many = False
    policy = study._retry_policy()
    try:
        while procs:
            mp.connection.wait([p.sentinel for p in procs.values()], timeout=1.0)
            for wid, p in list(procs.items()):
                if p.exitcode is None:
                    continue
                del procs[wid]
                if p.exitcode == 0:
                    continue
                if p.exitcode == EXIT_TOO_MANY_FAILURES:
                    too_many = True
                    continue
                failed = study._storage.reap(study._record.id, policy, time.time(), worker_id=wid)
                log.warning("worker %s exited with status %s; its trials %s were marked failed", wid, p.exitcode, failed)
                if restarts_left > 0 and not too_many and (deadline is None or time.time() < deadline):
                    restarts_left -= 1
                    spawn(slot_of[wid])  # the replacement takes over the dead worker's GPUs and cores
    except KeyboardInterrupt:
        _stop_children(procs)
        for wid in seen:
            study._storage.reap(study._record.id, policy, time.time(), worker_id=wid)
        raise
    if too_many:
        raise TooManyFailures(
            f"workers of study {study.name!r} gave up after {max_consecutive_failures} consecutive failed trials "
            f"(see `thrifty trials {study.name}`)"
        )
    last: tuple[str, str] | None = None
    got_any = False
    while True:
        try:
            _, why = reasons.get(timeout=0.5)
        except queue.Empty:
            break
        got_any = True
        last = why if why is not None else last
    if not got_any:
        return _why_stopped(study, run_tag, n_trials, deadline)
    return None if last is None else StudyExhausted(last[1], last[0])


def _stop_children(procs: dict[str, Any]) -> None:
    """Give interrupted workers time to record their trials, then make sure they are gone."""
    end = time.time() + 2.0
    for p in procs.values():
        p.join(timeout=max(0.0, end - time.time()))
    for p in procs.values():
        if p.is_alive():
            try:
                os.kill(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    end = time.time() + 10.0
    for p in procs.values():
        p.join(timeout=max(0.0, end - time.time()))
        if p.is_alive():
            p.kill()
            p.join(timeout=5)
