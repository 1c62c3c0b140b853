"""The live trial an objective works on: its params, ``report`` and ``should_stop``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from thrifty.errors import ValidationError
from thrifty.trial import Measurement, Trial, check_cost, check_metrics, check_seconds

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.study import Study


class TrialHandle:
    """A RUNNING trial handed out by :meth:`Study.ask`.

    ``params`` are the values to evaluate. Call :meth:`report` with intermediate results (the
    step is the resource used so far, e.g. epochs) and stop early when :meth:`should_stop` says
    so. Finish with :meth:`Study.tell` (``optimize`` does that for you).
    """

    def __init__(self, study: Study, trial: Trial) -> None:
        self._study = study
        self._trial = trial
        self._last_mark = time.monotonic()
        self._last_step: float | None = None
        self._last_metrics: dict[str, float] | None = None
        self.finished = False

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
        return self._study

    @property
    def retry_of(self) -> int | None:
        """Number of the trial this one re-runs (after its worker died), else ``None``."""
        return self._trial.retry_of

    @property
    def last_metrics(self) -> Mapping[str, float] | None:
        """The metrics of the last :meth:`report`, or ``None``."""
        return None if self._last_metrics is None else MappingProxyType(self._last_metrics)

    @property
    def last_step(self) -> float | None:
        return self._last_step

    def _elapsed_since_mark(self) -> float:
        now = time.monotonic()
        dt = now - self._last_mark
        self._last_mark = now
        return max(dt, 0.0)

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
        ``cost_usd``: dollars spent since the previous report (e.g. API calls, or compute you meter
        yourself). ``elapsed_s``: seconds since the previous report (measured if omitted).
        """
        values = check_metrics(metrics, default_name=self._study._default_metric)
        cost = check_cost(cost_usd)
        elapsed = self._elapsed_since_mark() if elapsed_s is None else check_seconds(elapsed_s)
        if step is not None and self._last_step is not None and step < self._last_step:
            raise ValidationError(
                f"report(step={step}): steps must not decrease (the last report was at step {self._last_step})"
            )
        m = Measurement(step=step, metrics=values, cost_usd=cost, elapsed_s=elapsed, timestamp=time.time())
        self._study._storage.report(self._study._record.id, self.id, m, time.time())
        if step is not None:
            self._last_step = float(step)
        self._last_metrics = values

    def should_stop(self) -> bool:
        """Whether the trial should end now (its scheduler decided so, or a stop was requested).

        An objective that sees ``True`` should return ``None``; the trial is then recorded as
        STOPPED with its last report.
        """
        return self._study._should_stop(self)

    def snapshot(self) -> Trial:
        """The trial as stored now (with its measurements)."""
        return self._study._wrap(self._study._storage.get_trial(self.id))

    def __repr__(self) -> str:
        return f"TrialHandle(number={self.number}, params={dict(self.params)!r})"
