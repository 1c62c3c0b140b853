"""examples/pipeline.py through the public API: a memoised run of the real scikit-learn pipeline
reads cached prefixes and pays less for the trials that do; the YAML config is the same pipeline."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import thrifty as th
from thrifty.analysis.report import cost_report
from thrifty.cli import pipeline_from_config

pytest.importorskip("sklearn")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """examples/pipeline.py, imported under its own name (its thread settings undone afterwards)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    monkeypatch.syspath_prepend(str(EXAMPLES))  # pipeline.yaml names its functions pipeline:...
    spec = importlib.util.spec_from_file_location("thrifty_example_pipeline", EXAMPLES / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_memoised_example_reuses_cached_prefixes_and_pays_less_for_them(example: ModuleType,
                                                                            tmp_path: Path) -> None:
    example.data()  # loaded before the first trial, as the example does
    study = th.Study.create(pipeline=example.pipeline(cache_dir=str(tmp_path / "cache")), objective=example.OBJECTIVE,
                            storage="memory", budget=th.Budget(usd=0.5), pricing=example.PRICING,
                            artifact_root=str(tmp_path))
    first = {"gamma": 0.01, "n_components": 16, "C": 1.0, "standardize": False, "temperature": 1.0}
    study.enqueue(first)
    study.enqueue({**first, "C": 10.0})                        # the same kernel PCA: read from the cache
    study.enqueue({**first, "C": 10.0, "temperature": 0.7})    # the same fitted model: only calibration runs
    study.optimize(n_trials=3, progress=False)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state for t in trials] == [th.TrialState.COMPLETED] * 3
    for t in trials:
        assert 0.0 < t.metrics["log_loss"] < 2.0 and t.metrics["accuracy"] > 0.8
    outcomes: dict[int, list[str]] = {}
    for r in study.storage.stage_runs(study.id):
        outcomes.setdefault(r.trial_id, []).append(r.outcome)
        if r.outcome == "hit":
            assert r.saved_usd > 0, "a hit saves what computing the prefix cost, less the read"
    assert [outcomes[t.id] for t in trials] == [["run", "run", "run"], ["hit", "run", "run"],
                                                ["skipped", "hit", "run"]]
    full, reused_pca, reused_model = (t.cost_usd for t in trials)
    assert reused_pca < 0.5 * full, "kernel PCA is the expensive stage, and it was read, not computed"
    assert reused_model < 0.5 * full
    memo = cost_report(study).memo_cache
    assert memo is not None and memo.hits == 2 and memo.saved_usd > 0
    study.close()


def test_the_yaml_config_is_the_same_pipeline(example: ModuleType) -> None:
    cfg = yaml.safe_load((EXAMPLES / "pipeline.yaml").read_text())
    from_yaml = pipeline_from_config(cfg["pipeline"], [str(EXAMPLES)])
    ours = example.pipeline()
    assert from_yaml.shape.stages == ours.shape.stages and from_yaml.space == ours.space
    assert cfg["objective"] == example.OBJECTIVE and cfg["pricing"] == example.PRICING
    assert cfg["budget"] == {"usd": example.BUDGET_USD}
