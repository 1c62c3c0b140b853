"""Asynchronous Hyperband: several ASHA brackets with different first rungs.

Bracket ``s`` (``s = 0 .. s_max``, ``s_max = floor(log_eta(max_resource / min_resource))``) starts
its rungs at ``min_resource * eta**s``: bracket 0 is the most aggressive, bracket ``s_max`` runs
every trial to the end. Trial ``k`` joins a bracket drawn from a seeded generator with the
probabilities Hyperband's budget allocation gives each bracket (``n_s`` proportional to
``eta**s / (s+1)`` counted from the most aggressive end), so every worker puts it in the same
bracket. Within its bracket a trial is judged as in ASHA, against the trials of that bracket only.

**Synchronous variant** (``synchronous=True``; Li et al., JMLR 2018): brackets are run in turn,
from the most aggressive (``s_max``) to the one that trains everything fully, then again. Bracket
``s`` takes the next ``n_s = ceil((s_max + 1) / (s + 1) * eta**s)`` new trials (in trial-number
order; a retry belongs where the trial it retries did) and starts them at
``max_resource * eta**-s``. Every trial PAUSES at each rung of its bracket (with a checkpoint: see
``should_checkpoint``). When all the trials promoted into a rung have reached it (or ended without
reaching it, counting as the worst), the best ``floor(n_rung / eta)`` are resumed from their
checkpoints, before any new trial starts; the others stay PAUSED for good. While a rung waits for
running trials, free workers start the next bracket's trials, so workers never idle.

``budget_aware=True`` adds the rule of :mod:`thrifty.schedulers.budget_aware`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from thrifty.schedulers.curves import curve, first_at_or_after, objective_of
from thrifty.schedulers._index import Indexed
from thrifty.schedulers.asha import at_rung, rung_decision, rung_values, rungs
from thrifty.schedulers.base import AskPlan, Decision, Scheduler
from thrifty.specs.schedulers import HyperbandSpec
from thrifty.trial import Trial, TrialState


class Hyperband(Indexed, Scheduler):
    """Asynchronous Hyperband (see the module docstring)."""

    name = "hyperband"

    def __init__(
        self, min_resource: float = 1.0, max_resource: float = 81.0, reduction_factor: float = 3.0, seed: int = 0,
        metric: str | None = None, resource: str = "step", synchronous: bool = False, budget_aware: bool = False,
    ) -> None:
        self.spec = spec = HyperbandSpec(min_resource, max_resource, reduction_factor, seed, metric, resource,
                                         synchronous, budget_aware)
        self.min_resource, self.max_resource = spec.min_resource, spec.max_resource
        self.reduction_factor = spec.reduction_factor
        self.seed = spec.seed
        self.metric = spec.metric
        self.resource = spec.resource
        eta = self.reduction_factor
        self.s_max = int(math.floor(math.log(self.max_resource / self.min_resource, eta) + 1e-9))
        # Hyperband's n_i for the bracket with i = s_max - s eliminations: ceil((s_max+1)/(i+1) * eta^i).
        sizes = np.array([math.ceil((self.s_max + 1) / (i + 1) * eta**i) for i in range(self.s_max, -1, -1)], float)
        self._weights = sizes / sizes.sum()
        self._brackets: dict[int, int] = {}  # trial number -> bracket (a pure function of seed, number)
        self.synchronous = spec.synchronous
        self.budget_aware = spec.budget_aware
        # Synchronous brackets, most aggressive first: (s, size, first rung).
        self._sync = [(s, math.ceil((self.s_max + 1) / (s + 1) * eta**s), self.max_resource * eta**-s)
                      for s in range(self.s_max, -1, -1)]
        self._cycle = sum(n for _, n, _ in self._sync)

    @property
    def plans_asks(self) -> bool:  # type: ignore[override]
        return self.synchronous

    # -- synchronous variant ----------------------------------------------------------------------
    def sync_brackets(self, history: Sequence[Trial]) -> dict[tuple[int, int], list[int]]:
        """(iteration, s) -> the trial numbers in that bracket, in order (see the module doc)."""
        slot: dict[int, tuple[int, int]] = {}
        out: dict[tuple[int, int], list[int]] = {}
        position = 0
        for t in sorted(history, key=lambda t: t.number):
            if t.retry_of is not None and t.retry_of in slot:
                key = slot[t.retry_of]
            else:
                iteration, offset = divmod(position, self._cycle)
                position += 1
                for s, n, _ in self._sync:
                    if offset < n:
                        key = (iteration, s)
                        break
                    offset -= n
            slot[t.number] = key
            out.setdefault(key, []).append(t.number)
        return out

    def sync_levels(self, s: int) -> list[float]:
        """Rung levels of bracket ``s`` below ``max_resource``."""
        return rungs(self.max_resource * self.reduction_factor**-s, self.max_resource, self.reduction_factor)

    def _sync_promotions(self, history: Sequence[Trial], metric: str, sign: float) -> list[int]:
        by_number = {t.number: t for t in history}
        out: list[int] = []
        for (_, s), members in sorted(self.sync_brackets(history).items()):
            levels = self.sync_levels(s)
            current = [n for n in members if by_number[n].state is not TrialState.PENDING]
            if len(members) < dict((b, n) for b, n, _ in self._sync)[s]:
                continue  # the bracket still takes new trials: its first rung cannot be complete
            for level in levels:
                values = rung_values([by_number[n] for n in current], metric, sign, "step", level)
                waiting = [n for n in current if n not in values and not by_number[n].is_finished]
                if waiting:
                    break  # this rung is not complete: nothing above it can be either
                ranked = sorted(current, key=lambda n: -values.get(n, -math.inf))
                current = [n for n in ranked[:int(len(current) // self.reduction_factor)]
                           if math.isfinite(values.get(n, -math.inf))]
                for n in current:
                    t = by_number[n]
                    pts = curve(t, metric, sign, "step")
                    if t.state is TrialState.PAUSED and pts and first_at_or_after(pts, level) is not None \
                            and pts[-1][0] < level * self.reduction_factor * (1 - 1e-9):
                        out.append(n)
        return out

    def plan(self, history: Sequence[Trial], objectives: Mapping[str, str]) -> AskPlan:
        if not self.synchronous:
            return AskPlan()
        metric, sign = objective_of(objectives, self.metric, "Hyperband")
        return AskPlan(resume=tuple(self._sync_promotions(history, metric, sign)))

    def checkpoint_at(self, step: float) -> bool:
        if not self.synchronous:
            return False
        return any(at_rung(step, self.sync_levels(s)) for s, _, _ in self._sync)

    def bracket_of(self, number: int) -> int:
        """The bracket of trial ``number`` (0 = most aggressive). Decided once per trial number
        and remembered: every report of every trial asks for the brackets of the whole history."""
        b = self._brackets.get(number)
        if b is None:
            rng = np.random.default_rng([self.seed & 0xFFFFFFFF, int(number), 7919])
            b = self._brackets[number] = int(rng.choice(len(self._weights), p=self._weights))
        return b

    def bracket_rungs(self, bracket: int) -> list[float]:
        first = self.min_resource * self.reduction_factor**bracket
        return rungs(first, self.max_resource, self.reduction_factor)

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        metric, sign = objective_of(objectives, self.metric, "Hyperband")
        if self.synchronous:
            for (_, s), members in self.sync_brackets(history).items():
                if trial.number in members:
                    pts = curve(trial, metric, sign, "step")
                    if not pts:
                        return Decision.CONTINUE
                    if not math.isfinite(pts[-1][1]):
                        return Decision.STOP
                    before = pts[-2][0] if len(pts) > 1 else (trial.start_step or -math.inf)
                    crossed = [r for r in self.sync_levels(s) if before < r <= pts[-1][0]]
                    return Decision.PAUSE if crossed else Decision.CONTINUE
            return Decision.CONTINUE
        b = self.bracket_of(trial.number)
        pts = curve(trial, metric, sign, self.resource)
        with self.indexed(history, metric, sign, self.resource) as index:
            return rung_decision(trial.number, pts, index, self.bracket_rungs(b), self.reduction_factor,
                                 group=b, member=lambda n: self.bracket_of(n) == b)
