"""The strategy interface: where to look next.

A strategy proposes parameter sets from the space and the study's history. It is a pure function
of ``(space, history, seed, number)``: any process holding the same history proposes the same
point for the same trial number, and nothing a crash could lose lives in the strategy object.
Constructors validate their arguments and raise ``ValueError`` with a precise message.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from thrifty.space import ParamValue, Space
from thrifty.trial import Trial


class Strategy(abc.ABC):
    """Proposes parameter sets. Subclasses implement :meth:`propose`."""

    #: The registry name (``strategy="random"``).
    name: ClassVar[str]
    #: Whether :meth:`propose` reads the history (if not, the storage need not load it).
    needs_history: ClassVar[bool] = False

    @abc.abstractmethod
    def propose(
        self, space: Space, history: Sequence[Trial], *, seed: int, number: int, n: int = 1
    ) -> list[dict[str, ParamValue]]:
        """Return ``n`` parameter sets for trials ``number, number + 1, ...``.

        ``history`` holds every trial of the study (pending and running ones included) when
        :attr:`needs_history` is true, and may be empty otherwise. Raise
        :class:`~thrifty.errors.StudyExhausted` (reason ``"strategy"``) when nothing is left.
        """

    def prepare(self, space: Space) -> None:
        """Do slow one-off work (imports, precomputation) before the first proposal.

        The study calls it once, outside the ask transaction, so that work never holds the
        storage's lock while other workers wait.
        """

    def params(self) -> dict[str, Any]:
        """Constructor arguments, so the strategy can be rebuilt from storage."""
        return {}

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def seeded_rng(seed: int, number: int) -> Any:
    """The random generator of trial ``number`` in a study seeded with ``seed``."""
    import numpy as np

    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(number)])


def params_key(params: Mapping[str, Any]) -> str:
    """A canonical string for comparing parameter sets."""
    import json

    return json.dumps(sorted(params.items()), default=str)
