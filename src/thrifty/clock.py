"""Clocks: where a study reads the time.

A study reads two clocks through one :class:`Clock`: :meth:`Clock.time` (seconds since the epoch:
the timestamps of trials and measurements, heartbeats and the reaper's "now", active wall time
for ``Budget(wall_s=...)``) and :meth:`Clock.monotonic` (the intervals a trial is metered for).
:class:`SystemClock` is the default. :class:`ManualClock` moves only when told to
(:meth:`ManualClock.advance`): the clock for tests and simulations, so that metering, wall-time
budgets and heartbeats can be checked exactly without sleeping::

    clock = th.ManualClock()
    study = th.Study.create(space, storage="memory", pricing={"local": 36.0}, clock=clock)
    trial = study.ask()
    clock.advance(10.0)
    trial.report(0.5, step=1)  # charged exactly 10 s: $0.10

A clock belongs to one process: worker processes of ``optimize(n_workers>1)`` read the system
clock, so a study with a :class:`ManualClock` runs its trials in the calling process only.
"""

from __future__ import annotations

import math
import threading
import time as _time
from typing import Protocol, runtime_checkable

from thrifty.errors import ValidationError

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Where a study reads the time."""

    def time(self) -> float:
        """Seconds since the epoch (timestamps, heartbeats, wall-time budgets)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, to measure intervals with."""
        ...


class SystemClock:
    """The machine's clocks: :func:`time.time` and :func:`time.monotonic` (the default)."""

    def time(self) -> float:
        return _time.time()

    def monotonic(self) -> float:
        return _time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


#: The one system clock studies share when none is given.
SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that stands still until :meth:`advance` moves it: for tests and simulations.

    ``start_s``: its :meth:`time` at first (seconds since the epoch; default ``1_700_000_000.0``,
    a fixed moment so that runs repeat). :meth:`monotonic` starts at 0 and moves with it.
    Safe to share between threads of one process (a heartbeat thread reads it).
    """

    def __init__(self, start_s: float = 1_700_000_000.0) -> None:
        self._epoch = _check_seconds("ManualClock(start_s", start_s, allow_any_sign=True)
        self._elapsed = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._epoch + self._elapsed

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` forward (finite, >= 0); returns the new :meth:`time`."""
        step = _check_seconds("advance(seconds", seconds)
        with self._lock:
            self._elapsed += step
            return self._epoch + self._elapsed

    def __repr__(self) -> str:
        return f"ManualClock(time={self.time()!r})"


def _check_seconds(what: str, value: object, allow_any_sign: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (value < 0 and not allow_any_sign):
        need = "a finite number" if allow_any_sign else "a finite number of seconds >= 0"
        raise ValidationError(f"{what}={value!r}): expected {need}")
    return float(value)


def check_clock(clock: object) -> Clock:
    """``clock`` if it is a :class:`Clock` (``None``: the system clock); a one-line
    :class:`~thrifty.errors.ValidationError` otherwise."""
    if clock is None:
        return SYSTEM_CLOCK
    if not isinstance(clock, Clock) or isinstance(clock, type):
        raise ValidationError(f"clock={clock!r}: expected a thrifty Clock (time() and monotonic()), "
                              "e.g. thrifty.ManualClock(), or None for the system clock")
    return clock
