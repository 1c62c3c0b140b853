"""Population-based training (PBT; Jaderberg et al. 2017).

A population of ``population_size`` trials trains side by side (the first ``population_size`` new
trials of the study, from its strategy; no other new trial starts). Every ``perturbation_interval``
steps a member checks its rank among the members running now, by their latest reported value:

* **exploit**: a member in the bottom ``quantile`` stops (STOPPED, reason "replaced by trial N")
  and a new trial takes its place: it copies the checkpoint of a member of the top ``quantile``
  (chosen with a generator seeded by the study seed, the trial and the step, so every worker
  chooses alike) and starts from that member's last step (``start_step``);
* **explore**: the new trial's params are the top member's, perturbed: each number is multiplied
  by 0.8 or 1.2 (``factors``; clipped to its range, rounded for integers), or, with probability
  ``resample_probability``, drawn afresh from its range; each categorical is drawn afresh with
  probability ``resample_probability`` and kept otherwise. Fixed and inactive parameters are kept.

Members save a checkpoint before reporting each multiple of ``perturbation_interval`` (see
``should_checkpoint``). Every trial records its ``parent`` and ``start_step``, so the lineage of
the winner, and with it the schedule of hyperparameters it was trained with, can be printed and
replayed (:func:`schedule`, ``Study.lineage``).

``budget_aware=True`` adds the rule of :mod:`thrifty.schedulers.budget_aware`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from thrifty.ranking import measured
from thrifty.schedulers.curves import curve, objective_of, value_at
from thrifty.schedulers.base import AskPlan, Decision, Scheduler, Successor
from thrifty.space import Categorical, Float, Int, Space
from thrifty.specs.schedulers import PBTSpec
from thrifty.trial import Trial, TrialState


class PBT(Scheduler):
    """Population-based training (see the module docstring)."""

    name = "pbt"
    plans_asks = True

    def __init__(
        self, population_size: int = 8, perturbation_interval: float = 4.0, max_resource: float = 81.0,
        quantile: float = 0.25, resample_probability: float = 0.25, factors: tuple[float, float] = (0.8, 1.2),
        metric: str | None = None, seed: int = 0, budget_aware: bool = False,
    ) -> None:
        self.spec = spec = PBTSpec(population_size, perturbation_interval, max_resource, quantile,
                                   resample_probability, factors, metric, seed, budget_aware)
        self.population_size = spec.population_size
        self.perturbation_interval = spec.perturbation_interval
        self.max_resource = spec.max_resource
        self.quantile = spec.quantile
        self.resample_probability = spec.resample_probability
        self.factors = spec.factors
        self.seed = spec.seed
        self.metric = spec.metric
        self.budget_aware = spec.budget_aware
        self.resource = "step"
        self.space: Space | None = None

    def bind(self, space: Space) -> None:
        self.space = space

    # -- the population --------------------------------------------------------------------------
    def _ranked(self, history: Sequence[Trial], metric: str, sign: float, step: float) -> list[int]:
        """The members, best first (ties by trial number), by their value at ``step`` (the last
        report at or before it). Members: running and completed trials; replaced (stopped),
        failed and pending ones are not. So a population trained one member at a time (one
        worker) is ranked against the members trained before, at the same step."""
        scored = []
        for t in history:
            if t.state is not TrialState.RUNNING and not measured(t):
                continue
            v = value_at(curve(t, metric, sign), step)
            if v is not None and math.isfinite(v):
                scored.append((-v, t.number))
        return [n for _, n in sorted(scored)]

    def _split(self, ranked: list[int]) -> tuple[list[int], list[int]]:
        k = max(1, int(math.floor(len(ranked) * self.quantile)))
        return ranked[:k], ranked[-k:]

    def _ready(self, trial: Trial, metric: str, sign: float) -> bool:
        """Whether the trial's latest report crossed a multiple of the perturbation interval."""
        pts = curve(trial, metric, sign)
        if not pts or pts[-1][0] >= self.max_resource:
            return False
        before = pts[-2][0] if len(pts) > 1 else (trial.start_step or 0.0)
        i = self.perturbation_interval
        return math.floor(pts[-1][0] / i + 1e-9) > math.floor(before / i + 1e-9)

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        metric, sign = objective_of(objectives, self.metric, "PBT")
        pts = curve(trial, metric, sign)
        if pts and not math.isfinite(pts[-1][1]):
            return Decision.STOP  # diverged: replaced like a bottom member (successor below)
        if not self._ready(trial, metric, sign):
            return Decision.CONTINUE
        ranked = self._ranked(history, metric, sign, pts[-1][0])
        if trial.number not in ranked or len(ranked) < 2:
            return Decision.CONTINUE
        top, bottom = self._split(ranked)
        if trial.number not in bottom or trial.number in top:
            return Decision.CONTINUE
        # Replaced only if there is a top member with a checkpoint to copy.
        return Decision.STOP if self._parents(trial, history, top) else Decision.CONTINUE

    def _parents(self, trial: Trial, history: Sequence[Trial], top: list[int]) -> list[Trial]:
        """The top members (other than ``trial``) that have saved a checkpoint, in rank order."""
        by_number = {t.number: t for t in history}
        return [by_number[n] for n in top if n != trial.number and self.checkpointed_step(by_number[n]) > 0]

    def successor(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Successor | None:
        metric, sign = objective_of(objectives, self.metric, "PBT")
        step = trial.last_step or 0.0
        ranked = self._ranked(history, metric, sign, step)
        top, _ = self._split(ranked)
        parents = self._parents(trial, history, top)
        if not parents:
            return None
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, trial.number, int(step * 1000) & 0xFFFFFFFF, 31])
        parent = parents[int(rng.integers(len(parents)))]
        return Successor(parent=parent.number, params=self.perturb(parent.params, rng),
                         start_step=self.checkpointed_step(parent))

    def checkpointed_step(self, trial: Trial) -> float:
        """The step of a member's latest checkpoint: the last multiple of the interval it reported
        (members checkpoint there, see :meth:`checkpoint_at`), or where it started."""
        start = float(trial.start_step or 0.0)
        steps = [m.step for m in trial.measurements if m.step is not None and self.checkpoint_at(m.step)]
        return max([start, *[float(x) for x in steps]])

    def perturb(self, params: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """Explore: perturb a member's params (see the module docstring)."""
        if self.space is None:
            raise RuntimeError("PBT.perturb: the scheduler is not bound to a space (the study binds it)")
        out = dict(params)
        for name, value in params.items():
            p = self.space[name]
            resample = rng.random() < self.resample_probability
            if isinstance(p, Categorical):
                if resample:
                    out[name] = p.choices[int(rng.integers(len(p.choices)))]
            elif isinstance(p, (Float, Int)):
                if resample:
                    out[name] = p.from_unit(float(rng.random()))
                else:
                    x = float(value) * self.factors[int(rng.integers(2))]
                    x = min(max(x, p.low), p.high)
                    out[name] = int(round(x)) if isinstance(p, Int) else x
        try:
            return dict(self.space.validate(out))
        except Exception:  # noqa: BLE001 - a perturbation that switches a condition is dropped
            return dict(params)

    def plan(self, history: Sequence[Trial], objectives: Mapping[str, str]) -> AskPlan:
        founders = sum(1 for t in history if t.parent is None and t.retry_of is None)
        if founders < self.population_size:
            return AskPlan()
        return AskPlan(new=False, why=f"the population of {self.population_size} is complete; new members "
                                       "come only from exploit steps")

    def checkpoint_at(self, step: float) -> bool:
        i = self.perturbation_interval
        return abs(step / i - round(step / i)) < 1e-9 and step < self.max_resource


def schedule(lineage: Sequence[Trial]) -> list[tuple[float, float | None, dict[str, Any]]]:
    """The hyperparameter schedule of the last trial of ``lineage`` (root first, as
    ``Study.lineage`` returns it): ``(from_step, to_step, params)`` segments; ``to_step`` of the
    last segment is its last reported step (``None`` if it reported nothing)."""
    out: list[tuple[float, float | None, dict[str, Any]]] = []
    for i, t in enumerate(lineage):
        start = float(t.start_step or 0.0)
        end = float(lineage[i + 1].start_step or 0.0) if i + 1 < len(lineage) else t.last_step
        out.append((start, end, dict(t.params)))
    return out
