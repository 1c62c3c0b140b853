"""Specs round-trip through the registry, and the stored format is the one databases and YAML
configs already hold: a study stored before specs existed loads with the same algorithms."""

from __future__ import annotations

import dataclasses

import pytest

import thrifty as th
from thrifty.schedulers import available as schedulers, make_scheduler
from thrifty.schedulers.asha import ASHA
from thrifty.schedulers.pbt import PBT
from thrifty.strategies import available as strategies, make_strategy

#: Specs as stored by thrifty before the registry held them (copied from existing databases).
STORED = {
    "scheduler": [
        {"name": "asha", "min_resource": 1.0, "max_resource": 52.0, "reduction_factor": 3.0, "metric": None,
         "resource": "step", "mode": "stopping", "budget_aware": False, "check_rungs": True, "min_complete": 5,
         "rho_min": 0.5},
        {"name": "auto", "reduction_factor": 3.0, "min_resource": None, "metric": None, "min_complete": 5,
         "rho_min": 0.5},
        {"name": "median", "min_resource": 1.0, "min_trials": 5, "statistic": "best", "metric": None,
         "resource": "step"},
        {"name": "pbt", "population_size": 8, "perturbation_interval": 4.0, "max_resource": 81.0, "quantile": 0.25,
         "resample_probability": 0.25, "factors": [0.8, 1.2], "metric": None, "seed": 0, "budget_aware": False},
        {"name": "none"},
    ],
    "strategy": [
        {"name": "tpe", "n_startup": 10, "n_candidates": 24, "gamma": 0.1, "max_good": 25, "prior_weight": 1.0,
         "cost_aware": None},
        {"name": "bohb", "min_resource": 1.0, "reduction_factor": 3.0, "min_points": None,
         "inner": {"name": "gp", "n_startup": 4}, "impute_stopped": True},
        {"name": "mfgp", "min_resource": 1.0, "reduction_factor": 3.0, "n_startup": None, "n_candidates": 1024,
         "max_points": 300},
        {"name": "auto"},
    ],
}


def _make(kind: str, spec):
    return make_strategy(spec) if kind == "strategy" else make_scheduler(spec)


@pytest.mark.parametrize(("kind", "name"), [("strategy", n) for n in strategies()]
                         + [("scheduler", n) for n in schedulers()])
def test_every_registered_name_round_trips_through_its_spec(kind, name):
    algorithm = _make(kind, name)
    spec = algorithm.to_spec()
    assert spec["name"] == name
    again = _make(kind, spec)
    assert type(again) is type(algorithm) and again.to_spec() == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        algorithm.spec.colour = "red"  # the validated record cannot be changed behind the algorithm's back


@pytest.mark.parametrize(("kind", "stored"), [(k, s) for k, specs in STORED.items() for s in specs],
                         ids=lambda v: v["name"] if isinstance(v, dict) else v)
def test_specs_stored_before_load_and_store_back_unchanged(kind, stored):
    assert _make(kind, stored).to_spec() == stored


def test_user_code_keeps_its_constructor_calls():
    asha = ASHA(min_resource=1, max_resource=52, reduction_factor=3)
    assert asha.to_spec() == STORED["scheduler"][0]
    assert (asha.min_resource, asha.max_resource, asha.reduction_factor) == (1.0, 52.0, 3.0)
    assert ASHA(1, 9, 3, budget_aware=True, check_rungs=False).to_spec()["budget_aware"] is True
    assert PBT(factors=(0.5, 2)).factors == (0.5, 2.0) and PBT(factors=(0.5, 2)).to_spec()["factors"] == [0.5, 2.0]


def test_criteria_are_their_own_frozen_specs():
    criteria = [th.TargetReached(0.9), th.NoImprovement(0.01, trials=5), th.ImprovementNotWorthCost(10, window=3)]
    specs = [c.to_spec() for c in criteria]
    assert specs == [{"name": "target", "value": 0.9},
                     {"name": "no_improvement", "min_improvement": 0.01, "trials": 5, "usd": None, "relative": True},
                     {"name": "not_worth_cost", "usd_per_unit": 10.0, "window": 3}]
    # A study builds the same criteria from the stored specs (``stop_when`` takes either).
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, "max", storage="memory", stop_when=specs)
    assert study.criteria == criteria
    assert repr(criteria[0]) == "TargetReached(value=0.9)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        criteria[0].value = 0.5


def test_a_study_stores_and_loads_its_algorithms_by_spec(sqlite_url):
    study = th.Study.create({"x": th.Float(0, 1), "n": th.Int(1, 3)}, {"acc": "max"}, name="s", storage=sqlite_url,
                            strategy={"name": "bohb", "inner": "gp", "min_points": 3},
                            scheduler=ASHA(max_resource=27, metric="acc"), stop_when=th.TargetReached(0.99))
    loaded = th.Study.load("s", storage=sqlite_url)
    assert loaded.strategy.to_spec() == study.strategy.to_spec() == {
        "name": "bohb", "min_resource": 1.0, "reduction_factor": 3.0, "min_points": 3, "inner": "gp",
        "impute_stopped": True}
    assert loaded.scheduler.to_spec() == study.scheduler.to_spec()
    assert loaded.criteria == [th.TargetReached(0.99)]
