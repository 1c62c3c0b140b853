"""The Gaussian log evidence of a kernel matrix, and posterior weights.

For targets ``y`` with covariance ``K`` (kernel plus noise on the diagonal), the negative log
evidence is, up to the constant ``n/2 log(2 pi)``, ``y' K^-1 y / 2 + log det(K) / 2``; its gradient
in any hyperparameter ``t`` is ``trace(W dK/dt) / 2`` with ``W = K^-1 - K^-1 y y' K^-1``, which
:func:`neg_log_evidence` returns with the value so that each model adds its own priors and
kernel derivatives.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from thrifty.numerics.linalg import chol, chol_growing_jitter, chol_inv, chol_one_retry, chol_solve


def neg_log_evidence(k: np.ndarray, y: np.ndarray, with_w: bool = True) -> tuple[float, np.ndarray | None] | None:
    """``(y' K^-1 y / 2 + log det(K) / 2, W)`` for the covariance ``k`` (``W`` as in the module doc;
    ``None`` without ``with_w``), or ``None`` when ``k`` is not numerically positive definite."""
    c = chol(k)
    if c is None:
        return None
    alpha = chol_solve(c, y)
    val = 0.5 * float(y @ alpha) + float(np.sum(np.log(np.diag(c))))
    if not with_w:
        return val, None
    return val, chol_inv(c) - np.outer(alpha, alpha)


def posterior_weights(k: np.ndarray, y: np.ndarray,
                      fallback: Literal["growing_jitter", "one_retry"]) -> tuple[np.ndarray, np.ndarray]:
    """``(K^-1 y, K^-1)`` for the covariance ``k``. ``fallback`` says what to do if ``k`` is not
    numerically positive definite (:mod:`thrifty.numerics.linalg`): ``"growing_jitter"``
    (the GP strategies) or ``"one_retry"`` (the cost forecast)."""
    c = chol_growing_jitter(k) if fallback == "growing_jitter" else chol_one_retry(k)
    assert c is not None  # the cost forecast's noise floor keeps k positive definite
    return chol_solve(c, y), chol_inv(c)
