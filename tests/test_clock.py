"""The injectable clock: :class:`thrifty.ManualClock` itself, and what it makes exact without
sleeping: metering (price x seconds x resources), intervals counted once, active wall time and
its breaker, heartbeats and the reaper."""

from __future__ import annotations

import math
import threading
import time

import pytest

import thrifty as th
from thrifty.clock import SystemClock

SPACE = th.Space({"x": th.Float(0.0, 1.0)})
P4D = "aws:p4d.24xlarge"  # 8 GPUs
STORAGES = ["memory", "sqlite"]


def _storage(kind: str, tmp_path) -> str:
    return "memory" if kind == "memory" else f"sqlite:///{tmp_path / 'clock.db'}"


# -- the clock ------------------------------------------------------------------------------------
def test_a_manual_clock_moves_only_when_advanced():
    clock = th.ManualClock(start_s=1000.0)
    assert (clock.time(), clock.monotonic()) == (1000.0, 0.0)
    assert clock.time() == 1000.0, "it stands still"
    assert clock.advance(2.5) == 1002.5
    assert (clock.time(), clock.monotonic()) == (1002.5, 2.5)
    clock.advance(0)
    assert clock.advance(7) == 1009.5 and clock.monotonic() == 9.5
    assert th.ManualClock().time() == th.ManualClock().time(), "a fixed default start, so runs repeat"
    assert isinstance(clock, th.Clock) and isinstance(SystemClock(), th.Clock)


@pytest.mark.parametrize("seconds", [-1.0, -1e-9, math.nan, math.inf, -math.inf, "1", None, True])
def test_advance_refuses_what_is_not_seconds_forward(seconds):
    clock = th.ManualClock(start_s=0.0)
    with pytest.raises(th.ValidationError, match=r"advance\(seconds=.*expected a finite number of seconds >= 0") as info:
        clock.advance(seconds)
    assert "\n" not in str(info.value)
    assert clock.time() == 0.0, "a refused advance moves nothing"


@pytest.mark.parametrize("start", [math.nan, math.inf, "0", None, False])
def test_a_manual_clock_needs_a_finite_start(start):
    with pytest.raises(th.ValidationError, match=r"ManualClock\(start_s=") as info:
        th.ManualClock(start_s=start)
    assert "\n" not in str(info.value)


def test_the_system_clock_is_the_default_and_reads_the_machine():
    study = th.Study.create(SPACE, storage="memory")
    assert isinstance(study.clock, SystemClock)
    before, mono = time.time(), time.monotonic()
    now, now_mono = study.clock.time(), study.clock.monotonic()
    assert before <= now <= time.time() and mono <= now_mono <= time.monotonic()


@pytest.mark.parametrize("clock", ["now", 12.0, th.ManualClock])
def test_a_clock_that_is_not_a_clock_is_refused(clock):
    with pytest.raises(th.ValidationError, match="clock=.*expected a thrifty Clock") as info:
        th.Study.create(SPACE, storage="memory", clock=clock)
    assert "\n" not in str(info.value)


def test_load_takes_a_clock_of_its_own(sqlite_url):
    th.Study.create(SPACE, name="s", storage=sqlite_url)
    clock = th.ManualClock()
    assert th.Study.load("s", storage=sqlite_url, clock=clock).clock is clock
    assert isinstance(th.Study.load("s", storage=sqlite_url).clock, SystemClock)
    assert th.Study.create(SPACE, name="s", storage=sqlite_url, load_if_exists=True, clock=clock).clock is clock


# -- metering -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORAGES)
def test_an_interval_is_charged_price_times_seconds_times_resources(kind, tmp_path):
    """Two of eight GPUs pay a quarter of the instance's hourly price, and accrue 2 GPU-seconds a
    second; the measured interval is exactly what the clock advanced."""
    share_per_h = th.Catalogue.builtin().instances[P4D].usd_per_hour * 2 / 8
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", storage=_storage(kind, tmp_path), pricing=P4D, resources={"gpu": 2},
                            clock=clock)
    t = study.ask()
    clock.advance(1800.0)
    t.report(0.5, step=1)
    [m] = t.snapshot().measurements
    assert m.elapsed_s == 1800.0 and m.timestamp == clock.time()
    assert m.cost_usd == pytest.approx(share_per_h / 2, rel=1e-12)
    assert m.gpu_s == 3600.0 and study.usage().gpu_hours == pytest.approx(1.0, rel=1e-12)
    clock.advance(900.0)
    done = study.tell(t, 0.6)
    assert [m.elapsed_s for m in done.measurements] == [1800.0, 900.0]
    assert done.cost_usd == pytest.approx(share_per_h * 0.75, rel=1e-12)
    assert done.gpu_s == 5400.0 and study.usage().gpu_hours == pytest.approx(1.5, rel=1e-12)
    assert study.cost_usd == pytest.approx(done.cost_usd, rel=1e-12)

    # CPU cores at a per-core rate: 4 cores at $0.50 a core-hour for an hour is $2.
    cores = th.Study.create(SPACE, "max", storage="memory", pricing={"usd_per_core_hour": 0.5},
                            resources={"cpu": 4}, clock=clock)
    t = cores.ask()
    clock.advance(3600.0)
    assert cores.tell(t, 0.1).cost_usd == pytest.approx(2.0, rel=1e-12)
    assert cores.usage().gpu_hours == 0.0


def test_optimize_meters_the_time_its_objective_advances():
    """In-process ``optimize`` with a manual clock: each report is charged the seconds the
    objective advanced since the previous one, and the tell the rest."""
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", storage="memory", pricing={"local": 36.0}, clock=clock)  # $0.01 a second

    def objective(trial):
        for step, seconds in enumerate((3.0, 5.0, 2.0), start=1):
            clock.advance(seconds)
            trial.report(trial.params["x"], step=step)
        clock.advance(4.0)
        return trial.params["x"]

    study.optimize(objective, n_trials=2, progress=False)
    for t in study.trials:
        assert [m.elapsed_s for m in t.measurements] == [3.0, 5.0, 2.0, 4.0]
        assert t.cost_usd == pytest.approx(0.14, rel=1e-12)
    assert study.cost_usd == pytest.approx(0.28, rel=1e-12)


@pytest.mark.parametrize("kind", STORAGES)
def test_an_interval_is_counted_once_after_a_given_one(kind, tmp_path):
    """``elapsed_s`` is "seconds since the previous report": after a report that gave its
    duration, the next measured interval starts at that report, not at the one before."""
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", storage=_storage(kind, tmp_path), pricing={"local": 36.0}, clock=clock)
    t = study.ask()
    clock.advance(30.0)
    t.report(0.1, step=1, elapsed_s=5.0)  # the objective says 5 s; the 30 s are not charged again
    clock.advance(7.0)
    t.report(0.2, step=2)
    clock.advance(3.0)
    done = study.tell(t, 0.3)
    assert [m.elapsed_s for m in done.measurements] == [5.0, 7.0, 3.0]
    assert done.elapsed_s == 15.0 and done.cost_usd == pytest.approx(0.15, rel=1e-12)

    # A refused tell records nothing; the interval is charged once, with the tell that follows.
    h = study.ask()
    clock.advance(4.0)
    with pytest.raises(th.ValidationError):
        study.tell(h, {"wrong_name": 1.0})
    clock.advance(1.0)
    failed = study.tell(h, state="failed", error="bad result")
    assert [m.elapsed_s for m in failed.measurements] == [5.0]
    assert failed.cost_usd == pytest.approx(0.05, rel=1e-12)
    assert study.cost_usd == pytest.approx(0.20, rel=1e-12)


# -- active wall time -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORAGES)
def test_a_wall_time_budget_counts_only_while_trials_run(kind, tmp_path):
    url = _storage(kind, tmp_path)
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", name="active", storage=url, budget=th.Budget(wall_s=10.0), clock=clock)
    t = study.ask()
    clock.advance(4.0)
    assert study.usage().wall_s == 4.0, "the running period counts as it goes"
    study.tell(t, 0.5)
    clock.advance(100.0)  # idle: nothing runs
    assert study.usage().wall_s == 4.0, "idle time is not charged"

    # Another Study object (as another process would), on the same clock.
    resumed = th.Study.load("active", storage=study.storage if kind == "memory" else url, clock=clock)
    assert resumed.usage().wall_s == 4.0
    a, b = resumed.ask(), resumed.ask()
    clock.advance(3.0)
    resumed.tell(a, 0.1)
    resumed.tell(b, 0.2)
    assert resumed.usage().wall_s == 7.0, "two trials running at once count their common time once"

    # 107 s have passed since the study began, 7 s were used: it goes on, until 10 s are used.
    c = resumed.ask()
    clock.advance(2.5)
    c.report(0.3, step=1)
    assert c.stop is None and resumed.budget_stop is None
    clock.advance(0.5)
    with pytest.raises(th.TrialStopped):
        c.report(0.4, step=2)  # the breaker trips at the report that reaches 10 s
    stopped = resumed.tell(c, state="stopped")
    assert stopped.state is th.TrialState.STOPPED
    assert (stopped.stop_kind, stopped.stop_limit) == (th.StopKind.BUDGET, "wall_s")
    assert resumed.budget_stop.limit == "wall_s" and resumed.budget_stop.at == clock.time()
    assert resumed.usage().wall_s == 10.0
    with pytest.raises(th.StudyExhausted) as info:
        resumed.ask()
    assert info.value.reason == "wall_s"


# -- heartbeats and the reaper --------------------------------------------------------------------
def test_the_reaper_fails_a_trial_whose_heartbeat_is_older_than_the_grace(sqlite_url):
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", name="reap", storage=sqlite_url, heartbeat_grace_s=60.0,
                            max_retries=1, clock=clock)
    dead = th.Study.load("reap", storage=sqlite_url, worker_id="dead", clock=clock)
    lost = dead.ask()
    assert lost.snapshot().heartbeat_at == clock.time(), "a start is a heartbeat, at the clock's time"
    clock.advance(50.0)
    lost.report(0.1, step=1)  # a report is a heartbeat too
    assert lost.snapshot().heartbeat_at == clock.time()
    dead.close()  # the worker is gone: no more heartbeats

    clock.advance(60.0)  # 110 s since the start, 60 s since the report: not older than the grace
    assert study.reap(force=True) == []
    clock.advance(0.5)
    assert study.reap(force=True) == [lost.number]
    failed = next(t for t in study.trials if t.number == lost.number)
    assert failed.state is th.TrialState.FAILED and "no heartbeat" in failed.error and failed.retried

    # The next ask runs the retry (the reaped trial's copy, enqueued with the same params).
    retry = study.ask()
    assert retry.retry_of == lost.number and dict(retry.params) == dict(lost.params)
    study.tell(retry, 0.2)


def test_ask_reaps_by_the_clock(sqlite_url):
    """``ask`` reaps at most every ``min(grace / 4, 5 s)`` of the study's clock: a trial whose
    worker died is failed and retried by the first ask that reaps after its grace."""
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", name="ask-reaps", storage=sqlite_url, heartbeat_grace_s=20.0,
                            max_retries=1, clock=clock)
    dead = th.Study.load("ask-reaps", storage=sqlite_url, worker_id="dead", clock=clock)
    lost = dead.ask()
    dead.close()
    clock.advance(19.0)
    first = study.ask()  # reaps (its first ask): the lost trial is 19 s silent, within the grace
    assert first.retry_of is None and first.number == lost.number + 1
    study.tell(first, 0.1)
    clock.advance(4.5)
    second = study.ask()  # 23.5 s silent, but the last reap was 4.5 s ago: none now
    assert second.retry_of is None and second.number == lost.number + 2
    study.tell(second, 0.2)
    clock.advance(0.5)
    retry = study.ask()  # 5 s since the last reap: it reaps, and the retry is started
    assert retry.retry_of == lost.number
    assert next(t for t in study.trials if t.number == lost.number).state is th.TrialState.FAILED


def test_the_heartbeat_thread_writes_the_clocks_time(sqlite_url):
    """The thread waits in real time between beats (every ``grace / 4``, here 50 ms) and writes
    the study's time: a live trial is not reaped, however far the clock moves."""
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", storage=sqlite_url, heartbeat_grace_s=0.2, clock=clock)
    t = study.ask()
    clock.advance(3600.0)
    deadline = time.monotonic() + 30.0
    while t.snapshot().heartbeat_at != clock.time():
        assert time.monotonic() < deadline, "the heartbeat thread never wrote the clock's time"
        time.sleep(0.01)
    assert study.reap(force=True) == []
    study.tell(t, 0.5)
    study.close()


def test_a_trial_asked_without_keep_alive_is_kept_by_its_caller_or_reaped(sqlite_url):
    """``ask(keep_alive=False)`` starts no heartbeat thread: the trial lives on the caller's
    heartbeats (``Study.heartbeat``) and is reaped once they stop, like a dead worker's."""
    clock = th.ManualClock()
    study = th.Study.create(SPACE, "max", name="remote", storage=sqlite_url, heartbeat_grace_s=0.2,
                            max_retries=1, clock=clock)
    remote = study.ask(keep_alive=False)
    assert not [t for t in threading.enumerate() if t.name == "thrifty-heartbeat-remote"]
    clock.advance(0.15)
    study.heartbeat([remote])
    clock.advance(0.15)  # 0.15 s since the caller's heartbeat: within the grace
    assert study.reap(force=True) == []
    time.sleep(0.2)  # no thread writes a heartbeat meanwhile, whatever the real time
    clock.advance(0.1)
    assert study.reap(force=True) == [remote.number]
    study.close()


# -- one clock, one process -----------------------------------------------------------------------
@pytest.mark.parametrize("run", [{"n_workers": 2}, {"trial_timeout_s": 5.0}])
def test_optimize_refuses_worker_processes_with_a_manual_clock(sqlite_url, run):
    study = th.Study.create(SPACE, "max", storage=sqlite_url, clock=th.ManualClock())
    with pytest.raises(th.ValidationError, match="worker processes read the system clock") as info:
        study.optimize(lambda trial: 0.5, n_trials=2, progress=False, **run)
    assert "\n" not in str(info.value)
    assert study.trials == [], "nothing started"
