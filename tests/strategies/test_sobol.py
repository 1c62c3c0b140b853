"""SobolSearch: scrambled, seeded Sobol' points, evenly spread."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import qmc

import thrifty as th
from thrifty.strategies import make_strategy
from thrifty.strategies.random import RandomSearch
from thrifty.strategies.sobol import SobolSearch

CUBE = th.Space({"a": th.Float(0.0, 1.0), "b": th.Float(0.0, 1.0), "c": th.Float(0.0, 1.0)})


def _encoded(strategy, space, seed, count=64):
    return np.array([space.encode(strategy.propose(space, [], seed=seed, number=k)[0]) for k in range(count)])


def test_registry_builds_sobol():
    s = make_strategy({"name": "sobol"})
    assert isinstance(s, SobolSearch)
    assert s.to_spec() == {"name": "sobol"}


def test_same_seed_and_number_give_same_params():
    a = SobolSearch().propose(CUBE, [], seed=4, number=17)
    assert a == SobolSearch().propose(CUBE, [], seed=4, number=17)


def test_different_numbers_and_seeds_differ():
    pts = [tuple(SobolSearch().propose(CUBE, [], seed=4, number=k)[0].values()) for k in range(64)]
    assert len(set(pts)) == 64
    other = [tuple(SobolSearch().propose(CUBE, [], seed=5, number=k)[0].values()) for k in range(64)]
    assert not set(pts) & set(other)


def test_batch_equals_one_by_one():
    batch = SobolSearch().propose(CUBE, [], seed=9, number=5, n=20)
    single = [SobolSearch().propose(CUBE, [], seed=9, number=k)[0] for k in range(5, 25)]
    assert batch == single


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_more_evenly_spread_than_random(seed):
    sobol = _encoded(SobolSearch(), CUBE, seed)
    rand = _encoded(RandomSearch(), CUBE, seed)
    assert sobol.shape == rand.shape == (64, 3)
    assert qmc.discrepancy(sobol) < 0.25 * qmc.discrepancy(rand)


def test_one_dimension_is_stratified():
    # The first 2^m points of a (scrambled) Sobol' sequence put one point in each 1/2^m cell.
    space = th.Space({"x": th.Float(0.0, 1.0)})
    xs = [SobolSearch().propose(space, [], seed=21, number=k)[0]["x"] for k in range(64)]
    assert sorted(int(x * 64) for x in xs) == list(range(64))


def test_proposals_are_valid_with_conditions_and_discrete_params():
    space = th.Space(
        {
            "opt": ["sgd", "adam", False],
            "lr": th.Float(1e-5, 1e-1, log=True),
            "momentum": th.Float(0.0, 0.99, when={"opt": "sgd"}),
            "layers": th.Int(1, 4),
            "fixed": th.Fixed(None),
        }
    )
    props = SobolSearch().propose(space, [], seed=0, number=0, n=64)
    for p in props:
        assert space.validate(p) == p
        assert ("momentum" in p) == (p["opt"] == "sgd")
    # 64 stratified points: every categorical value and every int value is used evenly
    counts = {repr(o): sum(1 for p in props if repr(p["opt"]) == repr(o)) for o in ("sgd", "adam", False)}
    assert all(20 <= c <= 22 for c in counts.values()), counts
    assert sorted({p["layers"] for p in props}) == [1, 2, 3, 4]
    assert all(sum(1 for p in props if p["layers"] == v) == 16 for v in range(1, 5))


def test_fixed_only_space():
    space = th.Space({"a": th.Fixed(1), "b": th.Fixed("z")})
    assert SobolSearch().propose(space, [], seed=0, number=3, n=2) == [{"a": 1, "b": "z"}] * 2


def test_end_to_end_study():
    study = th.Study.create(CUBE, "max", storage="memory", strategy="sobol", seed=2)
    try:
        study.optimize(lambda t: -sum((v - 0.5) ** 2 for v in t.params.values()), n_trials=16, progress=False)
        trials = study.trials
        assert [t.number for t in trials] == list(range(16))
        assert all(t.state is th.TrialState.COMPLETED for t in trials)
        assert [dict(t.params) for t in trials] == SobolSearch().propose(CUBE, [], seed=2, number=0, n=16)
        # 16 stratified points: exactly one in each sixteenth of every axis
        for name in CUBE:
            assert sorted(int(t.params[name] * 16) for t in trials) == list(range(16))
    finally:
        study.close()
