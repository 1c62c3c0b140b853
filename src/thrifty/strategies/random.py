"""Random search: every trial an independent uniform draw (log-uniform where the space says log)."""

from __future__ import annotations

from collections.abc import Sequence

from thrifty.space import ParamValue, Space
from thrifty.specs.strategies import RandomSpec
from thrifty.strategies.base import Strategy, seeded_rng
from thrifty.trial import Trial


class RandomSearch(Strategy):
    """Independent uniform draws in the unit cube, decoded by the space.

    Trial ``k`` of a study with seed ``s`` always gets the same draw, whichever worker asks.
    """

    name = "random"
    spec = RandomSpec()

    def propose(
        self, space: Space, history: Sequence[Trial], *, seed: int, number: int, n: int = 1
    ) -> list[dict[str, ParamValue]]:
        return [space.decode(seeded_rng(seed, k).random(space.n_dims)) for k in range(number, number + n)]
