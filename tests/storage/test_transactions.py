"""How many storage transactions the hot path costs, counted by SQLAlchemy's ``begin`` events:
at most 2 per ask (a snapshot and a conditional start), 1 per report, 1 per tell."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

import thrifty as th
from thrifty.trial import TrialState

N_TRIALS = 30
STEPS = 3


@contextmanager
def _counting(engine: sa.engine.Engine) -> Iterator[Counter[str]]:
    """Count the transactions this thread begins on ``engine``, under the label in ``counts['@']``
    (the heartbeat thread's beats are left out)."""
    counts: Counter[str] = Counter()
    labels = {"label": "setup"}
    me = threading.get_ident()

    def on_begin(_conn: sa.engine.Connection) -> None:
        if threading.get_ident() == me:
            counts[labels["label"]] += 1

    sa.event.listen(engine, "begin", on_begin)
    try:
        counts.labels = labels  # type: ignore[attr-defined]
        yield counts
    finally:
        sa.event.remove(engine, "begin", on_begin)


def test_ask_report_tell_floor(db_url: str) -> None:
    """A model-based strategy, a scheduler that pauses and resumes trials (ASHA promotion), a
    dollar budget (so a cost model is fitted) and a completion criterion: everything an ask
    decides from comes from one snapshot, whatever the study holds."""
    study = th.Study.create(
        {"x": th.Float(0.0, 1.0), "y": th.Float(0.0, 1.0)}, "max", storage=db_url, strategy="tpe",
        scheduler={"name": "asha", "mode": "promotion", "min_resource": 1, "max_resource": STEPS,
                   "reduction_factor": 3},
        budget=th.Budget(usd=1000.0), heartbeat_grace_s=600.0, stop_when=[th.TargetReached(100.0)],
    )
    study.enqueue({"x": 0.5, "y": 0.5})
    engine = study.storage.engine  # type: ignore[attr-defined]
    n_reports = 0
    with _counting(engine) as counts:
        labels = counts.labels  # type: ignore[attr-defined]
        for _ in range(N_TRIALS):
            labels["label"] = "ask"
            trial = study.ask()
            value, stopped = 0.0, False
            for step in range(int(trial.start_step) + 1, STEPS + 1):
                value = trial.params["x"] * step - trial.params["y"]
                labels["label"] = "report"
                trial.report(value, step=step, cost_usd=0.01)
                n_reports += 1
                labels["label"] = "should_stop"
                if trial.should_stop():
                    stopped = True
                    break
            labels["label"] = "tell"
            if not stopped:
                study.tell(trial, value)
            else:
                study.tell(trial, state="paused" if trial.pausing else "stopped")
    trials = study.trials
    resumed = sum(1 for t in trials if t.start_step)
    assert resumed > 0 and TrialState.PAUSED in {t.state for t in trials}, "the scheduler paused and resumed"
    assert study.cost_usd > 0
    assert counts["ask"] <= 2 * N_TRIALS, counts
    assert counts["report"] == n_reports, counts
    assert counts["tell"] == N_TRIALS, counts
    # A scheduler's decision reads once: the history's delta, the stop request and the budget
    # come in one snapshot.
    assert counts["should_stop"] <= n_reports, counts
