"""The scheduler interface: how long to let a trial run.

At each report the study asks its scheduler whether the trial should continue. The decision is a
function of the trial and the study's history only, so every worker (and the service) reaches the
same decision. Constructors validate their arguments through their spec
(:mod:`thrifty.specs.schedulers`): a bad one is a :class:`~thrifty.errors.ValidationError` (also a
``ValueError``) naming it.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from thrifty.specs.schedulers import NoStoppingSpec
from thrifty.trial import Trial

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.specs.base import Spec


class Decision(str, enum.Enum):
    """What a scheduler says about a running trial: go on, stop for good, or pause (rest with its
    checkpoint until :meth:`Scheduler.plan` resumes it)."""

    CONTINUE = "continue"
    STOP = "stop"
    PAUSE = "pause"


@dataclass(frozen=True)
class BudgetSnapshot:
    """The study's budget as a decision sees it: ``usd_left`` (dollars left of the dollar budget,
    below 0 once overspent; ``None`` without a dollar budget) and ``n_running`` (trials running
    now, the one decided about included)."""

    usd_left: float | None
    n_running: int


@dataclass(frozen=True)
class Verdict:
    """A decision and, when a rule wrapped around the scheduler made it rather than the
    scheduler's own, ``note``: why, in words (e.g. ``"budget-aware: cannot reach 9 within its
    share of the $0.5000 left"``). A successor (:meth:`Scheduler.successor`) is asked for only after
    the scheduler's own STOP (``note`` is ``None``)."""

    decision: Decision
    note: str | None = None


@dataclass(frozen=True)
class AskPlan:
    """What a scheduler wants the next ``ask`` to do: resume one of the PAUSED trials ``resume``
    (trial numbers, most wanted first; the first still paused is claimed), else start a new trial if
    ``new`` (enqueued trials come first either way); if not, ``why`` says why nothing starts."""

    resume: tuple[int, ...] = ()
    new: bool = True
    why: str = ""


@dataclass(frozen=True)
class Successor:
    """A trial to start in place of a stopped one (population-based training's exploit/explore):
    ``params`` continue the checkpoint of trial ``parent`` from ``start_step``."""

    parent: int
    params: Mapping[str, Any] = field(default_factory=dict)
    start_step: float = 0.0


class Scheduler(abc.ABC):
    """Decides continue/stop/pause at each report, and what the next ask should run."""

    name: ClassVar[str]
    #: Whether :meth:`decide` reads the history (if not, it is not loaded).
    needs_history: ClassVar[bool] = True
    #: Whether :meth:`plan` has anything to say (if not, ask does not load the history for it).
    plans_asks: ClassVar[bool] = False
    #: The resource a trial runs to (epochs, ...), where the scheduler knows it; ``None`` otherwise.
    max_resource: float | None = None
    #: Stop a trial that cannot reach ``max_resource`` within the dollars left: set with the
    #: constructors' ``budget_aware=``, it makes :func:`~thrifty.schedulers.make_scheduler` wrap the
    #: scheduler in :class:`~thrifty.schedulers.budget_aware.BudgetAware`, which applies the rule.
    budget_aware: bool = False
    #: The validated arguments (:mod:`thrifty.specs.schedulers`); ``None`` for a user's class that
    #: keeps its own (it then overrides :meth:`params`).
    spec: Spec | None = None
    #: Whether :meth:`verdict` reads the study's :class:`BudgetSnapshot` (the study reads one per
    #: decision only then).
    needs_budget: ClassVar[bool] = False

    def bind(self, space: Any) -> None:
        """Called by the study with its space (for schedulers that propose params, e.g. PBT)."""

    def plan(self, history: Sequence[Trial], objectives: Mapping[str, str]) -> AskPlan:
        """What the next ask should run (default: a new trial)."""
        return AskPlan()

    def checkpoint_at(self, step: float) -> bool:
        """Whether the trial should save a checkpoint before it reports ``step`` (because this
        scheduler may pause or clone it there)."""
        return False

    def successor(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Successor | None:
        """After :meth:`decide` said STOP: the trial to start in its place, if any."""
        return None

    @abc.abstractmethod
    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        """Decide for ``trial`` (its measurements so far) given every trial of the study.

        ``objectives`` maps metric name to ``"min"`` or ``"max"``.
        """

    def verdict(
        self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str], budget: BudgetSnapshot | None
    ) -> Verdict:
        """What the study acts on at a report: :meth:`decide`, with the study's budget at hand
        (``None`` unless :attr:`needs_budget`) for the rules that read it."""
        return Verdict(self.decide(trial, history, objectives))

    def params(self) -> dict[str, Any]:
        """Constructor arguments, so the scheduler can be rebuilt from storage."""
        return self.spec.params() if self.spec is not None else {}

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class NoStopping(Scheduler):
    """The default: every trial runs to the end."""

    name = "none"
    needs_history = False
    spec = NoStoppingSpec()

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        return Decision.CONTINUE
