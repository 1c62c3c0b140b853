"""Running one trial in this process: call the objective, then tell the study how it ended.

The outcome rules: an objective's return value completes the trial (a mapping of metrics or a
number); ``None`` after a report ends it STOPPED with its last report (PAUSED when the scheduler
paused it), and ``None`` without any report FAILS it. :class:`~thrifty.errors.TrialFailed` and
:class:`~thrifty.errors.TrialInfeasible` record their message, :class:`~thrifty.errors.TrialStopped`
(a hard budget) ends it STOPPED with its reason, and any other exception FAILS it with its
traceback: failures are data, the run goes on. ``KeyboardInterrupt`` (SIGINT, SIGTERM, a time
limit) propagates: the runner fails the trial with the true reason. A trial finished elsewhere
meanwhile (its worker presumed dead) counts as FAILED here and is not told again.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from thrifty.errors import TrialFailed, TrialInfeasible, TrialNotRunning, TrialStopped, ValidationError
from thrifty.handle import TrialHandle
from thrifty.trial import Trial, TrialState


class Teller(Protocol):
    """What running a trial needs from the study: :meth:`thrifty.study.Study.tell`."""

    def tell(
        self,
        trial: TrialHandle,
        value: float | Mapping[str, float] | None = None,
        *,
        state: TrialState | str | None = None,
        error: str | None = None,
        reason: str | None = None,
    ) -> Trial: ...


def run_trial(study: Teller, objective: Callable[[TrialHandle], Any], handle: TrialHandle) -> tuple[TrialState, str | None]:
    """Run ``objective`` on the started trial ``handle`` and record its outcome (see the module
    docstring). Returns (the state it ended in, the error if it failed)."""
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
