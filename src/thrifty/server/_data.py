"""What the dashboard serves, as plain JSON-able data read from a storage opened read-only: the
study list, a study's version (for live updates), a page of its trials and one trial's detail.
Each function reads in short transactions (the storage's own), never writes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from thrifty.analysis.report import error_gist
from thrifty.cost.budget import Budget
from thrifty.errors import ValidationError
from thrifty.storage.base import Storage
from thrifty.trial import Trial, TrialState

#: Sort keys of the trial table.
SORT_KEYS = ("number", "state", "value", "cost_usd", "elapsed_s")
MAX_PAGE = 500
#: Characters of a failed trial's error (its tail: where a traceback says what went wrong).
ERROR_TAIL = 4000


def num(v: Any) -> Any:
    """A float JSON can carry: NaN and infinities become their names."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def budget_of(storage: Storage, name: str) -> dict[str, Any]:
    record = storage.load_study(name)
    budget = Budget.from_dict(record.budget)
    usage = record.usage(time.time())
    left = budget.remaining_usd(usage)
    return {"usd": budget.usd, "usd_left": left, "trials": budget.trials, "hard": budget.hard,
            "spent_usd": usage.usd, "breaker": record.budget_stop.reason if record.budget_stop else None}


def studies(storage: Storage) -> list[dict[str, Any]]:
    out = []
    for s in storage.list_studies():
        counts = {k.value if isinstance(k, TrialState) else str(k): v for k, v in s.counts.items()}
        row = {"name": s.name, "created_at": s.created_at, "objectives": dict(s.objectives), "counts": counts,
               "trials": sum(counts.values()), "spent_usd": s.spent_usd}
        row["budget"] = budget_of(storage, s.name)
        out.append(row)
    return out


def version(storage: Storage, name: str) -> dict[str, Any]:
    """What changes when the study does: trial counts by state and dollars spent."""
    record = storage.load_study(name)
    counts = storage.count_trials(record.id)
    status = storage.study_status(record.id)
    return {"counts": {k.value: v for k, v in counts.items()}, "spent_usd": status.spent_usd}


def memo_cache(study: Any) -> dict[str, Any] | None:
    """A pipeline study's memo cache (hits, misses, dollars and seconds saved, per stage), ``None``
    for a study without a pipeline."""
    from thrifty.analysis.report import memo_cache_summary

    summary = memo_cache_summary(study)
    return summary.to_dict() if summary is not None else None


def _row(t: Trial, objectives: dict[str, str]) -> dict[str, Any]:
    return {"number": t.number, "state": t.state.value,
            "values": {k: num(t.metrics.get(k)) for k in objectives},
            "cost_usd": t.cost_usd, "elapsed_s": t.elapsed_s,
            "note": t.reason if t.state is TrialState.STOPPED else error_gist(t.error),
            "gpu_idle": bool(t.usage is not None and t.usage.gpu_idle),
            "params": {k: num(v) for k, v in t.params.items()}}


def trial_page(storage: Storage, name: str, *, offset: int = 0, limit: int = 50, sort: str = "number",
               desc: bool = False, every: Callable[[], Sequence[Trial]] | None = None) -> dict[str, Any]:
    """One page of the trial table, sorted on the server. By number (the default) only the page
    is read; another key sorts every trial without its measurements: ``every()`` if given (the
    dashboard's incremental read), else read from the storage."""
    if sort not in SORT_KEYS:
        raise ValidationError(f"sort={sort!r}: expected one of {', '.join(SORT_KEYS)}")
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"offset={offset}, limit={limit}: expected offset >= 0 and 1 <= limit <= {MAX_PAGE}")
    record = storage.load_study(name)
    objectives = dict(record.objectives)
    total = sum(storage.count_trials(record.id).values())
    if sort == "number":
        start = max(total - offset - limit, 0) if desc else offset
        count = min(limit, max(total - offset, 0))
        trials = storage.get_trials(record.id, with_measurements=False, offset=start, limit=count) if count else []
        if desc:
            trials = trials[::-1]
    else:
        everything = every() if every is not None else storage.get_trials(record.id, with_measurements=False)
        first = next(iter(objectives))

        def key(t: Trial) -> tuple:
            if sort == "value":
                v = t.metrics.get(first)
                missing = v is None or not math.isfinite(v)
                return (missing, (v if not missing else 0.0) * (-1 if desc else 1), t.number)
            k = {"state": t.state.value, "cost_usd": t.cost_usd, "elapsed_s": t.elapsed_s}[sort]
            return (k,)

        trials = sorted(everything, key=key, reverse=desc and sort != "value")[offset:offset + limit]
    return {"total": total, "offset": offset, "limit": limit, "sort": sort, "desc": desc,
            "objectives": objectives, "trials": [_row(t, objectives) for t in trials]}


def trial_detail(storage: Storage, name: str, number: int) -> dict[str, Any] | None:
    record = storage.load_study(name)
    found = storage.get_trials(record.id, offset=number, limit=1) if number >= 0 else []
    if not found or found[0].number != number:
        found = [t for t in storage.get_trials(record.id) if t.number == number]
    if not found:
        return None
    t = found[0]
    objectives = dict(record.objectives)
    error = t.error or None
    stages = [{"stage": r.stage, "name": r.name, "outcome": r.outcome, "miss": r.miss, "elapsed_s": r.elapsed_s,
               "cost_usd": r.cost_usd, "saved_usd": r.saved_usd}
              for r in storage.stage_runs(record.id) if r.trial_id == t.id] if record.settings.get("pipeline") else []
    return {
        **_row(t, objectives), "metrics": {k: num(v) for k, v in t.metrics.items()},
        "error_tail": error[-ERROR_TAIL:] if error else None, "reason": t.reason,
        "stop_kind": t.stop_kind.value if t.stop_kind else None, "parent": t.parent, "start_step": t.start_step,
        "worker_id": t.worker_id, "started_at": t.started_at, "finished_at": t.finished_at,
        "resources": dict(t.resources), "gpu_hours": t.gpu_s / 3600.0,
        "usage": {k: num(v) for k, v in t.usage.to_dict().items()} if t.usage is not None else None,
        "stages": stages,
        "curve": [{"step": m.step, "metrics": {k: num(v) for k, v in m.metrics.items()}, "cost_usd": m.cost_usd}
                  for m in t.measurements],
    }
