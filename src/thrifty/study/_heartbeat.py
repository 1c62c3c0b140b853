"""Heartbeats: this process says its trials are alive, and finds others' trials whose worker died.

Each study object that has handed out a trial runs one daemon thread that refreshes the heartbeat
of its RUNNING trials every ``min(heartbeat_grace_s / 4, 10 s)`` (at least 0.05 s); a report also
counts as a heartbeat. The reaper fails RUNNING trials whose heartbeat is older than
``heartbeat_grace_s`` (re-enqueued while ``max_retries`` allows); ``ask`` runs it at most every
``min(heartbeat_grace_s / 4, 5 s)``.

Times come from the study's clock (:mod:`thrifty.clock`): the heartbeats written, the reaper's
"now" and its every-few-seconds rule. The thread still waits in real time between beats (a
:class:`~thrifty.clock.ManualClock` that stands still makes its beats write the same time again).
"""

from __future__ import annotations

import threading
from typing import Protocol

from thrifty.storage import RetryPolicy
from thrifty.study._state import StudyState


class Live(Protocol):
    """A trial this process runs: its storage id, and whether it has been told its end."""

    @property
    def id(self) -> int: ...

    @property
    def finished(self) -> bool: ...


class Heartbeats:
    """The trials this study object runs, and the thread that keeps their heartbeats fresh."""

    def __init__(self, state: StudyState) -> None:
        self._state = state
        self._active: dict[int, Live] = {}
        self._lock = threading.Lock()
        self._thread: _Beat | None = None
        self._last_reap: float | None = None  #: when this object last reaped (the clock's time)

    def track(self, trial: Live) -> None:
        """Keep ``trial``'s heartbeat fresh until :meth:`untrack` (starts the thread if needed)."""
        with self._lock:
            self._active[trial.id] = trial
        if self._thread is None or not self._thread.is_alive():
            self._thread = _Beat(self)
            self._thread.start()

    def untrack(self, trial_id: int) -> None:
        with self._lock:
            self._active.pop(trial_id, None)

    def active_ids(self) -> list[int]:
        """The ids of the trials this object runs that are not finished yet."""
        with self._lock:
            return [tid for tid, t in self._active.items() if not t.finished]

    def beat(self) -> None:
        """Refresh the heartbeat of :meth:`active_ids` now (a failure is retried at the next beat)."""
        ids = self.active_ids()
        if not ids:
            return
        try:
            self._state.storage.heartbeat(ids, self._state.clock.time())
        except Exception:  # noqa: BLE001 - a missed beat is retried at the next interval
            pass

    @property
    def study_name(self) -> str:
        return self._state.name

    @property
    def interval_s(self) -> float:
        return max(min(self._state.settings.heartbeat_grace_s / 4, 10.0), 0.05)

    def retry_policy(self) -> RetryPolicy:
        s = self._state.settings
        return RetryPolicy(max_retries=s.max_retries, heartbeat_grace_s=s.heartbeat_grace_s)

    def reap_due(self, now: float) -> RetryPolicy | None:
        """The retry policy when a reap is due at ``now`` (epoch seconds; at most every
        ``min(grace / 4, 5 s)``), marking it done: the caller runs it (an ask lets it ride in its
        start transaction); ``None`` when not due."""
        if not self._reap_due(now):
            return None
        self._last_reap = now
        return self.retry_policy()

    def _reap_due(self, now: float) -> bool:
        every = min(self._state.settings.heartbeat_grace_s / 4, 5.0)
        return self._last_reap is None or now - self._last_reap >= every

    def reap(self, force: bool = False, worker_id: str | None = None, reason: str | None = None) -> list[int]:
        """Fail (and, if allowed, re-enqueue) RUNNING trials whose heartbeat is too old, at most
        every ``min(grace / 4, 5 s)`` unless ``force``; with ``worker_id``, every RUNNING trial of
        that worker at once (``reason`` says why). Returns the failed trial numbers."""
        now = self._state.clock.time()
        if worker_id is None:
            if not force and not self._reap_due(now):
                return []
            self._last_reap = now
            return self._state.storage.reap(self._state.study_id, self.retry_policy(), now)
        return self._state.storage.reap(self._state.study_id, self.retry_policy(), now, worker_id=worker_id,
                                        reason=reason)

    def stop(self) -> None:
        """Stop the thread (the trials stay tracked; a later :meth:`track` starts a new one)."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None


class _Beat(threading.Thread):
    """The daemon thread of :class:`Heartbeats`."""

    def __init__(self, beats: Heartbeats) -> None:
        super().__init__(name=f"thrifty-heartbeat-{beats.study_name}", daemon=True)
        self._beats = beats
        self._stop_event = threading.Event()
        self.interval_s = beats.interval_s

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self._beats.beat()
