"""How well a rung predicts the end: rank correlations measured on the study's completed trials.

Shared by :class:`~thrifty.schedulers.asha.ASHA` (which skips rungs that do not predict) and
:class:`~thrifty.schedulers.adaptive.AdaptiveASHA` (which scales its aggressiveness with them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from thrifty.schedulers.curves import first_at_or_after


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); 0 when either side is constant."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a), rankdata(b)
    if np.std(ra) == 0 or np.std(rb) == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def correlations(
    finals: Sequence[tuple[Sequence[tuple[float, float]], float]], levels: Sequence[float], min_complete: int,
) -> dict[float, float | None]:
    """Rung -> Spearman correlation between a trial's value at the rung (its first report at or
    after it) and its final value, over the trials that ran to the end (``finals``: each one's
    curve and finite final value, in history order; see :func:`thrifty.ranking.measured`) with a
    finite value at the rung; ``None`` for a rung fewer than ``min_complete`` such trials reached.
    :class:`~thrifty.schedulers._index.CurveIndex` keeps ``finals`` up to date."""
    out: dict[float, float | None] = {}
    for level in levels:
        pairs = [(first_at_or_after(pts, level), final) for pts, final in finals]
        kept = [(a, b) for a, b in pairs if a is not None and math.isfinite(a)]
        out[level] = spearman([a for a, _ in kept], [b for _, b in kept]) if len(kept) >= min_complete else None
    return out
