"""What the parts of one ``Study`` object share: its storage, its stored record, its settings, the
worker id it starts trials under, the clock it reads the time from, and its reads of the trials.

One :class:`StudyState` per ``Study`` object; the facade and its private siblings (ask, tell,
decisions, cost, heartbeats) each take it instead of reaching into one another.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from collections.abc import Sequence

from thrifty.clock import SYSTEM_CLOCK, Clock
from thrifty.history import History, TrialLog
from thrifty.storage import Storage, StudyRecord
from thrifty.storage.base import Snapshot
from thrifty.study._settings import StudySettings
from thrifty.trial import Trial, TrialState


def new_worker_id() -> str:
    """``host:pid:random``: the id this process's trials are started under."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass
class StudyState:
    """One study object's storage, record (as loaded), settings and worker id, the log of the
    settled trials it has read (so a history read fetches only what changed), and its clock: every
    time the study's parts read or write (timestamps, heartbeats, the reaper's now, metered
    intervals, active wall time) comes from ``clock`` (:mod:`thrifty.clock`)."""

    storage: Storage
    record: StudyRecord
    settings: StudySettings
    worker_id: str
    clock: Clock = SYSTEM_CLOCK
    log: TrialLog = dataclasses.field(default_factory=TrialLog)
    #: The same as ``log`` for reads without measurements (pictures and tables of large studies).
    light_log: TrialLog = dataclasses.field(default_factory=TrialLog)

    @property
    def study_id(self) -> int:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def artifact_root(self) -> str:
        """The folder of the trials' artifact folders, relative to the working folder."""
        return self.settings.artifact_root

    def label(self, trial: Trial) -> Trial:
        """The trial with its ``objective`` metric named (a single-objective study's trials name it)."""
        if len(self.settings.objectives) == 1 and trial.objective is None:
            return trial.named(self.settings.default_metric)
        return trial

    def label_all(self, trials: Sequence[Trial]) -> list[Trial]:
        return [self.label(t) for t in trials]

    def trials(
        self, states: Sequence[TrialState] | None = None, *, with_measurements: bool = True,
        offset: int = 0, limit: int | None = None,
    ) -> list[Trial]:
        """The study's trials in number order (``states``: only those), labelled."""
        return self.label_all(self.storage.get_trials(self.study_id, states, with_measurements, offset, limit))

    def trial(self, trial_id: int) -> Trial:
        """One trial as stored now, with its measurements, labelled."""
        return self.label(self.storage.get_trial(trial_id))

    def read_history(self) -> History:
        """The history as of now, with the delta since this object's last read (what schedulers
        keep their state from: :mod:`thrifty.history`)."""
        return self.read_snapshot()[1]

    def read_light_history(self) -> History:
        """:meth:`read_history` without the trials' measurements (a read of a 100,000-trial study
        fetches a tenth of the rows), kept in its own log."""
        fresh = self.storage.get_trials(self.study_id, with_measurements=False, finished_after=self.light_log.seen)
        return self.light_log.read(self.label_all(fresh))

    def read_snapshot(self) -> tuple[Snapshot, History]:
        """One snapshot of the study (its status and the history's delta since this object's last
        read; one storage read) and the history as of it."""
        snapshot = self.storage.snapshot(self.study_id, since=self.log.seen)
        return snapshot, self.log.read(self.label_all(snapshot.trials))
