"""Grid search over every combination of categoricals, ints and ``points_per_float`` floats.

Conditional parameters are expanded only under the parent values that activate them. Each
proposal is the first grid point (in grid order, or a seeded shuffle of it) not yet in the history;
when every point has been tried the study is exhausted.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from thrifty.errors import StudyExhausted, ValidationError
from thrifty.space import Categorical, Fixed, Float, Int, Param, ParamValue, Space
from thrifty.specs.strategies import GridSpec
from thrifty.strategies.base import Strategy, params_key, seeded_rng
from thrifty.trial import Trial


class GridSearch(Strategy):
    """Every combination, once. ``points_per_float`` evenly spaced values per float (log-spaced
    for log floats, ends included); ``shuffle=True`` visits the grid in a seeded random order."""

    name = "grid"
    needs_history = True

    def __init__(self, points_per_float: int = 5, shuffle: bool = False) -> None:
        self.spec = spec = GridSpec(points_per_float, shuffle)
        self.points_per_float = spec.points_per_float
        self.shuffle = spec.shuffle

    def _values(self, p: Param) -> list[ParamValue]:
        if isinstance(p, Categorical):
            return list(p.choices)
        if isinstance(p, Int):
            return list(p.values())
        if isinstance(p, Fixed):
            return [p.value]
        assert isinstance(p, Float)
        k = self.points_per_float
        if k == 1:
            return [p.from_unit(0.5)]
        return [p.from_unit(i / (k - 1)) for i in range(k)]

    def grid(self, space: Space) -> list[dict[str, ParamValue]]:
        """All grid points, in grid order."""
        names = list(space)
        too_big = self.spec.too_big(space)
        if too_big:
            raise ValidationError(too_big)

        def expand(i: int, partial: dict[str, ParamValue]) -> Iterator[dict[str, ParamValue]]:
            if i == len(names):
                yield dict(partial)
                return
            name = names[i]
            if not space.is_active(name, partial):
                yield from expand(i + 1, partial)
                return
            for v in self._values(space[name]):
                partial[name] = v
                yield from expand(i + 1, partial)
                del partial[name]

        return list(expand(0, {}))

    def propose(
        self, space: Space, history: Sequence[Trial], *, seed: int, number: int, n: int = 1
    ) -> list[dict[str, ParamValue]]:
        points = self.grid(space)
        if self.shuffle:
            order = seeded_rng(seed, 0).permutation(len(points))
            points = [points[i] for i in order]
        seen = {params_key(t.params) for t in history if not t.retried}
        out = []
        for p in itertools.islice((p for p in points if params_key(p) not in seen), n):
            out.append(p)
        if len(out) < n:
            raise StudyExhausted(f"the grid's {len(points)} points have all been tried", "strategy")
        return out
