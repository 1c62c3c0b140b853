"""The study objects and trial handles the HTTP service works through (:mod:`thrifty.server.service`).

Rules:

- **One study object per client.** A client (its ``client_id``) is a worker: its trials start under
  worker id ``service:<client_id>`` (:data:`WORKER_PREFIX`), through a
  :class:`~thrifty.study.Study` object of its own, loaded on first use and kept (at most
  :data:`MAX_CLIENTS`, least recently used dropped). Each has a lock: one client's calls take
  turns, different clients' run side by side.
- **The storage is the truth.** Which trials a client holds is read from the storage (its RUNNING
  trials with its worker id), so a restarted service hands a reconnecting client its trials back.
  The read is made by the first suggest of a client object and by every suggest while the client
  holds trials; a client that holds none (it finished what it was given) is known to hold none
  without a read, as every trial it starts goes through this process. A trial handle kept in
  memory is a cache: a trial the service does not hold (after a restart) is attached again
  (:meth:`~thrifty.study.Study.attach`). Behind several service processes, a client reconnecting
  to another process than the one that started its trial gets it back only if that process has
  not served the client since it started (run one service per storage, or pin clients).
- **Heartbeats are the client's.** The service does not keep a client's trials alive: each call
  about a trial is a heartbeat, and a client that goes silent for ``heartbeat_grace_s`` loses its
  trials to the reaper (retried while ``max_retries`` allows), as a dead worker does.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from thrifty.errors import StudyExhausted, TrialNotRunning
from thrifty.handle import TrialHandle
from thrifty.storage.base import Storage, StudyRecord
from thrifty.trial import TrialState

T = TypeVar("T")

#: Trials a client of the service runs are started under worker id ``WORKER_PREFIX + client_id``.
WORKER_PREFIX = "service:"
#: Client study objects kept in memory (each holds a study's settings and its history log).
MAX_CLIENTS = 512
#: Seconds a study's stored record (its id, by name) is used without reading it again.
RECORD_TTL_S = 2.0


@dataclass
class ClientStudy:
    """One client's study object, its lock and the handles of the trials it runs."""

    study: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    handles: dict[int, TrialHandle] = field(default_factory=dict)
    #: Whether the client's RUNNING trials have been read from the storage since this object was
    #: made; from then on every trial it starts goes through :attr:`handles` too.
    synced: bool = False

    def run(self, fn: Callable[[], T]) -> T:
        with self.lock:
            return fn()


@dataclass(frozen=True)
class Suggestion:
    """What one suggest call hands a client: its trials (those it already ran first), and why no
    more could start (``None``: as many as asked)."""

    handles: list[TrialHandle]
    exhausted: StudyExhausted | None


class LiveStudies:
    """The service's study objects over one storage (see the module docstring)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._lock = threading.Lock()
        self._clients: OrderedDict[tuple[int, str], ClientStudy] = OrderedDict()
        self._records: dict[str, tuple[float, StudyRecord]] = {}
        self._ask_locks: dict[int, threading.Lock] = {}

    def record(self, name: str) -> StudyRecord:
        """Study ``name`` as stored (:class:`~thrifty.errors.StudyNotFound` if absent), read again
        after :data:`RECORD_TTL_S` seconds: a study deleted by another process is seen within
        that time, and a call on its old id meanwhile is a ``StudyNotFound`` (see :meth:`drop`)."""
        now = time.monotonic()
        with self._lock:
            hit = self._records.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = self.storage.load_study(name)
        with self._lock:
            self._records[name] = (now + RECORD_TTL_S, found)
        return found

    def _ask_lock(self, study_id: int) -> threading.Lock:
        """The lock this process's asks on one study take turns under: concurrent asks on one
        study would mostly lose the start's compare-and-swap to each other and read and propose
        again, so in one process they wait instead (other processes still race as workers do)."""
        with self._lock:
            return self._ask_locks.setdefault(study_id, threading.Lock())

    def drop(self, name: str) -> None:
        """Forget what is known of study ``name`` (deleted, or found missing)."""
        with self._lock:
            hit = self._records.pop(name, None)
        if hit is not None:
            self.forget(hit[1].id)

    def client(self, study_id: int, name: str, client_id: str) -> ClientStudy:
        """Client ``client_id``'s study object for study ``name`` (id ``study_id``, as loaded now:
        a study deleted and created again under the same name gets new objects)."""
        import thrifty as th

        key = (study_id, client_id)
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                self._clients.move_to_end(key)
                return found
        study = th.Study.load(name, storage=self.storage, worker_id=WORKER_PREFIX + client_id)
        with self._lock:
            found = self._clients.setdefault(key, ClientStudy(study))
            self._clients.move_to_end(key)
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        return found

    def forget(self, study_id: int) -> None:
        """Drop the objects of a deleted study."""
        with self._lock:
            for key in [k for k in self._clients if k[0] == study_id]:
                del self._clients[key]

    def suggest(self, study_id: int, name: str, client_id: str, count: int) -> Suggestion:
        """Up to ``count`` trials for the client: first the RUNNING trials it started and has not
        finished (a reconnecting client gets them back), then new ones from ``Study.ask`` (each a
        new trial or an enqueued one; never one another client holds)."""
        client = self.client(study_id, name, client_id)

        def suggest() -> Suggestion:
            study = client.study
            worker = WORKER_PREFIX + client_id
            held: list[TrialHandle] = []
            if client.handles or not client.synced:  # else it holds nothing: no read needed
                mine = [t for t in study.get_trials([TrialState.RUNNING], with_measurements=False)
                        if t.worker_id == worker]
                running = {t.number for t in mine}
                for number in [n for n in client.handles if n not in running]:  # reaped, or finished elsewhere
                    del client.handles[number]
                held = [client.handles.get(t.number) or study.attach(t.number) for t in mine[:count]]
                for handle in held:
                    client.handles[handle.number] = handle
                client.synced = True
                study.heartbeat(held)
            exhausted = None
            while len(held) < count:
                try:
                    with self._ask_lock(study_id):
                        handle = study.ask(keep_alive=False)  # its heartbeat is the client's
                except StudyExhausted as exc:
                    exhausted = exc
                    break
                client.handles[handle.number] = handle
                held.append(handle)
            return Suggestion(held, exhausted)

        return client.run(suggest)

    def on_trial(self, study_id: int, name: str, number: int, action: Callable[[Any, TrialHandle], T]) -> T:
        """``action(study, handle)`` on RUNNING trial ``number`` under its client's lock; the
        handle is dropped from memory once the trial is no longer running. Raises
        :class:`~thrifty.errors.TrialNotRunning` for a trial that is not RUNNING or was not
        started through the service."""
        client = self._owner(study_id, name, number)

        def act() -> T:
            handle = client.handles.get(number)
            if handle is None:
                handle = client.study.attach(number)
                client.handles[number] = handle
            try:
                return action(client.study, handle)
            except TrialNotRunning:
                client.handles.pop(number, None)
                raise
            finally:
                if handle.finished:
                    client.handles.pop(number, None)

        return client.run(act)

    def _owner(self, study_id: int, name: str, number: int) -> ClientStudy:
        with self._lock:
            for (sid, _), client in self._clients.items():
                if sid == study_id and number in client.handles:
                    return client
        trial = next((t for t in self.storage.get_trials(study_id, [TrialState.RUNNING], with_measurements=False)
                      if t.number == number), None)
        if trial is None:
            raise TrialNotRunning(f"study {name!r} has no RUNNING trial number {number}")
        worker = trial.worker_id or ""
        if not worker.startswith(WORKER_PREFIX):
            raise TrialNotRunning(f"trial {number} of study {name!r} is run by worker {worker!r}, not by a client "
                                  "of this service: it can only be finished where it runs")
        return self.client(study_id, name, worker[len(WORKER_PREFIX):])
