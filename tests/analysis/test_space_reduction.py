"""suggest_space and `thrifty suggest-space`: unimportant parameters fixed at the best trial's
values, the important one narrowed around the good trials, a child of a fixed parent dropped,
every change explained; the written config runs as it is."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
from _cli import assert_one_line_error, thrifty

import thrifty as th
from thrifty.analysis.space_reduction import suggest_space

SPACE = {
    "lr": th.Float(1e-5, 1e-1, log=True),
    "batch": th.Int(16, 512, log=True),
    "dropout": th.Float(0.0, 0.5),
    "opt": th.Categorical(["sgd", "adam"]),
    "momentum": th.Float(0.0, 0.99, when={"opt": "sgd"}),
}
WORKLOAD = """
import math
def objective(trial):
    p = trial.params
    return (math.log10(p["lr"]) + 3.0) ** 2 + (1.0 if p["opt"] == "sgd" else 0.0) * 0.05 + 0.001 * p["dropout"]
"""


def _loss(t: th.TrialHandle) -> float:
    p = t.params
    return (math.log10(p["lr"]) + 3.0) ** 2 + (1.0 if p["opt"] == "sgd" else 0.0) * 0.05 + 0.001 * p["dropout"]


def test_the_suggested_space_keeps_what_matters_and_explains_each_change(tmp_path: Path) -> None:
    s = th.Study.create(SPACE, "min", storage=f"sqlite:///{tmp_path}/a.db", strategy="random", seed=0)
    s.optimize(_loss, n_trials=120, progress=False)
    r = suggest_space(s)
    changes = {c.param: c for c in r.changes}
    assert changes["lr"].action == "narrowed"
    lr = r.space["lr"]
    assert isinstance(lr, th.Float) and lr.log and lr.low < 1e-3 < lr.high
    assert math.log10(lr.high) - math.log10(lr.low) < 0.6 * 4  # well under the original 4 decades
    for name in ("batch", "dropout"):
        assert changes[name].action == "fixed" and "< 2%" in changes[name].why
        assert r.space[name] == th.Fixed(s.best.params[name])
    # opt matters little (0.05) and the best trial used adam: fixed there, so momentum (sgd only) goes
    assert changes["opt"].action == "fixed" and r.space["opt"] == th.Fixed("adam")
    assert changes["momentum"].action == "dropped" and "momentum" not in r.space
    assert all(c.why for c in r.changes)
    with pytest.raises(th.ValidationError, match="min_importance=2"):
        suggest_space(s, min_importance=2)


def test_the_cli_writes_a_config_that_runs(tmp_path: Path) -> None:
    (tmp_path / "wl_space.py").write_text(WORKLOAD)
    url = f"sqlite:///{tmp_path}/b.db"
    original = tmp_path / "original.yaml"
    original.write_text(textwrap.dedent(f"""\
        name: big
        storage: {url}
        workload: wl_space:objective
        objective: min
        seed: 1
        strategy: random
        """) + "space:\n" + "".join(f"  {k}: {v}\n" for k, v in {
            "lr": "{type: float, low: 1.0e-5, high: 0.1, log: true}",
            "batch": "{type: int, low: 16, high: 512, log: true}",
            "dropout": "{type: float, low: 0.0, high: 0.5}",
            "opt": "[sgd, adam]",
            "momentum": "{type: float, low: 0.0, high: 0.99, when: {opt: sgd}}"}.items()))
    thrifty("run", original, "--n-trials", "60", cwd=tmp_path)
    out = tmp_path / "smaller.yaml"
    p = thrifty("suggest-space", "big", "--storage", url, "-o", out, "--config", original, cwd=tmp_path)
    assert "narrowed" in p.stdout and "fixed" in p.stdout
    text = out.read_text()
    assert text.startswith("# Suggested by `thrifty suggest-space big` from 60 completed trials")
    assert "name: big-smaller" in text and "workload: wl_space:objective" in text
    thrifty("run", out, "--n-trials", "5", cwd=tmp_path)
    smaller = th.Study.load("big-smaller", storage=url)
    assert len(smaller.trials) == 5
    assert smaller.space == suggest_space(th.Study.load("big", storage=url)).space  # the file is the suggestion
    lr = smaller.space["lr"]
    assert isinstance(lr, th.Float) and (lr.low, lr.high) != (1e-5, 0.1)
    assert all(lr.low <= t.params["lr"] <= lr.high for t in smaller.trials)
    # Refusals write nothing: an existing file, a missing folder.
    before = out.read_text()
    p = thrifty("suggest-space", "big", "--storage", url, "-o", out, cwd=tmp_path, check_rc=None)
    assert_one_line_error(p, "the file exists", "--force")
    assert out.read_text() == before
    p = thrifty("suggest-space", "big", "--storage", url, "-o", tmp_path / "no" / "x.yaml", cwd=tmp_path, check_rc=None)
    assert_one_line_error(p, "does not exist")
