"""TPE: multivariate Parzen estimators, constant liar, constraints, cost-aware search."""

from __future__ import annotations

import math

import builders
import numpy as np
import pytest
from scipy.stats import wilcoxon

import thrifty as th
from thrifty.cost.forecast import CostModel
from thrifty.ranking import front_ranks, fronts
from thrifty.strategies import Context, available, make_strategy
from thrifty.strategies.random import RandomSearch
from thrifty.strategies.tpe import TPE
from thrifty.testfunctions import problem

MIXED = th.Space(
    {
        "opt": ["sgd", "adam", None, True],
        "lr": th.Float(1e-6, 1.0, log=True),
        "momentum": th.Float(0.0, 0.99, when={"opt": "sgd"}),
        "layers": th.Int(1, 8),
        "width": th.Int(16, 256, step=16, when={"opt": ["adam", True]}),
        "batch": th.Int(8, 1024, log=True),
        "tag": th.Fixed("x"),
    }
)


def _mixed_objective(p) -> float:
    v = (math.log10(p["lr"]) + 3) ** 2 + 0.3 * abs(p["layers"] - 5) + 0.1 * abs(math.log2(p["batch"]) - 6)
    if p["opt"] == "sgd":
        v += (p["momentum"] - 0.9) ** 2
    elif p["opt"] in ("adam", True):
        v += 0.5 + abs(p["width"] - 128) / 256
    else:
        v += 1.5
    return v


def _run(space, f, strategy, seed, n, objective="min", **kwargs) -> th.Study:
    study = th.Study.create(space, {"y": objective}, storage="memory", strategy=strategy, seed=seed, **kwargs)
    for _ in range(n):
        t = study.ask()
        study.tell(t, f(t.params))
    return study


# -- construction ----------------------------------------------------------------------------------
def test_registry_builds_tpe():
    assert "tpe" in available()
    s = make_strategy({"name": "tpe", "n_startup": 5})
    assert isinstance(s, TPE) and s.n_startup == 5
    assert s.to_spec() == {"name": "tpe", "n_startup": 5, "n_candidates": 24, "gamma": 0.1, "max_good": 25,
                           "prior_weight": 1.0, "cost_aware": None}
    assert make_strategy(s.to_spec()).params() == s.params()
    assert TPE.needs_history and TPE.slow


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_startup": -1}, "TPE(n_startup=-1): expected an integer >= 0"),
        ({"n_startup": 2.0}, "TPE(n_startup=2.0): expected an integer >= 0"),
        ({"n_candidates": 0}, "TPE(n_candidates=0): expected an integer >= 1"),
        ({"n_candidates": True}, "TPE(n_candidates=True): expected an integer >= 1"),
        ({"max_good": 0}, "TPE(max_good=0): expected an integer >= 1"),
        ({"gamma": 0}, "TPE(gamma=0): expected a number in (0, 1]"),
        ({"gamma": 1.5}, "TPE(gamma=1.5): expected a number in (0, 1]"),
        ({"gamma": float("nan")}, "TPE(gamma=nan): expected a number in (0, 1]"),
        ({"prior_weight": 0.0}, "TPE(prior_weight=0.0): expected a finite number > 0"),
        ({"prior_weight": float("inf")}, "TPE(prior_weight=inf): expected a finite number > 0"),
        ({"cost_aware": "yes"}, "TPE(cost_aware='yes'): expected True, False or None (automatic)"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError) as exc:
        TPE(**kwargs)
    assert str(exc.value) == message


def test_bad_arguments_through_the_registry():
    with pytest.raises(th.ValidationError, match=r"strategy 'tpe': TPE\(n_startup=-1\)"):
        make_strategy({"name": "tpe", "n_startup": -1})


def test_wants_cost_model_only_when_cost_aware_is_true():
    assert TPE(cost_aware=True).wants_cost_model
    assert not TPE().wants_cost_model and not TPE(cost_aware=False).wants_cost_model


# -- determinism and validity ----------------------------------------------------------------------
def test_same_seed_gives_same_study_and_startup_is_random_search():
    a = [dict(t.params) for t in _run(MIXED, _mixed_objective, TPE(), 7, 25).trials]
    b = [dict(t.params) for t in _run(MIXED, _mixed_objective, TPE(), 7, 25).trials]
    c = [dict(t.params) for t in _run(MIXED, _mixed_objective, TPE(), 8, 25).trials]
    assert a == b
    assert a != c
    # the first n_startup trials are the study's seeded random draws
    assert a[:10] == RandomSearch().propose(MIXED, [], seed=7, number=0, n=10)


def test_proposal_is_a_function_of_history_seed_and_number():
    study = _run(MIXED, _mixed_objective, TPE(), 3, 20)
    history = study.history()
    ctx = Context(objectives={"y": "min"})
    props = []
    for _ in range(2):
        s = TPE()  # a fresh object each time: no state carried between proposals
        s.bind(ctx)
        props.append(s.propose(MIXED, history, seed=3, number=20))
    shuffled = TPE()
    shuffled.bind(ctx)
    props.append(shuffled.propose(MIXED, history[::-1], seed=3, number=20))
    assert props[0] == props[1] == props[2]
    other = TPE()
    other.bind(ctx)
    assert other.propose(MIXED, history, seed=3, number=21) != props[0]


def test_mixed_conditional_space_stays_valid():
    study = _run(MIXED, _mixed_objective, TPE(n_startup=5), 0, 60)
    seen_opts = set()
    for t in study.trials:
        p = dict(t.params)
        assert MIXED.validate(p) == p
        assert ("momentum" in p) == (p["opt"] == "sgd")
        assert ("width" in p) == (p["opt"] in ("adam", True))
        assert isinstance(p["layers"], int) and isinstance(p["batch"], int) and p["tag"] == "x"
        seen_opts.add(repr(p["opt"]))
    assert len(seen_opts) >= 3
    # the model learned something: the later half is better than the random start
    values = [t.value for t in study.trials]
    assert np.median(values[30:]) < np.median(values[:10])


def test_no_duplicates_on_a_small_discrete_space_until_exhausted():
    space = th.Space({"a": ["x", "y", "z"], "b": th.Int(0, 3), "c": th.Int(1, 4, when={"a": "x"})})
    size = 4 * 4 + 2 * 4  # a=x: b x c; a=y|z: b
    study = _run(space, lambda p: (p["b"] - 2) ** 2 + (p["a"] != "x") + p.get("c", 0), TPE(n_startup=4), 1, size)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(keys)) == size
    t = study.ask()  # exhausted: a valid repeat
    assert space.validate(dict(t.params)) == dict(t.params)


def test_batch_proposals_are_distinct():
    study = _run(MIXED, _mixed_objective, TPE(), 0, 20)
    s = TPE()
    s.bind(Context(objectives={"y": "min"}))
    batch = s.propose(MIXED, study.history(), seed=0, number=20, n=4)
    assert len({tuple(sorted(p.items())) for p in batch}) == 4
    assert batch[0] == s.propose(MIXED, study.history(), seed=0, number=20)[0]


# -- constant liar ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_running_trials_change_the_next_proposal(seed):
    p = problem("hartmann6")
    history = _run(p.space, p.f, TPE(), seed, 30).history()
    s = TPE()
    s.bind(Context(objectives={"y": "min"}))
    alone = s.propose(p.space, history, seed=seed, number=31)[0]
    # a trial running right next to that point (not on it) makes the model look elsewhere
    x = p.space.encode(alone)
    near = p.space.decode(np.clip(x + 1e-3, 0.0, 1.0))
    running = builders.running(30, near)
    with_liar = s.propose(p.space, [*history, running], seed=seed, number=31)[0]
    assert with_liar != alone
    assert np.abs(p.space.encode(with_liar) - p.space.encode(near)).max() > 0.01


def test_parallel_asks_spread_out():
    p = problem("hartmann6")
    study = _run(p.space, p.f, TPE(), 2, 30)
    handles = [study.ask() for _ in range(6)]  # six workers ask before anyone tells
    x = np.array([p.space.encode(h.params) for h in handles])
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2))[np.triu_indices(6, 1)]
    assert dist.min() > 0.02


# -- failures, stopped trials, constraints ----------------------------------------------------------
def test_failed_region_is_avoided():
    space = th.Space({"x": th.Float(0.0, 1.0), "y": th.Float(0.0, 1.0)})
    study = th.Study.create(space, {"y": "min"}, storage="memory", strategy=TPE(), seed=5)
    late_failures = 0
    for i in range(50):
        t = study.ask()
        if t.params["x"] > 0.5:  # this half of the space crashes
            study.tell(t, state="failed", error="boom")
            late_failures += i >= 30
        else:
            study.tell(t, (t.params["x"] - 0.4) ** 2 + (t.params["y"] - 0.5) ** 2)
    assert late_failures <= 4


def test_ranking_tiers():
    space = th.Space({"x": th.Float(0.0, 1.0)})
    s = TPE()
    s.bind(Context(objectives={"y": "min"}, constraints={"c": ("<=", 0.0)}))
    history = [
        builders.completed(0, {"x": 0.1}, metrics={"y": 5.0, "c": -1.0}),  # feasible
        builders.completed(1, {"x": 0.2}, metrics={"y": 1.0, "c": 2.0}),  # breaks the constraint by 2
        builders.completed(2, {"x": 0.3}, metrics={"y": 9.0, "c": 0.5}),  # breaks it by 0.5
        builders.failed(3, {"x": 0.4}),
        builders.stopped(4, {"x": 0.5}, metrics={"y": 3.0, "c": 0.0}),  # stopped early: its last value
        builders.running(5, {"x": 0.6}),
        builders.completed(6, {"x": 0.7}, metrics={"y": float("nan"), "c": 0.0}),
        builders.completed(7, {"x": 0.8}, 0.5, metric="y"),  # no constraint metric: breaks it
    ]
    # Feasible by value (the stopped trial's last report counts), then the breakers by violation,
    # then the trials without a value (failed, NaN), then the running one.
    assert [t.number for t in s.ranked(space, history)] == [4, 0, 2, 1, 7, 3, 6, 5]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constraints_keep_most_proposals_feasible(seed):
    # minimise x + y subject to c = x - y <= 0: the optimum (0, 0) lies on the boundary
    space = th.Space({"x": th.Float(0.0, 1.0), "y": th.Float(0.0, 1.0)})
    study = th.Study.create(space, {"obj": "min"}, storage="memory", strategy=TPE(), seed=seed,
                            constraints={"c": ("<=", 0.0)})
    feasible = []
    for _ in range(60):
        t = study.ask()
        x, y = t.params["x"], t.params["y"]
        study.tell(t, {"obj": x + y, "c": x - y})
        feasible.append(x - y <= 0)
    assert np.mean(feasible[40:]) > 0.7
    assert study.best.value < 0.1


# -- against random search -------------------------------------------------------------------------
@pytest.mark.slow  # statistical: many seeded runs of a whole optimisation
@pytest.mark.parametrize("name", ["branin", "hartmann6"])
def test_beats_random_search(name):
    """10 seeds x 60 evaluations: TPE's final regrets are lower than random search's by a
    one-sided Wilcoxon signed-rank test (p < 0.05, paired by seed: both start from the same 10
    random points), and its median regret is at most 0.8 times random's."""
    p = problem(name)
    seeds = range(10)

    def regret(strategy, seed):
        study = _run(p.space, p.f, strategy, seed, 60)
        return p.regret(min(t.value for t in study.trials))

    tpe = np.array([regret(TPE(), s) for s in seeds])
    rnd = np.array([regret("random", s) for s in seeds])
    assert wilcoxon(tpe, rnd, alternative="less").pvalue < 0.05
    assert np.median(tpe) <= 0.8 * np.median(rnd)


# -- multi-objective --------------------------------------------------------------------------------
def test_front_ranks():
    y = np.array([[1.0, 4.0], [2.0, 2.0], [4.0, 1.0], [3.0, 3.0], [5.0, 5.0], [2.0, 2.0]])
    assert list(front_ranks(y)) == [0, 0, 0, 1, 2, 0]
    # The fronts of the one ranking's non-dominated sorting, on random points with ties too.
    rng = np.random.default_rng(0)
    for m in (1, 2, 3):
        y = rng.integers(0, 5, size=(40, m)).astype(float)
        ranks = front_ranks(y)
        assert [sorted(np.flatnonzero(ranks == r)) for r in range(ranks.max() + 1)] == fronts(y, np.zeros(40))


def test_multi_objective_study_runs():
    space = th.Space({"x": th.Float(0.0, 1.0), "y": th.Float(0.0, 1.0)})
    study = th.Study.create(space, {"a": "min", "b": "max"}, storage="memory", strategy="tpe", seed=0)
    for _ in range(25):
        t = study.ask()
        study.tell(t, {"a": t.params["x"] ** 2 + t.params["y"], "b": t.params["x"] - t.params["y"]})
    assert len(study.pareto_front()) >= 3


# -- cost-aware search ------------------------------------------------------------------------------
def test_cost_weight_follows_the_budget():
    fitted = CostModel(th.Space({"x": th.Float(0.0, 1.0)})).fit(
        [builders.completed(i, {"x": x}, 1.0, cost_usd=c, measurements=builders.measurements([1.0], cost_usd=c))
         for i, (x, c) in enumerate([(0.1, 0.5), (0.5, 1.0), (0.9, 2.0)])])
    assert fitted.is_fitted
    unfitted = CostModel(th.Space({"x": th.Float(0.0, 1.0)}))
    cases = [
        (TPE(), Context(cost_model=fitted), None),  # automatic, no dollar budget: off
        (TPE(), Context(cost_model=fitted, budget_usd=10.0, spent_usd=4.0), 0.6),
        (TPE(), Context(cost_model=unfitted, budget_usd=10.0), None),
        (TPE(cost_aware=True), Context(cost_model=fitted), 1.0),  # no budget: no cooling
        (TPE(cost_aware=True), Context(cost_model=fitted, budget_usd=10.0, spent_usd=12.0), 0.0),
        (TPE(cost_aware=False), Context(cost_model=fitted, budget_usd=10.0), None),
        (TPE(cost_aware=True), Context(), None),  # no model: nothing to be aware of
    ]
    for strategy, ctx, expected in cases:
        strategy.bind(ctx)
        got = strategy.cost_weight()
        assert got == pytest.approx(expected) if expected is not None else got is None, (strategy, ctx)


@pytest.mark.slow  # statistical: many seeded runs of a whole optimisation
def test_cost_aware_spends_less_per_evaluation():
    """Branin with the test functions' cost surface ($0.10 to $1.00): after the random start,
    cost-aware TPE (the study fits its cost model on the trials) pays less per evaluation than
    plain TPE, for every seed."""
    p = problem("branin")

    def mean_cost(cost_aware, seed):
        study = th.Study.create(p.space, {"y": "min"}, storage="memory", strategy=TPE(cost_aware=cost_aware),
                                seed=seed)
        costs = []
        for _ in range(40):
            t = study.ask()
            costs.append(p.cost_usd(t.params))
            study.tell(t, p.f(t.params), cost_usd=costs[-1])
        return float(np.mean(costs[10:]))

    plain = np.array([mean_cost(False, s) for s in range(4)])
    aware = np.array([mean_cost(True, s) for s in range(4)])
    assert (aware < plain).all(), (aware, plain)
    assert aware.mean() < 0.97 * plain.mean()


# -- odd spaces -------------------------------------------------------------------------------------
def test_odd_spaces():
    space = th.Space(
        {
            "big": th.Int(0, 100_000),  # too many values for a per-value kernel: modelled as a float
            "one": ["only"],
            "kind": ["a", "b"],
            "child": th.Int(1, 64, log=True, when={"kind": "a"}),
            "grandchild": th.Float(0.1, 10.0, log=True, when={"child": [1, 2, 3, 4]}),
            "const": th.Fixed(None),
        }
    )

    def f(p):
        return abs(p["big"] - 5_000) / 1e4 + (p["kind"] == "b") + abs(p.get("child", 8) - 2) / 8

    study = _run(space, f, TPE(n_startup=3), 0, 40)
    for t in study.trials:
        p = dict(t.params)
        assert space.validate(p) == p
        assert ("grandchild" in p) == (p["kind"] == "a" and p["child"] <= 4)
    fixed_only = th.Space({"a": th.Fixed(1)})
    assert [dict(t.params) for t in _run(fixed_only, lambda p: 0.0, TPE(n_startup=0), 0, 3).trials] == [{"a": 1}] * 3


def test_budgeted_study_turns_cost_awareness_on():
    p = problem("branin")
    strategy = TPE()
    study = th.Study.create(p.space, {"y": "min"}, storage="memory", strategy=strategy, seed=0,
                            budget={"usd": 100.0})
    for _ in range(15):
        t = study.ask()
        study.tell(t, p.f(t.params), cost_usd=p.cost_usd(t.params))
    study.ask()
    assert strategy.context.budget_usd == 100.0 and strategy.context.cost_model is not None
    assert 0.9 < strategy.cost_weight() < 1.0
