"""Stationary kernels of squared scaled distances, and squared distances per dimension.

A kernel here is a function of ``r2``, the squared distance between two inputs after each
dimension is divided by its length scale; it returns the kernel values and their derivative in
``r2`` (for gradients with respect to the length scales and the inputs). ``amp`` is the kernel's
variance (a float, or an array broadcasting against ``r2``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def matern32(r2: np.ndarray, amp: Any) -> tuple[np.ndarray, np.ndarray]:
    """Matérn-3/2 values ``amp (1 + r) exp(-r)`` with ``r = sqrt(3 r2)``, and their derivative in
    ``r2``: ``-1.5 amp exp(-r)``."""
    r = np.sqrt(3.0 * np.maximum(r2, 0.0))
    e = amp * np.exp(-r)
    return (1.0 + r) * e, -1.5 * e


def matern52(r2: np.ndarray, amp: Any) -> tuple[np.ndarray, np.ndarray]:
    """Matérn-5/2 values ``amp (1 + r + r^2 / 3) exp(-r)`` with ``r = sqrt(5 r2)``, and their
    derivative in ``r2``: ``-5/6 amp (1 + r) exp(-r)``."""
    r = np.sqrt(5.0 * np.maximum(r2, 0.0))
    e = amp * np.exp(-r)
    return (1.0 + r + r * r / 3.0) * e, (-5.0 / 6.0) * (1.0 + r) * e


def matern(r2: np.ndarray, amp: Any, nu: float) -> tuple[np.ndarray, np.ndarray]:
    """The Matérn kernel of smoothness ``nu``: :func:`matern32` for 1.5, :func:`matern52` otherwise."""
    return matern32(r2, amp) if nu == 1.5 else matern52(r2, amp)


def sq_dists(a: np.ndarray, b: np.ndarray, hamming: np.ndarray) -> np.ndarray:
    """Squared differences per dimension between the rows of ``a`` and of ``b``: shape
    ``(len(a), len(b), d)``; in the dimensions where ``hamming`` is true, 0 for equal values and 1
    for different ones."""
    d = a[:, None, :] - b[None, :, :]
    d = d * d
    if hamming.any():
        d[:, :, hamming] = (d[:, :, hamming] > 1e-18).astype(float)
    return d
