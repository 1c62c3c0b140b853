"""Quasi-random search on a scrambled Sobol' sequence (``scipy.stats.qmc``).

Trial ``k`` takes point ``k`` of the sequence scrambled with the study's seed, so the points fill
the space more evenly than independent draws and any worker computes the same point for ``k``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from thrifty.space import ParamValue, Space
from thrifty.specs.strategies import SobolSpec
from thrifty.strategies.base import Strategy
from thrifty.trial import Trial


class SobolSearch(Strategy):
    """Scrambled, seeded Sobol' points (``scipy.stats.qmc.Sobol``)."""

    name = "sobol"
    spec = SobolSpec()

    def prepare(self, space: Space) -> None:
        from scipy.stats import qmc  # noqa: F401 - importing scipy.stats takes ~0.5 s

    def propose(
        self, space: Space, history: Sequence[Trial], *, seed: int, number: int, n: int = 1
    ) -> list[dict[str, ParamValue]]:
        import numpy as np
        from scipy.stats import qmc

        if space.n_dims == 0:
            return [space.decode(np.empty(0)) for _ in range(n)]
        engine = qmc.Sobol(d=space.n_dims, scramble=True, seed=np.random.default_rng(int(seed) & 0xFFFFFFFF))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # balance warnings: we take points one by one on purpose
            if number:
                engine.fast_forward(number)
            points = engine.random(n)
        return [space.decode(p) for p in points]
