"""One ranking of trials everywhere (best, reevaluate_top, checkpoint cleanup, warm start,
completion criteria), and trials that break a constraint recorded INFEASIBLE with the reason."""

from __future__ import annotations

import csv
import json
import math

import pytest

import thrifty as th
from thrifty.checkpoints import checkpoint_dir

from _cli import thrifty

SPACE = th.Space({"x": th.Float(0.0, 1.0)})
CONSTRAINTS = {"nnz": ("<=", 100)}
REASON = "constraint nnz <= 100 broken: nnz = 140"
INFEASIBLE, COMPLETED, PENDING = th.TrialState.INFEASIBLE, th.TrialState.COMPLETED, th.TrialState.PENDING


def _study(storage, name="s", **kw):
    kw.setdefault("constraints", CONSTRAINTS)
    return th.Study.create(SPACE, {"acc": "max"}, name=name, storage=storage, strategy="random", scheduler=None, **kw)


def _run(study, results):
    """Run one trial per ``(x, acc, nnz)`` in order through enqueue, ask and tell."""
    for x, acc, nnz in results:
        study.enqueue({"x": x})
        study.tell(study.ask(), {"acc": acc, "nnz": nnz})


def test_a_trial_breaking_a_constraint_is_infeasible_with_the_reason(db_url):
    study = _study(db_url)
    t = study.ask()
    done = study.tell(t, {"acc": 0.99, "nnz": 140.0}, cost_usd=0.25)
    assert done.state is INFEASIBLE and done.error == REASON
    assert done.metrics == {"acc": 0.99, "nnz": 140.0} and done.cost_usd == pytest.approx(0.25)  # kept
    assert study.tell(study.ask(), {"acc": 0.90, "nnz": 100.0}).state is COMPLETED  # on the bound: feasible
    missing = study.tell(study.ask(), {"acc": 0.95})
    assert missing.state is INFEASIBLE and missing.error == "constraint nnz <= 100 broken: nnz not reported"
    nan = study.tell(study.ask(), {"acc": 0.97, "nnz": math.nan})
    assert nan.state is INFEASIBLE and nan.error == "constraint nnz <= 100 broken: nnz = nan"
    added = study.add_trial({"x": 0.5}, {"acc": 0.999, "nnz": 101.0})  # known results are judged too
    assert added.state is INFEASIBLE and added.error == "constraint nnz <= 100 broken: nnz = 101"
    assert study.counts()[INFEASIBLE] == 4 and study.best.value == 0.90
    assert study.cost_usd == pytest.approx(0.25)  # the ledger counts what the infeasible trial spent
    loaded = th.Study.load("s", storage=db_url).get_trials([INFEASIBLE])
    assert [t.error for t in loaded][:1] == [REASON]


def test_one_ranking_feasible_finite_completed_ties_to_the_earliest(db_url):
    study = _study(db_url)
    _run(study, [(0.1, 0.5, 10.0), (0.2, 0.9, 140.0), (0.3, 0.7, 10.0), (0.4, 0.7, 20.0), (0.5, math.nan, 1.0)])
    h = study.ask()
    h.report({"acc": 0.95, "nnz": 1.0}, step=1)
    study.tell(h, state="stopped")  # a stopped trial is never ranked, however good its last report
    assert [t.number for t in study.ranked()] == [2, 3, 0]
    assert study.best.number == 2  # 0.7 twice: the earlier trial
    queued = study.reevaluate_top(k=1, repeats=1)  # the best feasible configuration, not trial 1's
    assert [t.params["x"] for t in queued] == [0.3]
    study.tell(study.ask(), {"acc": 0.8, "nnz": 30.0})  # the re-run of x=0.3
    assert study.robust_best()[0] == {"x": 0.3}


def test_pareto_front_is_the_first_front_of_the_ranking(db_url):
    study = th.Study.create(SPACE, {"acc": "max", "cost_usd": "min"}, name="mo", storage=db_url,
                            strategy="random", constraints=CONSTRAINTS)
    for x, acc, cost, nnz in [(0.1, 0.9, 2.0, 10.0), (0.2, 0.8, 1.0, 10.0), (0.3, 0.95, 0.5, 500.0),
                              (0.4, 0.7, 3.0, 10.0), (0.5, 0.9, 2.0, 10.0)]:
        study.enqueue({"x": x})
        study.tell(study.ask(), {"acc": acc, "cost_usd": cost, "nnz": nnz})
    assert [t.number for t in study.pareto_front()] == [0, 1, 4]  # 2 is infeasible, 3 dominated
    assert [t.number for t in study.ranked()] == [0, 1, 4, 3]


def test_checkpoint_cleanup_keeps_the_best_feasible_trial(db_url, tmp_path):
    results = {0: (0.5, 10.0), 1: (0.9, 140.0), 2: (0.3, 10.0)}  # trial 1: the best value, infeasible

    def objective(trial):
        trial.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (trial.checkpoint_dir / "model.bin").write_bytes(b"weights")
        acc, nnz = results[trial.number]
        return {"acc": acc, "nnz": nnz}

    study = _study(db_url, keep_checkpoints=1, artifact_root=str(tmp_path / "art"))
    study.optimize(objective, n_trials=3, progress=False)
    assert [n for n in range(3) if checkpoint_dir(study, n).exists()] == [0]
    assert [t.state for t in study.trials] == [COMPLETED, INFEASIBLE, COMPLETED]


COND = th.Space({"opt": th.Categorical(["sgd", "adam"]), "lr": th.Float(1e-4, 1e-1, log=True),
                 "momentum": th.Float(0.0, 0.99, when={"opt": "sgd"})})


def test_warm_start_carries_every_trial_of_an_identical_conditional_space(db_url, caplog):
    old = th.Study.create(COND, {"acc": "max"}, name="old", storage=db_url, strategy="random", scheduler=None)
    for i in range(12):
        params = {"opt": "sgd", "lr": 1e-3, "momentum": i / 12} if i % 2 else {"opt": "adam", "lr": 1e-3 * (i + 1)}
        old.enqueue(params)
        old.tell(old.ask(), {"acc": i / 12})
    with caplog.at_level("INFO", logger="thrifty.warm_start"):
        new = th.Study.create(COND, {"acc": "max"}, name="new", storage=db_url, warm_start=["old"])
    observed = [t for t in new.trials if "warm_start" in t.user_attrs]
    assert len(observed) == 12 and all(t.state is COMPLETED for t in observed)
    assert [dict(t.params) for t in observed] == [dict(t.params) for t in old.trials]
    assert "filled with" not in caplog.text and "12 of its 12 measured trials" in caplog.text
    pending = new.get_trials([PENDING])
    assert [t.user_attrs["warm_start_best"] for t in pending] == ["old#11", "old#10", "old#9"]
    assert [dict(t.params) for t in pending] == [dict(old.trials[n].params) for n in (11, 10, 9)]


def test_warm_start_never_enqueues_an_infeasible_trial(db_url):
    old = _study(db_url, name="old")
    _run(old, [(0.1, 0.99, 140.0), (0.2, 0.8, 50.0), (0.3, 0.7, 70.0), (0.4, 0.6, 30.0), (0.5, 0.5, 20.0)])
    # A study without constraints: trial 0 broke one where it was measured, so it stays infeasible.
    free = th.Study.create(SPACE, {"acc": "max"}, name="free", storage=db_url, warm_start=["old"])
    assert [t.params["x"] for t in free.get_trials([PENDING])] == [0.2, 0.3, 0.4]
    carried = free.get_trials([INFEASIBLE])
    assert len(carried) == 1 and carried[0].error == f"old#0: {REASON}" and carried[0].metrics["acc"] == 0.99
    assert len(free.get_trials([COMPLETED])) == 4 and free.best.params["x"] == 0.2
    # A study with a tighter constraint of its own: both studies' constraints rule the seeds.
    tight = _study(db_url, name="tight", constraints={"nnz": ("<=", 60)}, warm_start=["old"])
    assert [t.params["x"] for t in tight.get_trials([PENDING])] == [0.2, 0.4, 0.5]
    assert len(tight.get_trials([INFEASIBLE])) == 2  # nnz 140 (there) and nnz 70 (here)


def test_target_reached_ignores_infeasible_trials(db_url):
    results = [(0.99, 140.0), (0.5, 10.0), (0.96, 20.0), (0.1, 1.0)]

    def objective(trial):
        acc, nnz = results[trial.number]
        return {"acc": acc, "nnz": nnz}

    study = _study(db_url, stop_when=[th.TargetReached(0.95)])
    result = study.optimize(objective, n_trials=4, progress=False)
    assert result.reason == "criterion" and "acc = 0.96" in result.message
    assert len(study.trials) == 3


def test_infeasible_trials_and_their_reason_show_in_trials_export_and_report(sqlite_url, tmp_path):
    study = _study(sqlite_url, name="nnz")
    _run(study, [(0.1, 0.99, 140.0), (0.2, 0.9, 80.0)])
    storage = ("--storage", sqlite_url)
    p = thrifty("trials", "nnz", *storage, cwd=tmp_path)
    (row,) = [line for line in p.stdout.splitlines() if "infeasible" in line]
    assert REASON in row
    out = tmp_path / "nnz.csv"
    thrifty("export", "nnz", "--format", "csv", "-o", out, *storage, cwd=tmp_path)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["state"], r["error"]) for r in rows] == [("infeasible", REASON), ("completed", "")]
    data = json.loads(thrifty("export", "nnz", "--format", "json", *storage, cwd=tmp_path).stdout)
    assert [(t["state"], t["error"]) for t in data["trials"]] == [("infeasible", REASON), ("completed", None)]
    report = json.loads(thrifty("report", "nnz", "--json", *storage, cwd=tmp_path).stdout)
    assert [(t["state"], t["note"]) for t in report["trials"]] == [("infeasible", REASON), ("completed", None)]
    assert report["best"]["number"] == 1
    assert {s["state"]: s["trials"] for s in report["by_state"]}["infeasible"] == 1
    text = thrifty("report", "nnz", *storage, cwd=tmp_path).stdout
    assert "infeasible trials, never the best" in text and REASON in text
