"""A study's settings: validated once, kept as a frozen record, stored as JSON.

:func:`normalize_settings` is the one place that validates :meth:`Study.create`'s arguments and the
one place their defaults are written (the ``thrifty`` command passes only the keys a config gives).
:class:`StudySettings` is the validated result; :meth:`StudySettings.stored` is the ``settings``
column exactly as databases have always kept it, and :meth:`StudySettings.of_record` reads a stored
study back through the same validation (a key an older record lacks takes its default).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from thrifty._registry import check_fit, make_criteria
from thrifty.cost.budget import Budget
from thrifty.cost.pricing import Pricing, check_resources
from thrifty.criteria import Criterion
from thrifty.errors import ValidationError
from thrifty.objectives import DIRECTIONS, CostUtility
from thrifty.pipelines.stage import PipelineShape
from thrifty.schedulers import Scheduler, make_scheduler
from thrifty.space import Space
from thrifty.specs.base import StudyShape
from thrifty.storage import StudyRecord
from thrifty.strategies import Strategy, make_strategy

#: The keys of the stored ``settings`` column, in the order they are written.
STORED_KEYS = ("max_retries", "heartbeat_grace_s", "pricing", "resources", "stop_when", "utility", "artifact_root",
               "keep_checkpoints", "constraints")

#: The keyword settings of :func:`normalize_settings` (and :meth:`Study.create`) besides the space
#: and the objective.
SETTING_NAMES = ("strategy", "scheduler", "seed", "budget", "max_retries", "heartbeat_grace_s", "pricing",
                 "resources", "stop_when", "artifact_root", "keep_checkpoints", "constraints")


def parse_objectives(objective: str | Mapping[str, str]) -> dict[str, str]:
    """``"max"`` -> ``{"value": "max"}``; ``{"acc": "maximize"}`` -> ``{"acc": "max"}``.

    A direction is one of min, max, minimize, maximize, minimise, maximise, in any case; anything
    else (a typo, a non-string) is a :class:`ValidationError` that lists these words.
    """
    if isinstance(objective, str):
        objective = {"value": objective}
    if not isinstance(objective, Mapping) or not objective:
        raise ValidationError(
            f"objective={objective!r}: expected 'min', 'max' or a mapping like {{'val_acc': 'max'}}"
        )
    out = {}
    for name, direction in objective.items():
        if not isinstance(name, str) or not name:
            raise ValidationError(f"objective metric name {name!r}: must be a non-empty string")
        d = DIRECTIONS.get(direction.strip().lower()) if isinstance(direction, str) else None
        if d is None:
            raise ValidationError(
                f"objective {name!r}: direction {direction!r} must be one of {', '.join(DIRECTIONS)}"
            )
        out[name] = d
    return out


def default_name() -> str:
    """A fresh study name: ``study-YYYYmmdd-HHMMSS-xxxx`` (local time, four random hex digits)."""
    return time.strftime("study-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def check_name(name: Any) -> str:
    """``name`` if it is a non-empty string of at most 255 characters, else a ValidationError."""
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ValidationError(f"name={name!r}: a study name must be a non-empty string of at most 255 characters")
    return name


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """A study's settings, validated (build with :func:`normalize_settings` or :meth:`of_record`).

    ``objectives``: metric -> ``"max"`` or ``"min"``. ``seed``: the integer every proposal derives
    from. ``max_retries``: re-runs of a trial whose worker died. ``heartbeat_grace_s``: seconds
    without a heartbeat after which a RUNNING trial's worker is presumed dead. ``pricing`` and
    ``resources``: how a trial's seconds become dollars. ``criteria``: completion criteria.
    ``utility``: the one number a :class:`~thrifty.objectives.CostUtility` study maximises, else
    ``None``. ``artifact_root``: the folder of the trials' folders, relative to the working folder.
    ``keep_checkpoints``: checkpoints of the best k finished trials are kept (``None``: all).
    ``constraints``: metric -> (``"<="`` or ``">="``, bound): a trial is feasible when each holds.
    ``pipeline``: a pipeline study's stages as stored (:class:`~thrifty.pipelines.PipelineShape`:
    names, versions, parameter names, the cache's folder and size limit), else ``None``; stored
    under the settings key ``"pipeline"`` only when set, so other studies' settings are unchanged.
    """

    space: Space
    objectives: Mapping[str, str]
    strategy: Strategy
    scheduler: Scheduler
    seed: int
    budget: Budget
    max_retries: int
    heartbeat_grace_s: float
    pricing: Pricing
    resources: Mapping[str, float]
    criteria: tuple[Criterion, ...]
    utility: CostUtility | None
    artifact_root: str
    keep_checkpoints: int | None
    constraints: Mapping[str, tuple[str, float]]
    pipeline: PipelineShape | None = None

    @property
    def default_metric(self) -> str:
        """The metric a bare number reports: the single objective's, else ``"value"``."""
        return next(iter(self.objectives)) if len(self.objectives) == 1 else "value"

    def stored(self) -> dict[str, Any]:
        """The ``settings`` column as the storage keeps it (keys of :data:`STORED_KEYS`, plain JSON
        data; the same format since schema version 1)."""
        out: dict[str, Any] = {
            "max_retries": self.max_retries,
            "heartbeat_grace_s": self.heartbeat_grace_s,
            "pricing": self.pricing.to_dict(),
            "resources": dict(self.resources),
            "stop_when": [c.to_spec() for c in self.criteria],
            "utility": self.utility.to_dict() if self.utility else None,
            "artifact_root": self.artifact_root,
            "keep_checkpoints": self.keep_checkpoints,
            "constraints": {metric: [op, bound] for metric, (op, bound) in self.constraints.items()},
        }
        if self.pipeline is not None:
            out["pipeline"] = self.pipeline.to_dict()
        return out

    def comparable(self) -> dict[str, Any]:
        """Every setting as plain JSON data under its ``thrifty run`` config key (``objective`` for
        the objectives): equal values mean equal settings."""
        out: dict[str, Any] = {
            "space": self.space.to_dict(), "objective": dict(self.objectives), "strategy": self.strategy.to_spec(),
            "scheduler": self.scheduler.to_spec(), "seed": self.seed, "budget": self.budget.to_dict(),
            **self.stored(),
        }
        return json.loads(json.dumps(out, default=str))  # tuples -> lists, as stored

    @classmethod
    def of_record(cls, record: StudyRecord) -> StudySettings:
        """The settings of a stored study, read back through :func:`normalize_settings` (a key
        missing from an older record takes the default :meth:`Study.create` gives it)."""
        stored = {k: record.settings[k] for k in STORED_KEYS if k in record.settings and k != "utility"}
        objective: Any = dict(record.objectives)
        wanted = normalize_settings(
            record.space, objective, strategy=record.strategy, scheduler=record.scheduler, seed=record.seed,
            budget=record.budget, pipeline=record.settings.get("pipeline"), **stored,
        )
        utility = record.settings.get("utility")
        return dataclasses.replace(wanted, utility=CostUtility(**utility) if utility else None)


def normalize_settings(
    space: Space | Mapping[str, Any],
    objective: str | Mapping[str, str] | CostUtility = "max",
    *,
    strategy: str | Mapping[str, Any] | Strategy = "auto",
    scheduler: str | Mapping[str, Any] | Scheduler | None = "auto",
    seed: int = 0,
    budget: Budget | Mapping[str, Any] | None = None,
    max_retries: int = 0,
    heartbeat_grace_s: float = 60.0,
    pricing: Pricing | str | Mapping[str, Any] | None = None,
    resources: Mapping[str, float] | None = None,
    stop_when: Sequence[Criterion | Mapping[str, Any]] | Criterion | None = None,
    artifact_root: str = "thrifty_artifacts",
    keep_checkpoints: int | None = 3,
    constraints: Mapping[str, Sequence[Any]] | None = None,
    pipeline: PipelineShape | Mapping[str, Any] | None = None,
) -> StudySettings:
    """Validate :meth:`Study.create`'s settings (raising :class:`ValidationError` on the first bad
    one) and return them as a :class:`StudySettings`. Nothing is written. These defaults are the
    ones every caller gets (``Study.create``'s match them; ``thrifty run`` passes only given keys)."""
    space = space if isinstance(space, Space) else Space(space)
    utility: CostUtility | None = None
    if isinstance(objective, CostUtility):
        utility, objective = objective, {objective.name: "max"}
    objectives = parse_objectives(objective)
    pricing_obj = Pricing.parse(pricing)
    resources_obj = check_resources(resources)
    pricing_obj.usd_per_hour_for(resources_obj)  # e.g. more GPUs than the instance has
    criteria = make_criteria(stop_when)
    strat = make_strategy(strategy)
    sched = make_scheduler(scheduler)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationError(f"seed={seed!r}: expected an integer")
    budget_obj = Budget.from_dict(budget)
    constraints_obj = check_constraints(constraints)
    shape = None if pipeline is None else PipelineShape.from_dict(pipeline)
    if shape is not None:
        missing = [p for names in shape.stage_params for p in names if p not in space]
        if missing:
            raise ValidationError(f"pipeline: parameter(s) {missing!r} of its stages are not in the space; "
                                  "a pipeline study's space is the union of its stages' spaces")
    if keep_checkpoints is not None and (isinstance(keep_checkpoints, bool) or not isinstance(keep_checkpoints, int)
                                         or keep_checkpoints < 0):
        raise ValidationError(f"keep_checkpoints={keep_checkpoints!r}: expected an integer >= 0 or None (keep all)")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValidationError(f"max_retries={max_retries!r}: expected an integer >= 0")
    if (
        isinstance(heartbeat_grace_s, bool)
        or not isinstance(heartbeat_grace_s, (int, float))
        or not math.isfinite(heartbeat_grace_s)
        or heartbeat_grace_s <= 0
    ):
        raise ValidationError(f"heartbeat_grace_s={heartbeat_grace_s!r}: expected a number of seconds > 0")
    check_fit(strat, sched, criteria, StudyShape(objectives, space, budget_obj.usd))  # what fits together
    return StudySettings(
        space=space, objectives=objectives, strategy=strat, scheduler=sched, seed=seed, budget=budget_obj,
        max_retries=max_retries, heartbeat_grace_s=float(heartbeat_grace_s), pricing=pricing_obj,
        resources=resources_obj, criteria=tuple(criteria), utility=utility, artifact_root=str(artifact_root),
        keep_checkpoints=keep_checkpoints, constraints=constraints_obj, pipeline=shape,
    )


def check_constraints(constraints: Mapping[str, Sequence[Any]] | None) -> dict[str, tuple[str, float]]:
    """Validate ``{metric: (op, bound)}`` with op ``"<="`` or ``">="`` and a finite bound."""
    if constraints is None:
        return {}
    if not isinstance(constraints, Mapping):
        raise ValidationError(f"constraints={constraints!r}: expected {{metric: ('<=' or '>=', bound)}}")
    out: dict[str, tuple[str, float]] = {}
    for metric, spec in constraints.items():
        if not isinstance(metric, str) or not metric:
            raise ValidationError(f"constraints: metric names must be non-empty strings, got {metric!r}")
        if isinstance(spec, (str, bytes)) or not isinstance(spec, Sequence) or len(spec) != 2:
            raise ValidationError(f"constraints[{metric!r}]={spec!r}: expected (op, bound), e.g. ('<=', 100)")
        op, bound = spec
        if op not in ("<=", ">="):
            raise ValidationError(f"constraints[{metric!r}]: op {op!r} is not '<=' or '>='")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise ValidationError(f"constraints[{metric!r}]: bound {bound!r} is not a finite number")
        out[metric] = (op, float(bound))
    return out
