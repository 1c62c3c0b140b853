"""Running one trial in this process: call the objective, then tell the study how it ended.

The outcome rules: an objective's return value completes the trial (a mapping of metrics or a
number); ``None`` after a report ends it STOPPED with its last report (PAUSED when the scheduler
paused it), and ``None`` without any report FAILS it. :class:`~thrifty.errors.TrialFailed` and
:class:`~thrifty.errors.TrialInfeasible` record their message, :class:`~thrifty.errors.TrialStopped`
(a hard budget) ends it STOPPED with its reason, and any other exception FAILS it with its
traceback: failures are data, the run goes on. ``KeyboardInterrupt`` (SIGINT, SIGTERM, a time
limit) propagates: the runner fails the trial with the true reason. A trial finished elsewhere
meanwhile (its worker presumed dead) counts as FAILED here and is not told again.

Resource use: while the objective runs, a :class:`~thrifty.runners.sampling.UsageSampler` reads
this process and its descendants (a script's command among them) every second; the summary
(:class:`~thrifty.usage.ResourceUsage`) is stored with :meth:`~thrifty.storage.Storage.record_usage`
every :data:`~thrifty.runners.sampling.UPDATE_EVERY_S` seconds while it runs (a dashboard sees a
running trial's), and the final one, after a last reading, goes with the tell (``usage=``: one
transaction, so the finished trial holds it and never changes afterwards). A resumed trial's usage
goes on from its earlier runs'. A trial interrupted (``KeyboardInterrupt``), told by the objective
itself or finished elsewhere keeps the usage last stored. Sampling never fails a trial: a failed
reading or write is logged at debug level.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from thrifty.errors import TrialFailed, TrialInfeasible, TrialNotRunning, TrialStopped, ValidationError
from thrifty.handle import TrialHandle
from thrifty.runners.sampling import UsageSampler
from thrifty.storage import Storage
from thrifty.trial import Trial, TrialState
from thrifty.usage import ResourceUsage

log = logging.getLogger("thrifty")


class Teller(Protocol):
    """What running a trial needs from the study: :meth:`thrifty.study.Study.tell`, and its
    storage (to record the trial's resource use)."""

    @property
    def storage(self) -> Storage: ...

    def tell(
        self,
        trial: TrialHandle,
        value: float | Mapping[str, float] | None = None,
        *,
        state: TrialState | str | None = None,
        error: str | None = None,
        reason: str | None = None,
        usage: ResourceUsage | None = None,
    ) -> Trial: ...


def run_trial(study: Teller, objective: Callable[[TrialHandle], Any], handle: TrialHandle) -> tuple[TrialState, str | None]:
    """Run ``objective`` on the started trial ``handle``, sampling its resource use, and record
    its outcome (see the module docstring). Returns (the state it ended in, the error if it
    failed)."""
    teller = _SampledTeller(study, handle)
    try:
        return _run(teller, objective, handle)
    finally:
        teller.sampler.stop()


class _SampledTeller:
    """The study as :func:`_run` tells it: the trial's resource use is sampled from the start,
    stored every :data:`~thrifty.runners.sampling.UPDATE_EVERY_S` seconds while it runs, and
    its final summary (after a last reading) goes with every tell (the first that is refused, an
    invalid result, is followed by a failed one)."""

    def __init__(self, study: Teller, handle: TrialHandle) -> None:
        self._study = study
        self._trial_id = handle.id
        prior = None
        if handle.start_step > 0:  # resumed (or a clone, whose stored usage is None): go on from it
            try:
                prior = handle.snapshot().usage
            except Exception as exc:  # noqa: BLE001 - sampling never fails a trial
                log.debug("could not read trial %d's earlier resource use: %s", handle.number, exc)
        self.sampler = UsageSampler(on_update=self._record, prior=prior).start()

    @property
    def storage(self) -> Storage:
        return self._study.storage

    def _record(self, usage: ResourceUsage) -> None:
        self._study.storage.record_usage(self._trial_id, usage)

    def tell(self, trial: TrialHandle, value: float | Mapping[str, float] | None = None, **told: Any) -> Trial:
        """:meth:`Teller.tell`, with the trial's final resource use unless ``usage`` is given."""
        told["usage"] = told.get("usage") or self.sampler.stop()
        return self._study.tell(trial, value, **told)


def _run(study: Teller, objective: Callable[[TrialHandle], Any], handle: TrialHandle) -> tuple[TrialState, str | None]:
    try:
        result = objective(handle)
    except TrialNotRunning:
        return TrialState.FAILED, "the trial was finished elsewhere (its worker was presumed dead)"
    except TrialFailed as exc:
        _finish_quietly(study, handle, TrialState.FAILED, str(exc))
        return TrialState.FAILED, str(exc)
    except TrialInfeasible as exc:
        _finish_quietly(study, handle, TrialState.INFEASIBLE, str(exc))
        return TrialState.INFEASIBLE, str(exc)
    except TrialStopped:
        try:
            return study.tell(handle, state=TrialState.STOPPED).state, None  # handle.stop says why
        except TrialNotRunning:
            return TrialState.STOPPED, None
    except KeyboardInterrupt:
        raise  # the runner fails the trial with the true reason (SIGINT, SIGTERM, a time limit)
    except Exception:  # noqa: BLE001 - failures are data
        tb = traceback.format_exc()
        _finish_quietly(study, handle, TrialState.FAILED, tb)
        return TrialState.FAILED, tb
    if handle.finished:
        return TrialState.COMPLETED, None
    try:
        if result is None:
            if handle.last_metrics is None:
                _finish_quietly(
                    study, handle, TrialState.FAILED, "the objective returned None without reporting anything; "
                    "return the objective value (or report before stopping)"
                )
                return TrialState.FAILED, "returned None"
            if handle.pausing:
                return study.tell(handle, state=TrialState.PAUSED).state, None
            return study.tell(handle, state=TrialState.STOPPED).state, None
        return study.tell(handle, result).state, None
    except ValidationError as exc:
        _finish_quietly(study, handle, TrialState.FAILED, f"invalid result {result!r}: {exc}")
        return TrialState.FAILED, str(exc)
    except TrialNotRunning as exc:
        return TrialState.FAILED, str(exc)


def _finish_quietly(study: Teller, handle: TrialHandle, state: TrialState, error: str) -> None:
    """Tell ``handle`` its failed end, unless it was finished elsewhere meanwhile."""
    try:
        study.tell(handle, state=state, error=error)
    except TrialNotRunning:
        pass
