"""``thrifty run`` never silently does the wrong thing: bad run arguments leave no study behind, a
resumed study's changed settings are refused or applied by the documented rule (``--update``),
and the exit status says whether the run did what was asked. Driven as a real process."""

from __future__ import annotations

import re
import sqlite3
import textwrap

import pytest

import thrifty as th

from _cli import assert_one_line_error, thrifty

WORKLOAD_MODULE = "thrifty_run_rules_workload"
# A step of 10 metered seconds: at {local: 36} a trial costs $0.10, at {local: 0.36} $0.001.
WORKLOAD = '''
def ok(trial):
    trial.report({"score": trial.params["x"]}, step=1, elapsed_s=10.0)
    return {"score": trial.params["x"]}


def fail(trial):
    raise ValueError(f"boom in trial {trial.number}")


def odd_fail(trial):
    if trial.number % 2:
        raise ValueError("odd trials fail")
    return {"score": trial.params["x"]}
'''


@pytest.fixture
def project(tmp_path):
    cfg_dir = tmp_path / "experiment"
    cfg_dir.mkdir()
    (cfg_dir / f"{WORKLOAD_MODULE}.py").write_text(WORKLOAD)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return cfg_dir, f"sqlite:///{tmp_path / 'run.db'}", cwd


def _config(path, url, *, fn="ok", extra=""):
    path.write_text(textwrap.dedent(f"""\
        name: rules
        storage: {url}
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
          opt: [adam, sgd]
        objective: {{score: max}}
        workload: {WORKLOAD_MODULE}:{fn}
        """) + textwrap.dedent(extra))
    return path


def _stored_studies(path):
    """The study names in a SQLite file, read directly ([] if the file does not exist)."""
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return [name for (name,) in conn.execute("select name from thrifty_studies")]


# -- 8: invalid run arguments are refused before anything is written ------------------------------
def test_invalid_run_arguments_leave_no_study_behind(project, tmp_path):
    cfg_dir, url, cwd = project
    cases = [
        ("n_trials: 0\n", (), "n_trials=0"),
        ("n_workers: 0\n", (), "n_workers=0"),
        ("timeout_s: -5\n", (), "timeout_s=-5"),
        ("max_consecutive_failures: 0\n", (), "max_consecutive_failures=0"),
        ("", ("--n-trials", "0"), "--n-trials"),
        ("", ("--workers", "0"), "--workers"),
        ("", ("--timeout", "-5"), "--timeout"),
        ("resources: {cpu: 100000}\n", (), "100000 CPU cores"),
    ]
    for extra, options, fragment in cases:
        config = _config(cfg_dir / "bad.yaml", url, extra=extra)
        p = thrifty("run", config, *options, "--no-progress", cwd=cwd, check_rc=None)
        assert _stored_studies(tmp_path / "run.db") == [], (extra, options)
        assert_one_line_error(p, fragment)
        if extra and not extra.startswith("resources"):
            assert extra.split(":")[0] in p.stderr and "config file" in p.stderr


# -- 9: a resumed study and a changed config --------------------------------------------------------
def test_changed_settings_are_refused_naming_each_difference_and_nothing_is_written(project):
    cfg_dir, url, cwd = project
    thrifty("run", _config(cfg_dir / "a.yaml", url, extra="pricing: {local: 36}\n"), "--n-trials", "2",
            "--no-progress", cwd=cwd)
    before = th.Study.load("rules", storage=url)
    stored = (before.pricing.to_dict(), before.strategy.to_spec(), before.scheduler.to_spec())

    changed = _config(cfg_dir / "b.yaml", url, extra="pricing: {local: 0.36}\nstrategy: random\nscheduler: none\n")
    p = thrifty("run", changed, "--n-trials", "2", "--no-progress", cwd=cwd, check_rc=None)
    assert_one_line_error(p, "pricing: {'local': 36.0} -> {'local': 0.36}", "strategy: auto -> random",
                          "scheduler: auto -> none", "--update", "--name", "thrifty delete rules")

    # The space names which parameters differ; space and seed cannot change even with --update.
    text = changed.read_text().replace("high: 1.0}", "high: 2.0}").replace("opt: [adam, sgd]", "lr: [0.1, 0.01]")
    changed.write_text(text + "seed: 7\n")
    p = thrifty("run", changed, "--update", "--no-progress", cwd=cwd, check_rc=None)
    assert_one_line_error(p, "space: added lr", "removed opt", "changed x (high 1.0 -> 2.0)", "seed: 0 -> 7",
                          "space and seed cannot change", "--update would apply only pricing, strategy, scheduler")

    after = th.Study.load("rules", storage=url)
    assert len(after.trials) == 2
    assert (after.pricing.to_dict(), after.strategy.to_spec(), after.scheduler.to_spec()) == stored


def test_update_applies_pricing_strategy_and_scheduler_to_new_trials_only(project, db_url):
    cfg_dir, _, cwd = project
    thrifty("run", _config(cfg_dir / "a.yaml", db_url, extra="pricing: {local: 36}\nmax_retries: 1\n"),
            "--n-trials", "2", "--no-progress", cwd=cwd)
    changed = _config(cfg_dir / "b.yaml", db_url,
                      extra="pricing: {local: 0.36}\nmax_retries: 1\nstrategy: random\nscheduler: none\n")
    p = thrifty("run", changed, "--update", "--n-trials", "2", "--no-progress", cwd=cwd)
    out = " ".join(p.stdout.split())  # rich may wrap a long line
    assert "pricing: {'local': 36.0} -> {'local': 0.36} (applies to new trials)" in out
    assert "strategy: auto -> random" in out and "scheduler: auto -> none" in out
    assert "resuming study rules" in out and "random search" in out

    study = th.Study.load("rules", storage=db_url)
    assert study.pricing.to_dict() == {"local": 0.36}
    assert study.strategy.name == "random" and study.scheduler.name == "none"
    assert study.max_retries == 1 and study.keep_checkpoints == 3  # the other settings are kept
    costs = [t.cost_usd for t in study.trials]
    assert costs[:2] == pytest.approx([0.10, 0.10], rel=0.01)  # recorded costs are not rewritten
    assert costs[2:] == pytest.approx([0.001, 0.001], rel=0.01)

    # The config now matches the study: it resumes without --update and prints no change.
    p = thrifty("run", changed, "--n-trials", "1", "--no-progress", cwd=cwd)
    assert "->" not in p.stdout and "resuming study rules" in p.stdout


def test_an_unchanged_config_resumes_also_with_defaults_spelled_out_or_omitted(project):
    cfg_dir, url, cwd = project
    # Like examples/digits.yaml: an instance pricing, specs with options, every key spelled out.
    full = _config(cfg_dir / "full.yaml", url, extra="""\
        strategy: {name: tpe}
        scheduler: {name: asha, min_resource: 1, max_resource: 9, reduction_factor: 3}
        seed: 0
        max_retries: 0
        heartbeat_grace_s: 60
        pricing: aws:c6i.xlarge
        resources: {cpu: 1}
        stop_when: [{name: target, value: 5.0}]
        artifact_root: thrifty_artifacts
        keep_checkpoints: 3
        budget: {trials: 50}
        n_trials: 2
        n_workers: 2
        """)
    thrifty("run", full, "--no-progress", cwd=cwd)
    p = thrifty("run", full, "--n-trials", "1", "--workers", "1", "--no-progress", cwd=cwd)
    assert "resuming study rules" in p.stdout and "->" not in p.stdout

    # A study created with the defaults, resumed by a config that omits them (and one that spells
    # them out as YAML writes them: 60 for 60.0, a spec dict for a name).
    th.Study.create({"x": th.Float(0.0, 1.0), "opt": th.Categorical(["adam", "sgd"])}, {"score": "max"},
                    name="defaults", storage=url).close()
    sparse = _config(cfg_dir / "sparse.yaml", url)
    thrifty("run", sparse, "--name", "defaults", "--n-trials", "1", "--no-progress", cwd=cwd)
    spelled = _config(cfg_dir / "spelled.yaml", url, extra="""\
        strategy: {name: auto}
        scheduler: auto
        heartbeat_grace_s: 60
        pricing: null
        stop_when: []
        keep_checkpoints: 3
        """)
    p = thrifty("run", spelled, "--name", "defaults", "--n-trials", "1", "--no-progress", cwd=cwd)
    assert "->" not in p.stdout


def test_budget_in_the_config_is_applied_and_said_and_an_omitted_one_keeps_the_stored(project):
    cfg_dir, url, cwd = project
    thrifty("run", _config(cfg_dir / "a.yaml", url, extra="budget: {trials: 1}\n"), "--no-progress", cwd=cwd)
    p = thrifty("run", _config(cfg_dir / "b.yaml", url, extra="budget: {trials: 2}\n"), "--no-progress", cwd=cwd)
    assert "budget: {'trials': 1} -> {'trials': 2} (applies at once)" in " ".join(p.stdout.split())
    p = thrifty("run", _config(cfg_dir / "c.yaml", url), "--no-progress", cwd=cwd)
    assert "->" not in p.stdout
    study = th.Study.load("rules", storage=url)
    assert study.budget.trials == 2 and len(study.trials) == 2


# -- 6: exit statuses -------------------------------------------------------------------------------
def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("thrifty: error:")]


def test_a_run_whose_trials_all_failed_exits_3_with_one_line(project):
    cfg_dir, url, cwd = project
    for workers in ("1", "2"):
        config = _config(cfg_dir / "fail.yaml", url, fn="fail", extra="n_trials: 2\n")
        p = thrifty("run", config, "--workers", workers, "--no-progress", cwd=cwd, check_rc=3)
        assert "Traceback" not in p.stderr + p.stdout
        (line,) = _error_lines(p.stderr)
        assert "all 2 trials of this run failed" in line and "ValueError: boom in trial" in line
        assert "thrifty trials rules --state failed" in line
        other = [ln for ln in p.stderr.splitlines() if ln != line]
        assert len(other) == 2 and all(" failed: ValueError: boom in trial" in ln for ln in other), p.stderr

    # Too many failures in a row: 3 as well; --debug adds the last traceback.
    config = _config(cfg_dir / "fail.yaml", url, fn="fail", extra="max_consecutive_failures: 2\n")
    p = thrifty("run", config, "--no-progress", "--debug", cwd=cwd, check_rc=3)
    (line,) = _error_lines(p.stderr)
    assert "2 trials of this run failed in a row" in line
    assert "Traceback (most recent call last)" in p.stderr


def test_a_run_with_some_trials_failed_exits_0_and_no_trial_needed_exits_0(project):
    cfg_dir, url, cwd = project
    config = _config(cfg_dir / "odd.yaml", url, fn="odd_fail", extra="n_trials: 2\nbudget: {trials: 2}\n")
    p = thrifty("run", config, "--no-progress", cwd=cwd)
    assert _error_lines(p.stderr) == []
    assert {t.state for t in th.Study.load("rules", storage=url).trials} == {th.TrialState.COMPLETED,
                                                                             th.TrialState.FAILED}
    p = thrifty("run", config, "--no-progress", cwd=cwd)  # the budget is used up: nothing to do
    assert re.search(r"this run +│ 0 trials in", p.stdout), p.stdout


def test_exit_statuses_are_documented_in_help(tmp_path):
    p = thrifty("run", "--help", cwd=tmp_path)
    text = " ".join(p.stdout.split())
    for code in (0, 1, 2, 3, 130, 143):  # thrifty.exitcodes
        assert f" {code} " in text
    assert "exit status:" in text and "--update" in text and "space, objective, seed, artifact_root" in text


def test_bad_values_are_one_line_errors_also_when_resuming(project):
    cfg_dir, url, cwd = project
    thrifty("run", _config(cfg_dir / "a.yaml", url), "--n-trials", "1", "--no-progress", cwd=cwd)
    p = thrifty("run", _config(cfg_dir / "b.yaml", url, extra="max_retries: -1\n"), "--no-progress", cwd=cwd,
                check_rc=None)
    assert_one_line_error(p, "max_retries=-1")
    p = thrifty("run", _config(cfg_dir / "c.yaml", url), "--workers", "0", cwd=cwd, check_rc=None)
    assert_one_line_error(p, "n_workers=0", "--workers")
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("select count(*) from thrifty_trials").fetchone() == (1,)
