"""A smaller search space from what a study learned, so an expensive search starts where the good
trials were.

The rule (each change is reported with its reason):

- **Fix** a parameter whose importance (:mod:`thrifty.analysis.importance`), even at one standard
  deviation above its mean, is below ``min_importance`` (default 2% of the objective's variance):
  it takes the best trial's value (a conditional parameter inactive in the best trial: the most
  common value among the good trials where it was active; never active there: kept as it was).
- **Narrow** a parameter that matters to where the *good* trials were: the best ``good_share``
  (default 20%, at least 5) of the counted trials. A numeric range becomes the span of their
  values on the parameter's unit scale (log where the space says log), widened by ``margin``
  (default 10% of the original unit range) on each side and kept inside the original range; a
  categorical keeps the choices the good trials used. A change that would keep 90% or more of a
  range is not made.
- **Drop** a conditional parameter whose parent was fixed at a value that never activates it.

Counted trials are COMPLETED, meet the constraints and have a finite objective value. Nothing here
writes to the study.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thrifty.analysis.importance import ImportanceReport, param_importances
from thrifty.errors import ValidationError
from thrifty.ranking import rank
from thrifty.space import Categorical, Fixed, Float, Int, Param, Space

if TYPE_CHECKING:
    from thrifty.study import Study
    from thrifty.trial import Trial

#: A narrowed range that keeps at least this share of the original is left as it was.
KEEP_IF_AT_LEAST = 0.9
MIN_GOOD = 5


@dataclass(frozen=True)
class SpaceChange:
    """What happened to one parameter: ``action`` is ``fixed``, ``narrowed``, ``dropped`` or
    ``kept``; ``before``/``after`` describe it; ``why`` says which rule and the numbers behind it."""

    param: str
    action: str
    before: str
    after: str
    why: str


@dataclass(frozen=True)
class SpaceSuggestion:
    """The suggested ``space``, one :class:`SpaceChange` per original parameter, the importance
    report it rests on and how many good trials set the ranges."""

    space: Space
    changes: tuple[SpaceChange, ...]
    importance: ImportanceReport
    n_good: int


def _when(p: Param) -> dict[str, Any]:
    return {name: list(values) for name, values in p.when}


def _narrowed(p: Param, values: list[Any], margin: float) -> Param | None:
    """``p`` restricted to the span of ``values`` plus ``margin`` (unit scale), or ``None`` when
    that keeps :data:`KEEP_IF_AT_LEAST` of it."""
    when = _when(p) or None
    if isinstance(p, Categorical):
        used = [c for c in p.choices if c in values]
        if len(used) >= len(p.choices):
            return None
        return Categorical(used, when=when) if len(used) > 1 else Fixed(used[0], when=when)
    units = [p.to_unit(v) for v in values]
    lo, hi = max(0.0, min(units) - margin), min(1.0, max(units) + margin)
    if hi - lo >= KEEP_IF_AT_LEAST:
        return None
    low, high = p.from_unit(lo), p.from_unit(hi)
    if isinstance(p, Int):
        if low >= high:
            return Fixed(low, when=when)
        return Int(low, high, log=p.log, step=p.step, when=when)
    assert isinstance(p, Float)
    if not low < high:
        return Fixed(low, when=when)
    return Float(low, high, log=p.log, when=when)


def suggest_space(study: Study, *, objective: str | None = None, min_importance: float = 0.02,
                  good_share: float = 0.2, margin: float = 0.1, seed: int = 0) -> SpaceSuggestion:
    """The smaller space the module doc's rule gives for ``study`` (see :class:`SpaceSuggestion`)."""
    for name, value, lo, hi in (("min_importance", min_importance, 0.0, 1.0), ("good_share", good_share, 0.0, 1.0),
                                ("margin", margin, 0.0, 1.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise ValidationError(f"{name}={value!r}: expected a number from {lo:g} to {hi:g}")
    report = param_importances(study, objective=objective, seed=seed)
    metric = report.objective
    counted: list[Trial] = rank(study.trials, {metric: study.objectives[metric]}, study.constraints)
    n_good = min(len(counted), max(MIN_GOOD, math.ceil(good_share * len(counted))))
    good, best = counted[:n_good], counted[0]
    importance = {i.param: i for i in report.importances}
    params: dict[str, Param] = dict(study.space.items())
    changes: dict[str, SpaceChange] = {}
    for name, p in study.space.items():
        if isinstance(p, Fixed):
            continue
        imp = importance[name]
        said = f"importance {imp.fraction:.1%} +/- {imp.fraction_sd:.1%}"
        active = [t.params[name] for t in good if name in t.params]
        if imp.fraction + imp.fraction_sd < min_importance:
            value = best.params.get(name)
            source = f"the best trial's (trial {best.number})"
            if value is None and active:
                value = Counter(active).most_common(1)[0][0]
                source = f"the most common among the {n_good} good trials (inactive in the best)"
            if value is not None:
                params[name] = Fixed(value, when=_when(p) or None)
                changes[name] = SpaceChange(name, "fixed", p.describe(), repr(value),
                                            f"{said} < {min_importance:.0%}: fixed at {source} value")
                continue
        smaller = _narrowed(p, active, margin) if active else None
        if smaller is not None:
            params[name] = smaller
            changes[name] = SpaceChange(name, "narrowed", p.describe(), smaller.describe(),
                                        f"{said}; the {n_good} best trials lie there (+{margin:.0%} margin)")
        else:
            changes[name] = SpaceChange(name, "kept", p.describe(), p.describe(),
                                        f"{said}; the good trials spread over most of it")
    for name, p in list(params.items()):  # children of a fixed parent that can never be active
        for parent, values in p.when:
            fixed = params.get(parent)
            if isinstance(fixed, Fixed) and fixed.value not in values:
                del params[name]
                changes[name] = SpaceChange(name, "dropped", study.space[name].describe(), "-",
                                            f"its parent {parent} is fixed at {fixed.value!r}, which never activates it")
                break
    order = [n for n in study.space if n in changes]
    return SpaceSuggestion(Space(params), tuple(changes[n] for n in order), report, n_good)
