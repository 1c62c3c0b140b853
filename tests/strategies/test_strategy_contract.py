"""The contract every registered strategy keeps, run over every name in the registry.

A strategy is a pure function of ``(space, history, seed, number)`` (``thrifty.strategies.base``):
the same inputs give the same proposals in any process and in any fresh object; every proposal is
a valid parameter set of the space (conditional and mixed spaces included); it proposes from an
empty history and in batches; pending and running trials in the history do not break it, and a
strategy that promises it never proposes a configuration already in flight; bad constructor
arguments raise ``ValidationError``; ``to_spec()`` builds an equal strategy.

Every name of ``thrifty.strategies.available()`` must have a :class:`Case` in :data:`CASES`: a new
strategy fails :func:`test_every_registered_strategy_has_a_case` until it is described here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import builders
import pytest
from _contract import (
    assert_constructor_refuses,
    assert_refused_naming_the_argument,
    bad_argument_cases,
    json_round_trip,
    known_gap,
)

import thrifty as th
from thrifty.strategies import Context, Strategy, available, make_strategy
from thrifty.strategies.base import params_key

SPACES = {
    "continuous": th.Space({"x": th.Float(0.0, 1.0), "y": th.Float(-5.0, 5.0)}),
    "mixed": th.Space({
        "lr": th.Float(1e-4, 1.0, log=True),
        "units": th.Int(16, 64, log=True),
        "layers": th.Int(1, 4),
        "act": th.Categorical(["relu", "tanh"]),
        "dropout": th.Float(0.0, 0.5),
        "epochs": th.Fixed(9),
    }),
    "conditional": th.Space({
        "model": th.Categorical(["svm", "tree"]),
        "C": th.Float(1e-3, 1e3, log=True, when={"model": "svm"}),
        "kernel": th.Categorical(["rbf", "linear"], when={"model": "svm"}),
        "gamma": th.Float(1e-4, 1.0, log=True, when={"kernel": "rbf"}),
        "depth": th.Int(1, 12, when={"model": "tree"}),
    }),
}
ONE = {"value": "max"}
TWO = {"value": "max", "cost": "min"}


@dataclass(frozen=True)
class Case:
    """How the suite exercises one registered strategy.

    ``spec``: a non-default configuration (small start-up counts, so a 16-trial history reaches the
    model). ``bad``: values of the constructor's arguments each of which must be refused (an
    unknown argument is tried for every strategy). ``objectives``: what the
    strategy is meant for. ``no_duplicates``: whether it promises never to propose a configuration
    that is already in the history (pending and running trials included).
    """

    spec: Mapping[str, Any]
    bad: Sequence[Mapping[str, Any]]
    objectives: Mapping[str, str] = field(default_factory=lambda: ONE)
    no_duplicates: bool = False


CASES: dict[str, Case] = {
    "random": Case({"name": "random"}, bad=[]),
    "sobol": Case({"name": "sobol"}, bad=[]),
    "grid": Case({"name": "grid", "points_per_float": 3, "shuffle": True},
                 bad=[{"points_per_float": 0}, {"points_per_float": 2.5}, {"points_per_float": True},
                      {"points_per_float": "3"}], no_duplicates=True),
    "gp": Case({"name": "gp", "n_startup": 4, "n_candidates": 64},
               bad=[{"n_startup": 0}, {"n_candidates": 8}, {"max_points": 5}, {"cost_aware": "yes"}]),
    "tpe": Case({"name": "tpe", "n_startup": 4, "n_candidates": 16},
                bad=[{"n_startup": -1}, {"n_candidates": 0}, {"gamma": 0.0}, {"gamma": 1.5}, {"max_good": 0},
                     {"prior_weight": 0.0}, {"cost_aware": 1}]),
    "nsga2": Case({"name": "nsga2", "population_size": 4},
                  bad=[{"population_size": 3}, {"population_size": 4.0}, {"crossover_prob": 1.5},
                       {"eta_crossover": 0.0}, {"eta_mutation": float("nan")}],
                  objectives=TWO),
    "bohb": Case({"name": "bohb", "min_points": 3, "inner": {"name": "tpe", "n_startup": 3}},
                 bad=[{"min_resource": 0}, {"reduction_factor": 1.0}, {"min_points": 1}, {"inner": "nope"},
                      {"impute_stopped": "yes"}]),
    "mfgp": Case({"name": "mfgp", "n_startup": 4, "n_candidates": 64},
                 bad=[{"min_resource": -1}, {"reduction_factor": 0.5}, {"n_candidates": 1}]),
    "eeipu": Case({"name": "eeipu", "n_startup": 4, "n_candidates": 64, "completions": 8},
                  bad=[{"n_startup": 0}, {"n_candidates": 8}, {"completions": 0}, {"max_prefixes": 0},
                       {"cost_exponent": 1.5}, {"cost_exponent": "cool"}, {"max_points": 5}]),
    "auto": Case({"name": "auto"}, bad=[]),
}

def names() -> list[str]:
    return available()


def case(name: str) -> Case:
    if name not in CASES:
        pytest.fail(f"strategy {name!r} is registered but has no Case in tests/strategies/test_strategy_contract.py")
    return CASES[name]


def strategy(name: str) -> Strategy:
    """A fresh strategy of the case's configuration, bound to its objectives as a study would."""
    c = case(name)
    s = make_strategy(dict(c.spec))
    s.bind(Context(objectives=dict(c.objectives)))
    return s


def propose(s: Strategy, space: th.Space, history: Sequence[th.Trial], *, seed: int = 7, number: int | None = None,
            n: int = 1) -> list[dict[str, Any]]:
    s.prepare(space)
    return s.propose(space, list(history), seed=seed, number=len(history) if number is None else number, n=n)


def history(space: th.Space, objectives: Mapping[str, str], *, curves: bool, n: int = 16) -> list[th.Trial]:
    """``n`` trials at seeded random points of ``space``: mostly completed, some failed, stopped,
    running and pending (every fifth trial onward cycles through those). With ``curves`` the
    completed and stopped ones reported steps 1..9 of a learning curve (what a multi-fidelity
    strategy learns from); otherwise completed ones told only final values."""
    out = []
    for t in builders.random_history(space, n, seed=11):
        u = float(space.encode(t.params)[0])  # a value that depends on the configuration
        metrics = {m: (u if d == "max" else 1.0 - u) for m, d in objectives.items()}
        kind = ("completed", "completed", "failed", "stopped", "running", "pending")[t.number % 6]
        steps = 9 if kind == "completed" else 3
        ms = (builders.measurements([metrics["value"] * s / 9 for s in range(1, steps + 1)])
              if curves and kind in ("completed", "stopped") else ())
        final = metrics if kind == "completed" else dict(ms[-1].metrics) if ms else {}
        out.append(builders.trial(t.number, state=kind, params=t.params, metrics=final, measurements=ms))
    return out


def keys(proposals: Sequence[Mapping[str, Any]]) -> list[str]:
    return [params_key(p) for p in proposals]


# -- the registry ---------------------------------------------------------------------------------
def test_every_registered_strategy_has_a_case():
    assert sorted(CASES) == names(), "describe each registered strategy in CASES (and only those)"


# -- determinism ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_same_seed_and_history_give_the_same_proposals_in_fresh_and_used_objects(name, space_name):
    space, objectives = SPACES[space_name], case(name).objectives
    hist = history(space, objectives, curves=True)
    first = propose(strategy(name), space, hist, n=2)
    assert keys(propose(strategy(name), space, hist, n=2)) == keys(first)
    # An object that proposed for other histories and numbers (caches warm) still agrees.
    used = strategy(name)
    propose(used, space, hist[:7], seed=3)
    propose(used, space, history(space, objectives, curves=False), seed=7)
    assert keys(propose(used, space, hist, n=2)) == keys(first)


@pytest.mark.parametrize("name", [n for n in names() if n != "grid"])  # a grid's first points repeat
def test_the_seed_is_what_varies_a_first_proposal(name):
    space = SPACES["continuous"]
    draws = {params_key(propose(strategy(name), space, [], seed=seed)[0]) for seed in range(4)}
    assert len(draws) == 4


# -- validity -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("space_name", sorted(SPACES))
@pytest.mark.parametrize("curves", [False, True], ids=["final-values", "learning-curves"])
def test_proposals_are_valid_parameter_sets_of_the_space(name, space_name, curves):
    space = SPACES[space_name]
    hist = history(space, case(name).objectives, curves=curves)
    out = propose(strategy(name), space, hist, n=3)
    assert len(out) == 3
    for p in out:
        assert space.validate(p) == p, f"{name} proposed {p}, not a parameter set of the space"


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_an_empty_history_is_enough(name, space_name):
    space = SPACES[space_name]
    for n in (1, 4):
        out = propose(strategy(name), space, [], number=0, n=n)
        assert len(out) == n and all(space.validate(p) == p for p in out)


@pytest.mark.parametrize("name", names())
def test_a_batch_holds_distinct_configurations(name):
    space = SPACES["mixed"]
    out = propose(strategy(name), space, history(space, case(name).objectives, curves=False), n=5)
    assert len(set(keys(out))) == 5, out


# -- trials in flight -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("state", ["pending", "running"])
def test_a_configuration_in_flight_is_not_proposed_again(name, state):
    """What a second worker sees: the first worker's proposal for trial ``k`` is in the history
    (pending or running) when it proposes for trial ``k + 1``."""
    space = SPACES["mixed"]
    hist = history(space, case(name).objectives, curves=False)
    (first,) = propose(strategy(name), space, hist)
    in_flight = builders.trial(len(hist), state=state, params=first)
    (second,) = propose(strategy(name), space, [*hist, in_flight])
    assert space.validate(second) == second
    assert params_key(second) != params_key(first)


@pytest.mark.parametrize("name", [n for n in names() if case(n).no_duplicates])
def test_a_strategy_that_promises_no_duplicates_skips_every_configuration_in_the_history(name):
    space = th.Space({"a": th.Categorical(["p", "q"]), "b": th.Int(1, 3)})  # six configurations
    taken = [{"a": "p", "b": 1}, {"a": "q", "b": 2}, {"a": "p", "b": 3}]
    hist = [builders.pending(0, taken[0]), builders.running(1, taken[1]), builders.completed(2, taken[2], 0.5)]
    out = propose(strategy(name), space, hist, n=3)
    assert not set(keys(out)) & set(keys(taken)) and len(set(keys(out))) == 3
    with pytest.raises(th.StudyExhausted):
        propose(strategy(name), space, hist, n=4)


# -- construction ---------------------------------------------------------------------------------
#: Known gaps (issue 12 item 5, `specs`): remove an entry when its case passes (the marks are strict).
#: A class without an ``__init__`` answers an unknown argument with Python's "X() takes no arguments".
UNKNOWN_ARGUMENT_NOT_NAMED: set[str] = set()
#: ``BOHB(inner="nope")`` says "unknown strategy 'nope'" without naming ``inner``.
BAD_VALUE_NOT_NAMED: set[tuple[str, str]] = set()
#: Whether constructors raise ``ValidationError`` themselves; today they raise a bare ``ValueError``
#: that ``make_strategy`` wraps (except where :data:`CONSTRUCTOR_ALREADY_VALIDATES`). Set it to True
#: when `specs` lands.
CONSTRUCTORS_VALIDATE = True
CONSTRUCTOR_ALREADY_VALIDATES = {("bohb", "inner")}
BAD = {n: CASES[n].bad for n in names() if n in CASES}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=known_gap(n in UNKNOWN_ARGUMENT_NOT_NAMED, "the message does not name the argument"))
    for n in names()
])
def test_an_unknown_argument_by_spec_raises_a_validation_error_naming_it(name):
    assert_refused_naming_the_argument(make_strategy, {"name": name, "no_such_argument": 1}, "no_such_argument")


@pytest.mark.parametrize(("name", "kwargs"), bad_argument_cases(
    BAD, lambda name, arg: (name, arg) in BAD_VALUE_NOT_NAMED, "the message does not name the argument"))
def test_bad_arguments_by_spec_raise_a_one_line_validation_error_naming_the_argument(name, kwargs):
    assert_refused_naming_the_argument(make_strategy, {"name": name, **kwargs}, next(iter(kwargs)))


@pytest.mark.parametrize(("name", "kwargs"), bad_argument_cases(
    BAD, lambda name, arg: not CONSTRUCTORS_VALIDATE and (name, arg) not in CONSTRUCTOR_ALREADY_VALIDATES,
    "the constructor raises a bare ValueError until `specs` validates it"))
def test_bad_arguments_to_the_constructor_raise_a_validation_error(name, kwargs):
    assert_constructor_refuses(make_strategy, name, kwargs)


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("configured", [False, True], ids=["defaults", "configured"])
def test_to_spec_round_trips_through_json_to_an_equal_strategy(name, configured):
    original = make_strategy(dict(case(name).spec) if configured else name)
    rebuilt = json_round_trip(make_strategy, original, name)
    space, objectives = SPACES["mixed"], case(name).objectives
    hist = history(space, objectives, curves=True)
    for s in (original, rebuilt):
        s.bind(Context(objectives=dict(objectives)))
    assert keys(propose(rebuilt, space, hist, n=2)) == keys(propose(original, space, hist, n=2))
