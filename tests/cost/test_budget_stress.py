"""The budget's circuit breaker under load: 8 worker processes spending against one dollar budget.

Each trial does a random number of steps (seeded by the trial number), each sleeping a random short
time and reporting a random explicit cost; the study's pricing meters the wall time on top. The
budget is a multiple of what the first eight trials cost (from 0.4: the breaker trips in the first
wave, to 3: after a few dozen trials, with the soft forecast check at work), so the breaker trips
while several trials are in flight, unless the soft check refused the next trial before the ledger
got there (then nothing may be overspent or stopped). Checked on every run, from what the storage
recorded:

(a) the ledger adds up: the study's spend is the sum of its trials' costs, and each trial's cost is
    the sum of its measurements';
(b) nothing is left RUNNING or PENDING;
(c) the breaker tripped at the first measurement that brought the ledger to the limit, its
    recorded moment (``budget_stop.at``) is that measurement's, and the overshoot is bounded by the
    measurements recorded from then on, of which each trial has at most 2 (the report in flight
    and the final tell);
(d) trials running at the trip end as STOPPED with stop kind BUDGET (limit "usd") (a trial caught
    between its last report and its tell completes: its tell is then its only later measurement);
(e) no trial started after the trip;
(f) ``optimize`` says it ended on "usd".

"Recorded at or after the trip" is commit order: every measurement insert takes the study's lock
(SQLite's write lock, PostgreSQL's row lock on the study), so measurement ids follow commit order.
The ids are read from the measurements table (the public ``Measurement`` has no id).
"""

from __future__ import annotations

import functools
import math
import random
import time

import pytest
import sqlalchemy as sa

import thrifty as th

SPACE = th.Space({"x": th.Float(0.0, 1.0)})
RATE_USD_PER_HOUR = 36.0  # $0.01 per second of wall time, metered on top of the explicit costs
N_WORKERS = 8


def plan(seed: int, number: int) -> list[tuple[float, float]]:
    """(sleep seconds, explicit dollars) for each step of trial ``number``."""
    rng = random.Random(seed * 100_003 + number)
    return [(rng.uniform(0.004, 0.03), rng.uniform(0.01, 0.12)) for _ in range(rng.randint(2, 8))]


def objective(trial: th.TrialHandle, seed: int) -> float:
    x = trial.params["x"]
    for step, (sleep_s, cost) in enumerate(plan(seed, trial.number), start=1):
        time.sleep(sleep_s)
        trial.report(x * step, step=step, cost_usd=cost)
    return x


def measurement_log(study: th.Study) -> list[tuple[int, int, float, float]]:
    """(measurement id, trial number, dollars, timestamp) of every measurement, in commit order."""
    with study.storage.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT m.id, t.number, m.cost_usd, m.timestamp FROM thrifty_measurements m "
                "JOIN thrifty_trials t ON t.id = m.trial_id WHERE t.study_id = :sid ORDER BY m.id"
            ),
            {"sid": study.id},
        ).all()
    return [(int(r[0]), int(r[1]), float(r[2]), float(r[3])) for r in rows]


def run_stressed_study(url: str, seed: int, fraction: float) -> None:
    first_wave = math.fsum(c for n in range(N_WORKERS) for _, c in plan(seed, n))
    limit = round(fraction * first_wave, 6)
    study = th.Study.create(
        SPACE, "max", name=f"stress-{seed}", storage=url, seed=seed, budget=th.Budget(usd=limit),
        pricing={"local": RATE_USD_PER_HOUR},
    )
    result = study.optimize(functools.partial(objective, seed=seed), n_workers=N_WORKERS, progress=False)

    trials = study.trials
    by_number = {t.number: t for t in trials}
    record = study.storage.study_status(study.id)
    log = measurement_log(study)

    # (a) The ledger adds up, exactly up to float rounding.
    for t in trials:
        assert t.cost_usd == pytest.approx(math.fsum(m.cost_usd for m in t.measurements), abs=1e-9), t
    assert study.cost_usd == pytest.approx(math.fsum(t.cost_usd for t in trials), abs=1e-9)
    assert study.cost_usd == pytest.approx(math.fsum(c for _, _, c, _ in log), abs=1e-9)
    assert len(log) == sum(len(t.measurements) for t in trials)
    assert result.spent_usd == pytest.approx(study.cost_usd, abs=1e-12)

    # (b) Nothing is left running or waiting.
    counts = study.counts()
    assert counts.get(th.TrialState.RUNNING, 0) == 0 and counts.get(th.TrialState.PENDING, 0) == 0, counts
    assert all(t.state in (th.TrialState.COMPLETED, th.TrialState.STOPPED) for t in trials), [
        (t.number, t.state, t.error) for t in trials
    ]

    assert result.reason == "usd", result  # (f)
    if record.budget_stop is None:
        # The soft check refused the next trial before the ledger reached the limit (its forecast
        # exceeded what was left): then nothing was overspent and nothing was stopped.
        assert fraction > 1, "in the first wave the cost model has too few trials to refuse anything"
        assert study.cost_usd < limit, f"${study.cost_usd:.4f} spent of ${limit} and the breaker never tripped"
        assert all(t.state is th.TrialState.COMPLETED for t in trials)
        assert "forecast" in result.message, result.message
        return
    # (c) The breaker tripped at the first measurement that reached the limit, and only then.
    assert record.budget_stop.at is not None
    assert record.budget_stop.limit == "usd" and "$" in record.budget_stop.message
    running = 0.0
    trip_index = None
    for i, (_, _, cost, _) in enumerate(log):
        running += cost  # the same additions, in the same order, as the storage's ledger
        if running >= limit:
            trip_index = i
            break
    assert trip_index is not None
    trip_id, trip_number, _, trip_ts = log[trip_index]
    tripping_trial = by_number[trip_number]
    assert record.budget_stop.at in (trip_ts, tripping_trial.finished_at), (
        "budget_stop_at is the moment of the measurement that reached the limit (a report's "
        "timestamp, or the finishing time of a tell)"
    )
    before = math.fsum(c for mid, _, c, _ in log if mid < trip_id)
    after = math.fsum(c for mid, _, c, _ in log if mid >= trip_id)
    assert before < limit <= before + after
    overshoot = study.cost_usd - limit
    assert overshoot <= after + 1e-9
    late: dict[int, int] = {}
    for mid, number, _, _ in log:
        if mid > trip_id:
            late[number] = late.get(number, 0) + 1
    assert all(n <= 2 for n in late.values()), f"measurements after the trip, per trial: {late}"
    # Each running trial's measurements after the trip are its next report and its tell: at most
    # one report's interval each, so the overshoot is bounded by the in-flight intervals.
    assert len(late) <= N_WORKERS

    # (d) + (e): every trial still recording after the trip was running at the trip (the breaker
    # marked it), and ends stopped by the budget unless its tell was all that came after.
    for number, n_late in late.items():
        t = by_number[number]
        if number == trip_number:
            continue
        if t.state is th.TrialState.STOPPED:
            assert t.stop_kind is th.StopKind.BUDGET and t.stop_limit == "usd", (
                f"trial {number} recorded {n_late} measurement(s) after the breaker tripped but was not "
                f"running at the trip (reason {t.reason!r}): it started after the trip"
            )
            continue
        # Caught between its last report and its tell: it completes (no reason: only stopped
        # trials keep one), and its tell is its only measurement after the trip, so it had
        # reported before the trip, i.e. it was running then.
        assert t.state is th.TrialState.COMPLETED and n_late == 1 and t.reason is None and t.stop_kind is None, (
            f"trial {number} ({t.state.value}) ran on after the breaker tripped"
        )
        assert len(t.measurements) > 1
    stopped = [t for t in trials if t.state is th.TrialState.STOPPED]
    assert stopped, "the breaker tripped with trials in flight, so some must have been stopped"
    assert all(t.stop_kind is th.StopKind.BUDGET and t.stop_limit == "usd" and t.reason for t in stopped)
    if tripping_trial.state is th.TrialState.STOPPED:
        # It reached the limit at a report: the report was recorded, then the trial stopped.
        assert tripping_trial.stop_kind is th.StopKind.BUDGET
        assert late.get(trip_number, 0) <= 1
    else:  # it reached the limit at its tell
        assert tripping_trial.measurements[-1].timestamp <= record.budget_stop.at
        assert late.get(trip_number, 0) == 0
    # (e) No trial started after the breaker tripped: each started trial either ended before the
    # trip or was marked by it.
    for t in trials:
        last_id = max(mid for mid, number, _, _ in log if number == t.number)
        assert last_id <= trip_id or t.number in late, t
    assert study.usage().trials == len(trials)
    with pytest.raises(th.StudyExhausted) as info:
        study.ask()
    assert info.value.reason == "usd"


# One seed per storage in the default run; the others with -m slow (make test-all).
@pytest.mark.parametrize(("seed", "fraction"), [
    pytest.param(1, 0.4, marks=pytest.mark.slow), pytest.param(2, 0.8, marks=pytest.mark.slow), (3, 1.5),
    pytest.param(4, 3.0, marks=pytest.mark.slow),
])
def test_circuit_breaker_under_eight_workers_sqlite(sqlite_url, seed, fraction):
    run_stressed_study(sqlite_url, seed, fraction)


@pytest.mark.parametrize(("seed", "fraction"), [pytest.param(5, 0.6, marks=pytest.mark.slow), (6, 2.0)])
def test_circuit_breaker_under_eight_workers_postgresql(pg_url, seed, fraction):
    run_stressed_study(pg_url, seed, fraction)
