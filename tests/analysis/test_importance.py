"""Parameter importance (fANOVA on a random forest) through the public API: it finds the
parameter that matters, splits an additive objective's variance in the right shares, handles a
conditional parameter, and refuses what it cannot answer in one line; also `thrifty importance`
and the picture."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from _cli import assert_one_line_error, thrifty

import thrifty as th
import thrifty.plot as tp
from thrifty.analysis.importance import param_importances

SPACE = {
    "lr": th.Float(1e-5, 1e-1, log=True),
    "batch": th.Int(16, 512, log=True),
    "dropout": th.Float(0.0, 0.5),
    "layers": th.Int(1, 5),
    "opt": th.Categorical(["sgd", "adam", "rmsprop"]),
}


def _study(url: str, objective, n: int, space=None, name: str = "imp", seed: int = 0) -> th.Study:  # type: ignore[no-untyped-def]
    s = th.Study.create(space or SPACE, "min", storage=url, name=name, strategy="random", seed=seed)
    s.optimize(objective, n_trials=n, progress=False)
    return s


def test_the_one_parameter_that_matters_is_found(tmp_path: Path) -> None:
    s = _study(f"sqlite:///{tmp_path}/a.db", lambda t: (math.log10(t.params["lr"]) + 3.0) ** 2, 80)
    r = param_importances(s)
    assert r.importances[0].param == "lr"
    assert r.importances[0].fraction > 0.8
    assert all(i.fraction < 0.05 for i in r.importances[1:])
    assert r.n_trials == 80 and 0.0 <= r.interactions < 0.2


def test_an_additive_objective_splits_its_variance_in_the_right_shares(tmp_path: Path) -> None:
    # 3 * dropout / 0.5 is uniform on [0, 3]: variance 0.75; +2 for one of three optimisers:
    # variance 4 * (1/3) * (2/3) = 8/9. Shares: 0.458 and 0.542; the rest 0.
    space = {"dropout": th.Float(0.0, 0.5), "opt": th.Categorical(["sgd", "adam", "rmsprop"]),
             "noise_free": th.Float(0.0, 1.0)}
    s = _study(f"sqlite:///{tmp_path}/b.db",
               lambda t: 6.0 * t.params["dropout"] + (2.0 if t.params["opt"] == "adam" else 0.0), 300, space)
    shares = {i.param: i.fraction for i in param_importances(s).importances}
    assert shares["dropout"] == pytest.approx(0.75 / (0.75 + 8 / 9), abs=0.07)
    assert shares["opt"] == pytest.approx((8 / 9) / (0.75 + 8 / 9), abs=0.07)
    assert shares["noise_free"] < 0.02


def test_a_conditional_parameter_counts_where_it_is_active(tmp_path: Path) -> None:
    space = {"opt": th.Categorical(["sgd", "adam"]), "momentum": th.Float(0.0, 0.99, when={"opt": "sgd"}),
             "other": th.Float(0.0, 1.0)}
    s = _study(f"sqlite:///{tmp_path}/c.db",
               lambda t: 4.0 * t.params["momentum"] if t.params["opt"] == "sgd" else 2.0, 150, space)
    shares = {i.param: i for i in param_importances(s).importances}
    assert shares["momentum"].fraction > 0.3  # inactive is its own value, active ones spread the loss
    assert shares["other"].fraction < 0.03
    assert all(i.fraction_sd >= 0 for i in shares.values())


def test_what_it_cannot_answer_is_refused_in_one_line(tmp_path: Path) -> None:
    s = _study(f"sqlite:///{tmp_path}/d.db", lambda t: t.params["dropout"], 5)
    with pytest.raises(th.ThriftyError, match="needs at least 8 completed trials .* has 5"):
        param_importances(s)
    with pytest.raises(th.ValidationError, match="n_trees=0"):
        param_importances(s, n_trees=0)
    mo = th.Study.create({"x": th.Float(0, 1)}, {"a": "min", "b": "max"}, storage=f"sqlite:///{tmp_path}/mo.db")
    with pytest.raises(th.ValidationError, match="pass objective=NAME"):
        param_importances(mo)


def test_the_cli_and_the_picture(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/e.db"
    s = _study(url, lambda t: (t.params["layers"] - 2) ** 2, 40, name="cli")
    p = thrifty("importance", "cli", "--storage", url, "--json", cwd=tmp_path)
    d = json.loads(p.stdout)
    assert d["importances"][0]["param"] == "layers" and d["n_trials"] == 40
    p = thrifty("importance", "cli", "--storage", url, cwd=tmp_path)
    assert "parameter importance for value" in p.stdout and "layers" in p.stdout
    p = thrifty("importance", "cli", "--storage", url, "--trees", "0", cwd=tmp_path, check_rc=None)
    assert_one_line_error(p, "--trees 0")
    fig = tp.param_importances(s)
    assert list(fig.data[0].y)[-1] == "layers" and len(fig.data[0].y) == len(SPACE)
