"""Telling a RUNNING trial its end: the state it ends in, its final metrics and the last interval's
charge, written by the storage in one transaction.

Rules (:meth:`thrifty.study.Study.tell` states them for users): a value makes the trial COMPLETED,
or INFEASIBLE when its metrics break a constraint (the reason is its error); without a value a
trial whose handle has reported ends STOPPED with its last report. The ledger metrics
(``cost_usd``, ``elapsed_s``) an objective lists are filled in from the trial's ledger, and a
:class:`~thrifty.objectives.CostUtility` is computed from the final metrics and cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from thrifty.cost.meter import Meter
from thrifty.errors import TrialNotRunning, ValidationError
from thrifty.handle import TrialHandle
from thrifty.ranking import infeasibility
from thrifty.study._heartbeat import Heartbeats
from thrifty.study._state import StudyState
from thrifty.trial import Measurement, StopKind, StopReason, Trial, TrialState, check_cost, check_metrics
from thrifty.usage import ResourceUsage


def resolve(state: StudyState, trial: TrialHandle | Trial | int) -> tuple[int, int]:
    """The storage id and number of a trial given by handle, record or (RUNNING) number."""
    if isinstance(trial, TrialHandle):
        return trial.id, trial.number
    if isinstance(trial, Trial):
        if trial.id is None:
            raise ValidationError("tell: this Trial has no storage id; pass the handle from study.ask()")
        return trial.id, trial.number
    if isinstance(trial, int) and not isinstance(trial, bool):
        for t in state.storage.get_trials(state.study_id, [TrialState.RUNNING], with_measurements=False):
            if t.number == trial:
                assert t.id is not None
                return t.id, t.number
        raise TrialNotRunning(f"study {state.name!r} has no RUNNING trial number {trial}")
    raise ValidationError(f"tell: expected a trial from study.ask() or a trial number, got {trial!r}")


def _final_state(
    handle: TrialHandle | None, number: int, value: float | Mapping[str, float] | None, state: TrialState | str | None
) -> TrialState:
    st = TrialState.parse(state) if state is not None else None
    if st is None:
        if value is None:
            if handle is not None and handle.last_metrics is not None:
                return TrialState.STOPPED
            raise ValidationError(
                f"tell(trial {number}): give a value (the objective) or a state ('failed', 'infeasible', 'stopped')"
            )
        return TrialState.COMPLETED
    if not st.is_settled:
        raise ValidationError(f"tell(state={st.value!r}): a trial can only be told a finished state or 'paused'")
    return st


def tell(
    state: StudyState,
    heartbeats: Heartbeats,
    trial: TrialHandle | Trial | int,
    value: float | Mapping[str, float] | None = None,
    *,
    to: TrialState | str | None = None,
    cost_usd: float = 0.0,
    elapsed_s: float | None = None,
    error: str | None = None,
    reason: str | None = None,
    usage: ResourceUsage | None = None,
) -> Trial:
    """Finish a RUNNING trial in state ``to`` (see :meth:`thrifty.study.Study.tell`); returns it."""
    s = state.settings
    handle = trial if isinstance(trial, TrialHandle) else None
    trial_id, number = resolve(state, trial)
    check_cost(cost_usd)
    st = _final_state(handle, number, value, to)
    metrics: dict[str, float] | None = None
    if value is not None:
        metrics = check_metrics(value, default_name=s.default_metric)
    elif st in (TrialState.STOPPED, TrialState.PAUSED) and handle is not None and handle.last_metrics is not None:
        metrics = dict(handle.last_metrics)
    if st in (TrialState.FAILED, TrialState.INFEASIBLE):
        if error is None:
            error = "failed" if st is TrialState.FAILED else "infeasible"
    elif error is not None:
        raise ValidationError(f"tell(error=...) is only for failed or infeasible trials, not {st.value}")
    if reason is not None and st not in (TrialState.STOPPED, TrialState.PAUSED):
        raise ValidationError(f"tell(reason=...) is for stopped or paused trials, not {st.value}")
    # The last interval: metered time plus the reported cost.
    if handle is not None:
        charge = handle.pending_charge(elapsed_s, cost_usd)
        elapsed, cost, gpu_s = charge.elapsed_s, charge.cost_usd, charge.gpu_s
        total_cost, total_elapsed = handle.cost_usd + cost, handle.elapsed_s + elapsed
    else:
        charge = Meter(s.pricing, s.resources).charge(0.0 if elapsed_s is None else elapsed_s, cost_usd)
        elapsed, cost, gpu_s = charge.elapsed_s, charge.cost_usd, charge.gpu_s
        before = state.storage.get_trial(trial_id) if (metrics is not None) else None
        total_cost = (before.cost_usd if before else 0.0) + cost
        total_elapsed = (before.elapsed_s if before else 0.0) + elapsed
    if metrics is not None:
        for name, amount in (("cost_usd", total_cost), ("elapsed_s", total_elapsed)):
            if name in s.objectives and name not in metrics:
                metrics[name] = amount
        if s.utility is not None and (st is TrialState.COMPLETED or s.utility.metric in metrics):
            metrics[s.utility.name] = s.utility.value(metrics, total_cost)
    if st is TrialState.COMPLETED:
        assert metrics is not None
        missing = [k for k in s.objectives if k not in metrics]
        if missing:
            raise ValidationError(
                f"trial {number} returned {sorted(metrics)!r} but the objective needs {missing!r}; "
                f"return a mapping with {sorted(s.objectives)!r}"
            )
        error = infeasibility(metrics, s.constraints)
        if error is not None:
            st = TrialState.INFEASIBLE
    # Why it stopped: what the handle was told (a user's words replace only the words), else
    # the user's; None lets the storage keep a reason recorded while it ran (Storage.finish).
    stop = handle.stop if handle is not None else None
    if reason is not None:
        stop = StopReason(StopKind.USER, reason) if stop is None else dataclasses.replace(stop, text=reason)
    if st not in (TrialState.STOPPED, TrialState.PAUSED):
        stop = None
    now = state.clock.time()
    measurement = None
    if metrics is not None or cost > 0 or elapsed > 0:
        step = handle.last_step if handle is not None else None
        measurement = Measurement(
            step=step, metrics=metrics if (metrics is not None and value is not None) else {},
            cost_usd=cost, elapsed_s=elapsed, gpu_s=gpu_s, timestamp=now,
        )
    finished = state.storage.finish(state.study_id, trial_id, st, metrics, measurement, error, now,
                                    stop=stop, usage=usage)
    if handle is not None:
        handle.finished = True
    heartbeats.untrack(trial_id)
    return state.label(finished)
