"""Hyperparameter search: the best local optimum from several starts, and slice sampling.

Both work on a vector ``theta`` of hyperparameters (log length scales, log amplitude, log noise
variance, ...) inside box ``bounds`` (one ``(low, high)`` per entry).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize


def best_of_starts(fun: Callable[..., Any], starts: Sequence[np.ndarray], bounds: Sequence[tuple[float, float]],
                   method: str, args: tuple[Any, ...] = (), options: dict[str, Any] | None = None) -> np.ndarray:
    """Minimise ``fun(theta, *args) -> (value, gradient)`` with scipy's ``method`` (``"L-BFGS-B"``,
    ``"SLSQP"``) from each start in turn; return the point of the lowest finite value (the first
    start when no run ends at a finite value). Ties keep the earlier start."""
    best_val, best = math.inf, np.asarray(starts[0], dtype=float)
    for s in starts:
        res = minimize(fun, s, args=args, jac=True, method=method, bounds=bounds, options=options)
        if np.isfinite(res.fun) and res.fun < best_val:
            best_val, best = float(res.fun), res.x
    return best


def slice_sample(log_density: Callable[[np.ndarray], float], start: np.ndarray,
                 bounds: Sequence[tuple[float, float]], rng: np.random.Generator, sweeps: int,
                 width: float = 1.0, max_steps: int = 50) -> list[np.ndarray]:
    """Univariate slice sampling with stepping in (Neal 2003): ``sweeps`` sweeps, each updating
    every coordinate once in a random order; returns the point after each sweep.

    The initial interval of a coordinate has ``width`` and a random position around the current
    value, clipped to ``bounds``; at most ``max_steps`` proposals per coordinate (the value stays
    if none is accepted)."""
    x = start.copy()
    fx = log_density(x)
    out = []
    for _ in range(sweeps):
        for j in rng.permutation(len(x)):
            lo_b, hi_b = bounds[j]
            level = fx + math.log(rng.random())
            lo = x[j] - width * rng.random()
            hi = lo + width
            lo, hi = max(lo, lo_b), min(hi, hi_b)
            for _ in range(max_steps):
                xn = x.copy()
                xn[j] = rng.uniform(lo, hi)
                fn = log_density(xn)
                if fn > level:
                    x, fx = xn, fn
                    break
                if xn[j] < x[j]:
                    lo = xn[j]
                else:
                    hi = xn[j]
        out.append(x.copy())
    return out
