"""Pausing, resuming and cloning real models from real checkpoints, in worker processes.

The objective trains a scikit-learn SGDClassifier on the digits data one epoch per step and keeps
its checkpoint (the model and how many epochs it has been trained) in ``trial.checkpoint_dir``.
Each report carries ``epochs_in_model``: the epochs the model object has actually been through. A
trial that restarted from zero after a pause, or a clone that did not get its parent's weights,
would report fewer epochs than its step.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import thrifty as th
from thrifty.checkpoints import checkpoint_dir
from thrifty.schedulers.asha import ASHA
from thrifty.schedulers.hyperband import Hyperband
from thrifty.schedulers.pbt import PBT, schedule

import sklearn  # noqa: F401,E402 - in the test extra (make test installs it): a real model, never a skip

SPACE = th.Space({"alpha": th.Float(1e-6, 1e-1, log=True), "eta0": th.Float(1e-4, 1.0, log=True)})
MAX_EPOCHS = 9


def _data():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    return x[:1200], y[:1200], x[1200:], y[1200:]


def objective(trial: th.TrialHandle) -> float | None:
    from sklearn.linear_model import SGDClassifier

    x_tr, y_tr, x_va, y_va = _data()
    path = trial.checkpoint_dir / "model.pkl"
    start = int(trial.start_step)
    if start:
        saved = pickle.loads(path.read_bytes())
        model, trained = saved["model"], saved["epochs"]
        assert trained == start, f"checkpoint at epoch {trained}, asked to continue from {start}"
    else:
        model, trained = SGDClassifier(alpha=trial.params["alpha"], learning_rate="constant",
                                       eta0=trial.params["eta0"], random_state=trial.number), 0
    if trial.parent is not None:  # a PBT clone: the parent's weights, the clone's params
        model.set_params(alpha=trial.params["alpha"], eta0=trial.params["eta0"])
    acc = 0.0
    for epoch in range(start + 1, MAX_EPOCHS + 1):
        model.partial_fit(x_tr, y_tr, classes=np.arange(10))
        trained += 1
        acc = float(model.score(x_va, y_va))
        if trial.should_checkpoint(epoch):  # write, then rename: never half a checkpoint
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps({"model": model, "epochs": trained}))
            tmp.replace(path)
        trial.report({"value": acc, "epochs_in_model": float(trained)}, step=epoch)
        if trial.should_stop():
            return None
    return acc


def assert_models_continued(study: th.Study) -> None:
    for t in study.trials:
        for m in t.measurements:
            if m.step is not None and "epochs_in_model" in m.metrics:
                assert m.metrics["epochs_in_model"] == m.step, (t.number, t.start_step, m)


def test_asha_promotion_resumes_paused_trials_from_their_checkpoints(sqlite_url, tmp_path):
    study = th.Study.create(SPACE, "max", storage=sqlite_url, seed=1, artifact_root=str(tmp_path / "art"),
                            scheduler=ASHA(1, MAX_EPOCHS, 3, mode="promotion", check_rungs=False), keep_checkpoints=None)
    # A good and a medium configuration first, then ten poor ones (small steps, strong decay):
    # the medium one pauses at rung 1 behind the good one, and is promoted once enough poor ones
    # have reached the rung to put it in the top third, whatever the timing of the two workers.
    study.enqueue({"alpha": 1e-4, "eta0": 0.05})
    study.enqueue({"alpha": 1e-4, "eta0": 0.005})
    for i in range(10):
        study.enqueue({"alpha": 0.1 if i % 2 else 0.05, "eta0": 1e-4 * (1 + i / 10)})
    study.optimize(objective, n_trials=12, n_workers=2, progress=False)
    counts = study.counts()
    assert counts.get(th.TrialState.RUNNING, 0) == 0
    resumed = [t for t in study.trials if t.start_step]
    assert resumed, "some paused trial was promoted"
    assert counts.get(th.TrialState.PAUSED, 0) > 0 and counts.get(th.TrialState.COMPLETED, 0) > 0
    assert_models_continued(study)
    for t in resumed:  # a promoted trial resumed at a rung and went on from there
        assert t.start_step in (1.0, 3.0)
    for t in study.trials:
        if t.state is th.TrialState.PAUSED:
            assert (checkpoint_dir(study, t.number) / "model.pkl").exists()
            assert t.last_step in (1.0, 3.0) and t.reason.startswith("scheduler: asha: paused")
    # The paused trials are a resumable state: a later run may promote them; nothing is lost.
    again = th.Study.load(study.name, storage=sqlite_url)
    again.optimize(objective, n_trials=6, progress=False)
    assert_models_continued(again)
    assert again.counts().get(th.TrialState.RUNNING, 0) == 0


def test_synchronous_hyperband_with_real_checkpoints(sqlite_url, tmp_path):
    hb = Hyperband(1, MAX_EPOCHS, 3, synchronous=True)  # bracket s=2: 9 trials from epoch 1
    study = th.Study.create(SPACE, "max", storage=sqlite_url, seed=2, artifact_root=str(tmp_path / "art"),
                            scheduler=hb)
    study.optimize(objective, n_trials=9, n_workers=2, progress=False)
    trials = study.trials
    assert len(trials) == 9
    assert_models_continued(study)
    # 9 at rung 1 -> the best 3 resumed to rung 3 -> the best 1 resumed to the end.
    assert sum(1 for t in trials if t.last_step is not None and t.last_step >= 3) == 3
    completed = [t for t in trials if t.state is th.TrialState.COMPLETED]
    assert len(completed) == 1 and completed[0].last_step == MAX_EPOCHS
    at_one = {t.number: t.measurements[0].metrics["value"] for t in trials}
    best3 = sorted(at_one, key=lambda n: -at_one[n])[:3]
    assert {t.number for t in trials if t.last_step >= 3} == set(best3)


def test_pbt_clones_take_their_parents_weights_and_the_lineage_gives_the_schedule(sqlite_url, tmp_path):
    rule = PBT(population_size=4, perturbation_interval=3, max_resource=MAX_EPOCHS, seed=0, quantile=0.25,
               resample_probability=0.0)  # explore by the factors only, so the check below is exact
    study = th.Study.create(SPACE, "max", storage=sqlite_url, seed=3, artifact_root=str(tmp_path / "art"),
                            scheduler=rule, keep_checkpoints=None)
    # The population: three sound members and, last, one whose step size is far too small. By the
    # time it reaches step 3 a member trained before it has too (two workers), so it ranks last
    # there and must be replaced.
    for eta0 in (0.05, 0.02, 0.1, 1e-4):
        study.enqueue({"alpha": 1e-4, "eta0": eta0})
    result = study.optimize(objective, n_workers=2, progress=False)
    assert result.reason == "scheduler", result
    trials = study.trials
    clones = [t for t in trials if t.parent is not None]
    assert clones, "the bottom member was replaced at least once"
    assert_models_continued(study)
    by_number = {t.number: t for t in trials}
    for c in clones:
        parent = by_number[c.parent]
        assert c.start_step in (3.0, 6.0) and parent.last_step >= c.start_step
        # explore: each number is the parent's times 0.8 or 1.2, or clipped to its range
        for name in ("alpha", "eta0"):
            ratio = c.params[name] / parent.params[name]
            at_bound = c.params[name] in (SPACE[name].low, SPACE[name].high)
            assert any(abs(ratio - f) < 1e-9 for f in (0.8, 1.2)) or at_bound, (name, ratio)
        replaced = [t for t in trials if t.state is th.TrialState.STOPPED and f"replaced by trial {c.number}"
                    in (t.reason or "")]
        assert len(replaced) == 1
    assert study.counts().get(th.TrialState.RUNNING, 0) == 0
    best = study.best
    segments = schedule(study.lineage(best.number))
    assert segments[-1][1] == MAX_EPOCHS and segments[0][0] == 0.0
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))


def test_checkpoints_of_finished_trials_are_cleaned_keeping_the_best(sqlite_url, tmp_path):
    study = th.Study.create(SPACE, "max", storage=sqlite_url, seed=4, artifact_root=str(tmp_path / "art"),
                            scheduler=ASHA(1, MAX_EPOCHS, 3, mode="promotion", check_rungs=False), keep_checkpoints=2)
    study.optimize(objective, n_trials=8, progress=False)
    finished = [t for t in study.trials if t.is_finished]
    kept = [t.number for t in finished if checkpoint_dir(study, t.number).exists()]
    ranked = sorted(finished, key=lambda t: -(t.value if t.value is not None else -1))
    assert sorted(kept) == sorted(t.number for t in ranked[:2])
    for t in study.trials:  # paused trials keep theirs: they may be resumed
        if t.state is th.TrialState.PAUSED:
            assert (checkpoint_dir(study, t.number) / "model.pkl").exists()
    logs = [p for p in (tmp_path / "art").rglob("*") if p.is_dir() and p.name.startswith("trial-")]
    assert len(logs) == len(study.trials)  # only checkpoint folders go; trial folders stay
