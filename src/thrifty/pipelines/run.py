"""Running a pipeline for one trial: the deepest cached prefix is read, the rest is computed.

:class:`PipelineObjective` is the objective of a pipeline study (``Study.optimize`` builds it when
it is given no objective). For a trial with parameters ``p`` it:

1. charges the trial's set-up (the interval since it started) on its own;
2. looks for the deepest cacheable stage ``i`` (not the last) whose prefix output is in the cache
   (:class:`~thrifty.pipelines.cache.DiskCache`, key :meth:`~thrifty.pipelines.Pipeline.key`),
   reads it, and charges the read: stage ``i`` is a *hit*, stages ``0..i-1`` are *skipped*;
3. runs the remaining stages in order, each charged as it ends (its compute, then the write of its
   output to the cache when it is cacheable: a *miss*), each write indexed in the study's storage
   and followed by eviction down to the cache's size limit;
4. under a hard dollar budget, before each stage it computes: refuses to start it when the
   dollars left cannot pay what it and the stages after it cost at most in the study's recent
   runs (:mod:`thrifty.pipelines.guard`): the trial ends STOPPED with a budget reason, so a
   stage charged only when it ends cannot take the study past its budget;
5. returns the last stage's output (the metrics); a stage after which the trial was told to stop
   (``trial.should_stop()`` in a stage that takes the trial; a command stage whose program was
   stopped) ends it there, its output not cached.

**Command stages** (:mod:`thrifty.pipelines.command`) output a folder: it is cached as a folder
entry (:meth:`~thrifty.pipelines.cache.DiskCache.storing_dir`, the output folder moved into the
cache) and the next stage gets the entry's path, while this trial holds the entry's shared lock
(so no eviction removes it) until that next stage has run. A hit on a command stage's prefix holds
its lock the same way. A trial whose last stage runs a command checks, before any stage runs, that
the study's objectives are among that stage's metrics.

**Cost per stage.** Each charge is a cost-only measurement (:meth:`~thrifty.handle.TrialHandle.charge`):
the study's pricing for the interval's seconds plus whatever the stage reported, so a trial that
reuses a prefix pays for the stages it ran and the read, nothing for the stages it skipped. Each
stage's outcome and cost are stored as :class:`~thrifty.storage.base.StageRun` records
(:meth:`~thrifty.storage.Storage.stage_runs`; ``thrifty report`` sums them: hits, misses, dollars
saved); a hit saves what computing the prefix had cost (the entry's ``run_cost_usd``) minus the read.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from thrifty.cost.budget import Budget
from thrifty.errors import TrialStopped
from thrifty.handle import TrialHandle
from thrifty.pipelines.cache import DiskCache, Loaded
from thrifty.pipelines.command import STOPPED
from thrifty.pipelines.guard import StageBounds
from thrifty.pipelines.stage import Pipeline
from thrifty.storage.base import CacheEntry, StageRun, Storage
from thrifty.trial import StopKind, StopReason, Trial, TrialState

log = logging.getLogger("thrifty")


class PipelineObjective:
    """The objective that runs ``pipeline`` for a trial (see the module docstring). It holds no
    connection and no open file, so it crosses a fork to worker processes; everything it reads
    comes from the trial's study (its storage, its artifact root, its clock)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._cleaned: set[str] = set()

    def cache_for(self, artifact_root: str) -> DiskCache:
        """The cache of a study whose artifact root is ``artifact_root``."""
        shape = self.pipeline.shape
        return DiskCache(shape.cache_root(artifact_root), shape.cache_max_bytes)

    def __call__(self, trial: TrialHandle) -> Any:
        study = trial.study
        cache = self.cache_for(study.artifact_root)
        if str(cache.root) not in self._cleaned:  # once per process: writers that died left temporaries
            cache.clean_temporaries()
            self._cleaned.add(str(cache.root))
        run = _TrialRun(self.pipeline, trial, study.storage, study.id, cache, study.clock.time)
        try:
            return run.go()
        finally:
            run.record()


class _TrialRun:
    """One trial's pass through the pipeline: the charges and stage records it makes."""

    def __init__(self, pipeline: Pipeline, trial: TrialHandle, storage: Storage, study_id: int, cache: DiskCache,
                 now: Callable[[], float]) -> None:
        self.pipeline, self.trial, self.storage, self.study_id, self.cache = pipeline, trial, storage, study_id, cache
        self.now = now
        self.params = dict(trial.params)
        self.runs: list[StageRun] = []
        self._mark = (trial.elapsed_s, trial.cost_usd)
        self._bounds: StageBounds | None = None  #: read at the first check of a hard dollar budget

    def _charged(self, finished: bool = False) -> tuple[float, float]:
        """Charge the interval since the trial's last report; (seconds, dollars) charged since
        the previous call, the reports a stage made itself included. ``finished``: the last
        stage has returned its metrics, so a charge that brings a hard budget to its limit
        still lets the trial complete with them (they are paid for); otherwise that charge
        raises :class:`~thrifty.errors.TrialStopped`."""
        try:
            self.trial.charge()
        except TrialStopped:
            if not finished:
                raise
        s, usd = self.trial.elapsed_s - self._mark[0], self.trial.cost_usd - self._mark[1]
        self._mark = (self.trial.elapsed_s, self.trial.cost_usd)
        return max(s, 0.0), max(usd, 0.0)

    def go(self) -> Any:
        with contextlib.ExitStack() as held:  # the shared lock of the cached folder the next stage reads
            return self._go(held)

    def _go(self, held: contextlib.ExitStack) -> Any:
        p, trial = self.pipeline, self.trial
        n = len(p.stages)
        last_runner = p.stages[-1].runner
        if last_runner is not None:  # before any stage runs (and is paid for)
            study = trial.study
            last_runner.check_objectives(study.objectives, [study.utility.name] if study.utility is not None else [])
        self._charged()  # the set-up since the trial started: no stage's
        start, data = 0, None
        run_s, run_usd = 0.0, 0.0  # what computing the prefix so far from nothing costs
        hit = self._deepest_hit(held)
        if hit is not None:
            i, loaded, read_s, read_usd = hit
            start, data = i + 1, loaded.value
            run_s = float(loaded.header.get("run_s", 0.0))
            run_usd = float(loaded.header.get("run_cost_usd", 0.0))
            for j in range(i):
                self.runs.append(StageRun(trial.id, j, p.stages[j].name, "skipped", False, 0.0, 0.0))
            self.runs.append(StageRun(trial.id, i, p.stages[i].name, "hit", False, read_s, read_usd,
                                      saved_s=max(run_s - read_s, 0.0), saved_usd=max(run_usd - read_usd, 0.0)))
        for i in range(start, n):
            stage = p.stages[i]
            own = {k: self.params[k] for k in p.stage_params[i] if k in self.params}
            self._guard(i)
            last = i == n - 1
            if stage.runner is not None:
                folder_in = i > 0 and p.stages[i - 1].runner is not None
                data = stage.runner.run(trial, i, own, data, data_is_folder=folder_in, last=last)
            else:
                data = stage.call(own, data, trial)
            held.close()  # the stage has read its input
            compute_s, compute_usd = self._charged(finished=last and data is not STOPPED)
            run_s, run_usd = run_s + compute_s, run_usd + compute_usd
            cacheable = stage.cache and not last
            if data is STOPPED or (trial.stop is not None and not last):  # its output may be partial
                self.runs.append(StageRun(trial.id, i, stage.name, "run", cacheable, compute_s, compute_usd))
                return None
            write_s = write_usd = 0.0
            if cacheable and stage.runner is not None:
                data, write_s, write_usd = self._store_dir(i, data, run_s, run_usd, held)
            elif cacheable:
                write_s, write_usd = self._store(i, data, run_s, run_usd)
            self.runs.append(StageRun(trial.id, i, stage.name, "run", cacheable, compute_s + write_s,
                                      compute_usd + write_usd))
        return data

    def _guard(self, stage: int) -> None:
        """Refuse to start ``stage`` when a hard dollar budget's dollars left (read now) cannot
        pay the bound of it and every stage after it (:class:`~thrifty.pipelines.guard.StageBounds`):
        the trial is told why and ends STOPPED (:class:`~thrifty.errors.TrialStopped`)."""
        record = self.storage.study_status(self.study_id)
        budget = Budget.from_dict(record.budget)
        if budget.usd is None or not budget.hard:
            return
        if self._bounds is None:
            self._bounds = StageBounds.of(self.storage.stage_runs(self.study_id), len(self.pipeline.stages))
        need, left = self._bounds.from_stage(stage), budget.usd - record.spent_usd
        if need <= left * (1 + 1e-9) and left > 0:
            return
        name = self.pipeline.stages[stage].name
        text = (f"budget: stage {name!r} and the stages after it cost up to ${need:,.4f} in recent runs, more than "
                f"the ${max(left, 0.0):,.4f} left of the ${budget.usd:,.2f} budget; not started")
        self.trial.stop = StopReason(StopKind.BUDGET, text, limit="usd")
        raise TrialStopped(f"trial {self.trial.number} must stop: {text}", text)

    def _deepest_hit(self, held: contextlib.ExitStack) -> tuple[int, Loaded, float, float] | None:
        """Read the deepest cached prefix: (its stage, the entry, the read's seconds and dollars).
        A folder entry (a command stage's) stays locked until ``held`` closes."""
        p = self.pipeline
        for i in reversed(range(len(p.stages) - 1)):
            if not p.stages[i].cache:
                continue
            key = p.key(i, self.params)
            if not self.cache.has(key):
                continue
            if p.stages[i].runner is not None:
                loaded = held.enter_context(self.cache.reading_dir(key))
            else:
                loaded = self.cache.load(key)
            if loaded is None:  # damaged or evicted meanwhile: a shallower prefix may still be there
                self.storage.cache_forget([key])
                continue
            read_s, read_usd = self._charged()
            self._index(i, key, loaded, read_s, read_usd)
            return i, loaded, read_s, read_usd
        return None

    def _index(self, stage: int, key: str, loaded: Loaded, read_s: float, read_usd: float) -> None:
        """Record the read in the index; an entry on disk the index lacks (its writer died before
        indexing it, or another study wrote it) is indexed from its header first."""
        if self.storage.cache_read(self.study_id, key, read_s, read_usd):
            return
        h = loaded.header
        self.storage.cache_put(self.study_id, CacheEntry(
            key=key, stage=stage, params=self.pipeline.shape.prefix_params(stage, self.params),
            size_bytes=loaded.size_bytes, run_s=float(h.get("run_s", 0.0)),
            run_cost_usd=float(h.get("run_cost_usd", 0.0)), read_s=read_s, read_cost_usd=read_usd,
            created_at=self.now(), hits=1))

    def _store(self, stage: int, data: Any, run_s: float, run_usd: float) -> tuple[float, float]:
        """Write stage ``stage``'s output, index it, evict down to the size limit; (the write's
        seconds, its dollars). A write that fails is logged and the trial goes on uncached."""
        key = self.pipeline.key(stage, self.params)
        prefix = self.pipeline.shape.prefix_params(stage, self.params)
        try:
            size = self.cache.write(key, data, {"stage": stage, "params": prefix, "run_s": run_s,
                                                "run_cost_usd": run_usd})
        except Exception as exc:  # noqa: BLE001 - an unpicklable output or a full disk: run uncached
            log.warning("pipeline stage %r: output not cached: %s", self.pipeline.stages[stage].name, exc)
            return self._charged()
        return self._indexed(stage, key, prefix, size, run_s, run_usd)

    def _store_dir(self, stage: int, output: Any, run_s: float, run_usd: float,
                   held: contextlib.ExitStack) -> tuple[Any, float, float]:
        """Move command stage ``stage``'s output folder into the cache (its lock held until
        ``held`` closes), index it, evict; (the folder the next stage reads: the entry's, the
        write's seconds, its dollars). A write that fails is logged and the trial goes on with the
        folder where it is, uncached."""
        key = self.pipeline.key(stage, self.params)
        prefix = self.pipeline.shape.prefix_params(stage, self.params)
        try:
            stored = held.enter_context(self.cache.storing_dir(key, output, {
                "stage": stage, "params": prefix, "run_s": run_s, "run_cost_usd": run_usd}))
        except Exception as exc:  # noqa: BLE001 - e.g. a socket in the folder or a full disk: run uncached
            log.warning("pipeline stage %r: output not cached: %s", self.pipeline.stages[stage].name, exc)
            return (output, *self._charged())
        return (stored.value, *self._indexed(stage, key, prefix, stored.size_bytes, run_s, run_usd))

    def _indexed(self, stage: int, key: str, prefix: dict[str, Any], size: int, run_s: float,
                 run_usd: float) -> tuple[float, float]:
        """Charge the write just made, index its entry, evict down to the size limit; (the
        write's seconds, its dollars)."""
        write_s, write_usd = self._charged()
        self.storage.cache_put(self.study_id, CacheEntry(
            key=key, stage=stage, params=prefix, size_bytes=size, run_s=run_s, run_cost_usd=run_usd,
            read_s=write_s, read_cost_usd=write_usd, created_at=self.now()))
        evicted = self.cache.evict(keep={key})
        if evicted:
            self.storage.cache_forget(evicted)
        return write_s, write_usd

    def record(self) -> None:
        """Store the stage records made so far (also after a failure or a stop)."""
        if not self.runs:
            return
        try:
            self.storage.record_stage_runs(self.study_id, self.runs)
        except Exception as exc:  # noqa: BLE001 - accounting never fails a trial
            log.warning("trial %d: stage records not stored: %s", self.trial.number, exc)


def stage_run_usd(runs: Iterable[StageRun], trials: Sequence[Trial], n_stages: int) -> dict[int, tuple[float | None, ...]]:
    """Per trial number (of ``trials``), the dollars each of the ``n_stages`` stages cost when it
    ran (its compute and the write of its output); ``None`` for a stage read from the cache,
    skipped, or never reached, and for the last stage a STOPPED trial ran (cut short: its dollars
    say nothing about a whole run). Trials without a stage record are left out; so are records of
    trials not in ``trials``."""
    by_id = {t.id: t for t in trials if t.id is not None}
    out: dict[int, list[float | None]] = {}
    for r in runs:
        t = by_id.get(r.trial_id)
        if t is None or not 0 <= r.stage < n_stages:
            continue
        row = out.setdefault(t.number, [None] * n_stages)
        if r.outcome == "run":
            row[r.stage] = float(r.cost_usd)
    for t in by_id.values():
        row = out.get(t.number)
        if row is not None and t.state is TrialState.STOPPED:
            ran = [s for s, c in enumerate(row) if c is not None]
            if ran:
                row[ran[-1]] = None
    return {n: tuple(row) for n, row in out.items()}
