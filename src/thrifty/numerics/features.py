"""Kernel inputs built from a space's encoded points (:class:`thrifty.encoding.Encoder`).

Two representations, one per model family, kept apart because each model was tuned with its own:

* :class:`GroupFeatures` (the GP strategies): floats and ints as one column each (the encoded
  value, 0.5 where inactive), categoricals one-hot scaled by ``1/sqrt(2)`` (so two different
  choices are at squared distance 1: a Hamming term), and one 0/1 "inactive" indicator per
  conditional parameter. Each float, int, categorical and indicator is a *group* with its own
  length scale.
* :func:`values_with_indicators` (the cost forecast): the encoded values (0.5 where inactive) plus
  one 0/1 "inactive" column per conditional parameter; categorical and indicator columns compare
  as equal or different (the ``hamming`` mask of :func:`thrifty.numerics.kernels.sq_dists`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.encoding import Encoder


class GroupFeatures:
    """The GP strategies' kernel features of encoded points (module doc).

    ``dim_col``: the first feature column of each encoded column; ``col_group``: the group of each
    feature column; ``n_groups``, ``n_cols``: their numbers."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        col_group: list[int] = []
        self.dim_col = np.zeros(encoder.n_dims, dtype=int)
        g = 0
        for i, c in enumerate(encoder.columns):
            self.dim_col[i] = len(col_group)
            width = c.n_values if c.kind == "categorical" else 1
            col_group.extend([g] * width)
            g += 1
        for _ in encoder.conditional:
            col_group.append(g)
            g += 1
        self.col_group = np.array(col_group, dtype=int)
        self.n_groups = g
        self.n_cols = len(col_group)

    def features(self, x: np.ndarray) -> np.ndarray:
        """Kernel features of snapped points (rows of ``x``, :meth:`Encoder.snap`): ``(m, n_cols)``."""
        enc = self.encoder
        x = np.atleast_2d(x)
        m = len(x)
        f = np.zeros((m, self.n_cols))
        inactive = np.isnan(x)
        xf = np.where(inactive, 0.5, x)
        f[:, self.dim_col[enc.continuous]] = xf[:, enc.continuous]
        for i in enc.categorical:
            k = enc.columns[i].n_values
            idx = np.minimum((xf[:, i] * k).astype(int), k - 1)
            rows = np.flatnonzero(~inactive[:, i])
            f[rows, self.dim_col[i] + idx[rows]] = math.sqrt(0.5)
        if len(enc.conditional):
            f[:, self.n_cols - len(enc.conditional):] = inactive[:, enc.conditional]
        return f

    def group_sq_dists(self, f: np.ndarray) -> np.ndarray:
        """Per-group squared feature distances between all pairs of rows: ``(n, n, n_groups)``."""
        diff2 = (f[:, None, :] - f[None, :, :]) ** 2
        if self.n_groups == self.n_cols:  # one column per group (no categorical)
            return diff2
        n = len(f)
        d = np.empty((n, n, self.n_groups))
        starts = np.r_[0, np.flatnonzero(np.diff(self.col_group)) + 1, self.n_cols]
        for g in range(self.n_groups):
            d[:, :, g] = diff2[:, :, starts[g]:starts[g + 1]].sum(axis=2)
        return d


def values_with_indicators(encoder: Encoder, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cost forecast's inputs of encoded points (rows of ``x``): ``(values with inactive = 0.5
    plus an is-inactive column per conditional parameter, values with inactive = 0.5)``."""
    x = np.atleast_2d(x)
    inactive = np.isnan(x)
    xf = np.where(inactive, 0.5, x)
    if len(encoder.conditional):
        return np.hstack([xf, inactive[:, encoder.conditional].astype(float)]), xf
    return xf, xf


def hamming_mask(encoder: Encoder) -> np.ndarray:
    """Which columns of :func:`values_with_indicators` compare as equal / different: the
    categoricals and the inactive indicators."""
    cat = [c.kind == "categorical" for c in encoder.columns]
    return np.array(cat + [True] * len(encoder.conditional), dtype=bool)
