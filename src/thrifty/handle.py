"""The live trial an objective works on: its params, ``report`` and ``should_stop``.

A :class:`TrialHandle` talks to the study that handed it out through :class:`TrialHost`, a small
protocol the study side implements (record a report, decide a stop, the artifact folders), never
through the study's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from thrifty.cost.meter import Charge, Meter
from thrifty.errors import TrialStopped, ValidationError
from thrifty.trial import Measurement, StopKind, StopReason, Trial, check_cost, check_metrics

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.clock import Clock
    from thrifty.cost.pricing import Pricing
    from thrifty.study import Study


class TrialHost(Protocol):
    """What a :class:`TrialHandle` needs from the study side."""

    @property
    def study(self) -> Study:
        """The study the trial belongs to (what :attr:`TrialHandle.study` returns)."""
        ...

    @property
    def clock(self) -> Clock:
        """The study's clock (:mod:`thrifty.clock`): the handle measures its intervals with its
        ``monotonic()`` and stamps its reports with its ``time()``."""
        ...

    @property
    def pricing(self) -> Pricing:
        """How the trial's seconds and resources become dollars."""
        ...

    @property
    def default_metric(self) -> str:
        """The metric a bare number reports."""
        ...

    def record_report(self, trial_id: int, measurement: Measurement, now: float) -> StopReason | None:
        """Store ``measurement`` (also a heartbeat, at ``now``, epoch seconds); returns why the
        trial must stop (a stop requested by the budget's breaker or a user), else ``None``."""
        ...

    def should_stop(self, handle: TrialHandle) -> bool:
        """The scheduler's decision for the running trial (may set ``handle.stop`` and
        ``handle.pausing``)."""
        ...

    def checkpoint_at(self, step: float) -> bool:
        """Whether the scheduler may pause or clone a trial at ``step``."""
        ...

    def trial_dir(self, number: int) -> Path:
        """Trial ``number``'s artifact folder (not created)."""
        ...

    def stored_trial(self, trial_id: int) -> Trial:
        """The trial as stored now, with its measurements."""
        ...


class TrialHandle:
    """A RUNNING trial handed out by :meth:`Study.ask`.

    ``params`` are the values to evaluate. Call :meth:`report` with intermediate results (the
    step is the resource used so far, e.g. epochs) and stop early when :meth:`should_stop` says
    so. Finish with :meth:`Study.tell` (``optimize`` does that for you).
    """

    def __init__(self, host: TrialHost, trial: Trial) -> None:
        self._host = host
        self._trial = trial
        self._clock = host.clock
        self._last_mark = self._clock.monotonic()
        # A resumed trial goes on from its last report; a clone from its parent's step.
        self._last_step: float | None = trial.last_step if trial.last_step is not None else trial.start_step
        reported = [m for m in trial.measurements if m.metrics]
        self._last_metrics: dict[str, float] | None = dict(reported[-1].metrics) if reported else None
        self._cost_usd = trial.cost_usd
        self._elapsed_s = trial.elapsed_s
        self._meter = Meter(host.pricing, trial.resources)
        #: Why the trial must end (set by a stop request, the budget's breaker or the scheduler):
        #: ``tell`` records it.
        self.stop: StopReason | None = None
        #: Set when the scheduler paused the trial (``should_stop`` is then true): ``optimize``
        #: records it as PAUSED, to be resumed from its checkpoint later.
        self.pausing = False
        self.finished = False
        #: True from a report whose transaction found no stop requested until the next
        #: ``should_stop``, which then needs no read of its own to know that.
        self.stop_checked = False

    @property
    def number(self) -> int:
        """The trial's number in its study (0, 1, 2, ...)."""
        return self._trial.number

    @property
    def id(self) -> int:
        assert self._trial.id is not None
        return self._trial.id

    @property
    def params(self) -> Mapping[str, Any]:
        """The parameter values of this trial (inactive conditional parameters are absent)."""
        return self._trial.params

    @property
    def study(self) -> Study:
        return self._host.study

    @property
    def retry_of(self) -> int | None:
        """Number of the trial this one re-runs (after its worker died), else ``None``."""
        return self._trial.retry_of

    @property
    def start_step(self) -> float:
        """The step to continue from (0 for a fresh trial). A resumed trial (paused by the
        scheduler, then promoted) or a clone (population-based training) starts here: load the
        checkpoint from :attr:`checkpoint_dir` and report steps after this one."""
        return float(self._trial.start_step or 0.0)

    @property
    def parent(self) -> int | None:
        """The trial whose checkpoint this one continues (a PBT clone), else ``None``."""
        return self._trial.parent

    def should_checkpoint(self, step: float) -> bool:
        """Whether to save a checkpoint (into :attr:`checkpoint_dir`) before reporting ``step``:
        true where the scheduler may pause or clone the trial, so it can be resumed from there.
        Write the checkpoint first, then report."""
        return self._host.checkpoint_at(float(step))

    @property
    def last_metrics(self) -> Mapping[str, float] | None:
        """The metrics of the last :meth:`report`, or ``None``."""
        return None if self._last_metrics is None else MappingProxyType(self._last_metrics)

    @property
    def last_step(self) -> float | None:
        return self._last_step

    @property
    def resources(self) -> Mapping[str, float]:
        """What this trial holds and pays for (e.g. ``{"gpu": 1, "cpu": 4}``)."""
        return self._trial.resources

    @property
    def cost_usd(self) -> float:
        """Dollars charged to this trial so far (metered time plus reported costs)."""
        return self._cost_usd

    @property
    def elapsed_s(self) -> float:
        """Wall seconds charged to this trial so far (its recorded intervals)."""
        return self._elapsed_s

    @property
    def stop_reason(self) -> str | None:
        """Why the trial must end, in words (see :attr:`stop` for the typed reason)."""
        return None if self.stop is None else self.stop.text

    def pending_charge(
        self, elapsed_s: float | None = None, cost_usd: float = 0.0, mono_now: float | None = None
    ) -> Charge:
        """What the interval since the last report costs (up to ``mono_now``, a reading of the
        study's clock's ``monotonic()``, default: now; ``elapsed_s`` instead gives its seconds), from the trial's
        :class:`~thrifty.cost.meter.Meter`: the metered price of its resources for that time plus
        ``cost_usd`` the objective reports. Nothing is recorded: a report restarts the interval
        once recorded, so an interval that fails to be recorded (an invalid result, a refused
        tell) is charged with the next one, not lost."""
        if elapsed_s is None:
            now = self._clock.monotonic() if mono_now is None else mono_now
            elapsed_s = max(now - self._last_mark, 0.0)
        return self._meter.charge(elapsed_s, cost_usd)

    def report(
        self,
        metrics: float | Mapping[str, float],
        step: float | None = None,
        *,
        cost_usd: float = 0.0,
        elapsed_s: float | None = None,
    ) -> None:
        """Record an intermediate result.

        ``metrics``: a number (the objective) or a mapping of metric name to number.
        ``step``: the resource used so far (epochs, samples, ...); it must not decrease.
        ``cost_usd``: dollars spent since the previous report beyond the metered compute (e.g. API
        calls); the study's pricing adds the price of the trial's resources for the elapsed time.
        ``elapsed_s``: seconds since the previous report (measured on the study's clock if omitted).

        Raises :class:`~thrifty.errors.TrialStopped` (after recording this report) when a hard
        budget has been reached: the trial must end now; ``optimize`` records it as STOPPED.
        """
        values = check_metrics(metrics, default_name=self._host.default_metric)
        check_cost(cost_usd)
        if step is not None and self._last_step is not None and step < self._last_step:
            raise ValidationError(
                f"report(step={step}): steps must not decrease (the last report was at step {self._last_step})"
            )
        mono = self._clock.monotonic()
        charge = self.pending_charge(elapsed_s, cost_usd, mono)
        now = self._clock.time()
        m = Measurement(step=step, metrics=values, cost_usd=charge.cost_usd, elapsed_s=charge.elapsed_s,
                        gpu_s=charge.gpu_s, timestamp=now)
        stop = self._host.record_report(self.id, m, now)
        self._last_mark = mono  # the next interval starts here, whether this one was measured or given
        self._cost_usd += charge.cost_usd
        self._elapsed_s += charge.elapsed_s
        if step is not None:
            self._last_step = float(step)
        self._last_metrics = values
        self.stop_checked = stop is None
        if stop is not None:
            self.stop = stop
            if stop.kind is StopKind.BUDGET:
                raise TrialStopped(f"trial {self.number} must stop: {stop.text}", str(stop.text))

    def charge(self, *, cost_usd: float = 0.0, elapsed_s: float | None = None) -> Charge:
        """Record the interval since the previous report as a cost-only measurement (no metrics,
        no step: schedulers do not judge it) and return its :class:`~thrifty.cost.meter.Charge`.
        A pipeline charges each stage this way, so a trial's cost is split by stage. Raises
        :class:`~thrifty.errors.TrialStopped` (after recording) when a hard budget is reached, as
        :meth:`report` does."""
        check_cost(cost_usd)
        mono = self._clock.monotonic()
        charge = self.pending_charge(elapsed_s, cost_usd, mono)
        now = self._clock.time()
        m = Measurement(step=None, metrics={}, cost_usd=charge.cost_usd, elapsed_s=charge.elapsed_s,
                        gpu_s=charge.gpu_s, timestamp=now)
        stop = self._host.record_report(self.id, m, now)
        self._last_mark = mono
        self._cost_usd += charge.cost_usd
        self._elapsed_s += charge.elapsed_s
        if stop is not None:
            self.stop = stop
            if stop.kind is StopKind.BUDGET:
                raise TrialStopped(f"trial {self.number} must stop: {stop.text}", str(stop.text))
        return charge

    def should_stop(self) -> bool:
        """Whether the trial should end now (its scheduler decided so, or a stop was requested).

        An objective that sees ``True`` should return ``None``; the trial is then recorded as
        STOPPED with its last report.
        """
        if self.stop is not None:
            return True
        try:
            return self._host.should_stop(self)
        finally:
            self.stop_checked = False

    @property
    def artifact_dir(self) -> Path:
        """This trial's folder in the study's artifact root (created on first use): logs, params,
        and the checkpoint folder. Paths, never blobs in the database."""
        folder = self._host.trial_dir(self.number)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def checkpoint_dir(self) -> Path:
        """Where the objective saves checkpoints of this trial (created on first use)."""
        folder = self.artifact_dir / "checkpoint"
        folder.mkdir(exist_ok=True)
        return folder

    def snapshot(self) -> Trial:
        """The trial as stored now (with its measurements)."""
        return self._host.stored_trial(self.id)

    def __repr__(self) -> str:
        return f"TrialHandle(number={self.number}, params={dict(self.params)!r})"

