"""Acquisition functions and their gradient refinement.

* :func:`log_h`, :func:`log_ei` and :func:`log_ei_grad`: the numerically stable log expected
  improvement of Ament et al. (2023), "Unexpected improvements to expected improvement for
  Bayesian optimization" (minimisation: improvement is ``best - f``).
* :func:`log_prob_below` and :func:`log_prob_below_grad`: ``log P(f <= bound)``, the log
  probability of feasibility of a constraint (Gardner et al. 2014).
* :func:`gradient_refine`: L-BFGS-B on the free coordinates of a batch of points, maximising the
  sum of an acquisition over the batch (each point's value depends on its own coordinates only).

``mean`` and ``var`` are a Gaussian posterior's mean and variance (arrays of shape ``(m,)``);
``dmean`` and ``dvar`` their gradients in the inputs (``(m, c)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.special import erfcx, log_ndtr, ndtr

_C1 = 0.5 * math.log(2.0 * math.pi)
_C2 = 0.5 * math.log(math.pi / 2.0)
_INV_SQRT_EPS = 1.0 / math.sqrt(np.finfo(float).eps)


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """``log(1 - exp(x))`` for ``x < 0``, accurately on both sides of ``-log 2``."""
    out = np.empty_like(x)
    near = x > -math.log(2.0)
    out[near] = np.log(-np.expm1(x[near]))
    out[~near] = np.log1p(-np.exp(x[~near]))
    return out


def log_h(z: np.ndarray) -> np.ndarray:
    """``log(phi(z) + z Phi(z))``, stable for very negative ``z`` (Ament et al. 2023, eq. 9)."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    a = z > -1.0
    za = z[a]
    out[a] = np.log(np.exp(-0.5 * za * za - _C1) + za * ndtr(za))
    b = ~a & (z > -_INV_SQRT_EPS)
    zb = z[b]
    out[b] = -0.5 * zb * zb - _C1 + _log1mexp(np.log(erfcx(-zb / math.sqrt(2.0)) * np.abs(zb)) + _C2)
    c = ~a & ~b
    zc = z[c]
    out[c] = -0.5 * zc * zc - _C1 - 2.0 * np.log(np.abs(zc))
    return out


def log_ei(mean: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
    """log E[max(best - f, 0)] for f ~ N(mean, var) (minimisation)."""
    sd = np.sqrt(var)
    return np.log(sd) + log_h((best - mean) / sd)


def log_ei_grad(mean: np.ndarray, var: np.ndarray, dmean: np.ndarray, dvar: np.ndarray,
                best: float) -> tuple[np.ndarray, np.ndarray]:
    """log EI and its gradient, given the gradients of the mean and the variance."""
    sd = np.sqrt(var)
    z = (best - mean) / sd
    lh = log_h(z)
    dlh = np.exp(log_ndtr(z) - lh)  # d log h / dz = Phi(z) / h(z)
    dsd = dvar / (2.0 * sd[:, None])
    dz = (-dmean - z[:, None] * dsd) / sd[:, None]
    return np.log(sd) + lh, dsd / sd[:, None] + dlh[:, None] * dz


def log_prob_below(mean: np.ndarray, var: np.ndarray, bound: float) -> np.ndarray:
    """log P(f <= bound) for f ~ N(mean, var)."""
    return log_ndtr((bound - mean) / np.sqrt(var))


def log_prob_below_grad(mean: np.ndarray, var: np.ndarray, dmean: np.ndarray, dvar: np.ndarray,
                        bound: float) -> tuple[np.ndarray, np.ndarray]:
    """log P(f <= bound) and its gradient, given the gradients of the mean and the variance."""
    sd = np.sqrt(var)
    t = (bound - mean) / sd
    lp = log_ndtr(t)
    ratio = np.exp(-0.5 * t * t - _C1 - lp)  # phi(t) / Phi(t)
    dsd = dvar / (2.0 * sd[:, None])
    dt = (-dmean - t[:, None] * dsd) / sd[:, None]
    return lp, ratio[:, None] * dt


def gradient_refine(value_grad: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], x: np.ndarray,
                    free: np.ndarray, columns: np.ndarray, maxiter: int = 60) -> np.ndarray:
    """``x`` (points, one per row) with its free coordinates moved uphill by L-BFGS-B in
    ``[0, 1]`` (at most ``maxiter`` iterations) on the sum of the acquisition over the rows.

    ``columns``: the ``c`` columns of ``x`` that may move; ``free`` (shape ``(m, c)``): which of
    them do, per row. ``value_grad(points)`` returns the acquisition of each row (non-finite
    values count as -1e6) and its gradient in ``columns`` (non-finite entries count as 0)."""
    rows, cols = np.nonzero(free)
    dims = columns[cols]
    v0 = x[rows, dims]

    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        xb = x.copy()
        xb[rows, dims] = v
        val, grad = value_grad(xb)
        val = np.where(np.isfinite(val), val, -1e6)
        g = np.nan_to_num(grad[rows, cols], nan=0.0, posinf=0.0, neginf=0.0)
        return -float(np.sum(val)), -g

    res = minimize(fun, v0, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(v0),
                   options={"maxiter": maxiter})
    out = x.copy()
    out[rows, dims] = np.clip(res.x, 0.0, 1.0)
    return out
