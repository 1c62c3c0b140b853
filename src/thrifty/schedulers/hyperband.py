"""Asynchronous Hyperband: several ASHA brackets with different first rungs.

Bracket ``s`` (``s = 0 .. s_max``, ``s_max = floor(log_eta(max_resource / min_resource))``) starts
its rungs at ``min_resource * eta**s``: bracket 0 is the most aggressive, bracket ``s_max`` runs
every trial to the end. Trial ``k`` joins a bracket drawn from a seeded generator with the
probabilities Hyperband's budget allocation gives each bracket (``n_s`` proportional to
``eta**s / (s+1)`` counted from the most aggressive end), so every worker puts it in the same
bracket. Within its bracket a trial is judged as in ASHA, against the trials of that bracket only.

The synchronous variant (brackets that wait for all their trials at each rung) needs a runner
that can pause trials; it is not implemented here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from thrifty.schedulers._curves import check_resource_name, objective_of
from thrifty.schedulers.asha import _positive, rung_decision, rungs
from thrifty.schedulers.base import Decision, Scheduler
from thrifty.trial import Trial


class Hyperband(Scheduler):
    """Asynchronous Hyperband (see the module docstring)."""

    name = "hyperband"

    def __init__(
        self, min_resource: float = 1.0, max_resource: float = 81.0, reduction_factor: float = 3.0, seed: int = 0,
        metric: str | None = None, resource: str = "step",
    ) -> None:
        self.min_resource = _positive("Hyperband", "min_resource", min_resource)
        self.max_resource = _positive("Hyperband", "max_resource", max_resource)
        if self.max_resource <= self.min_resource:
            raise ValueError(
                f"Hyperband(min_resource={min_resource}, max_resource={max_resource}): max must exceed min"
            )
        self.reduction_factor = _positive("Hyperband", "reduction_factor", reduction_factor)
        if self.reduction_factor <= 1:
            raise ValueError(f"Hyperband(reduction_factor={reduction_factor!r}): expected a number > 1")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"Hyperband(seed={seed!r}): expected an integer")
        self.seed = seed
        self.metric = metric
        self.resource = check_resource_name(resource, "Hyperband")
        eta = self.reduction_factor
        self.s_max = int(math.floor(math.log(self.max_resource / self.min_resource, eta) + 1e-9))
        # Hyperband's n_i for the bracket with i = s_max - s eliminations: ceil((s_max+1)/(i+1) * eta^i).
        sizes = np.array([math.ceil((self.s_max + 1) / (i + 1) * eta**i) for i in range(self.s_max, -1, -1)], float)
        self._weights = sizes / sizes.sum()

    def params(self) -> dict[str, Any]:
        return {"min_resource": self.min_resource, "max_resource": self.max_resource,
                "reduction_factor": self.reduction_factor, "seed": self.seed, "metric": self.metric,
                "resource": self.resource}

    def bracket_of(self, number: int) -> int:
        """The bracket of trial ``number`` (0 = most aggressive)."""
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, int(number), 7919])
        return int(rng.choice(len(self._weights), p=self._weights))

    def bracket_rungs(self, bracket: int) -> list[float]:
        first = self.min_resource * self.reduction_factor**bracket
        return rungs(first, self.max_resource, self.reduction_factor)

    def decide(self, trial: Trial, history: Sequence[Trial], objectives: Mapping[str, str]) -> Decision:
        metric, sign = objective_of(objectives, self.metric, "Hyperband")
        b = self.bracket_of(trial.number)
        members = {t.number for t in history if self.bracket_of(t.number) == b}
        return rung_decision(trial, history, metric, sign, self.resource, self.bracket_rungs(b),
                             self.reduction_factor, members)
