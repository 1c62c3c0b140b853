"""NSGA-II (Deb et al. 2002) for multi-objective studies, steady-state and stateless.

The parent population is recomputed from the history at every proposal: the best
``population_size`` finished trials by non-dominated sorting (constrained domination: a feasible
trial dominates an infeasible one; infeasible ones rank by their total violation) and, within the
last front that fits, by crowding distance. A child is made from two parents picked by binary
tournaments (lower front first, then larger crowding distance): simulated binary crossover (SBX,
``eta_crossover``) with probability ``crossover_prob`` on each continuous dimension of the unit
cube encoding, a coin per categorical dimension, then polynomial mutation (``eta_mutation``) of
each dimension with probability ``1 / n_dims`` (a categorical is redrawn instead). The first
``population_size`` trials are random. Every random choice comes from the generator of
``(seed, trial number)``, so any worker proposes the same child for the same history.

Objectives and constraints come from the study's context: metrics to minimize or maximize
(``cost_usd`` and latency are metrics like any other), ``{metric: (op, bound)}`` constraints.
Failed trials, infeasible ones without metrics (the objective raised ``TrialInfeasible``) and
those missing an objective are not parents; a trial recorded INFEASIBLE for breaking a
constraint takes part with its violation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from thrifty.ranking import fronts, measured, violation
from thrifty.space import Categorical, ParamValue, Space
from thrifty.specs.strategies import NSGA2Spec
from thrifty.strategies.base import Strategy, seeded_rng
from thrifty.trial import Trial


def crowding(points: np.ndarray) -> np.ndarray:
    """Crowding distance of each row of ``points`` within its front (boundary points: inf)."""
    n, m = points.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, math.inf)
    for k in range(m):
        order = np.argsort(points[:, k], kind="stable")
        span = points[order[-1], k] - points[order[0], k]
        dist[order[0]] = dist[order[-1]] = math.inf
        if span > 0:
            dist[order[1:-1]] += (points[order[2:], k] - points[order[:-2], k]) / span
    return dist


class NSGA2(Strategy):
    """Steady-state NSGA-II (see the module docstring)."""

    name = "nsga2"
    needs_history = True
    slow = True  # non-dominated sorting is quadratic in the trials: never inside the ask lock

    def __init__(self, population_size: int = 20, crossover_prob: float = 0.9, eta_crossover: float = 15.0,
                 eta_mutation: float = 20.0) -> None:
        self.spec = spec = NSGA2Spec(population_size, crossover_prob, eta_crossover, eta_mutation)
        self.population_size = spec.population_size
        self.crossover_prob = spec.crossover_prob
        self.eta_crossover = spec.eta_crossover
        self.eta_mutation = spec.eta_mutation

    def population(self, space: Space, history: Sequence[Trial]) -> tuple[list[Trial], np.ndarray, np.ndarray]:
        """The parents: trials, their front rank and crowding distance."""
        objectives = dict(self.context.objectives)
        constraints = dict(self.context.constraints)
        scored, rows, viol = [], [], []
        for t in history:
            if not measured(t):  # COMPLETED, or INFEASIBLE for breaking a constraint: ranked by violation
                continue
            values = [t.metrics.get(m) for m in objectives]
            if any(v is None or not math.isfinite(v) for v in values):
                continue
            scored.append(t)
            rows.append([v if objectives[m] == "min" else -v for m, v in zip(objectives, values)])
            viol.append(violation(t, constraints))
        if not scored:
            return [], np.zeros(0), np.zeros(0)
        pts, vio = np.array(rows, float), np.array(viol, float)
        chosen: list[int] = []
        rank_of: dict[int, int] = {}
        crowd_of: dict[int, float] = {}
        for r, front in enumerate(fronts(pts, vio)):
            dist = crowding(pts[front])
            for i, d in zip(front, dist):
                rank_of[i], crowd_of[i] = r, float(d)
            if len(chosen) + len(front) <= self.population_size:
                chosen += front
                continue
            by_crowd = [front[j] for j in np.argsort(-dist, kind="stable")]
            chosen += by_crowd[: self.population_size - len(chosen)]
            break
        return ([scored[i] for i in chosen], np.array([rank_of[i] for i in chosen]),
                np.array([crowd_of[i] for i in chosen]))

    def propose(self, space: Space, history: Sequence[Trial], *, seed: int, number: int,
                n: int = 1) -> list[dict[str, ParamValue]]:
        out = []
        for k in range(number, number + n):
            rng = seeded_rng(seed, k)
            parents, rank, crowd = self.population(space, history)
            if len(parents) < self.population_size:
                out.append(space.decode(rng.random(space.n_dims)))
                continue

            def tournament() -> Trial:
                i, j = rng.integers(len(parents), size=2)
                better = i if (rank[i], -crowd[i]) < (rank[j], -crowd[j]) else j
                return parents[better]

            a = np.nan_to_num(space.encode(tournament().params), nan=0.5)
            b = np.nan_to_num(space.encode(tournament().params), nan=0.5)
            out.append(space.decode(self._child(space, a, b, rng)))
        return out

    def _child(self, space: Space, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        categorical = np.array([isinstance(space[n], Categorical) for n in space.dim_names])
        child = a.copy()
        if rng.random() < self.crossover_prob:
            for d in range(len(a)):
                if categorical[d]:
                    child[d] = a[d] if rng.random() < 0.5 else b[d]
                    continue
                u = rng.random()
                beta = (2 * u) ** (1 / (self.eta_crossover + 1)) if u <= 0.5 else \
                    (1 / (2 * (1 - u))) ** (1 / (self.eta_crossover + 1))
                child[d] = 0.5 * ((1 + beta) * a[d] + (1 - beta) * b[d]) if rng.random() < 0.5 else \
                    0.5 * ((1 - beta) * a[d] + (1 + beta) * b[d])
        p_mut = 1.0 / max(len(a), 1)
        for d in range(len(a)):
            if rng.random() >= p_mut:
                continue
            if categorical[d]:
                child[d] = rng.random()
                continue
            u = rng.random()
            delta = (2 * u) ** (1 / (self.eta_mutation + 1)) - 1 if u < 0.5 else \
                1 - (2 * (1 - u)) ** (1 / (self.eta_mutation + 1))
            child[d] = child[d] + delta
        return np.clip(child, 0.0, 1.0 - 1e-12)
