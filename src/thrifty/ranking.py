"""The one ranking of trials, and what makes a trial feasible.

Every place that asks "which trials are best" uses :func:`rank`: ``Study.best``,
``Study.pareto_front``, ``Study.robust_best``, ``Study.reevaluate_top``, checkpoint cleanup
(:mod:`thrifty.checkpoints`), warm start (:mod:`thrifty.warm_start`) and the completion criteria
(:mod:`thrifty.criteria`). The rule:

- **Eligible**: a COMPLETED trial whose objective values are all finite numbers and that meets
  every constraint. STOPPED, PAUSED, FAILED and INFEASIBLE trials, NaN or infinite values, and
  trials that break a constraint are never ranked.
- **Order**: one objective: by its value in its direction. Several objectives: by Pareto front
  (the non-dominated trials first, then those dominated only by the first front, ...).
- **Ties**: the lower trial number (the earlier trial) first.

**Constraints** are ``{metric: ("<=" | ">=", bound)}``. A trial meets one when its metric is a
finite number on the right side of the bound (equal to it counts); a missing or NaN metric breaks
it. ``Study.tell`` and ``Study.add_trial`` record a trial that reports its final metrics but
breaks a constraint as INFEASIBLE, with :func:`infeasibility` as its reason, for example
``"constraint nnz <= 100 broken: nnz = 140"``. Its metrics are kept: strategies learn its value
and where the constraints break (see :func:`measured`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from thrifty.errors import ValidationError
from thrifty.trial import Trial, TrialState

#: ``{metric: (op, bound)}`` with op ``"<="`` or ``">="``.
Constraints = Mapping[str, tuple[str, float]]


def chosen_objective(objectives: Mapping[str, str], objective: str | None, study: str) -> tuple[str, str]:
    """(name, direction) of the objective a view of study ``study`` shows: ``objective``, or the
    only one; a one-line :class:`ValidationError` for an unknown name or a missing choice among
    several."""
    if objective is None:
        if len(objectives) > 1:
            raise ValidationError(f"study {study!r} has {len(objectives)} objectives "
                                  f"({', '.join(objectives)}); pass objective=NAME")
        objective = next(iter(objectives))
    if objective not in objectives:
        raise ValidationError(f"objective={objective!r}: study {study!r} has {', '.join(objectives)}")
    return objective, objectives[objective]


def violation(trial: Trial, constraints: Constraints) -> float:
    """Total amount by which a trial breaks its constraints (0 when feasible; a missing or NaN
    constrained metric counts as infinitely violated)."""
    total = 0.0
    for metric, (op, bound) in constraints.items():
        v = trial.metrics.get(metric)
        if v is None or not math.isfinite(v):
            return math.inf
        total += max(v - bound, 0.0) if op == "<=" else max(bound - v, 0.0)
    return total


def is_feasible(trial: Trial, constraints: Constraints) -> bool:
    """Whether a trial's metrics meet every constraint (a missing or NaN metric does not)."""
    return violation(trial, constraints) == 0.0


def infeasibility(metrics: Mapping[str, float], constraints: Constraints) -> str | None:
    """Why these metrics break the constraints (``"constraint nnz <= 100 broken: nnz = 140"``,
    several joined by ``"; "``), or ``None`` when they meet them all."""
    broken = []
    for metric, (op, bound) in constraints.items():
        v = metrics.get(metric)
        if v is None:
            broken.append(f"constraint {metric} {op} {bound:g} broken: {metric} not reported")
        elif not math.isfinite(v) or (v > bound if op == "<=" else v < bound):
            broken.append(f"constraint {metric} {op} {bound:g} broken: {metric} = {v:g}")
    return "; ".join(broken) or None


def measured(trial: Trial) -> bool:
    """Whether a finished trial ran to its end and reported its final metrics: COMPLETED, or
    INFEASIBLE with metrics (it broke a constraint, or was told infeasible with a value). Such a
    trial's values are observations that strategies and schedulers learn from; an INFEASIBLE
    trial without metrics (the objective raised ``TrialInfeasible``) is not one."""
    return trial.state is TrialState.COMPLETED or (trial.state is TrialState.INFEASIBLE and bool(trial.metrics))


def full_resource(trials: Sequence[Trial]) -> float | None:
    """The resource a full trial reaches: the largest last step of a trial that ran to its end
    (:func:`measured`), or ``None`` while none has (or none reported a step). The one definition
    the cost model, the spending rules and the cost report share."""
    steps = [t.last_step for t in trials if measured(t) and t.last_step is not None]
    return float(max(steps)) if steps else None


def objective_vector(trial: Trial, objectives: Mapping[str, str]) -> tuple[float, ...] | None:
    """The objective values sign-flipped so that smaller is better (``-v`` for ``"max"``), or
    ``None`` if any is missing, NaN or infinite."""
    out = []
    for name, direction in objectives.items():
        v = trial.metrics.get(name)
        if v is None or not math.isfinite(v):
            return None
        out.append(-v if direction == "max" else v)
    return tuple(out)


def eligible(trials: Iterable[Trial], objectives: Mapping[str, str],
             constraints: Constraints | None = None) -> list[tuple[tuple[float, ...], Trial]]:
    """The trials :func:`rank` ranks, with their objective vectors, in the order given: COMPLETED,
    finite objective values, every constraint met."""
    out = []
    for t in trials:
        if t.state is not TrialState.COMPLETED or (constraints and not is_feasible(t, constraints)):
            continue
        v = objective_vector(t, objectives)
        if v is not None:
            out.append((v, t))
    return out


def fronts(points: np.ndarray, violations: np.ndarray) -> list[list[int]]:
    """Non-dominated fronts (indices, ascending within a front) of ``points`` (rows, all
    minimized) under constrained domination: a smaller violation dominates a larger one; equal
    violations compare the points by Pareto dominance."""
    n = len(points)

    def dominates(i: int, j: int) -> bool:
        if violations[i] != violations[j]:
            return bool(violations[i] < violations[j])
        return bool(np.all(points[i] <= points[j]) and np.any(points[i] < points[j]))

    dominated_by = [0] * n
    dominating: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(i, j):
                dominating[i].append(j)
                dominated_by[j] += 1
            elif dominates(j, i):
                dominating[j].append(i)
                dominated_by[i] += 1
    out: list[list[int]] = []
    current = [i for i in range(n) if dominated_by[i] == 0]
    while current:
        out.append(current)
        nxt = []
        for i in current:
            for j in dominating[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        current = sorted(nxt)
    return out


def front_ranks(y: np.ndarray) -> np.ndarray:
    """The front of each row of ``y`` (all minimized) by non-dominated sorting: 0 for the Pareto
    front, 1 for the next, ... The fronts of :func:`fronts` without violations, vectorised (TPE
    ranks its feasible trials with it at every proposal)."""
    n = len(y)
    le = (y[:, None, :] <= y[None, :, :]).all(axis=2)
    lt = (y[:, None, :] < y[None, :, :]).any(axis=2)
    dominates = le & lt
    count = dominates.sum(axis=0)
    rank = np.zeros(n, dtype=int)
    left = np.ones(n, dtype=bool)
    r = 0
    while left.any():
        front = left & (count == 0)
        rank[front] = r
        left &= ~front
        count = count - dominates[front].sum(axis=0)
        r += 1
    return rank


def ranked_fronts(trials: Iterable[Trial], objectives: Mapping[str, str],
                  constraints: Constraints | None = None) -> list[list[Trial]]:
    """The eligible trials by Pareto front, best front first, lower number first within a front
    (one objective: each front holds the trials sharing one value)."""
    scored = sorted(eligible(trials, objectives, constraints), key=lambda vt: vt[1].number)
    if not scored:
        return []
    points = np.array([v for v, _ in scored], dtype=float)
    return [[scored[i][1] for i in front] for front in fronts(points, np.zeros(len(scored)))]


def rank(trials: Iterable[Trial], objectives: Mapping[str, str],
         constraints: Constraints | None = None) -> list[Trial]:
    """The eligible trials, best first (the rule is in the module docstring).

    ``objectives``: ``{metric: "min" | "max"}``; ``constraints``: ``{metric: (op, bound)}``
    (``None``: only the state and the values decide). Pure: reads nothing but the trials given.
    """
    if len(objectives) == 1:
        return [t for _, t in sorted(eligible(trials, objectives, constraints),
                                     key=lambda vt: (vt[0], vt[1].number))]
    return [t for front in ranked_fronts(trials, objectives, constraints) for t in front]


def judged(trial: Trial, constraints: Constraints) -> Trial:
    """The trial as the constraints judge it: a COMPLETED trial that breaks one is returned as
    INFEASIBLE with the reason (trials recorded before thrifty marked them); others unchanged."""
    if trial.state is not TrialState.COMPLETED or not constraints:
        return trial
    why = infeasibility(trial.metrics, constraints)
    if why is None:
        return trial
    return dataclasses.replace(trial, state=TrialState.INFEASIBLE, error=why)


__all__ = ["Constraints", "eligible", "front_ranks", "fronts", "infeasibility", "is_feasible", "judged", "measured",
           "objective_vector", "rank", "ranked_fronts", "violation"]
