"""The study side of a :class:`~thrifty.handle.TrialHandle` (the :class:`~thrifty.handle.TrialHost`
protocol), and the handing out of handles."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.checkpoints import inherit_checkpoint, trial_dir
from thrifty.clock import Clock
from thrifty.cost.pricing import Pricing
from thrifty.handle import TrialHandle
from thrifty.study._decisions import should_stop
from thrifty.study._heartbeat import Heartbeats
from thrifty.study._state import StudyState
from thrifty.trial import Measurement, StopReason, Trial

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.study._study import Study


class HandleHost:
    """Implements :class:`~thrifty.handle.TrialHost` for the handles one study object hands out."""

    def __init__(self, study: Study, state: StudyState, heartbeats: Heartbeats) -> None:
        self._study = study
        self._state = state
        self._heartbeats = heartbeats

    @property
    def study(self) -> Study:
        return self._study

    @property
    def clock(self) -> Clock:
        return self._state.clock

    @property
    def pricing(self) -> Pricing:
        return self._state.settings.pricing

    @property
    def default_metric(self) -> str:
        return self._state.settings.default_metric

    def record_report(self, trial_id: int, measurement: Measurement, now: float) -> StopReason | None:
        return self._state.storage.report(self._state.study_id, trial_id, measurement, now)

    def should_stop(self, handle: TrialHandle) -> bool:
        return should_stop(self._state, handle)

    def checkpoint_at(self, step: float) -> bool:
        return self._state.settings.scheduler.checkpoint_at(step)

    def trial_dir(self, number: int) -> Path:
        return trial_dir(self._state, number)

    def stored_trial(self, trial_id: int) -> Trial:
        return self._state.trial(trial_id)

    def hand_out(self, trial: Trial, keep_alive: bool = True) -> TrialHandle:
        """The handle of a trial just started by this study object, its heartbeat kept fresh
        (``keep_alive``; else the caller's). A retry starts with a copy of the checkpoint of the
        trial it re-runs (:func:`~thrifty.checkpoints.inherit_checkpoint`)."""
        if trial.retry_of is not None:
            inherit_checkpoint(self._state, trial.retry_of, trial.number)
        handle = TrialHandle(self, self._state.label(trial))
        if keep_alive:
            self._heartbeats.track(handle)
        return handle

    def adopt(self, trial: Trial) -> TrialHandle:
        """The handle of a RUNNING trial started earlier (by another object or process); its
        heartbeat is not kept by this object."""
        return TrialHandle(self, self._state.label(trial))
