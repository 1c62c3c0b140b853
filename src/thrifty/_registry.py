"""The one registry of algorithms: names -> validated specs and classes, and what fits together.

Every strategy, scheduler and completion criterion is registered here under its name, with the
spec that validates its arguments (:mod:`thrifty.specs`) and the class built from it. :func:`build`
makes an algorithm from a name (``"asha"``), a mapping (``{"name": "asha", "max_resource": 52}``,
what the study stores and YAML configs give), an instance (returned unchanged) or a
``"module:Class"`` name of a user's own class; ``algorithm.to_spec()`` builds it back.
:func:`check_fit` refuses a combination that cannot work for a study (several objectives with a
scheduler that judges one, ...) before anything is written. Every error is a ``ValidationError``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from thrifty.errors import ValidationError
from thrifty.specs import schedulers as _schedulers
from thrifty.specs import strategies as _strategies
from thrifty.specs.base import Spec, StudyShape

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.criteria import Criterion

T = TypeVar("T")

#: kind -> name -> the class built, as ``module:Class`` (imported on first use, so a name is
#: checked without loading numpy). A criterion's class is its own spec.
CLASSES: dict[str, dict[str, str]] = {
    "strategy": {
        "random": "thrifty.strategies.random:RandomSearch",
        "sobol": "thrifty.strategies.sobol:SobolSearch",
        "grid": "thrifty.strategies.grid:GridSearch",
        "gp": "thrifty.strategies.gp:GP",
        "tpe": "thrifty.strategies.tpe:TPE",
        "nsga2": "thrifty.strategies.nsga2:NSGA2",
        "bohb": "thrifty.strategies.bohb:BOHB",
        "mfgp": "thrifty.strategies.mfgp:MFGP",
        "eeipu": "thrifty.strategies.eeipu:EEIPU",
        "auto": "thrifty.strategies.auto:Auto",
    },
    "scheduler": {
        "none": "thrifty.schedulers.base:NoStopping",
        "median": "thrifty.schedulers.percentile:Median",
        "percentile": "thrifty.schedulers.percentile:Percentile",
        "threshold": "thrifty.schedulers.threshold:Threshold",
        "patience": "thrifty.schedulers.patience:Patience",
        "asha": "thrifty.schedulers.asha:ASHA",
        "hyperband": "thrifty.schedulers.hyperband:Hyperband",
        "pbt": "thrifty.schedulers.pbt:PBT",
        "adaptive": "thrifty.schedulers.adaptive:AdaptiveASHA",
        "auto": "thrifty.schedulers.auto:AutoStopping",
    },
    "criterion": {
        "target": "thrifty.criteria:TargetReached",
        "no_improvement": "thrifty.criteria:NoImprovement",
        "not_worth_cost": "thrifty.criteria:ImprovementNotWorthCost",
        "no_expected_improvement": "thrifty.criteria:NoExpectedImprovement",
    },
}
#: How each kind is called in messages (the ``Study.create`` argument).
LABELS = {"strategy": "strategy", "scheduler": "scheduler", "criterion": "stop_when"}


def names(kind: str) -> list[str]:
    """The registered names of ``kind`` (``"strategy"``, ``"scheduler"`` or ``"criterion"``)."""
    return sorted(CLASSES[kind])


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def spec_class(kind: str, name: str) -> type[Spec]:
    """The spec of the algorithm ``name`` of ``kind`` (``KeyError`` if not registered)."""
    if kind == "strategy":
        return _strategies.SPECS[name]
    if kind == "scheduler":
        return _schedulers.SPECS[name]
    cls: type[Spec] = _load(CLASSES[kind][name])
    return cls


def make_spec(kind: str, name: str, kwargs: Mapping[str, Any]) -> Spec:
    """The validated spec of ``name`` with arguments ``kwargs``: an unknown or missing argument,
    or a bad value, is a one-line ``ValidationError`` that names it."""
    label = f"{LABELS[kind]} {name!r}"
    cls = spec_class(kind, name)
    fields = dataclasses.fields(cls)
    known = [f.name for f in fields]
    takes = f"{cls.owner} takes {', '.join(known)}" if known else f"{cls.owner} takes no arguments"
    unknown = [k for k in kwargs if k not in known]
    if unknown:
        raise ValidationError(f"{label}: unknown argument {unknown[0]!r}; {takes}")
    missing = [f.name for f in fields if f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValidationError(f"{label}: missing argument {missing[0]!r}; {takes}")
    try:
        return cls(**kwargs)
    except ValidationError as exc:
        raise ValidationError(f"{label}: {exc}") from None


def build(kind: str, value: Any, base: type[T]) -> T:
    """The algorithm of ``kind`` that ``value`` describes (see the module docstring); ``base`` is
    the class every algorithm of that kind derives from."""
    if isinstance(value, base):
        return value
    label = LABELS[kind]
    if isinstance(value, str):
        name, kwargs = value, {}
    elif isinstance(value, Mapping) and isinstance(value.get("name"), str):
        kwargs = {k: v for k, v in value.items() if k != "name"}
        name = value["name"]
    else:
        raise ValidationError(
            f"{label}={value!r}: expected a name ({', '.join(names(kind))}), a dict with a 'name' key, "
            f"or a {base.__name__} instance"
        )
    if name in CLASSES[kind]:
        spec = make_spec(kind, name, kwargs)
        try:
            obj = spec if isinstance(spec, base) else _load(CLASSES[kind][name])(**spec.params())
        except ValidationError as exc:  # what only the class can check (BOHB's inner strategy)
            raise ValidationError(f"{label} {name!r}: {exc}") from None
    elif ":" in name:
        try:
            cls = _load(name)
        except (ImportError, AttributeError) as exc:
            raise ValidationError(f"{label} {name!r} cannot be imported: {exc}") from None
        try:
            obj = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"{label} {name!r}: {exc}") from None
    else:
        raise ValidationError(f"unknown {label} {name!r}; known: {', '.join(names(kind))}")
    if not isinstance(obj, base):
        raise ValidationError(f"{label} {name!r} is a {type(obj).__name__}, not a {base.__name__}")
    return obj


def spec_of(algorithm: Any) -> Spec | None:
    """The validated spec an algorithm was built from (a criterion is its own), or ``None`` for a
    user's class that has none."""
    if isinstance(algorithm, Spec):
        return algorithm
    spec = getattr(algorithm, "spec", None)
    return spec if isinstance(spec, Spec) else None


def check_fit(strategy: Any, scheduler: Any, criteria: Sequence[Any], study: StudyShape) -> None:
    """Refuse (``ValidationError``) a strategy, scheduler or criterion that cannot serve ``study``,
    with a message that says what fits. Each algorithm's rules are declared on its spec
    (:meth:`thrifty.specs.base.Spec.misfit`); a user's class without a spec is not checked."""
    for algorithm in (strategy, scheduler, *criteria):
        spec = spec_of(algorithm)
        why = spec.misfit(study) if spec is not None else None
        if why:
            raise ValidationError(why)


def make_criteria(specs: Sequence[Criterion | Mapping[str, Any]] | Criterion | None) -> list[Criterion]:
    """Build completion criteria (:mod:`thrifty.criteria`) from instances or stored specs
    (``{"name": "target", "value": 0.98}``)."""
    from thrifty.criteria import Criterion

    if specs is None:
        return []
    if isinstance(specs, (Criterion, Mapping)):
        specs = [specs]
    out = []
    for spec in specs:
        known = isinstance(spec, Criterion) or (isinstance(spec, Mapping) and spec.get("name") in names("criterion"))
        if not known:
            raise ValidationError(
                f"stop_when: {spec!r} is not a criterion; use th.TargetReached, th.NoImprovement or "
                f"th.ImprovementNotWorthCost (or a dict with 'name' in {', '.join(names('criterion'))})"
            )
        out.append(build("criterion", spec, Criterion))
    return out
