"""Repeated evaluations of the best configurations: enqueueing repeats of the top ones
(:meth:`thrifty.study.Study.reevaluate_top`) and choosing by the mean over repeats
(:meth:`thrifty.study.Study.robust_best`). Both read the study's ranking
(:func:`thrifty.ranking.rank`, best first) and nothing else."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from thrifty.errors import ThriftyError, ValidationError
from thrifty.trial import Trial


def params_key(params: Mapping[str, Any]) -> str:
    """One string per configuration: trials with equal params share it."""
    return json.dumps(sorted(params.items()), default=str)


def reevaluate_top(
    ranked: Sequence[Trial], k: int, repeats: int, enqueue: Callable[[Mapping[str, Any], int], Trial]
) -> list[Trial]:
    """Call ``enqueue(params, repeat_of)`` ``repeats`` times for each of the best ``k`` distinct
    configurations of ``ranked`` (best first); returns the enqueued trials."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValidationError(f"reevaluate_top(k={k!r}): expected an integer >= 1")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValidationError(f"reevaluate_top(repeats={repeats!r}): expected an integer >= 1")
    out: list[Trial] = []
    seen: set[str] = set()
    for t in ranked:
        key = params_key(t.params)
        if key in seen:
            continue
        seen.add(key)
        out += [enqueue(t.params, t.number) for _ in range(repeats)]
        if len(seen) == k:
            break
    return out


def robust_best(
    ranked: Sequence[Trial], objectives: Mapping[str, str], study_name: str
) -> tuple[dict[str, Any], float, float, int]:
    """``(params, mean, std, n)`` of the configuration of ``ranked`` with the best mean of the
    first objective over its evaluations (ties: more evaluations, then the one evaluated first)."""
    metric, direction = next(iter(objectives.items()))
    groups: dict[str, list[Trial]] = {}
    for t in sorted(ranked, key=lambda t: t.number):
        groups.setdefault(params_key(t.params), []).append(t)
    if not groups:
        raise ThriftyError(f"study {study_name!r} has no completed trial with a finite objective value yet")
    sign = 1.0 if direction == "max" else -1.0
    stats = []
    for ts in groups.values():
        vals = [t.metrics[metric] for t in ts]
        mean = math.fsum(vals) / len(vals)
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        stats.append((sign * mean, len(vals), ts[0].params, mean, std))
    best = max(stats, key=lambda x: (x[0], x[1]))
    return dict(best[2]), best[3], best[4], best[1]
