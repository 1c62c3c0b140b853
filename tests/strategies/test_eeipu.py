"""``eeipu``: expected improvement per expected dollar, aware of the pipeline's memo cache.

A two-stage toy: stage 0 (``a1``, ``a2``) costs about $10 to compute, stage 1 (``b1``, ``b2``) about
$1.5; the value to maximise is best at ``a = (0.3, 0.7)``, ``b = (0.6, 0.4)``. The cache's facts come
in the strategy's context (``Context.cached_prefixes``, ``Context.stage_params``), as a pipeline study
gives them, with what each stage of a trial cost when it ran (``Context.stage_run_usd``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import thrifty as th
from thrifty.encoding import encoder_of
from thrifty.pipelines import CachedPrefix
from thrifty.pipelines.run import stage_run_usd
from thrifty.storage.base import StageRun
from thrifty.strategies import Context, make_strategy
from thrifty.strategies.auto import Auto
from thrifty.strategies.eeipu import Stages, cached_prefixes, cooling_exponent, deepest_prefix, expected_cost

SPACE = th.Space({"a1": th.Float(0, 1), "a2": th.Float(0, 1), "b1": th.Float(0, 1), "b2": th.Float(0, 1)})
STAGES = (("a1", "a2"), ("b1", "b2"))
READ_USD = 0.1


def value(p) -> float:
    return -((p["a1"] - 0.3) ** 2 + (p["a2"] - 0.7) ** 2) - ((p["b1"] - 0.6) ** 2 + (p["b2"] - 0.4) ** 2)


def stage_usd(p) -> tuple[float, float]:
    return 8.0 + 4.0 * p["a1"], 1.0 + p["b1"]


def told(number: int, p, cached: bool = False) -> th.Trial:
    """A completed trial of the toy; ``cached``: its stage 0 was read from the cache."""
    c0, c1 = stage_usd(p)
    return th.Trial(number=number, state="completed", params=dict(p), metrics={"value": value(p)},
                    cost_usd=(READ_USD if cached else c0) + c1)


def ran_usd(history) -> dict[int, tuple[float | None, float]]:
    """What each stage of the toy's trials cost when it ran (stage 0: ``None`` when it was read)."""
    out = {}
    for t in history:
        c0, c1 = stage_usd(t.params)
        out[t.number] = (None if t.cost_usd < c0 else c0, c1)
    return out


def random_points(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return [dict(zip(("a1", "a2", "b1", "b2"), map(float, rng.random(4)))) for _ in range(n)]


def prefix(p, read: float = READ_USD) -> CachedPrefix:
    return CachedPrefix(stage=0, params={"a1": p["a1"], "a2": p["a2"]}, key=f"k{p['a1']:.6f}",
                        read_cost_usd=read, run_cost_usd=stage_usd(p)[0])


def propose(history, prefixes, *, budget=1000.0, exponent=None):
    s = make_strategy({"name": "eeipu", "n_startup": 5, "n_candidates": 256, "completions": 32,
                       "cost_exponent": exponent})
    spent = sum(t.cost_usd for t in history)
    s.bind(Context(objectives={"value": "max"}, budget_usd=budget, spent_usd=spent, stage_params=STAGES,
                   cached_prefixes=tuple(prefixes), stage_run_usd=ran_usd(history)))
    s.prepare(SPACE)
    return s.propose(SPACE, history, seed=0, number=len(history))[0]


def keeps(params, p) -> bool:
    return params["a1"] == p["a1"] and params["a2"] == p["a2"]


# -- what it proposes ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_it_completes_a_cached_prefix_whose_region_is_good_and_whose_stage_is_expensive(seed):
    good = {"a1": 0.31, "a2": 0.69, "b1": 0.45, "b2": 0.55}  # the best so far; its b can improve
    history = [told(i, p) for i, p in enumerate(random_points(12, seed))] + [told(12, good)]
    proposal = propose(history, [prefix(good)])
    assert keeps(proposal, good), proposal
    # Without the cache entry (evicted), the same history gets a fresh stage 0.
    assert not keeps(propose(history, []), good)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_it_proposes_a_fresh_prefix_once_the_cached_prefix_s_completions_all_came_out_poor(seed):
    bad = {"a1": 0.95, "a2": 0.05}  # far from a = (0.3, 0.7): every completion is poor
    rng = np.random.default_rng(100 + seed)
    completions = [{**bad, "b1": float(rng.random()), "b2": float(rng.random())} for _ in range(8)]
    points = random_points(12, seed) + [{"a1": 0.35, "a2": 0.6, "b1": 0.5, "b2": 0.5}]
    history = [told(i, p) for i, p in enumerate(points)]
    history += [told(len(history) + j, p, cached=j > 0) for j, p in enumerate(completions)]
    proposal = propose(history, [prefix(completions[0])])
    assert not keeps(proposal, bad), proposal


def dear_proposals(exponent: float | None, seed: int) -> tuple[int, float]:
    """A plain study through the public API: two equally good optima, at x = 0.2 where a trial
    costs $1 and at x = 0.8 where it costs $10; (model proposals in the dear half, of 16; best)."""
    study = th.Study.create({"x": th.Float(0, 1), "y": th.Float(0, 1)}, "max", storage="memory", seed=seed,
                            strategy={"name": "eeipu", "n_startup": 6, "n_candidates": 128,
                                      "cost_exponent": exponent})
    dear = 0
    for _ in range(22):
        t = study.ask()
        x, y = t.params["x"], t.params["y"]
        dear += t.number >= 6 and x >= 0.5
        value = -min((x - 0.2) ** 2 + (y - 0.5) ** 2, (x - 0.8) ** 2 + (y - 0.5) ** 2)
        study.tell(t, value, cost_usd=10.0 if x >= 0.5 else 1.0)
    return dear, study.best.value


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_without_stages_it_is_ei_per_expected_dollar_of_the_trial_s_total(seed):
    aware, best = dear_proposals(None, seed)
    blind, _ = dear_proposals(0.0, seed)
    # Measured: 5 of 16 in the dear half against 8-9 with the exponent held at 0.
    assert aware <= 5 and aware < blind, (aware, blind)
    assert best > -0.01


# -- the cost of a candidate -----------------------------------------------------------------------
def test_a_candidate_keeping_a_cached_prefix_pays_its_read_cost_and_the_later_stages():
    enc = encoder_of(SPACE)
    stages = Stages.of(enc, STAGES)
    p = {"a1": 0.2, "a2": 0.4, "b1": 0.5, "b2": 0.5}
    x = enc.snap(enc.encode([p, {**p, "b1": 0.9}, {**p, "a2": 0.41}]))
    listed = cached_prefixes([prefix(p)], SPACE, enc, stages)
    depth, read, run = deepest_prefix(x, listed, enc, stages)
    assert depth.tolist() == [0, 0, -1] and read.tolist() == [READ_USD, READ_USD, 0.0]
    per_stage = np.array([[10.0, 1.5]] * 3)
    assert expected_cost(per_stage, depth, read, run).tolist() == pytest.approx([1.6, 1.6, 11.5])
    # The total-cost fallback: the total less the prefix's measured run cost, plus the read.
    total = np.array([[11.5]] * 3)
    assert expected_cost(total, depth, read, run).tolist() == pytest.approx(
        [11.5 - stage_usd(p)[0] + READ_USD] * 2 + [11.5])


def test_an_evicted_prefix_is_never_costed_as_cached():
    """The history holds trials that ran the prefix and trials that read it; once the context no
    longer lists it, a configuration keeping it is costed as computing every stage again."""
    enc = encoder_of(SPACE)
    stages = Stages.of(enc, STAGES)
    p = {"a1": 0.2, "a2": 0.4, "b1": 0.5, "b2": 0.5}
    x = enc.snap(enc.encode([p]))
    depth, read, run = deepest_prefix(x, cached_prefixes([], SPACE, enc, stages), enc, stages)
    assert depth.tolist() == [-1]
    assert expected_cost(np.array([[10.0, 1.5]]), depth, read, run).tolist() == [11.5]


def test_a_prefix_of_another_stage_or_of_other_parameters_does_not_count():
    enc = encoder_of(SPACE)
    stages = Stages.of(enc, STAGES)
    p = {"a1": 0.2, "a2": 0.4, "b1": 0.5, "b2": 0.5}
    other = CachedPrefix(stage=0, params={"a1": 0.2, "a2": 0.400001}, key="other", read_cost_usd=READ_USD,
                         run_cost_usd=10.0)
    beyond = CachedPrefix(stage=5, params=p, key="beyond", read_cost_usd=READ_USD, run_cost_usd=10.0)
    listed = cached_prefixes([other, beyond], SPACE, enc, stages)
    assert deepest_prefix(enc.snap(enc.encode([p])), listed, enc, stages)[0].tolist() == [-1]


# -- the exponent ----------------------------------------------------------------------------------
def test_the_exponent_is_one_after_the_initial_design_and_zero_when_the_budget_is_spent():
    assert cooling_exponent(200.0, 20.0, 20.0) == 1.0
    assert cooling_exponent(200.0, 110.0, 20.0) == pytest.approx(0.75)  # half the room spent
    assert cooling_exponent(200.0, 155.0, 20.0) == pytest.approx(0.4375)  # three quarters spent
    spent = np.linspace(20.0, 200.0, 50)
    assert np.all(np.diff([cooling_exponent(200.0, s, 20.0) for s in spent]) < 0)  # it only cools
    assert cooling_exponent(200.0, 200.0, 20.0) == 0.0
    assert cooling_exponent(200.0, 250.0, 20.0) == 0.0
    assert cooling_exponent(None, 250.0, 20.0) == 1.0
    assert cooling_exponent(200.0, 210.0, 210.0) == 0.0


def test_through_a_study_the_exponent_falls_from_one_toward_zero_as_the_budget_is_spent():
    study = th.Study.create({"x": th.Float(0, 1)}, "max", storage="memory", seed=1,
                            strategy={"name": "eeipu", "n_startup": 3, "n_candidates": 32},
                            budget=th.Budget(usd=20.0))
    seen = []
    while True:
        try:
            t = study.ask()
        except th.StudyExhausted:
            break
        if t.number >= 3:
            seen.append(study.strategy.exponent(study.trials, 3))
        study.tell(t, -(t.params["x"] - 0.3) ** 2, cost_usd=1.0)
    assert seen[0] == pytest.approx(1.0)
    assert all(b < a for a, b in itertools.pairwise(seen)), seen
    assert seen[-1] == pytest.approx(1 - (16 / 17) ** 2)  # the last trial starts with one dollar of 17 left


# -- hyperparameter fits ---------------------------------------------------------------------------
def test_a_stage_cost_fit_is_reused_until_the_anchor_moves_whatever_the_later_costs_are():
    from thrifty.numerics.gp import GaussianProcess
    from thrifty.strategies.eeipu import fitted
    from thrifty.strategies.gp import refit_anchor

    enc = encoder_of(SPACE)
    rng = np.random.default_rng(3)
    x = rng.random((60, 4))
    y = np.log(8.0 + 4.0 * x[:, 0])  # log dollars of the toy's stage 0
    feat = make_strategy("eeipu").features(SPACE, np.arange(enc.n_dims))[0]
    n = 40
    assert refit_anchor(n) == refit_anchor(n + 1) < n
    first = fitted(GaussianProcess(feat), x[:n], y[:n], "stage0", 7)
    # a far dearer later run changes how every cost scales together, not the fit's data
    later = np.r_[y[:n], 30.0]
    again = fitted(GaussianProcess(feat), np.vstack([x[:n], x[n]]), later, "stage0", 7)
    assert again is first
    moved = next(k for k in range(n, 60) if refit_anchor(k) != refit_anchor(n))
    refit = fitted(GaussianProcess(feat), x[:moved], y[:moved], "stage0", 7)
    assert refit is not first


def test_a_fixed_exponent_holds_whatever_is_spent():
    s = make_strategy({"name": "eeipu", "cost_exponent": 0.0})
    s.bind(Context(budget_usd=10.0, spent_usd=1.0))
    assert s.exponent([], 5) == 0.0
    assert make_strategy("eeipu").to_spec()["cost_exponent"] is None


# -- adapters and the default ----------------------------------------------------------------------
def test_stage_run_usd_gives_each_stage_s_run_dollars_and_none_where_it_was_read_not_reached_or_cut_short():
    trials = [th.Trial(number=n, state="completed", params={}, id=100 + n) for n in range(3)]
    trials.append(th.Trial(number=3, state="stopped", params={}, id=103))
    runs = [StageRun(100, 0, "a", "run", True, 2.0, 0.4), StageRun(100, 1, "b", "run", False, 1.0, 0.2),
            StageRun(101, 0, "a", "hit", False, 0.1, 0.01), StageRun(101, 1, "b", "run", False, 1.0, 0.3),
            StageRun(102, 0, "a", "run", True, 1.0, 0.5),  # no record of stage 1
            StageRun(103, 0, "a", "run", True, 1.0, 0.6), StageRun(103, 1, "b", "run", False, 0.5, 0.1),  # cut short
            StageRun(999, 0, "a", "run", True, 1.0, 9.0)]  # not a trial of this history
    assert stage_run_usd(runs, trials, 2) == {0: (0.4, 0.2), 1: (None, 0.3), 2: (0.5, None), 3: (0.6, None)}


def test_auto_picks_eeipu_for_a_pipeline_study_and_says_why():
    auto = Auto()
    auto.bind(Context(stage_params=STAGES))
    name, why = auto.decide(SPACE, [])
    assert name == "eeipu" and "pipeline of 2 stages" in why
    auto.bind(Context())
    assert auto.decide(SPACE, [])[0] == "gp"


def test_bad_arguments_are_refused_in_one_line():
    with pytest.raises(th.ValidationError, match=r"^strategy 'eeipu': EEIPU\(cost_exponent=2\): expected a number in "
                                                 r"\[0, 1\] or None \(cools from 1 to 0\)$"):
        make_strategy({"name": "eeipu", "cost_exponent": 2})
