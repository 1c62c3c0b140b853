"""The scheduler interface: how long to let a trial run.

At each report the study asks its scheduler whether the trial should continue. The decision is a
function of the trial and the study's history only, so every worker (and the service) reaches the
same decision. Constructors validate their arguments and raise ``ValueError`` with a precise
message.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from thrifty.trial import Trial


class Decision(str, enum.Enum):
    """What a scheduler says about a running trial."""

    CONTINUE = "continue"
    STOP = "stop"


class Scheduler(abc.ABC):
    """Decides continue/stop at each report."""

    name: ClassVar[str]
    #: Whether :meth:`decide` reads the history (if not, it is not loaded).
    needs_history: ClassVar[bool] = True

    @abc.abstractmethod
    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        """Decide for ``trial`` (its measurements so far) given every trial of the study.

        ``objectives`` maps metric name to ``"min"`` or ``"max"``.
        """

    def params(self) -> dict[str, Any]:
        return {}

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class NoStopping(Scheduler):
    """The default: every trial runs to the end."""

    name = "none"
    needs_history = False

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        return Decision.CONTINUE
