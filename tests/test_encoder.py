"""The space's vectorised encoder (thrifty.encoding.Encoder via encoder_of(space))."""

from __future__ import annotations

import math

import numpy as np
import pytest

import thrifty as th
from thrifty.encoding import Column, encoder_of
from thrifty.errors import SpaceError

SPACE = th.Space({
    "opt": th.Categorical(["sgd", "adam", "rms"]),
    "lr": th.Float(1e-4, 1.0, log=True),
    "momentum": th.Float(0.0, 0.99, when={"opt": "sgd"}),
    "beta": th.Int(2, 300, log=True, when={"opt": ["adam", "rms"]}),
    "layers": th.Int(1, 9, step=2),
    "flag": th.Categorical([True, None, 1.5]),
    "seed": th.Fixed(3),
    "deep": th.Float(-1.0, 1.0, when={"layers": [7, 9]}),
})


def test_layout_names_kinds_and_masks() -> None:
    enc = encoder_of(SPACE)
    assert enc is encoder_of(SPACE)  # built once per space
    assert enc.names == SPACE.dim_names and enc.n_dims == 7  # the Fixed one has no column
    assert enc.columns[enc.column("beta")] == Column("beta", "int", True, 299, True)
    assert enc.columns[enc.column("opt")] == Column("opt", "categorical", False, 3, False)
    assert enc.columns[enc.column("layers")] == Column("layers", "int", False, 5, False)
    assert enc.columns[enc.column("lr")] == Column("lr", "float", True, 0, False)
    assert [enc.names[i] for i in enc.categorical] == ["opt", "flag"]
    assert enc.names == ("opt", "lr", "layers", "flag", "momentum", "beta", "deep")  # parents first
    assert [enc.names[i] for i in enc.continuous] == ["lr", "layers", "momentum", "beta", "deep"]
    assert [enc.names[i] for i in enc.conditional] == ["momentum", "beta", "deep"]
    assert enc.has_discrete
    with pytest.raises(SpaceError, match="'seed' has no column"):
        enc.column("seed")


def test_encode_matches_space_encode_bit_for_bit_and_round_trips() -> None:
    enc = encoder_of(SPACE)
    u = np.random.default_rng(0).random((500, enc.n_dims))
    u[::7, 1] = np.nan  # nan reads as the middle
    u[::5, 0] = 1.7  # clipped into the cube
    params = enc.decode(u)
    assert params == [SPACE.decode(row) for row in u]
    assert all(SPACE.contains(p) for p in params)
    x = enc.encode(params)
    assert x.shape == (500, enc.n_dims)
    single = np.array([SPACE.encode(p) for p in params])
    assert x.tobytes() == single.tobytes()  # the same floats, nan where inactive
    assert enc.decode(x) == params  # decode(encode(p)) == p
    inactive = np.isnan(x)
    for i, name in enumerate(enc.names):
        assert (~inactive[:, i]).tolist() == [name in p for p in params]


def test_values_and_types_of_decoded_params() -> None:
    enc = encoder_of(SPACE)
    rows = [{"opt": 0.1, "lr": 0.0, "layers": 0.99, "flag": 0.5, "momentum": 0.5, "beta": 0.5, "deep": 1.0},
            {"opt": 0.5, "lr": 1.0, "layers": 0.1, "flag": 0.1, "momentum": 0.5, "beta": 0.0, "deep": 0.0}]
    got = enc.decode([[row[name] for name in enc.names] for row in rows])
    assert got[0] == {"opt": "sgd", "lr": 1e-4, "layers": 9, "flag": None, "seed": 3, "momentum": 0.495,
                      "deep": 1.0}
    assert list(got[0]) == list(SPACE.decode([rows[0][name] for name in enc.names]))  # space order
    assert got[1] == {"opt": "adam", "lr": 1.0, "layers": 1, "flag": True, "seed": 3, "beta": 2}
    assert type(got[0]["layers"]) is int and type(got[1]["flag"]) is bool and type(got[0]["lr"]) is float


def test_decode_wrong_shape_is_one_line_space_error() -> None:
    with pytest.raises(SpaceError, match=r"expected an array of shape \(n, 7\), got \(2, 3\)"):
        encoder_of(SPACE).decode(np.zeros((2, 3)))


def test_snap_is_the_encoding_of_what_decodes() -> None:
    enc = encoder_of(SPACE)
    u = np.random.default_rng(1).random((300, enc.n_dims))
    snapped = enc.snap(u)
    again = enc.encode(enc.decode(u))
    assert np.array_equal(np.isnan(snapped), np.isnan(again))
    assert np.allclose(np.nan_to_num(snapped), np.nan_to_num(again), rtol=0, atol=1e-12)
    assert enc.decode(snapped) == enc.decode(u)
    keys = enc.keys(snapped)
    assert keys == enc.keys(enc.snap(snapped)) and len(set(keys)) == len({repr(p) for p in enc.decode(u)})


def test_cell_edges_hold_each_value_in_its_cell() -> None:
    enc = encoder_of(SPACE)
    for name in ("beta", "layers"):
        i = enc.column(name)
        edges = enc.cell_edges(i)
        p = SPACE[name]
        assert edges[0] == 0.0 and edges[-1] == 1.0 and len(edges) == p.n_values + 1
        x = enc.encode([{name: v} for v in p.values()])[:, i]
        assert np.all((edges[:-1] < x) & (x < edges[1:]))


def test_neighbours_and_all_points() -> None:
    space = th.Space({"a": th.Categorical(["p", "q", "r"]), "b": th.Int(1, 5), "c": th.Int(1, 6, log=True),
                      "d": th.Int(0, 2, when={"a": "p"})})
    enc = encoder_of(space)
    every = enc.all_points(10_000)
    assert every is not None
    decoded = enc.decode(every)
    assert len({repr(p) for p in decoded}) == len(decoded) == 3 * 5 * 6 + 2 * 5 * 6  # d only with a=p
    assert enc.all_points(10) is None and encoder_of(SPACE).all_points(10**9) is None  # too many; a float
    x = enc.encode([{"a": "q", "b": 1, "c": 3}])[0]
    moves = enc.decode(enc.neighbours(x, x))
    assert sorted(map(repr, moves)) == sorted(map(repr, [
        {"a": "p", "b": 1, "c": 3, "d": 1}, {"a": "r", "b": 1, "c": 3}, {"a": "q", "b": 2, "c": 3},
        {"a": "q", "b": 1, "c": 2}, {"a": "q", "b": 1, "c": 4}]))


def test_int_log_bounds_are_public() -> None:
    lo, hi = th.Int(1, 10, log=True).log_bounds()
    assert lo == math.log(0.5) and hi == math.log(10.5)
