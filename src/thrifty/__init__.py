"""thrifty: hyperparameter tuning for the least money.

``import thrifty as th`` gives the public API: :class:`Space` and its parameters, :class:`Study`,
:class:`Budget`, :class:`Pipeline` and :class:`Stage`, :class:`Trial`, :class:`Measurement`,
:class:`TrialState`, the errors, and :class:`ManualClock` (the clock for tests and simulations).
Heavy modules (numpy, SQLAlchemy) load on first use, so importing thrifty is fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Space": "thrifty.space",
    "Float": "thrifty.space",
    "Int": "thrifty.space",
    "Categorical": "thrifty.space",
    "Fixed": "thrifty.space",
    "Study": "thrifty.study",
    "Budget": "thrifty.cost.budget",
    "Usage": "thrifty.cost.budget",
    "Pricing": "thrifty.cost.pricing",
    "Catalogue": "thrifty.cost.pricing",
    "CostModel": "thrifty.cost.forecast",
    "Clock": "thrifty.clock",
    "ManualClock": "thrifty.clock",
    "TargetReached": "thrifty.criteria",
    "NoImprovement": "thrifty.criteria",
    "ImprovementNotWorthCost": "thrifty.criteria",
    "NoExpectedImprovement": "thrifty.criteria",
    "CostUtility": "thrifty.objectives",
    "RunResult": "thrifty.runners.local",
    "Trial": "thrifty.trial",
    "Measurement": "thrifty.trial",
    "TrialState": "thrifty.trial",
    "StopKind": "thrifty.trial",
    "StopReason": "thrifty.trial",
    "ResourceUsage": "thrifty.usage",
    "TrialHandle": "thrifty.handle",
    "Client": "thrifty.client",
    "ThriftyError": "thrifty.errors",
    "SpaceError": "thrifty.errors",
    "ValidationError": "thrifty.errors",
    "StorageError": "thrifty.errors",
    "NoDatabase": "thrifty.errors",
    "StudyNotFound": "thrifty.errors",
    "DuplicateStudy": "thrifty.errors",
    "StudyExhausted": "thrifty.errors",
    "TrialNotRunning": "thrifty.errors",
    "TooManyFailures": "thrifty.errors",
    "WorkersKeepDying": "thrifty.errors",
    "WorkerError": "thrifty.errors",
    "StopSignal": "thrifty.errors",
    "TrialStopped": "thrifty.errors",
    "TrialFailed": "thrifty.errors",
    "TrialInfeasible": "thrifty.errors",
    "ScriptObjective": "thrifty.runners.script",
    "Pipeline": "thrifty.pipelines",
    "Stage": "thrifty.pipelines",
}

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.client import Client
    from thrifty.clock import Clock, ManualClock
    from thrifty.cost.budget import Budget, Usage
    from thrifty.cost.forecast import CostModel
    from thrifty.cost.pricing import Catalogue, Pricing
    from thrifty.criteria import ImprovementNotWorthCost, NoExpectedImprovement, NoImprovement, TargetReached
    from thrifty.objectives import CostUtility
    from thrifty.pipelines import Pipeline, Stage
    from thrifty.runners.local import RunResult
    from thrifty.runners.script import ScriptObjective
    from thrifty.errors import (
        DuplicateStudy,
        NoDatabase,
        SpaceError,
        StopSignal,
        StorageError,
        StudyExhausted,
        StudyNotFound,
        ThriftyError,
        TooManyFailures,
        TrialNotRunning,
        WorkerError,
        WorkersKeepDying,
        TrialFailed,
        TrialInfeasible,
        TrialStopped,
        ValidationError,
    )
    from thrifty.handle import TrialHandle
    from thrifty.space import Categorical, Fixed, Float, Int, Space
    from thrifty.study import Study
    from thrifty.trial import Measurement, StopKind, StopReason, Trial, TrialState
    from thrifty.usage import ResourceUsage


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'thrifty' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = sorted(_LAZY) + ["__version__"]
