"""Immutable, validated records: :class:`TrialState`, :class:`Measurement`, :class:`Trial`.

These are snapshots read from storage. They never change; a newer snapshot is read instead.
Costs are in US dollars (``cost_usd``), durations in seconds (``elapsed_s``), timestamps in
seconds since the Unix epoch.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from thrifty.errors import ValidationError
from thrifty.usage import ResourceUsage


class TrialState(str, enum.Enum):
    """Life cycle of a trial.

    PENDING (enqueued, waiting for a worker) -> RUNNING -> one of the finished states:
    COMPLETED (ran to the end), STOPPED (ended early by a scheduler, a budget or the user; its last
    report is kept), FAILED (an error, with its text; or its worker died), INFEASIBLE (the
    configuration cannot be evaluated, with the reason). A RUNNING trial may also be PAUSED by a
    scheduler (ASHA's promotion variant, synchronous Hyperband): it rests with its checkpoint and
    may be resumed (RUNNING again, from its last step) by any worker later.
    """

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    INFEASIBLE = "infeasible"

    @property
    def is_finished(self) -> bool:
        return self not in (TrialState.PENDING, TrialState.RUNNING, TrialState.PAUSED)

    @property
    def is_settled(self) -> bool:
        """Not running nor waiting to run: finished or PAUSED (what a trial is between workers)."""
        return self not in (TrialState.PENDING, TrialState.RUNNING)

    @classmethod
    def parse(cls, value: str | TrialState) -> TrialState:
        if isinstance(value, TrialState):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValidationError(f"unknown trial state {value!r} (expected one of {names})") from None


class StopKind(str, enum.Enum):
    """Who or what ended (or paused) a trial early: the typed half of a stop reason.

    SCHEDULER: the study's scheduler (a rung, a pause for promotion, PBT's replacement, the
    budget-aware rule); BUDGET: a hard budget's circuit breaker (``stop_limit`` names the limit);
    USER: a person or the objective's own code (``Study.stop_trial``, ``tell(state="stopped")``, an
    objective that returns early without being asked to).
    """

    SCHEDULER = "scheduler"
    BUDGET = "budget"
    USER = "user"


@dataclass(frozen=True)
class StopReason:
    """Why a trial stopped or paused: ``kind`` (typed, what programs read), ``limit`` (the budget
    limit, ``"usd"``, ``"gpu_hours"`` or ``"wall_s"``, when ``kind`` is BUDGET; else ``None``) and
    ``text`` (the words shown to people, e.g. ``"budget: the budget of $1.00 is used up ..."``;
    never parsed)."""

    kind: StopKind
    text: str | None = None
    limit: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", StopKind(self.kind))
        if (self.limit is not None) != (self.kind is StopKind.BUDGET):
            raise ValidationError(f"StopReason(kind={self.kind.value!r}, limit={self.limit!r}): a budget stop "
                                  "names its limit, and only a budget stop has one")


def check_cost(cost_usd: Any, what: str = "cost_usd") -> float:
    """Validate a dollar amount: a finite number >= 0."""
    if isinstance(cost_usd, bool) or not isinstance(cost_usd, (int, float)):
        raise ValidationError(f"{what}={cost_usd!r}: expected a number of dollars")
    c = float(cost_usd)
    if math.isnan(c) or math.isinf(c):
        raise ValidationError(f"{what}={cost_usd!r}: a cost must be finite")
    if c < 0:
        raise ValidationError(f"{what}={cost_usd!r}: a cost cannot be negative")
    return c


def check_seconds(elapsed_s: Any, what: str = "elapsed_s") -> float:
    """Validate a duration: a finite number of seconds >= 0."""
    if isinstance(elapsed_s, bool) or not isinstance(elapsed_s, (int, float)):
        raise ValidationError(f"{what}={elapsed_s!r}: expected a number of seconds")
    s = float(elapsed_s)
    if not math.isfinite(s) or s < 0:
        raise ValidationError(f"{what}={elapsed_s!r}: must be a finite number of seconds >= 0")
    return s


def check_metrics(metrics: Any, default_name: str = "value", allow_empty: bool = False) -> dict[str, float]:
    """Validate metrics: a number, or a mapping of metric name to number.

    NaN and infinities are accepted and recorded as such (they never win "best"); anything that is
    not a real number is an error.
    """
    if isinstance(metrics, Mapping):
        items = dict(metrics)
    else:
        items = {default_name: metrics}
    if not items and not allow_empty:
        raise ValidationError("metrics: give at least one metric")
    out: dict[str, float] = {}
    for name, v in items.items():
        if not isinstance(name, str) or not name:
            raise ValidationError(f"metric name {name!r}: must be a non-empty string")
        if isinstance(v, (bool, str, bytes)) or v is None:  # float("0.5") would accept a string
            raise ValidationError(f"metric {name!r}={v!r}: expected a number")
        try:
            out[name] = float(v)
        except (TypeError, ValueError):
            raise ValidationError(f"metric {name!r}={v!r}: expected a number") from None
    return out


@dataclass(frozen=True)
class Measurement:
    """One report of a running trial.

    ``step`` is the resource used so far (epochs, data fraction, ...), ``None`` for a final value
    reported without steps. ``cost_usd`` is the *incremental* cost since the previous report and
    ``elapsed_s`` the incremental wall time, so a trial's cost is the sum over its measurements.
    ``metrics`` may be empty for a cost-only measurement (e.g. the cost of a failed run).
    """

    step: float | None
    metrics: Mapping[str, float]
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    #: GPU-seconds held during this interval (elapsed seconds times the trial's GPUs).
    gpu_s: float = 0.0
    timestamp: float = 0.0

    def __post_init__(self) -> None:
        if self.step is not None:
            if isinstance(self.step, bool) or not isinstance(self.step, (int, float)):
                raise ValidationError(f"step={self.step!r}: expected a number (the resource used)")
            if not math.isfinite(self.step) or self.step < 0:
                raise ValidationError(f"step={self.step!r}: must be a finite number >= 0")
        object.__setattr__(self, "metrics", MappingProxyType(check_metrics(self.metrics, allow_empty=True)))
        object.__setattr__(self, "cost_usd", check_cost(self.cost_usd))
        object.__setattr__(self, "elapsed_s", check_seconds(self.elapsed_s))
        object.__setattr__(self, "gpu_s", check_seconds(self.gpu_s, "gpu_s"))


@dataclass(frozen=True)
class Trial:
    """A snapshot of one trial.

    ``number`` is unique and dense within a study (0, 1, 2, ...). ``metrics`` are the final metrics
    for a COMPLETED trial and the last report for a STOPPED one. ``retry_of`` is the number of the
    trial this one re-runs after that trial's worker died; ``retried`` marks a failed trial that a
    retry replaced (it no longer counts towards trial limits). ``cost_usd`` (dollars) and
    ``elapsed_s`` (seconds) are the sums over the trial's measurements, kept by the storage in the
    same transaction as each measurement.
    """

    number: int
    state: TrialState
    params: Mapping[str, Any]
    metrics: Mapping[str, float] = field(default_factory=dict)
    measurements: tuple[Measurement, ...] = ()
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    worker_id: str | None = None
    retry_of: int | None = None
    retried: bool = False
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    gpu_s: float = 0.0
    #: Why a STOPPED or PAUSED trial stopped, in words (``"budget: ..."``, ``"scheduler: ..."``,
    #: ``"user: ..."``); read :attr:`stop_kind` and :attr:`stop_limit` rather than this text.
    reason: str | None = None
    #: Who or what stopped a STOPPED or PAUSED trial (``None`` for other states).
    stop_kind: StopKind | None = None
    #: The budget limit that stopped it (``"usd"``, ``"gpu_hours"``, ``"wall_s"``) when
    #: ``stop_kind`` is BUDGET, else ``None``.
    stop_limit: str | None = None
    #: 1 for the first trial of the study to settle (finish or pause), 2 for the next, ... (None
    #: while pending or running; a resumed trial gets a new one when it settles again).
    finish_order: int | None = None
    #: The trial whose checkpoint and (perturbed) params this one continues (population-based
    #: training's exploit step), else ``None``.
    parent: int | None = None
    #: The step this trial starts from: its parent's step for a clone, the step it paused at for a
    #: resumed trial; ``None`` for a trial that starts from scratch.
    start_step: float | None = None
    #: What the trial holds and pays for, e.g. ``{"gpu": 1, "cpu": 4}``.
    resources: Mapping[str, float] = field(default_factory=dict)
    user_attrs: Mapping[str, Any] = field(default_factory=dict)
    #: What the trial's processes used while it ran (CPU, resident memory, GPU: see
    #: :mod:`thrifty.usage`), as ``optimize``'s runner last recorded it: every 10 s while it runs,
    #: and with its end (``Study.tell(usage=)``). ``None``: nothing recorded (a trial run outside
    #: ``optimize`` and told without one, or stored by a thrifty before schema version 4). A
    #: mapping is read with :meth:`ResourceUsage.from_dict`.
    usage: ResourceUsage | None = None
    id: int | None = field(default=None, compare=False)
    #: Name of the study's objective metric for single-objective studies (``None`` otherwise).
    objective: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", TrialState.parse(self.state))
        if self.stop_kind is not None:
            object.__setattr__(self, "stop_kind", StopKind(self.stop_kind))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))
        object.__setattr__(self, "user_attrs", MappingProxyType(dict(self.user_attrs)))
        object.__setattr__(self, "resources", MappingProxyType(dict(self.resources)))
        object.__setattr__(self, "measurements", tuple(self.measurements))
        if self.usage is not None and not isinstance(self.usage, ResourceUsage):
            if not isinstance(self.usage, Mapping):
                raise ValidationError(f"usage={self.usage!r}: expected a ResourceUsage (or its to_dict()) or None")
            object.__setattr__(self, "usage", ResourceUsage.from_dict(self.usage))

    def named(self, objective: str) -> Trial:
        """This trial with its objective metric named ``objective``: a copy made without checking
        its fields again (they were checked when this one was made)."""
        copy = object.__new__(Trial)
        copy.__dict__.update(self.__dict__)
        copy.__dict__["objective"] = objective
        return copy

    @property
    def last_step(self) -> float | None:
        """The largest step reported so far, or ``None``."""
        steps = [m.step for m in self.measurements if m.step is not None]
        return max(steps) if steps else None

    @property
    def stop(self) -> StopReason | None:
        """Why the trial stopped or paused (kind, limit, words), or ``None``."""
        if self.stop_kind is None:
            return None
        return StopReason(self.stop_kind, self.reason, self.stop_limit)

    @property
    def value(self) -> float | None:
        """The objective's value (single-objective studies), or the metric ``"value"``."""
        return self.metrics.get(self.objective or "value")

    @property
    def is_finished(self) -> bool:
        return self.state.is_finished

    def __repr__(self) -> str:
        m = dict(self.metrics)
        return f"Trial(number={self.number}, state={self.state.value}, params={dict(self.params)!r}, metrics={m!r})"
