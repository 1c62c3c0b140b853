"""RandomSearch: seeded, independent draws decoded by the space."""

from __future__ import annotations

import numpy as np
import pytest

import thrifty as th
from thrifty.strategies import available, make_strategy
from thrifty.strategies.random import RandomSearch


@pytest.fixture
def space() -> th.Space:
    return th.Space(
        {
            "opt": ["sgd", "adam", None, True],
            "lr": th.Float(1e-6, 1.0, log=True),
            "momentum": th.Float(0.0, 0.99, when={"opt": "sgd"}),
            "layers": th.Int(1, 8),
            "width": th.Int(16, 256, step=16, when={"opt": ["adam", True]}),
            "tag": th.Fixed("x"),
        }
    )


def test_registry_builds_random():
    assert "random" in available()
    s = make_strategy("random")
    assert isinstance(s, RandomSearch)
    assert s.to_spec() == {"name": "random"}
    assert not s.needs_history


def test_unknown_argument_is_rejected():
    with pytest.raises(th.ValidationError, match="strategy 'random'"):
        make_strategy({"name": "random", "points": 3})


def test_same_seed_and_number_give_same_params(space):
    a = RandomSearch().propose(space, [], seed=11, number=5)
    b = RandomSearch().propose(space, [], seed=11, number=5)
    assert a == b and len(a) == 1


def test_different_numbers_and_seeds_differ(space):
    points = [RandomSearch().propose(space, [], seed=11, number=k)[0]["lr"] for k in range(50)]
    assert len(set(points)) == 50
    other = [RandomSearch().propose(space, [], seed=12, number=k)[0]["lr"] for k in range(50)]
    assert not set(points) & set(other)


def test_batch_equals_one_by_one(space):
    batch = RandomSearch().propose(space, [], seed=3, number=10, n=5)
    single = [RandomSearch().propose(space, [], seed=3, number=k)[0] for k in range(10, 15)]
    assert batch == single


def test_proposals_are_valid_and_cover_choices(space):
    props = RandomSearch().propose(space, [], seed=0, number=0, n=300)
    for p in props:
        assert space.validate(p) == p
        assert ("momentum" in p) == (p["opt"] == "sgd")
        assert ("width" in p) == (p["opt"] == "adam" or p["opt"] is True)
        assert p["tag"] == "x"
    opts = [p["opt"] for p in props]
    # True and None are real choices, kept apart from 1 and from a missing value
    assert {repr(o) for o in opts} == {"'sgd'", "'adam'", "None", "True"}
    assert {p["layers"] for p in props} == set(range(1, 9))


def test_log_float_is_log_uniform(space):
    lrs = np.array([p["lr"] for p in RandomSearch().propose(space, [], seed=1, number=0, n=2000)])
    # a log-uniform draw on [1e-6, 1] is below 1e-3 half of the time (a uniform one: 0.1%)
    assert 0.45 < np.mean(lrs < 1e-3) < 0.55
    assert 0.28 < np.mean(lrs < 1e-4) < 0.39


def test_end_to_end_study():
    space = th.Space({"x": th.Float(-2.0, 2.0), "k": th.Int(0, 3)})
    study = th.Study.create(space, "min", storage="memory", strategy="random", seed=5)
    try:
        study.optimize(lambda t: t.params["x"] ** 2 + t.params["k"], n_trials=8, progress=False)
        trials = study.trials
        assert [t.number for t in trials] == list(range(8))
        assert all(t.state is th.TrialState.COMPLETED for t in trials)
        expected = [RandomSearch().propose(space, [], seed=5, number=k)[0] for k in range(8)]
        assert [dict(t.params) for t in trials] == expected
        best = min(trials, key=lambda t: t.value)
        assert study.best.number == best.number
        assert study.best.value == pytest.approx(best.params["x"] ** 2 + best.params["k"])
    finally:
        study.close()
