"""NSGA-II on multi-objective toy problems, through the public API."""

from __future__ import annotations

import numpy as np
import pytest

import thrifty as th
from thrifty.strategies.nsga2 import NSGA2, crowding, fronts

SPACE = th.Space({f"x{i}": th.Float(0.0, 1.0) for i in range(4)} | {"mode": th.Categorical(["a", "b"])})


def zdt1(p):
    x = np.array([p[f"x{i}"] for i in range(4)])
    g = 1 + 9 * np.mean(x[1:]) + (0.5 if p["mode"] == "b" else 0.0)
    f1 = x[0]
    return {"f1": float(f1), "f2": float(g * (1 - np.sqrt(f1 / g)))}


def hypervolume(points, ref=(1.1, 11.0)):
    """2-d hypervolume of minimized points against ``ref``."""
    pts = sorted((p for p in points if p[0] < ref[0] and p[1] < ref[1]))
    hv, best_f2 = 0.0, ref[1]
    for f1, f2 in pts:
        if f2 < best_f2:
            hv += (ref[0] - f1) * (best_f2 - f2)
            best_f2 = f2
    return hv


def run(strategy, seed, n=120, constraints=None):
    study = th.Study.create(SPACE, {"f1": "min", "f2": "min"}, storage="memory", strategy=strategy, seed=seed,
                            constraints=constraints)
    for _ in range(n):
        t = study.ask()
        m = zdt1(t.params)
        study.tell(t, {**m, "slack": m["f1"] - 0.5})
    return study


def test_fronts_and_crowding_by_hand():
    pts = np.array([[1, 5], [2, 3], [3, 4], [4, 1], [5, 5.0]])
    assert fronts(pts, np.zeros(5)) == [[0, 1, 3], [2], [4]]
    # A feasible point dominates an infeasible one whatever their objectives.
    assert fronts(pts, np.array([0, 0, 0, 1, 0]))[0] == [0, 1]
    d = crowding(pts[[0, 1, 3]])
    assert np.isinf(d[0]) and np.isinf(d[2]) and d[1] == pytest.approx(2.0)


@pytest.mark.slow  # statistical: many seeded runs of a whole optimisation
def test_nsga2_beats_random_search_on_hypervolume_over_seeds():
    ours = [hypervolume([(t.metrics["f1"], t.metrics["f2"]) for t in run(NSGA2(population_size=16), s).trials])
            for s in range(5)]
    rand = [hypervolume([(t.metrics["f1"], t.metrics["f2"]) for t in run("random", s).trials]) for s in range(5)]
    assert sum(o > r for o, r in zip(ours, rand)) >= 4, (ours, rand)
    assert np.median(ours) > np.median(rand) * 1.02


def test_nsga2_is_deterministic_and_keeps_to_constraints():
    a = [t.params for t in run(NSGA2(population_size=8), seed=3, n=30).trials]
    b = [t.params for t in run(NSGA2(population_size=8), seed=3, n=30).trials]
    assert a == b
    study = run(NSGA2(population_size=8), seed=4, n=80, constraints={"slack": ("<=", 0.0)})
    late = study.trials[-30:]
    assert sum(t.metrics["slack"] <= 0 for t in late) >= 24  # children of feasible parents stay feasible
    front = study.pareto_front()
    assert front and all(t.metrics["slack"] <= 0 for t in front)  # infeasible trials are never on it


@pytest.mark.parametrize("kwargs", [{"population_size": 2}, {"crossover_prob": 1.5}, {"eta_mutation": 0}])
def test_nsga2_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="NSGA2"):
        NSGA2(**kwargs)
