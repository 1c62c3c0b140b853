"""Cholesky factors, solves and inverses of small symmetric positive definite matrices.

LAPACK is called directly (``dpotrf``, ``dpotrs``, ``dtrtri``): these matrices are small and
factored often. The inverse goes through the triangular inverse rather than ``dpotri`` or a solve
against the identity, which OpenBLAS runs multi-threaded even for small matrices (threads spinning
side by side stall the workers of a study that fit models at the same time on a few cores).

Two rules for a matrix that is not numerically positive definite, kept apart because the models
that use them were tuned with them: :func:`chol_growing_jitter` (the GP strategies) and
:func:`chol_one_retry` (the cost forecast).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack


def chol(k: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor of ``k``, or ``None`` if ``k`` is not positive definite."""
    c, info = lapack.dpotrf(k, lower=1, clean=1)
    return c if info == 0 else None


def chol_growing_jitter(k: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of ``k``, adding ``1e-8`` times the mean diagonal to the diagonal
    (then 10 times more, and so on) until the factorisation succeeds."""
    c = chol(k)
    jitter = 1e-8 * max(float(np.mean(np.diag(k))), 1e-12)
    while c is None:
        c = chol(k + jitter * np.eye(len(k)))
        jitter *= 10.0
    return c


def chol_one_retry(k: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor of ``k``; if that fails, of ``k`` plus ``1e-6`` times its largest
    diagonal entry on the diagonal (``None`` if that fails too)."""
    c = chol(k)
    if c is None:
        c = chol(k + 1e-6 * np.max(np.diag(k)) * np.eye(len(k)))
    return c


def chol_solve(c: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``K^-1 b`` from the lower Cholesky factor ``c`` of ``K``."""
    return lapack.dpotrs(c, b, lower=1)[0]


def chol_inv(c: np.ndarray) -> np.ndarray:
    """``K^-1`` from the lower Cholesky factor ``c`` of ``K`` (through the triangular inverse)."""
    li = lapack.dtrtri(c, lower=1)[0]
    return li.T @ li
