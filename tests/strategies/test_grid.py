"""GridSearch: every combination once, conditional expansion, shuffling and exhaustion."""

from __future__ import annotations

import math

import pytest
from builders import failed, of_points

import thrifty as th
from thrifty.strategies import make_strategy
from thrifty.strategies.grid import GridSearch


def _key(params):
    return tuple(sorted((k, type(v).__name__, v) for k, v in params.items()))


class TestConstructor:
    @pytest.mark.parametrize("bad", [0, -3, 2.5, "3", True, None])
    def test_points_per_float_must_be_positive_int(self, bad):
        with pytest.raises(ValueError, match=r"^GridSearch\(points_per_float=.*\): expected an integer >= 1$"):
            GridSearch(points_per_float=bad)

    def test_registry_and_spec(self):
        g = make_strategy({"name": "grid", "points_per_float": 3, "shuffle": True})
        assert isinstance(g, GridSearch)
        assert g.needs_history
        assert g.to_spec() == {"name": "grid", "points_per_float": 3, "shuffle": True}
        assert make_strategy(g.to_spec()).params() == g.params()

    def test_registry_propagates_value_error(self):
        with pytest.raises(ValueError, match="points_per_float=0"):
            make_strategy({"name": "grid", "points_per_float": 0})

    def test_too_big_grid(self):
        space = th.Space({f"p{i}": th.Int(0, 9) for i in range(7)})  # 10^7 points
        with pytest.raises(ValueError, match="more than 1,000,000"):
            GridSearch().propose(space, [], seed=0, number=0)


class TestEnumeration:
    def test_full_product_in_order(self):
        space = th.Space({"a": ["x", "y"], "b": th.Int(0, 4, step=2), "c": th.Fixed(7)})
        points = GridSearch().grid(space)
        assert points == [
            {"a": a, "b": b, "c": 7} for a in ("x", "y") for b in (0, 2, 4)
        ]

    def test_conditional_counts(self):
        space = th.Space(
            {
                "opt": ["sgd", "adam", "lbfgs"],
                "lr": th.Float(1e-3, 1.0, log=True),
                "momentum": th.Float(0.0, 0.9, when={"opt": "sgd"}),
                "nesterov": th.Categorical([True, False], when={"opt": "sgd"}),
                "beta": th.Int(1, 3, when={"opt": ["adam", "lbfgs"]}),
                "extra": th.Categorical([None, 1], when={"beta": 3}),
            }
        )
        grid = GridSearch(points_per_float=4).grid(space)
        # sgd: lr 4 x momentum 4 x nesterov 2 = 32; adam and lbfgs: lr 4 x (beta 1, 2 + beta 3 x extra 2) = 16 each
        assert len(grid) == 32 + 16 + 16
        assert len({_key(p) for p in grid}) == len(grid)
        for p in grid:
            assert space.validate(p) == p
        assert sum(1 for p in grid if p["opt"] == "sgd") == 32
        assert sum(1 for p in grid if "extra" in p) == 2 * 4 * 2  # (adam, lbfgs) x lr x extra, with beta=3
        assert all(set(p) == {"opt", "lr", "momentum", "nesterov"} for p in grid if p["opt"] == "sgd")

    def test_nested_condition_not_expanded_when_parent_inactive(self):
        space = th.Space(
            {
                "model": ["a", "b"],
                "k": th.Int(1, 3, when={"model": "a"}),
                "deep": th.Fixed(True, when={"k": 3}),
                "z": th.Float(0, 1, when={"deep": True}),
            }
        )
        grid = GridSearch(points_per_float=3).grid(space)
        # a: k=1, k=2, k=3 x z 3 points; b: 1
        assert len(grid) == 2 + 3 + 1
        assert {"model": "b"} in grid
        assert sum(1 for p in grid if "z" in p) == 3

    @pytest.mark.parametrize(
        "param",
        [th.Float(-0.3, 0.9), th.Float(0.1, 0.7), th.Float(1e-4, 0.3, log=True), th.Float(1e-3, 0.1, log=True)],
    )
    def test_points_per_float_includes_exact_ends(self, param):
        space = th.Space({"f": param})
        values = [p["f"] for p in GridSearch(points_per_float=4).grid(space)]
        assert len(values) == 4
        assert values[0] == param.low and values[-1] == param.high
        assert values == sorted(values)

    def test_points_per_float_spacing(self):
        lin = [p["f"] for p in GridSearch(points_per_float=5).grid(th.Space({"f": th.Float(0.0, 1.0)}))]
        assert lin == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
        log = [p["f"] for p in GridSearch(points_per_float=4).grid(th.Space({"f": th.Float(1e-4, 0.1, log=True)}))]
        assert log == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
        assert log[0] == 1e-4 and log[-1] == 0.1

    def test_one_point_per_float_is_the_middle(self):
        assert GridSearch(points_per_float=1).grid(th.Space({"f": th.Float(2.0, 4.0)})) == [{"f": 3.0}]
        (p,) = GridSearch(points_per_float=1).grid(th.Space({"f": th.Float(1e-4, 1.0, log=True)}))
        assert p["f"] == pytest.approx(1e-2)


class TestPropose:
    SPACE = th.Space({"a": ["x", "y", True], "b": th.Int(1, 4), "f": th.Float(0.0, 1.0)})

    def test_proposes_first_untried_point(self):
        g = GridSearch(points_per_float=2)
        grid = g.grid(self.SPACE)
        assert len(grid) == 3 * 4 * 2
        assert g.propose(self.SPACE, [], seed=0, number=0) == [grid[0]]
        assert g.propose(self.SPACE, of_points(grid[:5]), seed=0, number=5) == [grid[5]]
        # out-of-order history: the first hole is proposed
        hist = of_points([grid[0], grid[2], grid[3]])
        assert g.propose(self.SPACE, hist, seed=0, number=3, n=2) == [grid[1], grid[4]]

    def test_running_and_failed_trials_count_as_tried(self):
        g = GridSearch(points_per_float=2)
        grid = g.grid(self.SPACE)
        hist = of_points(grid[:1], state="running") + [failed(1, grid[1])]
        assert g.propose(self.SPACE, hist, seed=0, number=2) == [grid[2]]

    def test_retried_trials_are_proposed_again(self):
        g = GridSearch(points_per_float=2)
        grid = g.grid(self.SPACE)
        hist = [failed(0, grid[0], retried=True)]
        assert g.propose(self.SPACE, hist, seed=0, number=1) == [grid[0]]

    def test_bool_choice_not_confused_with_int(self):
        space = th.Space({"a": [1, True]})
        g = GridSearch()
        (p,) = g.propose(space, of_points([{"a": 1}]), seed=0, number=1)
        assert p["a"] is True

    def test_exhaustion(self):
        g = GridSearch(points_per_float=2)
        grid = g.grid(self.SPACE)
        with pytest.raises(th.StudyExhausted, match="24 points have all been tried") as info:
            g.propose(self.SPACE, of_points(grid), seed=0, number=24)
        assert info.value.reason == "strategy"
        # asking for more points than remain is exhaustion too
        with pytest.raises(th.StudyExhausted) as info:
            g.propose(self.SPACE, of_points(grid[:22]), seed=0, number=22, n=3)
        assert info.value.reason == "strategy"
        assert g.propose(self.SPACE, of_points(grid[:22]), seed=0, number=22, n=2) == grid[22:]

    def test_shuffle_is_a_seeded_permutation(self):
        plain = GridSearch(points_per_float=2).grid(self.SPACE)
        g = GridSearch(points_per_float=2, shuffle=True)
        a = g.propose(self.SPACE, [], seed=1, number=0, n=len(plain))
        again = GridSearch(points_per_float=2, shuffle=True).propose(self.SPACE, [], seed=1, number=0, n=len(plain))
        other = g.propose(self.SPACE, [], seed=2, number=0, n=len(plain))
        assert a == again
        assert sorted(map(_key, a)) == sorted(map(_key, plain))
        assert a != plain and other != a
        # history is respected in shuffled order too, whatever the trial number
        assert g.propose(self.SPACE, of_points(a[:3]), seed=1, number=99) == [a[3]]


def test_end_to_end_grid_study_runs_each_point_once_then_stops():
    space = th.Space({"a": ["x", "y"], "b": th.Int(0, 2)})
    study = th.Study.create(space, "max", storage="memory", strategy="grid")
    try:
        study.optimize(lambda t: t.params["b"] + (t.params["a"] == "y"), progress=False)
        trials = study.trials
        assert len(trials) == 6
        assert all(t.state is th.TrialState.COMPLETED for t in trials)
        assert {(t.params["a"], t.params["b"]) for t in trials} == {(a, b) for a in "xy" for b in range(3)}
        assert study.best.params == {"a": "y", "b": 2}
        # exhausted: a further run starts nothing, and ask says why
        study.optimize(lambda t: 0.0, n_trials=3, progress=False)
        assert len(study.trials) == 6
        with pytest.raises(th.StudyExhausted) as info:
            study.ask()
        assert info.value.reason == "strategy"
    finally:
        study.close()


def test_end_to_end_shuffled_grid_with_conditions():
    space = th.Space({"opt": ["sgd", "adam"], "m": th.Float(0.0, 1.0, when={"opt": "sgd"})})
    strategy = {"name": "grid", "points_per_float": 3, "shuffle": True}
    study = th.Study.create(space, "min", storage="memory", strategy=strategy, seed=3)
    try:
        study.optimize(lambda t: t.params.get("m", 0.5), progress=False)
        params = [dict(t.params) for t in study.trials]
        assert len(params) == 4
        assert sorted(map(_key, params)) == sorted(
            map(_key, [{"opt": "sgd", "m": 0.0}, {"opt": "sgd", "m": 0.5}, {"opt": "sgd", "m": 1.0}, {"opt": "adam"}])
        )
        assert params == GridSearch(points_per_float=3, shuffle=True).propose(space, [], seed=3, number=0, n=4)
        assert math.isclose(study.best.value, 0.0)
    finally:
        study.close()
