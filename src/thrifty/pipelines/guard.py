"""What a pipeline trial may still cost at most: the bound that keeps a hard dollar budget whole.

A pipeline stage is charged when it ends (:mod:`thrifty.pipelines.run`), so the budget's circuit
breaker, which acts on charges, cannot stop a stage that is already running: without a bound, a
trial that starts its expensive stage with too few dollars left overspends by up to that stage's
cost. Two checks use the same bound, :class:`StageBounds`, so they never disagree:

- **admission** (:meth:`thrifty.study._cost.CostGate.admit_or_cheaper`): a proposal whose bound
  exceeds the dollars left is replaced by the completion of a cached prefix whose bound fits, or
  the study ends (:class:`~thrifty.errors.StudyExhausted`);
- **before each stage** (:class:`~thrifty.pipelines.run.PipelineObjective`): a stage does not start
  when the dollars left (re-read then: other trials spend meanwhile) cannot pay the bound of it and
  every stage after it; the trial ends STOPPED with a budget reason, having paid nothing for it.

**The bound** of a stage is the most it cost (its compute and the write of its output) in the
study's last :data:`RECENT` runs of it; of a read, the most the last :data:`RECENT` reads of that
stage's output cost. A stage never run yet has no bound (it counts 0: a first run is never refused
on a guess), so the guarantee holds once each stage has run. A stage's cost varies with its
parameters; the maximum over recent runs covers what the search has been trying, and is what the
last dollars must pay for before a stage starts, not a forecast of its mean.

**What it does not cover.** A stage that runs longer than any of its recent runs (a machine that
became busy, a parameter value far from those tried) still overspends by the difference, since
nothing is charged until it ends. On a 2-core machine at a load average of 12 (examples/pipeline.py,
wall time billed) one run in ten went 10% over its $0.30; with little else running, two memo runs ended
at $0.2999 and $0.30006 (before this guard: up to $0.3135). A stage whose cost must never run over should report while it runs (a stage that
takes ``trial`` may call ``trial.report`` or ``trial.charge``: the budget's breaker then stops the
trial at that call). The price of the bound is the other way: when the dollars left cannot pay
the most a stage has cost, the trial or the study ends with them unspent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.pipelines.stage import PipelineShape
from thrifty.storage.base import StageRun

#: How many of a stage's most recent runs (and reads) its bound covers.
RECENT = 20


@dataclass(frozen=True)
class StageBounds:
    """Per stage, the most a run of it (``run_usd``) and a read of its cached output
    (``read_usd``) cost in the study's recent records; ``None`` where none was recorded."""

    run_usd: tuple[float | None, ...]
    read_usd: tuple[float | None, ...]

    @classmethod
    def of(cls, runs: Iterable[StageRun], n_stages: int, recent: int = RECENT) -> StageBounds:
        """The bounds from a study's stage records (oldest first, as
        :meth:`~thrifty.storage.Storage.stage_runs` returns them)."""
        ran: list[list[float]] = [[] for _ in range(n_stages)]
        read: list[list[float]] = [[] for _ in range(n_stages)]
        for r in runs:
            if 0 <= r.stage < n_stages and r.outcome in ("run", "hit"):
                (ran if r.outcome == "run" else read)[r.stage].append(float(r.cost_usd))
        return cls(tuple(max(c[-recent:]) if c else None for c in ran),
                   tuple(max(c[-recent:]) if c else None for c in read))

    @property
    def known(self) -> bool:
        """Whether any stage has a bound."""
        return any(c is not None for c in self.run_usd)

    def from_stage(self, start: int) -> float:
        """The bound of running stages ``start..`` to the end (unknown stages count 0)."""
        return float(sum(c for c in self.run_usd[start:] if c is not None))

    def of_params(self, shape: PipelineShape, params: Mapping[str, Any], cached: Collection[str]) -> float:
        """The bound of a trial with ``params`` when the cache holds the keys ``cached``: reading
        its deepest cached prefix (as the run would) and running every stage after it."""
        for i in reversed(range(len(shape.stages) - 1)):
            if shape.stages[i].cache and shape.key(i, params) in cached:
                return (self.read_usd[i] or 0.0) + self.from_stage(i + 1)
        return self.from_stage(0)
