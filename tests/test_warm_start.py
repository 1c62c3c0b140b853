"""Warm start from earlier studies, adding known results, and re-evaluating the best."""

from __future__ import annotations

import pytest

import thrifty as th

OLD = th.Space({"lr": th.Float(1e-4, 1e-1, log=True), "depth": th.Int(1, 8), "opt": th.Categorical(["sgd", "adam"]),
                "old_only": th.Float(0, 1)})
NEW = th.Space({"lr": th.Float(1e-3, 1.0, log=True), "depth": th.Int(1, 8), "opt": th.Categorical(["sgd", "adam"]),
                "dropout": th.Float(0.0, 0.5)})


def score(p):
    return -abs(p["lr"] - 0.02) - 0.01 * abs(p["depth"] - 4)


def test_warm_start_from_a_study_with_a_different_but_overlapping_space(sqlite_url, caplog):
    old = th.Study.create(OLD, {"acc": "max"}, name="old", storage=sqlite_url, seed=1)
    for _ in range(20):
        t = old.ask()
        old.tell(t, {"acc": score(t.params)})
    inside = [t for t in old.trials if t.params["lr"] >= 1e-3]
    with caplog.at_level("WARNING", logger="thrifty.warm_start"):
        new = th.Study.create(NEW, {"acc": "max"}, name="new", storage=sqlite_url, warm_start=["old"])
    assert "old_only: dropped" in caplog.text
    # Observations need every parameter of the new space: 'dropout' is new, so none qualify...
    assert [t for t in new.trials if t.state is th.TrialState.COMPLETED] == []
    # ...but the 3 best configurations are enqueued, with dropout at the centre, lr clipped.
    pending = new.get_trials([th.TrialState.PENDING])
    assert len(pending) == 3
    best_old = sorted(old.trials, key=lambda t: -t.value)[:3]
    for p, o in zip(pending, best_old):
        assert p.params["dropout"] == pytest.approx(0.25) and "old_only" not in p.params
        assert p.params["lr"] == pytest.approx(max(o.params["lr"], 1e-3))
        assert p.user_attrs["warm_start_best"] == f"old#{o.number}"
    # The same spaces minus the new parameter: observations carry over (out-of-range ones skipped).
    same = th.Space({k: OLD[k] for k in ("lr", "depth", "opt")})
    narrow = th.Space({"lr": th.Float(1e-3, 1.0, log=True), "depth": th.Int(1, 8), "opt": th.Categorical(["sgd", "adam"])})
    th.Study.create(same, {"acc": "max"}, name="old2", storage=sqlite_url).add_trial(
        {"lr": 0.05, "depth": 4, "opt": "sgd"}, {"acc": 0.5})
    warm = th.Study.create(narrow, {"acc": "max"}, name="warm", storage=sqlite_url, warm_start=["old", "old2"])
    observed = [t for t in warm.trials if t.state is th.TrialState.COMPLETED]
    assert len(observed) == len(inside) + 1  # old: the trials with lr inside [1e-3, 1]; old2: its one trial
    assert {t.user_attrs["warm_start"].split("#")[0] for t in observed} <= {"old", "old2"}
    assert all(t.params["lr"] >= 1e-3 for t in observed)
    assert warm.cost_usd == 0.0 and warm.usage().trials == 0  # nothing was run here
    # A strategy sees them: the first ask runs an enqueued best, and the best is known already.
    assert warm.best.value == max(t.value for t in observed)


def test_warm_start_refuses_unknown_studies_and_writes_nothing(sqlite_url):
    with pytest.raises(th.ValidationError, match="no study named 'nope'"):
        th.Study.create(NEW, {"acc": "max"}, name="x", storage=sqlite_url, warm_start=["nope"])
    with pytest.raises(th.StudyNotFound):
        th.Study.load("x", storage=sqlite_url)


def test_add_trial_and_reevaluate_the_best_configurations():
    study = th.Study.create({"x": th.Float(0, 1)}, {"y": "max"}, storage="memory", budget=th.Budget(trials=3))
    study.add_trial({"x": 0.2}, {"y": 0.2})
    study.add_trial({"x": 0.9}, {"y": 0.9})
    with pytest.raises(th.ValidationError, match="objective"):
        study.add_trial({"x": 0.5}, {"z": 1.0})
    assert study.usage().trials == 0 and study.best.params["x"] == 0.9
    queued = study.reevaluate_top(k=1, repeats=2)
    assert [t.params["x"] for t in queued] == [0.9, 0.9] and queued[0].user_attrs["repeat_of"] == 1
    for value in (0.7, 0.8):  # the re-runs are noisier than the first lucky one
        t = study.ask()
        study.tell(t, {"y": value})
    params, mean, std, n = study.robust_best()
    assert params == {"x": 0.9} and n == 3 and mean == pytest.approx(0.8) and std == pytest.approx(0.1)


def test_add_trials_imports_many_results_at_once_or_none(sqlite_url):
    study = th.Study.create({"x": th.Float(0, 1)}, {"loss": "min"}, storage=sqlite_url, name="imported",
                            constraints={"mem": ("<=", 8.0)})
    added = study.add_trials([({"x": 0.2}, {"loss": 0.5, "mem": 4.0}), ({"x": 0.4}, {"loss": 0.1, "mem": 16.0}),
                              ({"x": 0.6}, {"loss": 0.3, "mem": 2.0})])
    assert added == 3
    trials = study.trials
    assert [t.state.value for t in trials] == ["completed", "infeasible", "completed"]  # 16 GB breaks mem <= 8
    assert study.best.number == 2 and study.cost_usd == 0.0
    with pytest.raises(th.SpaceError, match=r"add_trials: result 1: parameter 'x'=2.0 is outside"):
        study.add_trials([({"x": 0.5}, {"loss": 1.0, "mem": 1.0}), ({"x": 2.0}, {"loss": 1.0, "mem": 1.0})])
    with pytest.raises(th.ValidationError, match=r"add_trials: result 0: .* lack the objective\(s\) \['loss'\]"):
        study.add_trials([({"x": 0.5}, {"acc": 1.0})])
    assert len(study.trials) == 3  # nothing of a refused batch was written
