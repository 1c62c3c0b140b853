"""Trials for tests, built only from the public records of :mod:`thrifty.trial`.

Every test that needs a history without running a study builds it here, so a change to the
records is followed in one place. Units are those of the records: ``step`` is the resource used so
far (epochs, ...), ``cost_usd`` dollars, ``elapsed_s`` and ``timestamp`` seconds.

- :func:`measurements`: a learning curve, one report per value at steps ``start, start + 1, ...``;
- :func:`trial`: any trial (state, params, final metrics, a curve, any other ``Trial`` field);
- :func:`completed`, :func:`pending`, :func:`running`, :func:`stopped`, :func:`paused`,
  :func:`failed`: the same in one state;
- :func:`curve_trial`: a trial that reported a curve (the schedulers' view of a trial);
- :func:`of_points`: one trial per parameter set, numbered from 0;
- :func:`random_history`: ``n`` trials at seeded random points of a space, valued by a function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from thrifty.space import Space
from thrifty.trial import Measurement, Trial, TrialState

State = str | TrialState


def measurements(values: Sequence[float | None], *, metric: str = "value", start: float = 1.0,
                 steps: Sequence[float] | None = None, cost_usd: float = 0.0,
                 timestamps: bool = False) -> tuple[Measurement, ...]:
    """One measurement of ``metric`` per value, at steps ``start, start + 1, ...`` (or at ``steps``);
    a ``None`` value is a cost-only measurement (no metrics).

    ``cost_usd`` is each measurement's own (incremental) dollars; with ``timestamps`` the ``i``-th
    measurement is stamped ``i`` seconds after the epoch (a stable, increasing clock).
    """
    at = [start + i for i in range(len(values))] if steps is None else list(steps)
    if len(at) != len(values):
        raise ValueError(f"measurements: {len(values)} values but {len(at)} steps")
    return tuple(
        Measurement(step=s, metrics={} if v is None else {metric: v}, cost_usd=cost_usd,
                    timestamp=float(i) if timestamps else 0.0)
        for i, (s, v) in enumerate(zip(at, values))
    )


def trial(number: int = 0, *, state: State = "completed", params: Mapping[str, Any] | None = None,
          metrics: Mapping[str, float] | None = None, **fields: Any) -> Trial:
    """A trial with the given fields (any field of :class:`~thrifty.trial.Trial`); params default to ``{}``."""
    return Trial(number=number, state=state, params=dict(params or {}), metrics=dict(metrics or {}), **fields)


def completed(number: int = 0, params: Mapping[str, Any] | None = None, value: float | None = None, *,
              metric: str = "value", **fields: Any) -> Trial:
    """A COMPLETED trial whose final ``metric`` is ``value`` (no metrics when ``value`` is None)."""
    metrics = dict(fields.pop("metrics", {}))
    if value is not None:
        metrics[metric] = value
    return trial(number, state=TrialState.COMPLETED, params=params, metrics=metrics, **fields)


def pending(number: int = 0, params: Mapping[str, Any] | None = None, **fields: Any) -> Trial:
    """A PENDING trial (enqueued, not started)."""
    return trial(number, state=TrialState.PENDING, params=params, **fields)


def running(number: int = 0, params: Mapping[str, Any] | None = None, **fields: Any) -> Trial:
    """A RUNNING trial (started, not finished)."""
    return trial(number, state=TrialState.RUNNING, params=params, **fields)


def stopped(number: int = 0, params: Mapping[str, Any] | None = None, **fields: Any) -> Trial:
    """A STOPPED trial (ended early; give ``measurements`` for its last report)."""
    return trial(number, state=TrialState.STOPPED, params=params, **fields)


def paused(number: int = 0, params: Mapping[str, Any] | None = None, **fields: Any) -> Trial:
    """A PAUSED trial (resting with its checkpoint until a scheduler resumes it)."""
    return trial(number, state=TrialState.PAUSED, params=params, **fields)


def failed(number: int = 0, params: Mapping[str, Any] | None = None, error: str = "boom", **fields: Any) -> Trial:
    """A FAILED trial with its error text."""
    return trial(number, state=TrialState.FAILED, params=params, error=error, **fields)


def curve_trial(number: int, values: Sequence[float | None], *, state: State = "running", metric: str = "value",
                start: float = 1.0, steps: Sequence[float] | None = None, step_cost_usd: float = 0.0,
                final: bool = False, timestamps: bool = False, params: Mapping[str, Any] | None = None,
                **fields: Any) -> Trial:
    """A trial that reported ``values`` of ``metric`` at steps ``start, start + 1, ...`` (or ``steps``).

    ``step_cost_usd``: dollars of each report; the trial's ``cost_usd`` is their sum unless given.
    ``final``: also record the last value as the trial's final metric (what a COMPLETED trial
    told). Other ``Trial`` fields pass through.
    """
    ms = measurements(values, metric=metric, start=start, steps=steps, cost_usd=step_cost_usd, timestamps=timestamps)
    fields.setdefault("cost_usd", math.fsum(m.cost_usd for m in ms))
    metrics = {metric: values[-1]} if final and len(values) and values[-1] is not None else {}
    return trial(number, state=state, params=params, metrics=metrics, measurements=ms, **fields)


def of_points(points: Sequence[Mapping[str, Any]], *, state: State = "completed", **fields: Any) -> list[Trial]:
    """One trial per parameter set, numbered 0, 1, ... in order, all in ``state``."""
    return [trial(i, state=state, params=p, **fields) for i, p in enumerate(points)]


def random_history(space: Space, n: int, *, seed: int = 0, metric: str = "value",
                   value: Callable[[dict[str, Any]], float] | None = None, state: State = "completed",
                   first: int = 0) -> list[Trial]:
    """``n`` trials numbered from ``first`` at seeded uniform points of ``space`` (decoded from the unit
    cube), each with final ``metric`` = ``value(params)`` (a seeded uniform draw in [0, 1) if no
    ``value``). Only COMPLETED trials carry the metric."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(first, first + n):
        params = space.decode(rng.random(space.n_dims))
        v = value(params) if value is not None else float(rng.random())
        metrics = {metric: v} if TrialState.parse(state) is TrialState.COMPLETED else {}
        out.append(trial(k, state=state, params=params, metrics=metrics))
    return out
