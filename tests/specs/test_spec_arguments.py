"""Bad arguments of every strategy, scheduler and criterion: a ``ValidationError`` (a
``ThriftyError`` and a ``ValueError``) with one line naming the argument, the value and what is
allowed, the same whether the class is called or the registry builds it from a name and a mapping."""

from __future__ import annotations

import math

import pytest

import thrifty as th
from thrifty.schedulers import available as schedulers, make_scheduler
from thrifty.schedulers.adaptive import AdaptiveASHA
from thrifty.schedulers.asha import ASHA
from thrifty.schedulers.auto import AutoStopping
from thrifty.schedulers.hyperband import Hyperband
from thrifty.schedulers.patience import Patience
from thrifty.schedulers.pbt import PBT
from thrifty.schedulers.percentile import Median, Percentile
from thrifty.schedulers.threshold import Threshold
from thrifty.strategies import available as strategies, make_strategy
from thrifty.strategies.bohb import BOHB
from thrifty.strategies.gp import GP
from thrifty.strategies.grid import GridSearch
from thrifty.strategies.mfgp import MFGP
from thrifty.strategies.nsga2 import NSGA2
from thrifty.strategies.tpe import TPE

CLASSES = {
    ("strategy", "grid"): GridSearch, ("strategy", "gp"): GP, ("strategy", "tpe"): TPE,
    ("strategy", "nsga2"): NSGA2, ("strategy", "bohb"): BOHB, ("strategy", "mfgp"): MFGP,
    ("scheduler", "asha"): ASHA, ("scheduler", "hyperband"): Hyperband, ("scheduler", "adaptive"): AdaptiveASHA,
    ("scheduler", "pbt"): PBT, ("scheduler", "auto"): AutoStopping, ("scheduler", "percentile"): Percentile,
    ("scheduler", "median"): Median, ("scheduler", "threshold"): Threshold, ("scheduler", "patience"): Patience,
    ("criterion", "target"): th.TargetReached, ("criterion", "no_improvement"): th.NoImprovement,
    ("criterion", "not_worth_cost"): th.ImprovementNotWorthCost,
}
LABEL = {"strategy": "strategy", "scheduler": "scheduler", "criterion": "stop_when"}

BAD = [
    ("strategy", "grid", {"points_per_float": 0}, "GridSearch(points_per_float=0): expected an integer >= 1"),
    ("strategy", "grid", {"shuffle": "false"}, "GridSearch(shuffle='false'): expected True or False"),
    ("strategy", "gp", {"n_startup": 2.0}, "GP(n_startup=2.0): expected an integer >= 1 or None"),
    ("strategy", "gp", {"cost_aware": 1}, "GP(cost_aware=1): expected True, False or None (on with a dollar budget)"),
    ("strategy", "gp", {"n_candidates": 8}, "GP(n_candidates=8): expected an integer >= 16"),
    ("strategy", "gp", {"max_points": True}, "GP(max_points=True): expected an integer >= 20"),
    ("strategy", "tpe", {"gamma": math.nan}, "TPE(gamma=nan): expected a number in (0, 1]"),
    ("strategy", "tpe", {"prior_weight": math.inf}, "TPE(prior_weight=inf): expected a finite number > 0"),
    ("strategy", "tpe", {"max_good": 0}, "TPE(max_good=0): expected an integer >= 1"),
    ("strategy", "nsga2", {"population_size": 3}, "NSGA2(population_size=3): expected an integer >= 4"),
    ("strategy", "nsga2", {"crossover_prob": 1.5}, "NSGA2(crossover_prob=1.5): expected a probability in [0, 1]"),
    ("strategy", "nsga2", {"eta_mutation": 0}, "NSGA2(eta_mutation=0): expected a finite number > 0"),
    ("strategy", "bohb", {"min_resource": math.inf}, "BOHB(min_resource=inf): expected a finite number > 0"),
    ("strategy", "bohb", {"reduction_factor": 1}, "BOHB(reduction_factor=1): expected a finite number > 1"),
    ("strategy", "bohb", {"min_points": 1}, "BOHB(min_points=1): expected an integer >= 2 or None (dims + 2)"),
    ("strategy", "bohb", {"inner": 3}, "BOHB(inner=3): expected a strategy name or spec, e.g. 'tpe' or "
                                       "{'name': 'gp', 'n_startup': 8}"),
    ("strategy", "bohb", {"impute_stopped": None}, "BOHB(impute_stopped=None): expected True or False"),
    ("strategy", "mfgp", {"min_resource": 0}, "MFGP(min_resource=0): expected a finite number > 0"),
    ("strategy", "mfgp", {"n_startup": 0}, "MFGP(n_startup=0): expected an integer >= 1 or None"),
    ("scheduler", "asha", {"max_resource": math.inf}, "ASHA(max_resource=inf): expected a finite number > 0"),
    ("scheduler", "asha", {"min_resource": 10, "max_resource": 5},
     "ASHA(min_resource=10, max_resource=5): max_resource must exceed min_resource"),
    ("scheduler", "asha", {"mode": "pause"},
     "ASHA(mode='pause'): expected 'stopping' or 'promotion' (losers stop, or losers pause)"),
    ("scheduler", "asha", {"resource": "epochs"},
     "ASHA(resource='epochs'): expected 'step' or 'cost_usd' ('step': epochs, ...; 'cost_usd': dollars)"),
    ("scheduler", "asha", {"metric": ""},
     "ASHA(metric=''): expected a metric name (a non-empty string) or None (the study's one objective)"),
    ("scheduler", "asha", {"budget_aware": "yes"}, "ASHA(budget_aware='yes'): expected True or False"),
    ("scheduler", "asha", {"min_complete": 2},
     "ASHA(min_complete=2): expected an integer >= 3 (a rank correlation needs a few completed trials)"),
    ("scheduler", "asha", {"rho_min": 1.0}, "ASHA(rho_min=1.0): expected a number in [-1, 1)"),
    ("scheduler", "hyperband", {"seed": 1.5}, "Hyperband(seed=1.5): expected an integer"),
    ("scheduler", "hyperband", {"synchronous": True, "resource": "cost_usd"},
     "Hyperband(synchronous=True, resource='cost_usd'): the synchronous variant needs resource='step' "
     "(trials pause at whole steps)"),
    ("scheduler", "adaptive", {"reduction_factor": 0.5},
     "AdaptiveASHA(reduction_factor=0.5): expected a finite number > 1"),
    ("scheduler", "pbt", {"population_size": 1}, "PBT(population_size=1): expected an integer >= 2"),
    ("scheduler", "pbt", {"quantile": 0.75}, "PBT(quantile=0.75): expected a number in (0, 0.5]"),
    ("scheduler", "pbt", {"factors": [0.8]}, "PBT(factors=[0.8]): expected two positive multipliers, e.g. (0.8, 1.2)"),
    ("scheduler", "pbt", {"perturbation_interval": 81},
     "PBT(perturbation_interval=81): must be below max_resource (81), or nothing is ever perturbed"),
    ("scheduler", "auto", {"min_resource": -1},
     "AutoStopping(min_resource=-1): expected a finite number > 0 or None (the smallest first step reported)"),
    ("scheduler", "percentile", {"q": 100}, "Percentile(q=100): expected a percentile strictly between 0 and 100"),
    ("scheduler", "median", {"statistic": "max"}, "Median(statistic='max'): expected 'best' or 'mean'"),
    ("scheduler", "median", {"min_trials": 0}, "Median(min_trials=0): expected an integer >= 1"),
    ("scheduler", "threshold", {"value": math.nan},
     "Threshold(value=nan): expected a finite number or None (stop only on NaN or infinity)"),
    ("scheduler", "threshold", {"value": None, "stop_on_nonfinite": False},
     "Threshold(value=None, stop_on_nonfinite=False): it would never stop anything; give a value or "
     "stop_on_nonfinite=True"),
    ("scheduler", "patience", {"patience": 0}, "Patience(patience=0): expected a finite number > 0"),
    ("scheduler", "patience", {"min_delta": -0.1}, "Patience(min_delta=-0.1): expected a finite number >= 0"),
    ("criterion", "target", {"value": "0.9"}, "TargetReached(value='0.9'): expected a finite number"),
    ("criterion", "no_improvement", {"trials": 3, "usd": 1.0},
     "NoImprovement(trials=3, usd=1.0): give exactly one window, trials=N or usd=X"),
    ("criterion", "no_improvement", {"trials": 2.5}, "NoImprovement(trials=2.5): expected an integer >= 1 or None"),
    ("criterion", "no_improvement", {"trials": 3, "relative": 1}, "NoImprovement(relative=1): expected True or False"),
    ("criterion", "not_worth_cost", {"usd_per_unit": 10, "window": 1},
     "ImprovementNotWorthCost(window=1): expected an integer >= 2"),
]


def make_criteria(spec):
    """What a study builds from ``stop_when`` (criteria by instance or by stored spec)."""
    return th.Study.create({"x": th.Float(0.0, 1.0)}, "max", storage="memory", stop_when=spec).criteria


def _build(kind: str, spec: dict):
    if kind == "strategy":
        return make_strategy(spec)
    if kind == "scheduler":
        return make_scheduler(spec)
    return make_criteria(spec)


@pytest.mark.parametrize(("kind", "name", "kwargs", "message"), BAD, ids=[f"{r[1]}-{','.join(r[2])}" for r in BAD])
def test_a_bad_argument_names_itself_its_value_and_what_is_allowed(kind, name, kwargs, message):
    with pytest.raises(th.ValidationError) as exc:
        CLASSES[kind, name](**kwargs)
    assert str(exc.value) == message
    assert isinstance(exc.value, th.ThriftyError) and isinstance(exc.value, ValueError)
    with pytest.raises(th.ValidationError) as exc:
        _build(kind, {"name": name, **kwargs})
    assert str(exc.value) == f"{LABEL[kind]} {name!r}: {message}"


@pytest.mark.parametrize(("kind", "names"), [("strategy", strategies()), ("scheduler", schedulers())])
def test_an_unknown_argument_is_refused_with_the_ones_that_exist(kind, names):
    for name in names:
        with pytest.raises(th.ValidationError, match=rf"^{kind} '{name}': unknown argument 'colour'; \w+ takes"):
            _build(kind, {"name": name, "colour": "red"})


def test_registry_errors_for_names_and_missing_arguments():
    with pytest.raises(th.ValidationError, match=r"^unknown scheduler 'ashа'; known: adaptive, asha, auto, "):
        make_scheduler("ashа")  # a Cyrillic a
    with pytest.raises(th.ValidationError, match=r"^stop_when 'target': missing argument 'value'; TargetReached "
                                                 r"takes value$"):
        make_criteria({"name": "target"})
    with pytest.raises(th.ValidationError, match=r"^strategy 'random': unknown argument 'seed'; RandomSearch takes "
                                                 r"no arguments$"):
        make_strategy({"name": "random", "seed": 3})
    with pytest.raises(th.ValidationError, match=r"^strategy 'bohb': BOHB\(inner=\{'name': 'tpe', 'gamma': 2\}\): "
                                                 r"strategy 'tpe': TPE\(gamma=2\): expected a number in \(0, 1\]$"):
        make_strategy({"name": "bohb", "inner": {"name": "tpe", "gamma": 2}})


def test_a_bad_argument_through_study_create_writes_nothing(sqlite_url):
    from thrifty.storage import open_storage

    with pytest.raises(th.ValidationError, match=r"^scheduler 'asha': ASHA\(reduction_factor=1\.0\): expected"):
        th.Study.create({"x": th.Float(0, 1)}, "max", name="bad", storage=sqlite_url,
                        scheduler={"name": "asha", "reduction_factor": 1.0})
    assert open_storage(sqlite_url).list_studies() == []
