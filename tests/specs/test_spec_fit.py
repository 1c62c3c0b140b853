"""Combinations that cannot work are refused by ``Study.create`` (and ``thrifty run``) before
anything is written, with a message that says what fits; combinations that work are accepted."""

from __future__ import annotations

import textwrap

import pytest

import thrifty as th
from thrifty.schedulers.asha import ASHA
from thrifty.storage import open_storage
from thrifty.strategies.grid import GridSearch

from _cli import assert_one_line_error, thrifty

SPACE = {"lr": th.Float(1e-4, 1e-1, log=True), "layers": th.Int(1, 4)}
TWO = {"acc": "max", "cost_usd": "min"}


def refused(url: str, match: str, space=SPACE, objective=TWO, **settings) -> None:
    """``Study.create`` raises a ValidationError matching ``match`` and the storage holds no study."""
    with pytest.raises(th.ValidationError, match=match) as exc:
        th.Study.create(space, objective, name="refused", storage=url, **settings)
    assert "\n" not in str(exc.value)
    assert open_storage(url).list_studies() == []


SCHEDULERS_OF_ONE_OBJECTIVE = ["asha", "hyperband", "adaptive", "median", "percentile", "threshold", "patience", "pbt"]


@pytest.mark.parametrize("name", SCHEDULERS_OF_ONE_OBJECTIVE)
def test_a_scheduler_that_judges_one_objective_is_refused_for_several(sqlite_url, name):
    refused(sqlite_url, rf"^scheduler '{name}' judges one objective; this study has 2 \(acc, cost_usd\): "
            r"use scheduler='none', give the scheduler metric= one of them, or a single objective$",
            scheduler=name)


def test_the_example_of_the_issue_asha_as_an_instance(sqlite_url):
    refused(sqlite_url, r"scheduler 'asha' judges one objective; this study has 2 \(acc, cost_usd\)",
            scheduler=ASHA(min_resource=1, max_resource=52, reduction_factor=3))


@pytest.mark.parametrize("scheduler", [{"name": "asha", "metric": "loss"}, {"name": "threshold", "metric": "acc "}])
def test_a_scheduler_watching_a_metric_that_is_not_an_objective_is_refused(sqlite_url, scheduler):
    # The direction of a metric that is no objective is unknown: it would be maximized, a loss too.
    refused(sqlite_url, rf"scheduler '{scheduler['name']}' watches metric '{scheduler['metric']}', which is not an "
            r"objective of this study \(acc, cost_usd\): give metric= one of acc, cost_usd, or None",
            scheduler=scheduler)


@pytest.mark.parametrize("name", ["bohb", "mfgp"])
def test_a_multi_fidelity_strategy_of_one_objective_is_refused_for_several(sqlite_url, name):
    refused(sqlite_url, rf"^strategy '{name}' judges one objective; this study has 2 \(acc, cost_usd\): "
            r"use strategy='auto', 'tpe', 'gp' or 'nsga2', or a single objective$",
            strategy=name, scheduler="none")


@pytest.mark.parametrize("criterion", [th.TargetReached(0.9), {"name": "no_improvement", "trials": 5}])
def test_completion_criteria_are_refused_for_several_objectives(sqlite_url, criterion):
    name = criterion["name"] if isinstance(criterion, dict) else criterion.name
    refused(sqlite_url, rf"^stop_when '{name}' judges one objective; this study has 2 \(acc, cost_usd\): "
            r"drop stop_when, or use a single objective$", scheduler="none", stop_when=criterion)


@pytest.mark.parametrize("scheduler", [{"name": "asha", "budget_aware": True},
                                       {"name": "pbt", "budget_aware": True}])
def test_budget_aware_without_a_dollar_budget_is_refused(sqlite_url, scheduler):
    refused(sqlite_url, rf"^scheduler '{scheduler['name']}' has budget_aware=True, which acts only under a dollar "
            r"budget, and this study has none: give budget=\{'usd': \.\.\.\} or budget_aware=False$",
            objective="max", scheduler=scheduler, budget={"trials": 20})


def test_a_grid_too_large_to_enumerate_is_refused_at_create_not_at_the_first_ask(sqlite_url):
    space = {f"x{i}": th.Float(0, 1) for i in range(9)}  # 5**9 = 1,953,125 points
    refused(sqlite_url, r"^strategy 'grid': the grid has up to 1,953,125 points \(more than 1,000,000\); lower "
            r"points_per_float or use strategy='sobol'$", space=space, objective="max", strategy="grid")
    refused(sqlite_url, "up to 1,953,125 points", space=space, objective="max", strategy=GridSearch(shuffle=True))


def test_mfgp_refuses_a_space_that_uses_its_resource_input_name(sqlite_url):
    refused(sqlite_url, r"^strategy 'mfgp': the space may not have a parameter named '__resource__'",
            space={"__resource__": th.Float(0, 1)}, objective="max", strategy="mfgp")


@pytest.mark.parametrize("settings", [
    dict(objective=TWO),  # the defaults: strategy auto (NSGA-II here), scheduler auto (judges nothing here)
    dict(objective=TWO, scheduler={"name": "asha", "metric": "acc", "max_resource": 9}),
    dict(objective=TWO, scheduler="none", strategy="tpe"),
    dict(objective=TWO, scheduler="none", strategy={"name": "gp", "n_startup": 3}),
    dict(objective="max", strategy="nsga2", stop_when=th.TargetReached(0.9)),
    dict(objective="max", strategy="grid", scheduler={"name": "asha", "budget_aware": True}, budget={"usd": 5.0}),
    dict(objective={"acc": "max"}, strategy="bohb", scheduler={"name": "percentile", "metric": "acc"}),
])
def test_combinations_that_work_are_accepted(sqlite_url, settings):
    study = th.Study.create(SPACE, settings.pop("objective"), name="fits", storage=sqlite_url, **settings)
    assert [s.name for s in open_storage(sqlite_url).list_studies()] == [study.name]


def test_several_objectives_with_the_default_scheduler_run_to_the_end(sqlite_url):
    # The default scheduler has no single ranking to judge several objectives by: it stops nothing
    # (it used to fail every trial that asked should_stop after a report with a step).
    study = th.Study.create({"x": th.Float(0, 1)}, TWO, name="two", storage=sqlite_url, strategy="random", seed=3)

    def objective(trial):
        for step in range(1, 10):
            trial.report({"acc": trial.params["x"] * step, "cost_usd": 0.1 * step}, step=step)
            assert not trial.should_stop()
        return {"acc": trial.params["x"], "cost_usd": 1.0}

    study.optimize(objective, n_trials=8)
    assert [t.state for t in study.trials] == [th.TrialState.COMPLETED] * 8
    assert all(t.last_step == 9 for t in study.trials)


def test_thrifty_run_refuses_an_incompatible_config_before_writing(tmp_path):
    config = tmp_path / "tune.yaml"
    head = f"storage: sqlite:///{tmp_path / 'tune.db'}\nartifact_root: {tmp_path / 'art'}\n"
    config.write_text(head + textwrap.dedent("""\
        command: python train.py --lr={lr}
        metrics: {acc: {regex: 'acc=([0-9.]+)', goal: max}, loss: {regex: 'loss=([0-9.]+)', goal: min}}
        objective: {acc: max, loss: min}
        scheduler: {name: hyperband, max_resource: 27}
        space: {lr: {type: float, low: 0.001, high: 0.1}}
        n_trials: 1
        """))
    p = thrifty("run", config, "--no-progress", cwd=tmp_path, check_rc=None)
    assert_one_line_error(p, "scheduler 'hyperband' judges one objective; this study has 2 (acc, loss)")
    assert not (tmp_path / "tune.db").exists() and not (tmp_path / "art").exists()
