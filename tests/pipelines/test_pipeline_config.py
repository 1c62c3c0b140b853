"""``thrifty run`` with a ``pipeline:`` config (function stages), and ``thrifty report``'s memo
cache section, through the real command."""

from __future__ import annotations

from pathlib import Path

from _cli import assert_one_line_error, thrifty

import thrifty as th

STAGES = '''
def prep(params, data):
    return list(range(params["n"]))


def train(params, data):
    return sum(data) * params["lr"]


def evaluate(params, data):
    return {"f1": data * params["t"]}
'''

CONFIG = '''
name: piped
objective: {f1: max}
strategy: grid
scheduler: none
pricing: {local: 3.6}
pipeline:
  cache_dir: cache
  stages:
    - {name: prep, function: "stages:prep", space: {n: 2}}
    - {name: train, function: "stages:train", space: {lr: [0.5, 0.25]}, version: 2}
    - {name: eval, function: "stages:evaluate", space: {t: [0.5, 0.75]}}
'''


def test_thrifty_run_runs_a_pipeline_config_and_reports_the_cache(tmp_path: Path) -> None:
    (tmp_path / "stages.py").write_text(STAGES)
    (tmp_path / "piped.yaml").write_text(CONFIG)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    thrifty("run", "piped.yaml", "--storage", url, "--n-trials", "4", "--no-progress", cwd=tmp_path)
    study = th.Study.load("piped", storage=url)
    assert [t.state for t in study.trials] == [th.TrialState.COMPLETED] * 4
    runs = study.storage.stage_runs(study.id)
    assert sum(r.outcome == "hit" for r in runs) == 3, "one prep computed, each train reused once or prep reused"
    assert study.settings.pipeline is not None and study.settings.pipeline.stages[1].version == "2"
    report = thrifty("report", "piped", "--storage", url, cwd=tmp_path)
    assert "memo cache" in report.stdout and "3 hits" in report.stdout


def test_a_bad_pipeline_config_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "stages.py").write_text(STAGES)
    dup = CONFIG.replace("space: {t:", "space: {lr:")
    (tmp_path / "dup.yaml").write_text(dup)
    assert_one_line_error(thrifty("run", "dup.yaml", "--storage", f"sqlite:///{tmp_path / 'p.db'}", cwd=tmp_path,
                                  check_rc=None), "parameter 'lr' is in stages 'train' and 'eval'")
    both = CONFIG + "space: {x: {type: float, low: 0, high: 1}}\n"
    (tmp_path / "both.yaml").write_text(both)
    assert_one_line_error(thrifty("run", "both.yaml", "--storage", f"sqlite:///{tmp_path / 'p.db'}", cwd=tmp_path,
                                  check_rc=None), "not both")
