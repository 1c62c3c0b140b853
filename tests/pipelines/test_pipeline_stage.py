"""Pipelines and stage-prefix keys: the space is the union of the stages', and a prefix's key
changes when, and only when, one of its parameters or a version of one of its stages changes."""

from __future__ import annotations

import pytest

import thrifty as th
from thrifty.pipelines import PipelineShape


def _fn(p, data):
    return data


def _pipe(v_prep: int = 1, v_train: int = 1) -> th.Pipeline:
    return th.Pipeline([
        th.Stage("prep", _fn, space={"n": th.Int(8, 64)}, version=v_prep),
        th.Stage("train", _fn, space={"lr": th.Float(1e-4, 1e-1, log=True), "depth": th.Int(2, 8)},
                 version=v_train),
        th.Stage("eval", _fn, space={"threshold": th.Float(0.1, 0.9)}),
    ])


P = {"n": 16, "lr": 0.01, "depth": 3, "threshold": 0.5}


def test_the_space_is_the_union_of_the_stages_spaces() -> None:
    pipe = _pipe()
    assert set(pipe.space) == {"n", "lr", "depth", "threshold"}
    assert pipe.stage_params == (("n",), ("lr", "depth"), ("threshold",))


def test_a_prefix_key_changes_with_its_own_parameters_only() -> None:
    pipe = _pipe()
    keys = [pipe.key(i, P) for i in range(3)]
    assert len(set(keys)) == 3
    # A later stage's parameter leaves earlier prefixes' keys alone.
    later = {**P, "threshold": 0.7}
    assert [pipe.key(i, later) for i in range(3)] == [keys[0], keys[1], pipe.key(2, later)]
    assert pipe.key(2, later) != keys[2]
    train = {**P, "depth": 4}
    assert pipe.key(0, train) == keys[0] and pipe.key(1, train) != keys[1] and pipe.key(2, train) != keys[2]
    prep = {**P, "n": 17}
    assert all(pipe.key(i, prep) != keys[i] for i in range(3))
    # The same values in another order or another dict: the same key (canonical JSON).
    assert pipe.key(1, dict(reversed(list(P.items())))) == keys[1]


def test_a_version_bump_changes_the_keys_from_that_stage_on() -> None:
    keys = [_pipe().key(i, P) for i in range(3)]
    bumped = [_pipe(v_train=2).key(i, P) for i in range(3)]
    assert bumped[0] == keys[0] and bumped[1] != keys[1] and bumped[2] != keys[2]
    assert all(a != b for a, b in zip(keys, [_pipe(v_prep="2").key(i, P) for i in range(3)]))


def test_the_stored_shape_gives_the_same_keys() -> None:
    pipe = _pipe()
    shape = PipelineShape.from_dict(pipe.shape.to_dict())
    assert [shape.key(i, P) for i in range(3)] == [pipe.key(i, P) for i in range(3)]


def test_bad_pipelines_are_one_line_errors() -> None:
    with pytest.raises(th.ValidationError, match=r"parameter 'n' is in stages 'a' and 'b'.*rename one") as e:
        th.Pipeline([th.Stage("a", _fn, space={"n": th.Int(1, 2)}), th.Stage("b", _fn, space={"n": th.Int(1, 2)})])
    assert "\n" not in str(e.value)
    with pytest.raises(th.ValidationError, match="two stages are named 'a'"):
        th.Pipeline([th.Stage("a", _fn, space={"n": th.Int(1, 2)}), th.Stage("a", _fn)])
    with pytest.raises(th.ValidationError, match="non-empty list of th.Stage"):
        th.Pipeline([])
    with pytest.raises(th.ValidationError, match="not callable"):
        th.Stage("a", 3)
    with pytest.raises(th.ValidationError, match="cache_max_bytes"):
        th.Pipeline([th.Stage("a", _fn, space={"n": th.Int(1, 2)})], cache_max_bytes=0)
    with pytest.raises(th.ValidationError, match="space= or pipeline=, not both"):
        th.Study.create({"n": th.Int(1, 2)}, pipeline=_pipe(), storage="memory")
    with pytest.raises(th.ValidationError, match="give space= .* or pipeline="):
        th.Study.create(storage="memory")
