"""The peers' remaining pictures (contour, rank, empirical distribution, timeline) through the
public API on real SQLite studies: each shows what the studies hold."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import thrifty as th
import thrifty.plot as tp

SPACE = {
    "x": th.Float(-2.0, 2.0),
    "lr": th.Float(1e-4, 1e-1, log=True),
    "opt": th.Categorical(["sgd", "adam"]),
}


def _objective(trial: th.TrialHandle) -> float:
    x, lr = trial.params["x"], trial.params["lr"]
    return (x - 1.0) ** 2 + (math.log10(lr) + 2.0) ** 2 + (0.5 if trial.params["opt"] == "sgd" else 0.0)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> th.Study:
    url = f"sqlite:///{tmp_path_factory.mktemp('parity')}/p.db"
    s = th.Study.create(SPACE, "min", storage=url, name="parity", strategy="random", seed=5)
    s.optimize(_objective, n_trials=40, progress=False)
    return s


def test_contour_interpolates_between_the_trials_and_shows_them(study: th.Study) -> None:
    fig = tp.contour_plot(study, params=["x", "lr"])
    contour = next(d for d in fig.data if d.type == "contour")
    points = next(d for d in fig.data if d.type == "scatter")
    assert len(points.x) == 40
    z = np.asarray(contour.z, dtype=float)
    assert z.shape == (tp.pairs.CONTOUR_GRID, tp.pairs.CONTOUR_GRID)
    # Near the optimum (x=1, lr=1e-2) the interpolated value is low, far from it high.
    xs, ys = np.asarray(contour.x), np.asarray(contour.y)
    near = z[np.argmin(abs(np.log10(ys) + 2)), np.argmin(abs(xs - 1))]
    far = np.nanmax(z)
    assert near < 0.5 * far
    assert fig.layout.yaxis.type == "log"


def test_contour_of_every_pair_by_default(study: th.Study) -> None:
    fig = tp.contour_plot(study)
    assert sum(1 for d in fig.data if d.type == "scatter") == 3  # (x, lr), (x, opt), (lr, opt)
    assert list(fig.layout.yaxis3.ticktext) == ["sgd", "adam"] or list(fig.layout.yaxis4.ticktext) == ["sgd", "adam"]


def test_rank_colours_the_best_trial_zero_and_the_worst_one(study: th.Study) -> None:
    fig = tp.rank_plot(study, params=["x", "lr"])
    (points,) = fig.data
    ranks = np.asarray(points.marker.color, dtype=float)
    numbers = [int(c[0]) for c in points.customdata]
    assert ranks.min() == 0.0 and ranks.max() == 1.0
    assert numbers[int(np.argmin(ranks))] == study.best.number


def test_edf_overlays_studies_and_reaches_one(study: th.Study, tmp_path: Path) -> None:
    other = th.Study.create(SPACE, "min", storage=f"sqlite:///{tmp_path}/o.db", name="other", strategy="random", seed=9)
    other.optimize(_objective, n_trials=10, progress=False)
    fig = tp.edf_plot([study, other])
    assert [d.name for d in fig.data] == ["parity (40 trials)", "other (10 trials)"]
    first = fig.data[0]
    assert list(first.x) == sorted(t.value for t in study.trials) and first.y[-1] == 1.0
    with pytest.raises(th.ValidationError, match="study 'acc' has no objective 'value'"):
        tp.edf_plot([study, th.Study.create(SPACE, {"acc": "max"}, storage=f"sqlite:///{tmp_path}/o.db", name="acc")])


def test_timeline_has_a_bar_per_trial_as_long_as_it_ran(study: th.Study) -> None:
    fig = tp.timeline(study)
    (bars,) = fig.data  # every trial completed
    assert bars.name == "completed" and sorted(bars.y) == list(range(40))
    by_number = dict(zip(bars.y, bars.x))
    for t in study.trials:
        assert by_number[t.number] == pytest.approx((t.finished_at - t.started_at) * 1000.0)
    assert "10 earlier not drawn" in tp.timeline(study, max_trials=30).layout.title.text


def test_pair_pictures_refuse_bad_params_in_one_line(study: th.Study) -> None:
    with pytest.raises(th.ValidationError, match="nope not in the study's space"):
        tp.contour_plot(study, params=["x", "nope"])
    with pytest.raises(th.ValidationError, match="needs two parameters"):
        tp.rank_plot(study, params=["x"])
