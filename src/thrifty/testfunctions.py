"""Standard synthetic problems for testing and benchmarking strategies (all minimized).

Each :class:`Problem` has a space, a function of a params dict, its known minimum, and a cost
surface in dollars that varies tenfold over the space (for cost-aware search): cheap in one corner,
expensive in the opposite one, smooth in between.

- ``branin``: 2-d, x1 in [-5, 10], x2 in [0, 15], minimum 0.397887 (three global minima).
- ``hartmann6``: 6-d unit cube, minimum -3.322368.
- ``ackley5``: 5-d, [-32.768, 32.768]^5, minimum 0 at the origin.
- ``rosenbrock4``: 4-d, [-5, 10]^4, minimum 0 at (1, 1, 1, 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from thrifty.errors import ValidationError
from thrifty.space import Float, Space


@dataclass(frozen=True)
class Problem:
    """A minimization problem: ``f(params)``, its ``minimum`` and a ``cost_usd(params)`` surface."""

    name: str
    space: Space
    f: Callable[[Mapping[str, Any]], float]
    minimum: float

    def x(self, params: Mapping[str, Any]) -> np.ndarray:
        return np.array([float(params[n]) for n in self.space.dim_names])

    def regret(self, value: float) -> float:
        return float(value) - self.minimum

    def cost_usd(self, params: Mapping[str, Any]) -> float:
        """Dollars one evaluation costs: from $0.10 (all inputs at their lower bound) to $1.00 (all
        at the upper bound), log-linear in the mean position in the unit cube."""
        u = float(np.mean(self.space.encode(params)))
        return 0.1 * 10.0 ** u


def _branin(p: Mapping[str, Any]) -> float:
    x1, x2 = float(p["x1"]), float(p["x2"])
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                 [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])


def _hartmann6(p: Mapping[str, Any]) -> float:
    x = np.array([float(p[f"x{i}"]) for i in range(1, 7)])
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


def _ackley(p: Mapping[str, Any]) -> float:
    x = np.array([float(p[f"x{i}"]) for i in range(1, len(p) + 1)])
    d = len(x)
    return float(-20 * np.exp(-0.2 * np.sqrt(np.sum(x**2) / d)) - np.exp(np.sum(np.cos(2 * np.pi * x)) / d)
                 + 20 + math.e)


def _rosenbrock(p: Mapping[str, Any]) -> float:
    x = np.array([float(p[f"x{i}"]) for i in range(1, len(p) + 1)])
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def _box(d: int, low: float, high: float) -> Space:
    return Space({f"x{i}": Float(low, high) for i in range(1, d + 1)})


PROBLEMS: dict[str, Problem] = {
    "branin": Problem("branin", Space({"x1": Float(-5.0, 10.0), "x2": Float(0.0, 15.0)}), _branin, 0.397887),
    "hartmann6": Problem("hartmann6", _box(6, 0.0, 1.0), _hartmann6, -3.322368),
    "ackley5": Problem("ackley5", _box(5, -32.768, 32.768), _ackley, 0.0),
    "rosenbrock4": Problem("rosenbrock4", _box(4, -5.0, 10.0), _rosenbrock, 0.0),
}


def problem(name: str) -> Problem:
    try:
        return PROBLEMS[name]
    except KeyError:
        raise ValidationError(f"unknown problem {name!r}; known: {', '.join(PROBLEMS)}") from None
