"""Search spaces: validation, conditions, serialization and the unit-cube encoding."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import yaml
from conftest import THOROUGH
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import thrifty as th


def raises(message: str):
    """``pytest.raises(th.SpaceError)`` matching ``message`` literally (the whole message)."""
    return pytest.raises(th.SpaceError, match=f"^{re.escape(message)}$")


@pytest.fixture
def space() -> th.Space:
    return th.Space(
        {
            "opt": th.Categorical(["sgd", "adam"]),
            "lr": th.Float(1e-4, 1.0, log=True),
            "momentum": th.Float(0.0, 0.99, when={"opt": "sgd"}),
            "layers": th.Int(1, 8),
            "width": th.Int(16, 256, step=16),
            "seed": th.Fixed(3),
        }
    )


# -- parameter validation ---------------------------------------------------------------------


class TestParamValidation:
    def test_float_low_not_below_high(self):
        with raises("Float(low=1, high=1): low must be below high (use Fixed(value) for a constant)"):
            th.Float(1, 1)
        with raises("Float(low=2.5, high=1): low must be below high (use Fixed(value) for a constant)"):
            th.Float(2.5, 1)

    def test_float_log_needs_positive_low(self):
        with raises("Float(low=0, high=1, log=True): a log-scaled range needs low > 0"):
            th.Float(0, 1, log=True)
        with raises("Float(low=-1, high=1, log=True): a log-scaled range needs low > 0"):
            th.Float(-1, 1, log=True)

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
    def test_float_bounds_must_be_finite(self, bad):
        with raises(f"Float low={bad!r}: must be finite"):
            th.Float(bad, 1)

    @pytest.mark.parametrize("bad, kind", [("0", "str; write high: 0.0 unquoted"), (None, "NoneType"),
                                           (True, "bool")])
    def test_float_bounds_must_be_numbers(self, bad, kind):
        with raises(f"Float high={bad!r}: expected a number, not {kind}"):
            th.Float(0, bad)

    def test_float_range_too_wide_is_rejected(self):
        # high - low overflows to inf: the encoding could not represent it.
        with pytest.raises(th.SpaceError, match="too wide"):
            th.Float(-1e308, 1e308)
        # ... but a log range over the same magnitudes is fine.
        f = th.Float(1e-300, 1e300, log=True)
        assert f.high == 1e300

    def test_int_low_not_below_high(self):
        with raises("Int(low=3, high=3): low must be below high (use Fixed(value) for a constant)"):
            th.Int(3, 3)

    def test_int_log_needs_positive_low(self):
        with raises("Int(low=0, high=10, log=True): a log-scaled range needs low > 0"):
            th.Int(0, 10, log=True)

    def test_int_step_must_divide_range(self):
        with raises("Int(low=0, high=10, step=3): high - low must be a multiple of step (e.g. high=9)"):
            th.Int(0, 10, step=3)

    def test_int_step_positive(self):
        with raises("Int(step=0): step must be a positive integer"):
            th.Int(0, 10, step=0)

    def test_int_log_with_step(self):
        with raises("Int(step=2, log=True): a log-scaled Int must have step=1"):
            th.Int(1, 9, log=True, step=2)

    def test_int_bounds_must_be_integers(self):
        with raises("Int low=0.5: expected an integer, not float"):
            th.Int(0.5, 3)
        with raises("Int high=True: expected an integer, not bool"):
            th.Int(0, True)
        # Integral floats are accepted and become ints.
        p = th.Int(0.0, 4.0)
        assert (p.low, p.high) == (0, 4) and type(p.low) is int

    @pytest.mark.parametrize("cls, args", [(th.Float, (0.001, 0.1)), (th.Int, (1, 64))])
    @pytest.mark.parametrize("bad, word", [("false", "false"), ("no", "false"), ("true", "true"), (0, "false"),
                                           (1, "true"), (None, None)])
    def test_log_must_be_a_boolean(self, cls, args, bad, word):
        # "false" used to be truthy, so log="false" turned the log scale on.
        name = cls.__name__
        hint = f"; write log: {word} unquoted in YAML (log={word.title()} in Python)" if word else ""
        with raises(f"{name} log={bad!r}: expected a boolean, not {type(bad).__name__}{hint}"):
            cls(*args, log=bad)
        assert cls(*args, log=False).log is False

    @pytest.mark.parametrize("spec, message", [
        ("{type: float, low: 0.001, high: 0.1, log: 'false'}",
         "Float log='false': expected a boolean, not str; write log: false unquoted in YAML (log=False in Python)"),
        ("{type: float, low: 0.001, high: 0.1, log: 'no'}",
         "Float log='no': expected a boolean, not str; write log: false unquoted in YAML (log=False in Python)"),
        ("{type: float, low: '1e-3', high: 0.1}",
         "Float low='1e-3': expected a number, not str; write low: 0.001 unquoted"),
        ("{type: int, low: 0, high: 10, step: '2'}",
         "Int step='2': expected an integer, not str; write step: 2 unquoted"),
        ("{type: int, low: 1, high: 10, log: 'yes'}",
         "Int log='yes': expected a boolean, not str; write log: true unquoted in YAML (log=True in Python)"),
    ])
    def test_yaml_fields_are_strictly_typed(self, spec, message):
        with raises(f"parameter 'x': {message}"):
            th.Space.from_yaml(f"x: {spec}")

    @pytest.mark.parametrize("written", ["1.0e-3", "1e-3", "1E-3", "+1e-3", "0.001"])
    def test_yaml_exponent_numbers_are_numbers(self, written):
        """YAML 1.1 reads 1e-3 (no '.') as text; thrifty reads it as YAML 1.2 does."""
        assert th.Space.from_yaml(f"x: {{type: float, low: {written}, high: 0.1, log: true}}")["x"].low == 0.001
        assert th.Space.from_yaml("n: {type: int, low: 1, high: 1e3}")["n"].high == 1000

    def test_unknown_and_missing_keys_name_the_keys(self):
        with raises("parameter 'x' (float): unknown key(s) 'hihg'; the keys are type, low, high, log, when"):
            th.Space({"x": {"type": "float", "low": 0, "hihg": 1}})
        with raises("parameter 'x' (int): missing 'high'; the keys are type, low, high, log, step, when"):
            th.Space({"x": {"type": "int", "low": 0}})

    def test_categorical_empty(self):
        with raises("Categorical([]): give at least one choice"):
            th.Categorical([])

    def test_categorical_duplicates(self):
        with raises("Categorical(['a', 'b', 'a']): duplicate choices 'a'"):
            th.Categorical(["a", "b", "a"])
        # 1 and 1.0 are the same number; True is a different choice.
        with raises("Categorical([1, 1.0, True]): duplicate choices 1, 1.0"):
            th.Categorical([1, 1.0, True])

    def test_categorical_bool_and_int_are_distinct(self):
        c = th.Categorical([True, 1, None, 0, False])
        assert c.choices == (True, 1, None, 0, False)

    def test_categorical_choice_types(self):
        with raises("Categorical('ab'): choices must be a list of values"):
            th.Categorical("ab")
        with pytest.raises(th.SpaceError, match=r"choice \[1\] has type list"):
            th.Categorical([[1], 2])
        with raises("Categorical choice nan: must be finite"):
            th.Categorical([1.0, float("nan")])

    def test_fixed_value_type(self):
        with pytest.raises(th.SpaceError, match=r"Fixed\(\{'a': 1\}\): the value must be"):
            th.Fixed({"a": 1})

    def test_when_must_be_nonempty_mapping(self):
        with pytest.raises(th.SpaceError, match="expected a non-empty mapping"):
            th.Float(0, 1, when={})
        with raises("when={'opt': []}: give at least one parent value"):
            th.Float(0, 1, when={"opt": []})


# -- space validation -------------------------------------------------------------------------


class TestSpaceValidation:
    def test_empty_space(self):
        with raises("Space({}): a search space needs at least one parameter"):
            th.Space({})

    def test_unknown_parent(self):
        with raises("parameter 'b': when refers to unknown parent 'zz' (known: a, b)"):
            th.Space({"a": th.Categorical(["x", "y"]), "b": th.Float(0, 1, when={"zz": "x"})})

    def test_self_condition(self):
        with raises("parameter 'a' cannot be conditional on itself"):
            th.Space({"a": th.Categorical(["x", "y"], when={"a": "x"})})

    def test_cycle(self):
        with raises("conditions form a cycle: a -> b -> a"):
            th.Space(
                {
                    "a": th.Categorical(["x", "y"], when={"b": "u"}),
                    "b": th.Categorical(["u", "v"], when={"a": "x"}),
                }
            )

    def test_longer_cycle_beside_free_params(self):
        with raises("conditions form a cycle: a -> b -> c -> a"):
            th.Space(
                {
                    "free": th.Int(0, 3),
                    "a": th.Categorical(["x", "y"], when={"b": "u"}),
                    "b": th.Categorical(["u", "v"], when={"c": 1}),
                    "c": th.Int(0, 3, when={"a": "x"}),
                }
            )

    def test_when_value_outside_parent_choices(self):
        with raises("parameter 'b': when {'a': 'z'} can never hold, 'a' is one of ['x', 'y']"):
            th.Space({"a": th.Categorical(["x", "y"]), "b": th.Float(0, 1, when={"a": "z"})})

    def test_when_value_off_int_step(self):
        with raises("parameter 'b': when {'n': 3} can never hold, 'n' is integers in [0, 10] step 2"):
            th.Space({"n": th.Int(0, 10, step=2), "b": th.Float(0, 1, when={"n": [2, 3]})})

    def test_when_true_is_not_one(self):
        with pytest.raises(th.SpaceError, match="can never hold"):
            th.Space({"a": th.Categorical([1, 2]), "b": th.Float(0, 1, when={"a": True})})

    def test_float_parent(self):
        with raises(
            "parameter 'b': parent 'a' is a Float; conditions need a Categorical, Int or Fixed parent"
        ):
            th.Space({"a": th.Float(0, 1), "b": th.Float(0, 1, when={"a": 0.5})})

    def test_bad_names_and_specs(self):
        with raises("parameter name '': names must be non-empty strings"):
            th.Space({"": th.Float(0, 1)})
        with raises("parameter 'a': unknown type 'foo' (expected one of float, int, categorical, fixed)"):
            th.Space({"a": {"type": "foo"}})
        with raises("parameter 'a': missing 'type' (one of float, int, categorical, fixed)"):
            th.Space({"a": {"low": 0, "high": 1}})
        with raises("parameter 'a': Float(low=1, high=0): low must be below high (use Fixed(value) for a constant)"):
            th.Space({"a": {"type": "float", "low": 1, "high": 0}})

    def test_order_puts_parents_first(self):
        s = th.Space(
            {
                "child": th.Float(0, 1, when={"mid": "m"}),
                "mid": th.Categorical(["m", "n"], when={"root": 1}),
                "root": th.Int(0, 2),
                "other": th.Float(0, 1),
            }
        )
        assert list(s) == ["root", "other", "mid", "child"]
        assert s.dim_names == ("root", "other", "mid", "child")

    def test_shorthands(self):
        s = th.Space({"a": ["x", "y"], "b": 5, "c": None})
        assert s["a"] == th.Categorical(["x", "y"])
        assert s["b"] == th.Fixed(5)
        assert s["c"] == th.Fixed(None)
        assert s.n_dims == 1 and s.dim_names == ("a",)


class TestValidateParams:
    def test_valid_params_are_normalized(self, space):
        out = space.validate({"opt": "adam", "lr": 1, "layers": 2.0, "width": 32})
        assert out == {"opt": "adam", "lr": 1.0, "layers": 2, "width": 32, "seed": 3}
        assert type(out["lr"]) is float and type(out["layers"]) is int
        assert list(out) == [n for n in space if n != "momentum"]

    def test_missing(self, space):
        with raises("parameter 'momentum' is missing ([0.0, 0.99])"):
            space.validate({"opt": "sgd", "lr": 0.1, "layers": 2, "width": 32})

    def test_unknown(self, space):
        with raises("unknown parameter(s) 'zz'; the space has 'opt', 'lr', 'layers', 'width', 'seed', 'momentum'"):
            space.validate({"opt": "adam", "lr": 0.1, "layers": 2, "width": 32, "zz": 1})

    def test_inactive(self, space):
        with raises("parameter 'momentum' is inactive here (active only when opt=['sgd']); remove it"):
            space.validate({"opt": "adam", "lr": 0.1, "layers": 2, "width": 32, "momentum": 0.5})

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("lr", 2.0, "parameter 'lr'=2.0 is outside [0.0001, 1.0] (log)"),
            ("lr", float("nan"), "parameter 'lr'=nan is outside [0.0001, 1.0] (log)"),
            ("lr", "0.1", "parameter 'lr'='0.1' is outside [0.0001, 1.0] (log)"),
            ("layers", 9, "parameter 'layers'=9 is not an integer in [1, 8]"),
            ("layers", 2.5, "parameter 'layers'=2.5 is not an integer in [1, 8]"),
            ("layers", True, "parameter 'layers'=True is not an integer in [1, 8]"),
            ("width", 40, "parameter 'width'=40 is not an integer in [16, 256] with step 16"),
            ("opt", "rms", "parameter 'opt'='rms' is not one of ['sgd', 'adam']"),
            ("seed", 4, "parameter 'seed'=4 must equal its fixed value 3"),
        ],
    )
    def test_out_of_range(self, space, name, value, message):
        params = {"opt": "adam", "lr": 0.1, "layers": 2, "width": 32} | {name: value}
        with raises(message):
            space.validate(params)
        assert not space.contains(params)

    def test_not_a_mapping(self, space):
        with raises("params must be a mapping of name to value, got list"):
            space.validate([("opt", "adam")])


# -- conditional activity -----------------------------------------------------------------------


class TestConditions:
    def test_inactive_params_absent_from_decode(self, space):
        i_opt = space.dim_names.index("opt")
        x = np.full(space.n_dims, 0.3)
        x[i_opt] = 0.1  # sgd
        sgd = space.decode(x)
        x[i_opt] = 0.9  # adam
        adam = space.decode(x)
        assert sgd["opt"] == "sgd" and "momentum" in sgd
        assert adam["opt"] == "adam" and "momentum" not in adam
        assert sgd["seed"] == adam["seed"] == 3

    def test_nested_conditions_and_several_parents(self):
        s = th.Space(
            {
                "model": ["linear", "tree"],
                "depth": th.Int(1, 5, when={"model": "tree"}),
                "prune": th.Categorical([True, False], when={"model": "tree"}),
                # active only for deep, pruned trees
                "alpha": th.Float(0, 1, when={"depth": [4, 5], "prune": True}),
                "c": th.Fixed("x", when={"model": "linear"}),
            }
        )
        seen = set()
        for x in np.random.default_rng(0).random((400, s.n_dims)):
            p = s.decode(x)
            s.validate(p)
            if p["model"] == "linear":
                assert set(p) == {"model", "c"}
            else:
                expect = {"model", "depth", "prune"} | ({"alpha"} if p["depth"] >= 4 and p["prune"] is True else set())
                assert set(p) == expect
            seen.add(tuple(sorted(p)))
        assert len(seen) == 3  # linear, tree without alpha, tree with alpha

    def test_is_active(self, space):
        assert space.is_active("momentum", {"opt": "sgd"})
        assert not space.is_active("momentum", {"opt": "adam"})
        assert not space.is_active("momentum", {})
        assert space.is_active("lr", {})

    def test_bool_parent_value_not_confused_with_int(self):
        s = th.Space({"flag": [True, 1], "x": th.Float(0, 1, when={"flag": True})})
        assert s.is_active("x", {"flag": True})
        assert not s.is_active("x", {"flag": 1})
        assert "x" not in s.decode([0.9, 0.5])  # flag=1
        assert "x" in s.decode([0.1, 0.5])  # flag=True

    def test_decode_nan_uses_middle(self, space):
        p = space.decode([float("nan")] * space.n_dims)
        space.validate(p)
        assert p["layers"] == 5  # the cell containing 0.5 among 1..8

    def test_decode_wrong_length(self, space):
        with raises("decode: expected a vector of length 5, got 1"):
            space.decode([0.5])

    def test_encode_inactive_is_nan(self, space):
        x = space.encode({"opt": "adam", "lr": 0.01, "layers": 1, "width": 256, "seed": 3})
        assert x.shape == (5,)
        assert math.isnan(x[space.dim_names.index("momentum")])
        assert x[space.dim_names.index("lr")] == pytest.approx(0.5)
        assert x[space.dim_names.index("layers")] == pytest.approx(0.5 / 8)
        assert x[space.dim_names.index("width")] == pytest.approx(15.5 / 16)
        assert x[space.dim_names.index("opt")] == pytest.approx(0.75)

    def test_float_ends_decode_exactly(self):
        # exp(log(x)) and low + (high - low) are not always exact; the ends must be.
        for f in (th.Float(1e-4, 0.3, log=True), th.Float(-0.3, 0.9), th.Float(1e-3, 0.1, log=True)):
            s = th.Space({"f": f})
            assert s.decode([0.0]) == {"f": f.low}
            assert s.decode([1.0]) == {"f": f.high}
            assert s.decode([-5.0]) == {"f": f.low}
            assert s.decode([7.0]) == {"f": f.high}

    def test_log_float_is_log_uniform(self):
        s = th.Space({"f": th.Float(1e-6, 1.0, log=True)})
        assert s.decode([0.5])["f"] == pytest.approx(1e-3)
        assert s.encode({"f": 1e-2}) == pytest.approx([4 / 6])


# -- serialization ----------------------------------------------------------------------------


def _rich_space() -> th.Space:
    return th.Space(
        {
            "opt": th.Categorical(["sgd", "adam", True, None, 1, 2.5]),
            "lr": th.Float(1e-5, 0.5, log=True),
            "frac": th.Float(-1.0, 1.0),
            "momentum": th.Float(0.0, 0.99, when={"opt": ["sgd", True]}),
            "n": th.Int(1, 1000, log=True),
            "width": th.Int(8, 64, step=8, when={"opt": "adam"}),
            "nest": th.Fixed(None, when={"width": [8, 64]}),
            "name": th.Fixed("run"),
        }
    )


class TestSerialization:
    def test_to_dict_form(self):
        s = th.Space({"a": ["x", "y"], "b": th.Float(1e-3, 1, log=True, when={"a": "x"}), "c": th.Int(0, 10, step=2)})
        assert s.to_dict() == {
            "a": {"type": "categorical", "choices": ["x", "y"]},
            "c": {"type": "int", "low": 0, "high": 10, "step": 2},
            "b": {"type": "float", "low": 1e-3, "high": 1.0, "log": True, "when": {"a": "x"}},
        }

    def test_dict_round_trip(self):
        s = _rich_space()
        again = th.Space.from_dict(s.to_dict())
        assert again == s
        assert hash(again) == hash(s)
        assert list(again) == list(s)
        assert again.dim_names == s.dim_names

    def test_json_round_trip(self):
        s = _rich_space()
        text = s.to_json()
        json.loads(text)  # valid JSON
        assert th.Space.from_json(text) == s

    def test_yaml_round_trip(self):
        s = _rich_space()
        assert th.Space.from_yaml(yaml.safe_dump(s.to_dict(), sort_keys=False)) == s

    def test_yaml_hand_written(self):
        text = """
opt: [sgd, adam]
lr: {type: float, low: 1.0e-4, high: 1.0, log: true}
momentum: {type: float, low: 0.0, high: 0.99, when: {opt: sgd}}
batch: 32
"""
        s = th.Space.from_yaml(text)
        assert s["opt"] == th.Categorical(["sgd", "adam"])
        assert s["lr"] == th.Float(1e-4, 1.0, log=True)
        assert s["momentum"] == th.Float(0.0, 0.99, when={"opt": "sgd"})
        assert s["batch"] == th.Fixed(32)

    def test_from_file(self, tmp_path):
        s = _rich_space()
        jp = tmp_path / "space.json"
        jp.write_text(s.to_json(), encoding="utf-8")
        yp = tmp_path / "space.yaml"
        yp.write_text(yaml.safe_dump(s.to_dict()), encoding="utf-8")
        yml = tmp_path / "space.yml"
        yml.write_text(yaml.safe_dump(s.to_dict()), encoding="utf-8")
        assert th.Space.from_file(str(jp)) == s
        assert th.Space.from_file(str(yp)) == s
        assert th.Space.from_file(str(yml)) == s

    def test_invalid_text(self):
        with pytest.raises(th.SpaceError, match="^space JSON is invalid: "):
            th.Space.from_json("{bad")
        with pytest.raises(th.SpaceError, match="^space YAML is invalid: "):
            th.Space.from_yaml("a: [1, 2")

    def test_equality_is_type_sensitive_and_consistent_with_hash(self):
        ints = th.Space({"x": th.Categorical([1, 2])})
        bools = th.Space({"x": th.Categorical([True, 2])})
        assert type(ints.decode([0.1])["x"]) is int and type(bools.decode([0.1])["x"]) is bool
        assert ints != bools
        assert th.Fixed(1) != th.Fixed(True)
        assert ints == th.Space({"x": [1, 2]})
        assert hash(ints) == hash(th.Space({"x": [1, 2]}))
        assert th.Float(0, 1) != th.Float(0, 1, log=False, when={"a": "x"})


# -- property-based tests ---------------------------------------------------------------------

# JSON-storable scalar choices, including bools and None; 1 and 1.0 are one choice, True is not 1.
SCALARS = st.one_of(
    st.text(max_size=4),
    st.integers(-20, 20),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)


def _typed_key(v):
    if isinstance(v, bool) or v is None:
        return (type(v).__name__, v)
    if isinstance(v, (int, float)):
        return ("num", float(v))
    return ("str", v)


@st.composite
def float_params(draw, when):
    if draw(st.booleans()):
        low = draw(st.floats(1e-8, 1e4))
        high = low * draw(st.floats(1.001, 1e6))
        return th.Float(low, high, log=True, when=when)
    low = draw(st.floats(-1e6, 1e6, allow_subnormal=False))
    high = low + draw(st.floats(1e-3, 1e6))
    return th.Float(low, high, when=when)


@st.composite
def int_params(draw, when):
    if draw(st.booleans()):
        low = draw(st.integers(1, 1000))
        return th.Int(low, low + draw(st.integers(1, 100_000)), log=True, when=when)
    low = draw(st.integers(-1000, 1000))
    step = draw(st.integers(1, 7))
    return th.Int(low, low + step * draw(st.integers(1, 60)), step=step, when=when)


def _domain(p) -> list:
    """Every value of a discrete parameter (a sample of them for big Ints)."""
    if isinstance(p, th.Categorical):
        return list(p.choices)
    if isinstance(p, th.Fixed):
        return [p.value]
    values = p.values()
    return values if len(values) <= 50 else values[:25] + values[-25:]


@st.composite
def spaces(draw):
    n = draw(st.integers(1, 7))
    params: dict = {}
    for i in range(n):
        name = f"p{i}"
        when = None
        parents = [k for k, p in params.items() if not isinstance(p, th.Float)]
        if parents and draw(st.booleans()):
            parent = draw(st.sampled_from(parents))
            domain = st.sampled_from(_domain(params[parent]))
            values = draw(st.lists(domain, min_size=1, max_size=3, unique_by=_typed_key))
            when = {parent: values[0] if len(values) == 1 and draw(st.booleans()) else values}
        kind = draw(st.sampled_from(["float", "int", "categorical", "fixed"]))
        if kind == "float":
            params[name] = draw(float_params(when))
        elif kind == "int":
            params[name] = draw(int_params(when))
        elif kind == "categorical":
            choices = draw(st.lists(SCALARS, min_size=1, max_size=5, unique_by=_typed_key))
            params[name] = th.Categorical(choices, when=when)
        else:
            params[name] = th.Fixed(draw(SCALARS), when=when)
    return th.Space(params)


@st.composite
def space_and_params(draw):
    """A space and a valid parameter set drawn value by value (not through ``decode``)."""
    s = draw(spaces())
    params: dict = {}
    for name in s:
        if not s.is_active(name, params):
            continue
        p = s[name]
        if isinstance(p, th.Float):
            params[name] = draw(st.floats(p.low, p.high))
        elif isinstance(p, th.Int):
            params[name] = draw(st.sampled_from(p.values()) if p.n_values <= 10_000 else st.integers(p.low, p.high))
        elif isinstance(p, th.Categorical):
            params[name] = draw(st.sampled_from(p.choices))
        else:
            params[name] = p.value
    return s, params


#: 50 examples per property in the default run, 200 in ``make test-all`` (THRIFTY_TEST_THOROUGH=1).
PROPERTY = settings(max_examples=200 if THOROUGH else 50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_encoding_shape(s: th.Space, params: dict, x: np.ndarray) -> None:
    assert x.shape == (s.n_dims,)
    assert s.dim_names == tuple(n for n in s if not isinstance(s[n], th.Fixed))
    for i, name in enumerate(s.dim_names):
        if name in params:
            assert 0.0 <= x[i] <= 1.0, (name, x[i])
        else:
            assert math.isnan(x[i]), (name, x[i])


@PROPERTY
@given(data=st.data())
def test_property_decode_is_always_valid(data):
    s = data.draw(spaces())
    x = data.draw(st.lists(st.floats(0.0, 1.0), min_size=s.n_dims, max_size=s.n_dims))
    params = s.decode(x)
    normalized = s.validate(params)  # raises if invalid
    assert [(k, _typed_key(v)) for k, v in normalized.items()] == [(k, _typed_key(v)) for k, v in params.items()]
    # every active parameter is present, no inactive one is
    partial: dict = {}
    for name in s:
        if s.is_active(name, partial):
            assert name in params
            partial[name] = params[name]
        else:
            assert name not in params
    _assert_encoding_shape(s, params, s.encode(params))


@PROPERTY
@given(sp=space_and_params())
def test_property_encode_decode_round_trip(sp):
    s, params = sp
    s.validate(params)
    x = s.encode(params)
    _assert_encoding_shape(s, params, x)
    back = s.decode(x)
    assert list(back) == list(params)
    for name, value in params.items():
        p = s[name]
        got = back[name]
        if isinstance(p, th.Float):
            assert type(got) is float
            if p.log:
                assert math.isclose(got, value, rel_tol=1e-9), (p, value, got)
            else:  # relative to the range: values near 0 of a wide range carry absolute error
                assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9 * (p.high - p.low)), (p, value, got)
        else:
            assert type(got) is type(value) and got == value, (p, value, got)


@PROPERTY
@given(data=st.data())
def test_property_encode_in_unit_cube_or_nan_when_inactive(data):
    s = data.draw(spaces())
    x = data.draw(st.lists(st.floats(0.0, 1.0), min_size=s.n_dims, max_size=s.n_dims))
    params = s.decode(x)
    e = s.encode(params)
    _assert_encoding_shape(s, params, e)
    # decoding the encoding gives the same point again (discrete dims exactly)
    again = s.decode(e)
    assert list(again) == list(params)
    for name in params:
        if not isinstance(s[name], th.Float):
            assert _typed_key(again[name]) == _typed_key(params[name])


@PROPERTY
@given(s=spaces())
def test_property_serialization_round_trip(s):
    for again in (th.Space.from_dict(s.to_dict()), th.Space.from_json(s.to_json())):
        assert again == s
        assert hash(again) == hash(s)
        assert again.dim_names == s.dim_names
