"""Space.from_configspace: what converts, and clear errors for what does not."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import thrifty as th

CS = pytest.importorskip("ConfigSpace")


def _space(*hps, conditions=(), forbidden=()) -> "CS.ConfigurationSpace":
    cs = CS.ConfigurationSpace(seed=0)
    cs.add(list(hps))
    for c in conditions:
        cs.add(c(cs) if callable(c) else c)
    for f in forbidden:
        cs.add(f(cs))
    return cs


class TestSupported:
    def test_each_type(self):
        cs = _space(
            CS.UniformFloatHyperparameter("lr", 1e-4, 1e-1, log=True),
            CS.UniformFloatHyperparameter("dropout", 0.0, 0.5),
            CS.UniformIntegerHyperparameter("layers", 1, 8),
            CS.UniformIntegerHyperparameter("units", 16, 1024, log=True),
            CS.CategoricalHyperparameter("opt", ["sgd", "adam", "rmsprop"]),
            CS.CategoricalHyperparameter("nums", [1, 2.5, "3"]),
            CS.OrdinalHyperparameter("size", ["small", "medium", "large"]),
            CS.Constant("seed", 42),
            CS.Constant("tag", "v1"),
        )
        s = th.Space.from_configspace(cs)
        assert isinstance(s, th.Space)
        assert s["lr"] == th.Float(1e-4, 1e-1, log=True)
        assert s["dropout"] == th.Float(0.0, 0.5)
        assert s["layers"] == th.Int(1, 8)
        assert s["units"] == th.Int(16, 1024, log=True)
        assert s["opt"] == th.Categorical(["sgd", "adam", "rmsprop"])
        assert s["nums"] == th.Categorical([1, 2.5, "3"])
        # ordinals keep their sequence order (not sorted)
        assert s["size"] == th.Categorical(["small", "medium", "large"])
        assert s["seed"] == th.Fixed(42)
        assert s["tag"] == th.Fixed("v1")
        assert set(s) == {"lr", "dropout", "layers", "units", "opt", "nums", "size", "seed", "tag"}
        assert s.n_dims == 7

    def test_shorthand_constructors(self):
        cs = CS.ConfigurationSpace({"a": (0.0, 1.0), "b": (1, 10), "c": ["x", "y"], "d": 3})
        s = th.Space.from_configspace(cs)
        assert s.to_dict() == th.Space(
            {"a": th.Float(0.0, 1.0), "b": th.Int(1, 10), "c": ["x", "y"], "d": th.Fixed(3)}
        ).to_dict()

    def test_plain_python_values(self):
        cs = _space(
            CS.UniformFloatHyperparameter("f", 0.0, 1.0),
            CS.UniformIntegerHyperparameter("i", 0, 5),
            CS.Constant("c", 1.5),
        )
        s = th.Space.from_configspace(cs)
        assert type(s["f"].low) is float and type(s["i"].low) is int and type(s["c"].value) is float
        s.to_json()  # everything is JSON-serializable

    def test_uniform_weights_are_accepted(self):
        cs = _space(CS.CategoricalHyperparameter("c", ["a", "b"], weights=[2, 2]))
        assert th.Space.from_configspace(cs)["c"] == th.Categorical(["a", "b"])

    def test_equals_and_in_conditions(self):
        cs = _space(
            CS.CategoricalHyperparameter("opt", ["sgd", "adam", "rmsprop"]),
            CS.UniformFloatHyperparameter("momentum", 0.0, 0.99),
            CS.UniformFloatHyperparameter("beta", 0.8, 0.999),
            conditions=[
                lambda cs: CS.EqualsCondition(cs["momentum"], cs["opt"], "sgd"),
                lambda cs: CS.InCondition(cs["beta"], cs["opt"], ["adam", "rmsprop"]),
            ],
        )
        s = th.Space.from_configspace(cs)
        assert s["momentum"] == th.Float(0.0, 0.99, when={"opt": "sgd"})
        assert s["beta"] == th.Float(0.8, 0.999, when={"opt": ["adam", "rmsprop"]})
        assert list(s).index("opt") < list(s).index("momentum")
        assert set(s.decode([0.1, 0.5, 0.5])) == {"opt", "momentum"}
        assert set(s.decode([0.9, 0.5, 0.5])) == {"opt", "beta"}

    def test_condition_on_int_and_ordinal_parents(self):
        cs = _space(
            CS.UniformIntegerHyperparameter("layers", 1, 4),
            CS.OrdinalHyperparameter("size", ["s", "m", "l"]),
            CS.UniformFloatHyperparameter("d2", 0.0, 1.0),
            CS.Constant("big", "yes"),
            conditions=[
                lambda cs: CS.InCondition(cs["d2"], cs["layers"], [2, 3, 4]),
                lambda cs: CS.EqualsCondition(cs["big"], cs["size"], "l"),
            ],
        )
        s = th.Space.from_configspace(cs)
        assert s["d2"] == th.Float(0.0, 1.0, when={"layers": [2, 3, 4]})
        assert s["big"] == th.Fixed("yes", when={"size": "l"})

    def test_and_conjunction(self):
        cs = _space(
            CS.CategoricalHyperparameter("model", ["tree", "linear"]),
            CS.CategoricalHyperparameter("prune", [True, False]),
            CS.UniformIntegerHyperparameter("depth", 1, 10),
            conditions=[
                lambda cs: CS.EqualsCondition(cs["prune"], cs["model"], "tree"),
                lambda cs: CS.AndConjunction(
                    CS.EqualsCondition(cs["depth"], cs["model"], "tree"),
                    CS.EqualsCondition(cs["depth"], cs["prune"], True),
                ),
            ],
        )
        s = th.Space.from_configspace(cs)
        assert s["depth"] == th.Int(1, 10, when={"model": "tree", "prune": True})
        assert s["prune"] == th.Categorical([True, False], when={"model": "tree"})
        for x in np.random.default_rng(1).random((50, s.n_dims)):
            p = s.decode(x)
            assert ("depth" in p) == (p["model"] == "tree" and p["prune"] is True)

    def test_and_conjunction_on_one_parent_intersects(self):
        cs = _space(
            CS.CategoricalHyperparameter("a", ["x", "y", "z"]),
            CS.UniformFloatHyperparameter("f", 0.0, 1.0),
            conditions=[
                lambda cs: CS.AndConjunction(
                    CS.InCondition(cs["f"], cs["a"], ["x", "y"]),
                    CS.InCondition(cs["f"], cs["a"], ["y", "z"]),
                )
            ],
        )
        assert th.Space.from_configspace(cs)["f"] == th.Float(0.0, 1.0, when={"a": "y"})

    def test_converted_space_round_trips(self):
        cs = _space(
            CS.CategoricalHyperparameter("opt", ["sgd", "adam"]),
            CS.UniformFloatHyperparameter("momentum", 0.0, 0.99),
            conditions=[lambda cs: CS.EqualsCondition(cs["momentum"], cs["opt"], "sgd")],
        )
        s = th.Space.from_configspace(cs)
        assert th.Space.from_json(s.to_json()) == s


def _err(message_part: str):
    return pytest.raises(th.SpaceError, match=message_part)


class TestUnsupported:
    def test_normal_float(self):
        cs = _space(CS.NormalFloatHyperparameter("x", mu=0.0, sigma=1.0, lower=-3.0, upper=3.0))
        with _err(r"^hyperparameter 'x': NormalFloatHyperparameter \(a normal distribution\) is not supported"):
            th.Space.from_configspace(cs)

    def test_normal_integer(self):
        cs = _space(CS.NormalIntegerHyperparameter("k", mu=5, sigma=2, lower=0, upper=10))
        with _err(r"^hyperparameter 'k': NormalIntegerHyperparameter \(a normal distribution\) is not supported"):
            th.Space.from_configspace(cs)

    def test_beta(self):
        cs = _space(CS.BetaFloatHyperparameter("b", alpha=2.0, beta=3.0, lower=0.0, upper=1.0))
        with _err(r"^hyperparameter 'b': BetaFloatHyperparameter \(a beta distribution\) is not supported"):
            th.Space.from_configspace(cs)
        cs = _space(CS.BetaIntegerHyperparameter("bi", alpha=2.0, beta=3.0, lower=0, upper=10))
        with _err(r"^hyperparameter 'bi': BetaIntegerHyperparameter \(a beta distribution\)"):
            th.Space.from_configspace(cs)

    def test_float_with_normal_distribution_shorthand(self):
        cs = _space(CS.Float("y", (0.0, 1.0), distribution=CS.Normal(0.5, 0.1)))
        with _err("^hyperparameter 'y': NormalFloatHyperparameter"):
            th.Space.from_configspace(cs)

    def test_weighted_categorical(self):
        cs = _space(CS.CategoricalHyperparameter("w", ["a", "b"], weights=[1, 3]))
        with _err(r"^hyperparameter 'w' \(CategoricalHyperparameter\): non-uniform weights"):
            th.Space.from_configspace(cs)

    def test_or_conjunction(self):
        cs = _space(
            CS.CategoricalHyperparameter("a", ["x", "y", "z"]),
            CS.CategoricalHyperparameter("b", ["u", "v"]),
            CS.UniformFloatHyperparameter("f", 0.0, 1.0),
            conditions=[
                lambda cs: CS.OrConjunction(
                    CS.EqualsCondition(cs["f"], cs["a"], "x"), CS.EqualsCondition(cs["f"], cs["b"], "u")
                )
            ],
        )
        with _err("^hyperparameter 'f': its condition .* is an OrConjunction .* not supported"):
            th.Space.from_configspace(cs)

    def test_or_inside_and(self):
        cs = _space(
            CS.CategoricalHyperparameter("a", ["x", "y"]),
            CS.CategoricalHyperparameter("b", ["u", "v"]),
            CS.CategoricalHyperparameter("c", ["p", "q"]),
            CS.UniformFloatHyperparameter("f", 0.0, 1.0),
            conditions=[
                lambda cs: CS.AndConjunction(
                    CS.EqualsCondition(cs["f"], cs["c"], "p"),
                    CS.OrConjunction(
                        CS.EqualsCondition(cs["f"], cs["a"], "x"), CS.EqualsCondition(cs["f"], cs["b"], "u")
                    ),
                )
            ],
        )
        with _err("^hyperparameter 'f': .*OrConjunction"):
            th.Space.from_configspace(cs)

    @pytest.mark.parametrize(
        ("make", "kind"),
        [
            (lambda cs: CS.NotEqualsCondition(cs["f"], cs["n"], 2), "NotEqualsCondition"),
            (lambda cs: CS.LessThanCondition(cs["f"], cs["n"], 3), "LessThanCondition"),
            (lambda cs: CS.GreaterThanCondition(cs["f"], cs["n"], 3), "GreaterThanCondition"),
        ],
    )
    def test_other_conditions(self, make, kind):
        cs = _space(
            CS.UniformIntegerHyperparameter("n", 1, 5),
            CS.UniformFloatHyperparameter("f", 0.0, 1.0),
            conditions=[make],
        )
        with _err(f"^hyperparameter 'f': its condition .* is a {kind}, which is not supported"):
            th.Space.from_configspace(cs)

    def test_forbidden_clause(self):
        cs = _space(
            CS.CategoricalHyperparameter("a", ["x", "y"]),
            CS.UniformIntegerHyperparameter("n", 1, 5),
            forbidden=[lambda cs: CS.ForbiddenEqualsClause(cs["a"], "y")],
        )
        with _err("^hyperparameter 'a': the forbidden clause .* is not supported"):
            th.Space.from_configspace(cs)

    def test_forbidden_conjunction_names_every_hyperparameter(self):
        cs = _space(
            CS.CategoricalHyperparameter("a", ["x", "y"]),
            CS.UniformIntegerHyperparameter("n", 1, 5),
            forbidden=[
                lambda cs: CS.ForbiddenAndConjunction(
                    CS.ForbiddenEqualsClause(cs["a"], "y"), CS.ForbiddenInClause(cs["n"], [4, 5])
                )
            ],
        )
        with _err("^hyperparameters 'a', 'n': the forbidden clause"):
            th.Space.from_configspace(cs)

    def test_forbidden_relation(self):
        cs = _space(
            CS.UniformIntegerHyperparameter("lo", 1, 5),
            CS.UniformIntegerHyperparameter("hi", 1, 5),
            forbidden=[lambda cs: CS.ForbiddenGreaterThanRelation(cs["lo"], cs["hi"])],
        )
        with _err("^hyperparameters 'lo', 'hi': the forbidden clause"):
            th.Space.from_configspace(cs)

    def test_condition_on_float_parent(self):
        cs = _space(
            CS.UniformFloatHyperparameter("g", 0.0, 1.0),
            CS.UniformFloatHyperparameter("f", 0.0, 1.0),
            conditions=[lambda cs: CS.EqualsCondition(cs["f"], cs["g"], 0.5)],
        )
        with _err("^parameter 'f': parent 'g' is a Float"):
            th.Space.from_configspace(cs)

    def test_not_a_configuration_space(self):
        with _err(re.escape("Space.from_configspace: expected a ConfigSpace.ConfigurationSpace, got dict")):
            th.Space.from_configspace({"a": (0.0, 1.0)})

    def test_configspace_missing(self, monkeypatch):
        cs = _space(CS.UniformFloatHyperparameter("f", 0.0, 1.0))
        # None in sys.modules makes `import ConfigSpace` raise ImportError.
        monkeypatch.setitem(sys.modules, "ConfigSpace", None)
        with _err("pip install ConfigSpace"):
            th.Space.from_configspace(cs)
