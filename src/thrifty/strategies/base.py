"""The strategy interface: where to look next.

A strategy proposes parameter sets from the space and the study's history. It is a pure function
of ``(space, history, seed, number)``: any process holding the same history proposes the same
point for the same trial number, and nothing a crash could lose lives in the strategy object.
Constructors validate their arguments through their spec (:mod:`thrifty.specs.strategies`): a bad
one is a :class:`~thrifty.errors.ValidationError` (also a ``ValueError``) naming it.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from thrifty.space import ParamValue, Space
from thrifty.trial import Trial

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.cost.forecast import CostModel
    from thrifty.pipelines.cache import CachedPrefix
    from thrifty.specs.base import Spec


@dataclass(frozen=True)
class Context:
    """What a model-based strategy may know about its study besides the history, set by the study
    (:meth:`Strategy.bind`) before each proposal.

    ``objectives``: metric name -> ``"min"``/``"max"``. ``cost_model``: fitted on the study's
    finished trials when the study has a dollar budget or asks for cost-aware search (else
    ``None``); ``max_resource``: the resource a full trial reaches (for cost forecasts).
    ``budget_usd`` / ``spent_usd``: the dollar budget (``None`` if none) and what is spent, for
    cost cooling. ``budget_trials``: the study's trial budget, if any. ``constraints``: metric -> ``(op, bound)`` with op ``"<="`` or ``">="``.

    A pipeline study (:mod:`thrifty.pipelines`) also gives ``stage_params``: the parameter names of
    each stage, in stage order (empty for a study without a pipeline), and ``cached_prefixes``: the
    stage prefixes whose output is in the memo cache now
    (:class:`~thrifty.pipelines.cache.CachedPrefix`: the last stage's index, the prefix's
    parameters, its key, what reading it costs and what computing it cost, in dollars), read from
    the study's index at each proposal; an evicted entry is never listed; and ``stage_run_usd``:
    per trial number, the dollars each stage cost when it *ran* (``None`` for a stage read from the
    cache, skipped, or not reached), from the study's stage records
    (:meth:`~thrifty.storage.Storage.stage_runs`).
    """

    objectives: Mapping[str, str] = field(default_factory=lambda: {"value": "max"})
    cost_model: CostModel | None = None
    max_resource: float = 1.0
    budget_usd: float | None = None
    spent_usd: float = 0.0
    budget_trials: int | None = None
    constraints: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    stage_params: tuple[tuple[str, ...], ...] = ()
    cached_prefixes: tuple[CachedPrefix, ...] = ()
    stage_run_usd: Mapping[int, tuple[float | None, ...]] = field(default_factory=dict)


class Strategy(abc.ABC):
    """Proposes parameter sets. Subclasses implement :meth:`propose`."""

    #: The registry name (``strategy="random"``).
    name: ClassVar[str]
    #: Whether :meth:`propose` reads the history (if not, the storage need not load it).
    needs_history: ClassVar[bool] = False
    #: Whether proposing takes long (fitting a model): then the study proposes *before* the ask
    #: transaction, from the history it sees then (pending and running trials included), so the
    #: storage's lock is never held while a model is fitted. The trial number passed is the
    #: study's next number at that moment (another worker may take it first; the proposal then
    #: goes to the next number, which is harmless for a model-based strategy).
    slow: ClassVar[bool] = False
    #: Whether the strategy wants a cost model in its :class:`Context` (cost-aware search).
    wants_cost_model: bool = False
    #: The study's context (see :class:`Context`), set by the study before each proposal.
    context: Context = Context()
    #: The validated arguments (:mod:`thrifty.specs.strategies`); ``None`` for a user's class that
    #: keeps its own (it then overrides :meth:`params`).
    spec: Spec | None = None

    def bind(self, context: Context) -> None:
        """Receive the study's context before a proposal."""
        self.context = context

    @abc.abstractmethod
    def propose(
        self, space: Space, history: Sequence[Trial], *, seed: int, number: int, n: int = 1
    ) -> list[dict[str, ParamValue]]:
        """Return ``n`` parameter sets for trials ``number, number + 1, ...``.

        ``history`` holds every trial of the study (pending and running ones included) when
        :attr:`needs_history` is true, and may be empty otherwise. Raise
        :class:`~thrifty.errors.StudyExhausted` (reason ``"strategy"``) when nothing is left.
        """

    def forecast_usd(self, params: Mapping[str, Any]) -> float | None:
        """The strategy's own forecast of the dollars a trial with ``params`` (one of its latest
        proposals) will cost, or ``None`` (the default) when it has none. The study's budget
        admission uses it instead of the study's cost model when given: a strategy that knows more
        about costs (``eeipu``: which stage outputs the memo cache holds) is not second-guessed by
        a model that does not."""
        return None

    def prepare(self, space: Space) -> None:
        """Do slow one-off work (imports, precomputation) before the first proposal.

        The study calls it once, outside the ask transaction, so that work never holds the
        storage's lock while other workers wait.
        """

    def params(self) -> dict[str, Any]:
        """Constructor arguments, so the strategy can be rebuilt from storage."""
        return self.spec.params() if self.spec is not None else {}

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


def restated(trial: Trial, **changes: Any) -> Trial:
    """A copy of ``trial`` (a valid, frozen record) with ``changes`` (field name -> new value), for
    a model's view of the history (``bohb``'s values at a level, ``mfgp``'s trials per level).
    Mappings are frozen as :class:`Trial` freezes them. ``dataclasses.replace`` would validate
    every field again: a tenth of a proposal's time at 1,000 trials, for values already valid."""
    out = object.__new__(Trial)
    out.__dict__.update(trial.__dict__)
    for name, value in changes.items():
        if name not in Trial.__dataclass_fields__:
            raise TypeError(f"restated: Trial has no field {name!r}")
        if isinstance(value, Mapping):
            value = MappingProxyType(dict(value))
        object.__setattr__(out, name, value)
    return out
