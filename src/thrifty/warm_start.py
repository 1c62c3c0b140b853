"""Warm start: begin a study with what earlier studies learned.

``Study.create(..., warm_start=["study-a", "study-b"])`` (studies in the same storage) does two
things before the first ask:

1. **Observations.** Every trial of the earlier studies that ran to its end
   (:func:`thrifty.ranking.measured`: COMPLETED, or INFEASIBLE with its metrics because it broke a
   constraint) and whose params fit the new space is added to the new study (``Study.add_trial``,
   tagged ``user_attrs["warm_start"] = "study-a#12"``), so model-based strategies start from them.
   A trial infeasible in its study stays INFEASIBLE here (its reason names it, e.g. ``"study-a#12:
   constraint nnz <= 100 broken: nnz = 140"``), and the new study's constraints judge the others.
   They cost nothing here and count against no trial budget.
2. **Best configurations.** The first ``TOP_K`` trials of each earlier study by
   :func:`thrifty.ranking.rank` under the new study's objectives and *both* studies' constraints
   are enqueued, so they are evaluated again under the new study's conditions (data, code, hardware
   may differ). An infeasible trial is never enqueued.

Parameters are carried across spaces as follows (a warning names each parameter dropped or filled):

- a parameter of the new space that the old trial has, with a value the new parameter accepts,
  keeps its value (values are physical: a learning rate of 0.01 stays 0.01); a number outside the
  new range is clipped into it for the enqueued best configurations, and makes an observation
  unusable (it is skipped: the value it reports was not measured inside the new space);
- a conditional parameter that is inactive in the new space (given the values its parents take
  there, parents first) is left out: neither needed nor filled, so a trial of an identical
  conditional space always fits;
- an active parameter of the new space the old trial lacks takes the centre of its range (the
  middle choice for a categorical) in enqueued configurations; observations lacking it are skipped;
- parameters the new space does not have are dropped;
- a configuration that breaks the new space's conditions is skipped.

The earlier studies' objective metrics must include the new study's; others are skipped with a
warning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from thrifty.errors import SpaceError, StudyNotFound, ValidationError
from thrifty.ranking import judged, measured, rank
from thrifty.space import Categorical, Fixed, Float, Int, Space
from thrifty.trial import TrialState

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.study import Study

log = logging.getLogger("thrifty.warm_start")

#: Best configurations of each earlier study enqueued in the new one.
TOP_K = 3


def load_sources(names: Sequence[str], objectives: Mapping[str, str], load: Callable[[str], Study]) -> list[Study]:
    """Open the earlier studies with ``load`` (a name -> the study of that name in the new study's
    storage), before anything is written; a missing one is an error."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ValidationError(f"warm_start={names!r}: expected a list of study names")
    out = []
    for name in names:
        try:
            source = load(name)
        except StudyNotFound:
            raise ValidationError(f"warm_start: no study named {name!r} in this storage") from None
        missing = [m for m in objectives if m not in source.objectives]
        if missing:
            log.warning("warm start: study %r does not measure %s; skipped", name, ", ".join(missing))
            continue
        out.append(source)
    return out


def _centre(p: Any) -> Any:
    if isinstance(p, Categorical):
        return p.choices[len(p.choices) // 2]
    if isinstance(p, Fixed):
        return p.value
    return p.from_unit(0.5)


def translate(params: Mapping[str, Any], space: Space, *, fill: bool) -> tuple[dict[str, Any] | None, list[str]]:
    """Carry ``params`` into ``space`` (see the module docstring). ``fill``: clip and fill in
    (for enqueued configurations) instead of refusing (for observations). Returns the params (or
    ``None`` if unusable) and notes on what changed."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    for name in space:  # parents before their children
        p = space[name]
        if not space.is_active(name, out):
            continue  # inactive here: not needed, never filled
        if name not in params:
            if not fill:
                return None, [f"{name}: missing"]
            out[name] = _centre(p)
            notes.append(f"{name}: filled with {out[name]!r}")
            continue
        v = params[name]
        if p.contains(v):
            out[name] = v
        elif fill and isinstance(p, (Float, Int)) and isinstance(v, (int, float)) and math.isfinite(v):
            out[name] = min(max(v, p.low), p.high)
            out[name] = int(round(out[name])) if isinstance(p, Int) else float(out[name])
            notes.append(f"{name}: {v!r} clipped to {out[name]!r}")
        else:
            return None, [f"{name}: {v!r} outside the new space"]
    notes += [f"{name}: dropped" for name in params if name not in space]
    try:
        return dict(space.validate(out)), notes
    except SpaceError:
        return None, notes + ["breaks the new space's conditions"]


def _warn_once(source: Study, notes: Sequence[str], warned: set[str], only_dropped: bool) -> None:
    for note in notes:
        if note not in warned and (not only_dropped or note.endswith("dropped")):
            warned.add(note)
            log.warning("warm start from %r: parameter %s", source.name, note)


def seed(study: Study, sources: Sequence[Study]) -> tuple[int, int]:
    """Add the sources' measured trials as observations and enqueue their best configurations
    (see the module docstring); returns (observations added, configurations enqueued)."""
    added = enqueued = 0
    warned: set[str] = set()
    for source in sources:
        # Trials recorded before thrifty marked constraint breakers are judged here.
        trials = [judged(t, source.constraints) for t in source.get_trials(with_measurements=False)]
        observed = [t for t in trials if measured(t) and all(m in t.metrics for m in study.objectives)]
        carried = 0
        for t in observed:
            params, notes = translate(t.params, study.space, fill=False)
            _warn_once(source, notes, warned, only_dropped=True)
            if params is None:
                continue
            metrics = {k: v for k, v in t.metrics.items() if isinstance(v, float)}
            tag = f"{source.name}#{t.number}"
            infeasible = f"{tag}: {t.error}" if t.state is TrialState.INFEASIBLE else None
            study.add_trial(params, metrics, user_attrs={"warm_start": tag}, infeasible=infeasible)
            carried += 1
        best = rank(trials, study.objectives, study.constraints)[:TOP_K]
        queued = 0
        for t in best:
            params, notes = translate(t.params, study.space, fill=True)
            if params is None:
                continue
            _warn_once(source, notes, warned, only_dropped=False)
            study.enqueue(params, user_attrs={"warm_start_best": f"{source.name}#{t.number}"})
            queued += 1
        log.info("warm start from %r: %d of its %d measured trials added as observations (the others do not fit "
                 "the new space), %d best configurations enqueued", source.name, carried, len(observed), queued)
        added, enqueued = added + carried, enqueued + queued
    return added, enqueued
