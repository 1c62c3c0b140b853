"""Pipeline studies end to end: a trial that reuses a cached prefix pays only for what it ran, the
strategy sees the cached prefixes, the index survives on SQLite and PostgreSQL, and a study killed
mid-trial resumes with its cache intact and its index consistent with the disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HELPERS

import thrifty as th
from thrifty.analysis.report import cost_report
from thrifty.clock import ManualClock
from thrifty.pipelines import DiskCache
from thrifty.strategies.base import Context, Strategy

sys.path.insert(0, HELPERS)

from pipeline_worker import PARAMS, pipeline

#: $3.60 an hour: a cent every ten seconds.
PRICING = {"local": 3.6}


def _clocked_pipeline(clock: ManualClock, cache: Path, ran: list[str]) -> th.Pipeline:
    """prep takes 10 s, train 20 s, eval 1 s (on the study's manual clock)."""
    def prep(p, data):
        ran.append("prep")
        clock.advance(10)
        return {"n": p["n"]}

    def train(p, data, trial):
        ran.append("train")
        clock.advance(20)
        trial.report({"loss": 1.0}, step=1)  # a stage may report like any objective
        return data["n"] * p["lr"]

    def evaluate(p, data):
        ran.append("eval")
        clock.advance(1)
        return {"f1": data * p["t"]}

    return th.Pipeline([th.Stage("prep", prep, space={"n": th.Int(8, 64)}),
                        th.Stage("train", train, space={"lr": th.Float(1e-4, 1e-1, log=True)}),
                        th.Stage("eval", evaluate, space={"t": th.Float(0.1, 0.9)})], cache_dir=str(cache))


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_a_trial_reusing_a_prefix_pays_only_for_the_stages_it_ran(tmp_path: Path, storage: str) -> None:
    url = "memory" if storage == "memory" else f"sqlite:///{tmp_path / 'p.db'}"
    clock, ran = ManualClock(start_s=1_000.0), []
    study = th.Study.create(pipeline=_clocked_pipeline(clock, tmp_path / "cache", ran), objective={"f1": "max"},
                            storage=url, strategy="random", scheduler=None, pricing=PRICING, clock=clock)
    for p in ({"n": 10, "lr": 0.01, "t": 0.5}, {"n": 10, "lr": 0.02, "t": 0.5}, {"n": 10, "lr": 0.02, "t": 0.7}):
        study.enqueue(p)
    study.optimize(n_trials=3, progress=False)
    trials = study.trials
    assert [t.state for t in trials] == [th.TrialState.COMPLETED] * 3
    # Stored costs: everything; prep read from the cache; prep and train read from the cache.
    assert [round(t.cost_usd, 9) for t in trials] == [0.031, 0.021, 0.001]
    assert [t.elapsed_s for t in trials] == [31.0, 21.0, 1.0]
    assert ran == ["prep", "train", "eval", "train", "eval", "eval"]
    assert round(study.cost_usd, 9) == 0.053
    runs = [(r.trial_id, r.name, r.outcome, r.miss, round(r.cost_usd, 9), round(r.saved_usd, 9))
            for r in study.storage.stage_runs(study.id)]
    ids = [t.id for t in trials]
    assert runs == [
        (ids[0], "prep", "run", True, 0.01, 0.0), (ids[0], "train", "run", True, 0.02, 0.0),
        (ids[0], "eval", "run", False, 0.001, 0.0),
        (ids[1], "prep", "hit", False, 0.0, 0.01), (ids[1], "train", "run", True, 0.02, 0.0),
        (ids[1], "eval", "run", False, 0.001, 0.0),
        (ids[2], "prep", "skipped", False, 0.0, 0.0), (ids[2], "train", "hit", False, 0.0, 0.03),
        (ids[2], "eval", "run", False, 0.001, 0.0),
    ]
    memo = cost_report(study).memo_cache
    assert memo is not None and (memo.hits, memo.misses, round(memo.saved_usd, 9)) == (2, 3, 0.04)
    assert cost_report(study).spent_usd == pytest.approx(0.053)
    study.close()


class Recorder(Strategy):
    """A model-based strategy (``slow``) that proposes the enqueued-like params it is given and
    keeps the contexts the study binds."""

    name = "recorder"
    needs_history = True
    slow = True

    def __init__(self, params: list[dict]) -> None:
        self.todo = list(params)
        self.contexts: list[Context] = []

    def bind(self, context: Context) -> None:
        super().bind(context)
        self.contexts.append(context)

    def propose(self, space, history, *, seed, number, n=1):
        return [dict(self.todo[min(number, len(self.todo) - 1)])]


def test_the_strategy_sees_the_stage_boundaries_and_only_cached_prefixes_on_disk(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study = th.Study.create(pipeline=pipeline(str(cache)), objective={"f1": "max"}, storage="memory",
                            scheduler=None)
    rec = Recorder(PARAMS)
    study.strategy = rec
    study.optimize(n_trials=2, progress=False)
    assert rec.contexts[-1].stage_params == (("n",), ("lr",), ("t",))
    seen = {(c.stage, tuple(sorted(c.params.items()))) for c in rec.contexts[-1].cached_prefixes}
    assert seen == {(0, (("n", 2),)), (1, (("lr", 0.5), ("n", 2)))}, "after trial 0, before trial 1"
    entries = study.storage.cache_entries(study.id)
    assert {e.key for e in entries} == {k for k, _, _ in DiskCache(cache).entries()}
    gone = next(e for e in entries if e.stage == 1)
    os.unlink(DiskCache(cache).path(gone.key))  # evicted by another process, index not yet told
    study.optimize(n_trials=1, progress=False)
    listed = rec.contexts[-1].cached_prefixes
    assert gone.key not in {c.key for c in listed} and listed, "an entry no longer on disk is never listed"
    assert all(c.run_cost_usd >= 0 and c.read_cost_usd >= 0 for c in listed)
    # What each stage cost when it ran, per trial: trial 0 ran every stage; trial 1 read stages 0-1.
    runs = rec.contexts[-1].stage_run_usd
    assert set(runs) == {0, 1}
    assert None not in runs[0] and len(runs[0]) == 3
    assert runs[1][:2] == (None, None) and runs[1][2] is not None
    study.close()


def test_a_loaded_pipeline_study_needs_its_pipeline_to_optimize(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    pipe = pipeline(str(tmp_path / "cache"))
    th.Study.create(pipeline=pipe, objective={"f1": "max"}, name="p", storage=url).close()
    loaded = th.Study.load("p", storage=url)
    with pytest.raises(th.ValidationError, match="runs a pipeline, and code is not stored"):
        loaded.optimize(n_trials=1)
    other = th.Pipeline([th.Stage("prep", lambda p, d: d, space={"m": th.Int(1, 2)})])
    with pytest.raises(th.ValidationError, match="not the study's"):
        th.Study.load("p", storage=url, pipeline=other)
    assert th.Study.load("p", storage=url, pipeline=pipe).pipeline is pipe


def test_the_index_survives_on_sqlite_and_postgresql(db_url: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study = th.Study.create(pipeline=pipeline(str(cache)), objective={"f1": "max"}, name="p", storage=db_url,
                            strategy="random", scheduler=None)
    for p in PARAMS[:2]:
        study.enqueue(p)
    study.optimize(n_trials=2, progress=False)
    study.close()
    again = th.Study.load("p", storage=db_url, pipeline=pipeline(str(cache)))
    entries = again.storage.cache_entries(again.id)
    assert [(e.stage, dict(e.params)) for e in entries] == [(0, {"n": 2}), (1, {"n": 2, "lr": 0.5})]
    assert [e.hits for e in entries] == [0, 1], "trial 1 read trial 0's train output"
    assert {e.key for e in entries} == {k for k, _, _ in DiskCache(cache).entries()}
    again.enqueue(PARAMS[2])
    again.optimize(n_trials=1, progress=False)
    outcomes = [(r.name, r.outcome) for r in again.storage.stage_runs(again.id)]
    assert outcomes[-3:] == [("prep", "hit"), ("train", "run"), ("eval", "run")]
    again.close()


def test_a_killed_pipeline_study_resumes_with_its_cache_intact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    cache = tmp_path / "cache"
    worker = os.path.join(HELPERS, "pipeline_worker.py")
    proc = subprocess.Popen([sys.executable, worker, "study", url, str(cache), "2"])
    hanging = tmp_path / "hanging"
    deadline = time.time() + 30
    while not hanging.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert hanging.exists(), "trial 2 never reached its train stage"
    os.kill(proc.pid, signal.SIGKILL)  # mid-trial, mid-stage
    proc.wait()
    killed = th.Study.load("p", storage=url)
    index_keys = {e.key for e in killed.storage.cache_entries(killed.id)}
    disk = DiskCache(cache)
    assert index_keys == {k for k, _, _ in disk.entries()} and len(index_keys) == 2
    assert all(disk.load(k) is not None for k in index_keys), "every entry is whole"
    time.sleep(2.2)  # the dead worker's heartbeat grace
    th.Study.load("p", storage=url).reap(force=True)
    done = subprocess.run([sys.executable, worker, "study", url, str(cache), "-1"], timeout=60, check=False)
    assert done.returncode == 0
    study = th.Study.load("p", storage=url)
    states = [t.state for t in study.trials[:6]]
    assert states[2] is th.TrialState.FAILED and states.count(th.TrialState.COMPLETED) == 5
    assert {e.key for e in study.storage.cache_entries(study.id)} == {k for k, _, _ in disk.entries()}
    outcomes = {(r.trial_id, r.name): r.outcome for r in study.storage.stage_runs(study.id)}
    trial3 = study.trials[3]
    assert outcomes[(trial3.id, "prep")] == "hit", "the resumed run reads what the killed one cached"
    study.close()


def test_worker_processes_share_one_cache_and_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    cache = tmp_path / "cache"
    study = th.Study.create(pipeline=pipeline(str(cache)), objective={"f1": "max"}, name="p", storage=url,
                            strategy="random", scheduler=None)
    for p in PARAMS:
        study.enqueue(p)
    study.optimize(n_trials=len(PARAMS), n_workers=2, progress=False)
    assert [t.state for t in study.trials] == [th.TrialState.COMPLETED] * len(PARAMS)
    entries = study.storage.cache_entries(study.id)
    assert {e.key for e in entries} == {k for k, _, _ in DiskCache(cache).entries()}
    # Two prep outputs and three train outputs, whichever worker computed them (twice, when racing).
    assert sorted(e.stage for e in entries) == [0, 0, 1, 1, 1]
    runs = study.storage.stage_runs(study.id)
    assert len(runs) == 3 * len(PARAMS) and sum(r.outcome == "hit" for r in runs) >= 2
    study.close()


def test_a_stage_cut_short_by_a_requested_stop_is_not_cached(tmp_path: Path) -> None:
    """A stop asked from outside (``Study.stop_trial``) while a stage runs: the stage's output is
    never cached (the charge that ends the stage finds the request), and the trial is STOPPED."""
    def prep(p, data, trial):
        trial.report({"f1": 0.0}, step=1)
        trial.study.stop_trial(trial.number)  # as another process (or `thrifty stop`) would
        return "partial" if trial.should_stop() else "whole"

    def train(p, data):
        return {"f1": 1.0}

    cache = tmp_path / "cache"
    pipe = th.Pipeline([th.Stage("prep", prep, space={"n": th.Int(1, 3)}),
                        th.Stage("train", train, space={"lr": th.Float(0.1, 1.0)})], cache_dir=str(cache))
    study = th.Study.create(pipeline=pipe, objective={"f1": "max"}, storage="memory", scheduler=None)
    study.optimize(n_trials=1, progress=False)
    (t,) = study.trials
    assert t.state is th.TrialState.STOPPED
    assert DiskCache(cache).entries() == [] and study.storage.cache_entries(study.id) == []
    study.close()
