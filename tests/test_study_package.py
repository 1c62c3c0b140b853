"""The ``thrifty.study`` package's public seams: the settings record and its stored form, a worker
id given at load, asking within a run's limit, failing one worker's trials, and the trial host a
handle talks to."""

from __future__ import annotations

import inspect
import json

import pytest

import thrifty as th
from thrifty.storage import AskLimits, open_storage
from thrifty.study import SETTING_NAMES, Study, StudySettings, normalize_settings

SPACE = th.Space({"x": th.Float(0.0, 1.0)})


def test_every_name_importable_before_the_split_still_is():
    from thrifty.study import Objective, StudyExhausted, is_feasible, parse_objectives  # noqa: F401

    assert th.Study is Study and parse_objectives("Maximise") == {"value": "max"}


def test_create_and_normalize_settings_have_the_same_defaults():
    create = inspect.signature(Study.create).parameters
    normalize = inspect.signature(normalize_settings).parameters
    assert set(SETTING_NAMES) <= set(create) and set(SETTING_NAMES) <= set(normalize)
    differ = {k: (create[k].default, normalize[k].default) for k in ("objective", *SETTING_NAMES)
              if create[k].default != normalize[k].default}
    assert not differ, f"Study.create and normalize_settings disagree on defaults: {differ}"


def test_the_stored_settings_keep_their_format(tmp_path):
    """Databases written before the split load, and new ones are written the same way."""
    url = f"sqlite:///{tmp_path / 'format.db'}"
    study = Study.create(SPACE, th.CostUtility(metric="acc"), name="fmt", storage=url, max_retries=2,
                         pricing={"local": 0.5}, resources={"cpu": 2}, constraints={"nnz": ("<=", 100)},
                         stop_when=[{"name": "target", "value": 0.9}], keep_checkpoints=None)
    stored = open_storage(url).load_study("fmt").settings
    assert stored == {
        "max_retries": 2, "heartbeat_grace_s": 60.0, "pricing": th.Pricing.parse({"local": 0.5}).to_dict(),
        "resources": {"cpu": 2.0}, "stop_when": [{"name": "target", "value": 0.9}],
        "utility": {"metric": "acc", "power": 2.0, "name": "utility"}, "artifact_root": "thrifty_artifacts",
        "keep_checkpoints": None, "constraints": {"nnz": ["<=", 100.0]},
    }
    assert study.settings.stored() == stored
    assert Study.load("fmt", storage=url).settings.comparable() == study.settings.comparable()


def test_an_older_record_without_settings_loads_with_the_defaults(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    storage = open_storage(url)
    storage.create_study(name="old", space=SPACE.to_dict(), objectives={"value": "max"}, strategy={"name": "random"},
                         scheduler={"name": "none"}, seed=3, budget={}, settings={})
    loaded = Study.load("old", storage=url)
    defaults = normalize_settings(SPACE, strategy="random", scheduler="none", seed=3)
    assert isinstance(loaded.settings, StudySettings)
    assert loaded.settings.comparable() == defaults.comparable()
    assert (loaded.max_retries, loaded.heartbeat_grace_s, loaded.keep_checkpoints) == (0, 60.0, 3)


def test_settings_are_frozen():
    settings = normalize_settings(SPACE)
    with pytest.raises(AttributeError):
        settings.seed = 1  # type: ignore[misc]


def test_trials_start_under_the_worker_id_given_at_load(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    Study.create(SPACE, name="w", storage=url, strategy="random")
    study = Study.load("w", storage=url, worker_id="machine-7/w3")
    handle = study.ask()
    assert study.worker_id == "machine-7/w3"
    assert study.get_trials(["running"])[0].worker_id == "machine-7/w3" and handle.study is study


def test_ask_within_a_run_limit_starts_no_more_than_it_allows():
    study = Study.create(SPACE, storage="memory", strategy="random")
    limits = AskLimits(run_tag="run-1", run_max_started=2)
    for _ in range(2):
        study.tell(study.ask(limits=limits), 0.5)
    with pytest.raises(th.StudyExhausted) as exc:
        study.ask(limits=limits)
    assert exc.value.reason == "n_trials" and study.started_in_run("run-1") == 2
    study.tell(study.ask(), 0.5)  # outside that run: no such limit
    assert study.started_in_run("run-1") == 2 and len(study.trials) == 3


def test_reap_with_a_worker_id_fails_that_workers_trials_at_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    Study.create(SPACE, name="r", storage=url, strategy="random", max_retries=1)
    mine, other = Study.load("r", storage=url, worker_id="a"), Study.load("r", storage=url, worker_id="b")
    ours, theirs = mine.ask(), other.ask()
    assert mine.reap(worker_id="b", reason="interrupted by SIGTERM") == [theirs.number]
    by_number = {t.number: t for t in mine.trials}
    assert by_number[theirs.number].state is th.TrialState.FAILED
    assert "interrupted by SIGTERM" in (by_number[theirs.number].error or "")
    assert by_number[ours.number].state is th.TrialState.RUNNING
    assert [t.params for t in mine.get_trials(["pending"])] == [dict(theirs.params)], "re-enqueued once"


def test_check_criteria_raises_when_a_criterion_holds():
    study = Study.create(SPACE, storage="memory", strategy="random", stop_when=[{"name": "target", "value": 0.5}])
    study.check_criteria()  # nothing finished yet
    study.tell(study.ask(), 0.7)
    with pytest.raises(th.StudyExhausted) as exc:
        study.check_criteria()
    assert exc.value.reason == "criterion"


def test_a_handle_works_with_any_trial_host(tmp_path):
    """TrialHandle needs only the TrialHost protocol: a host that records reports in a list."""
    from thrifty.handle import TrialHandle

    study = Study.create(SPACE, storage="memory", strategy="random")
    trial = study.ask().snapshot()

    class Host:
        def __init__(self) -> None:
            self.reports: list[tuple[int, dict]] = []

        study = None
        clock = th.ManualClock(start_s=1000.0)
        pricing = th.Pricing.parse({"local": 3600.0})  # a dollar a second
        default_metric = "value"

        def record_report(self, trial_id, measurement, now):
            assert now == measurement.timestamp == self.clock.time()
            self.reports.append((trial_id, dict(measurement.metrics)))
            return th.StopReason(th.StopKind.BUDGET, "budget: usd limit reached", "usd") if len(self.reports) == 2 else None

        def should_stop(self, handle):
            return False

        def checkpoint_at(self, step):
            return step == 2

        def trial_dir(self, number):
            return tmp_path / f"t{number}"

        def stored_trial(self, trial_id):
            return trial

    host = Host()
    handle = TrialHandle(host, trial)
    handle.report(0.25, step=1, elapsed_s=2.0)
    assert host.reports == [(trial.id, {"value": 0.25})] and handle.cost_usd == pytest.approx(2.0)
    assert handle.should_checkpoint(2) and not handle.should_stop()
    with pytest.raises(th.TrialStopped):
        handle.report(0.5, step=2, elapsed_s=1.0)
    assert handle.should_stop() and handle.elapsed_s == pytest.approx(3.0)
    assert handle.artifact_dir == tmp_path / f"t{trial.number}" and handle.artifact_dir.is_dir()
    charge = handle.pending_charge(elapsed_s=4.0, cost_usd=0.5)
    assert (charge.elapsed_s, charge.cost_usd, charge.gpu_s) == (4.0, pytest.approx(4.5), 0.0)
    host.clock.advance(7.0)  # measured on the host's clock, from the last report
    assert handle.pending_charge().elapsed_s == 7.0 and handle.pending_charge().cost_usd == pytest.approx(7.0)


def test_settings_comparable_is_plain_json():
    settings = normalize_settings(SPACE, {"loss": "min"}, constraints={"m": [">=", 1]})
    text = json.dumps(settings.comparable())
    assert json.loads(text)["constraints"] == {"m": [">=", 1.0]}
