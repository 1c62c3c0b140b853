"""``thrifty report`` and ``thrifty estimate``, driven as a real process (``python -m thrifty``),
and the cost keys of ``thrifty run`` configs (pricing, resources, stop_when)."""

from __future__ import annotations

import json
import textwrap

import pytest

import thrifty as th

WORKLOAD_MODULE = "thrifty_cost_cli_workload"
# Three steps of $0.01 each, whatever the params: a trial costs $0.03. With a pricing, the report's
# elapsed_s (10 s a step) is metered on top.
WORKLOAD = '''
def objective(trial):
    for step in range(1, 4):
        trial.report({"score": trial.params["x"] * step / 3}, step=step, cost_usd=0.01, elapsed_s=10.0)
    print("workload output that must not reach the JSON")
    return {"score": trial.params["x"]}
'''
TRACEBACK = 'Traceback (most recent call last):\n  File "train.py", line 3, in <module>\nValueError: boom\n'


from _cli import assert_one_line_error, thrifty  # noqa: E402


def _config(path, url, *, name="coststudy", workload=True, extra=""):
    text = textwrap.dedent(f"""\
        name: {name}
        storage: {url}
        space:
          x: {{type: float, low: 0.0, high: 1.0}}
          opt: [adam, sgd]
        objective: {{score: max}}
        seed: 1
        """)
    if workload:
        text += f"workload: {WORKLOAD_MODULE}:objective\n"
    path.write_text(text + textwrap.dedent(extra))
    return path


@pytest.fixture
def project(tmp_path):
    cfg_dir = tmp_path / "experiment"
    cfg_dir.mkdir()
    (cfg_dir / f"{WORKLOAD_MODULE}.py").write_text(WORKLOAD)
    url = f"sqlite:///{tmp_path / 'cost.db'}"
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return cfg_dir, url, cwd


def _ledger_numbers(stdout: str) -> list[int]:
    """Trial numbers in the first column of the ledger (the table after 'trials by cost')."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("trials by cost"))
    return [int(line.split("│")[1].strip()) for line in lines[start:] if line.startswith("│")]


@pytest.fixture
def known_study(project):
    """A stored study with a known ledger: 3 completed ($1.00 each, except trial 2: $2.00),
    1 stopped early ($0.30), 1 failed ($0.25, with a traceback); $4.55 in total."""
    _, url, _ = project
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, "max", name="ledger", storage=url,
                            budget=th.Budget(trials=8, usd=10.0))
    for i, usd in enumerate((1.0, 1.0, 2.0)):
        t = study.ask()
        for step in range(1, 11):
            t.report(0.5, step=step, cost_usd=usd / 10, elapsed_s=1.0)
        study.tell(t, 0.5 + i / 10, elapsed_s=0.0)
    t = study.ask()
    for step in range(1, 4):
        t.report(0.1, step=step, cost_usd=0.1, elapsed_s=1.0)
    study.tell(t, state="stopped", reason="scheduler: asha", elapsed_s=0.0)
    t = study.ask()
    t.report(0.0, step=1, cost_usd=0.25, elapsed_s=1.0)
    study.tell(t, state="failed", error=TRACEBACK, elapsed_s=0.0)
    study.close()
    return url


# -- report ---------------------------------------------------------------------------------------
def test_report_table(project, known_study):
    _, url, cwd = project
    p = thrifty("report", "ledger", "--storage", url, cwd=cwd)
    out = p.stdout
    assert "cost report: study ledger" in out
    assert "$4.5500 in total" in out
    assert "5 started, 5 in the study" in out
    assert "5 of 8 started, 3 left" in out
    assert "$4.5500 of $10.0000 spent, $5.4500 left" in out
    assert "circuit breaker" in out and "not tripped" in out
    assert "saved by early stopping" in out and "estimate" in out
    assert "forecast to finish" in out and "for 3 more trials" in out
    assert "value = 0.7 (maximized), trial 2" in out
    # By state: failed trials' cost is shown.
    state_rows = {line.split("│")[1].strip(): line.split("│")[3].strip()
                  for line in out.splitlines() if line.startswith("│") and "spend by" not in line}
    assert state_rows["completed"] == "4.0000"
    assert state_rows["stopped early"] == "0.3000"
    assert state_rows["failed"] == "0.2500"
    assert state_rows["total"] == "4.5500"
    # The ledger: most expensive first, the failed trial's error as one line.
    assert _ledger_numbers(out) == [2, 0, 1, 3, 4]
    assert "ValueError: boom" in out and "Traceback" not in out
    assert "scheduler: asha" in out

    p = thrifty("report", "ledger", "--top", "2", "--storage", url, cwd=cwd)
    assert _ledger_numbers(p.stdout) == [2, 0]
    assert "top 2 of 5" in p.stdout


def test_report_json(project, known_study):
    _, url, cwd = project
    p = thrifty("report", "ledger", "--json", "--storage", url, cwd=cwd)
    d = json.loads(p.stdout)
    assert d["study"] == "ledger" and d["spent_usd"] == pytest.approx(4.55)
    by_state = {s["state"]: s for s in d["by_state"]}
    assert by_state["completed"]["trials"] == 3 and by_state["completed"]["cost_usd"] == pytest.approx(4.0)
    assert by_state["failed"]["cost_usd"] == pytest.approx(0.25)
    assert by_state["stopped"]["cost_usd"] == pytest.approx(0.3)
    assert len(d["trials"]) == 5  # --json has the full ledger
    assert d["trials"][4]["note"] == "ValueError: boom"
    assert d["budget"]["limits"][1]["left"] == pytest.approx(5.45)
    assert d["saved_by_early_stopping"]["stopped_trials"] == 1
    assert d["forecast_to_finish"]["remaining_trials"] == 3
    assert d["best"]["number"] == 2


def test_report_html_writes_one_shareable_file(project, known_study):
    _, url, cwd = project
    p = thrifty("report", "ledger", "--html", "out/ledger.html", "--storage", url, cwd=cwd, check_rc=None)
    assert_one_line_error(p, "--html out/ledger.html", "does not exist")
    assert not (cwd / "out").exists()
    (cwd / "out").mkdir()
    p = thrifty("report", "ledger", "--html", "out/ledger.html", "--storage", url, cwd=cwd)
    assert p.stdout.startswith("wrote out/ledger.html (") and "self-contained" in p.stdout
    text = (cwd / "out" / "ledger.html").read_text(encoding="utf-8")
    assert "<h1>Study ledger</h1>" in text and "$4.5500 in total" in text
    assert "ValueError: boom" in text and "scheduler: asha" in text  # the ledger's notes
    p = thrifty("report", "ledger", "--html", "x.html", "--json", "--storage", url, cwd=cwd, check_rc=None)
    assert_one_line_error(p, "--html and --json")
    assert not (cwd / "x.html").exists()


# -- estimate -------------------------------------------------------------------------------------
def test_estimate_from_an_existing_study(project):
    cfg_dir, url, cwd = project
    config = _config(cfg_dir / "tune.yaml", url)
    thrifty("run", config, "--n-trials", "4", cwd=cwd)
    assert th.Study.load("coststudy", storage=url).cost_usd == pytest.approx(0.12)

    p = thrifty("estimate", config, "--trials", "10", "--json", cwd=cwd)
    d = json.loads(p.stdout)
    assert d["basis"]["kind"] == "study" and d["basis"]["study"] == "coststudy"
    assert d["basis"]["trials"] == 4 and d["dry_run"] is None
    assert d["n_trials"] == 10 and d["resource"] == 3.0
    assert d["per_trial_usd"] == pytest.approx(0.03, rel=0.05)
    assert d["expected_usd"] == pytest.approx(0.30, rel=0.05)
    assert d["low_usd"] <= d["expected_usd"] <= d["high_usd"]
    assert len(th.Study.load("coststudy", storage=url).trials) == 4  # nothing ran

    p = thrifty("estimate", config, "--trials", "10", cwd=cwd)
    assert "expected cost" in p.stdout and "90% interval" in p.stdout
    assert f"study 'coststudy' in {url}: 4 trials with costs" in p.stdout
    assert "DRY RUN" not in p.stdout and "dry run" not in p.stderr

    # --from-study: another config name, the stored study's costs.
    other = _config(cfg_dir / "other.yaml", url, name="newname")
    p = thrifty("estimate", other, "--trials", "5", "--from-study", "coststudy", "--json", cwd=cwd)
    d = json.loads(p.stdout)
    assert d["basis"]["study"] == "coststudy" and d["expected_usd"] == pytest.approx(0.15, rel=0.05)


def test_estimate_by_dry_run(project, tmp_path):
    cfg_dir, url, cwd = project
    config = _config(cfg_dir / "tune.yaml", url)
    p = thrifty("estimate", config, "--trials", "10", "--json", cwd=cwd)
    d = json.loads(p.stdout)  # the workload's prints went to stderr
    assert "workload output" in p.stderr and "dry run" in p.stderr
    assert d["basis"]["kind"] == "dry_run" and d["basis"]["trials"] == 3
    assert d["dry_run"]["trials"] == 3 and d["dry_run"]["states"] == {"completed": 3}
    assert d["dry_run"]["cost_usd"] == pytest.approx(0.09)
    assert d["expected_usd"] == pytest.approx(0.30, rel=0.05)
    assert any("no study named 'coststudy'" in n for n in d["notes"])
    assert not (tmp_path / "cost.db").exists(), "a dry run writes nothing to the storage"

    p = thrifty("estimate", config, "--trials", "10", "--dry-run-trials", "4", cwd=cwd)
    assert "DRY RUN of 4 trials" in p.stdout and "throwaway in-memory study" in p.stdout
    assert "dry run cost" in p.stdout and "$0.1200" in p.stdout


def test_estimate_dry_run_uses_the_config_pricing(project):
    """$36/h is $0.01 a second: each of the 3 reports is 10 s ($0.10) plus $0.01 reported, so a
    trial costs $0.33 (plus the few milliseconds metered at the end)."""
    cfg_dir, url, cwd = project
    config = _config(cfg_dir / "priced.yaml", url, extra="pricing: {local: 36.0}\nresources: {cpu: 1}\n")
    p = thrifty("estimate", config, "--trials", "4", "--json", cwd=cwd)
    d = json.loads(p.stdout)
    assert d["dry_run"]["cost_usd"] == pytest.approx(3 * 0.33, rel=0.01)
    assert d["expected_usd"] == pytest.approx(4 * 0.33, rel=0.05)


def test_run_passes_pricing_resources_and_stop_when(project):
    cfg_dir, url, cwd = project
    config = _config(cfg_dir / "priced.yaml", url, extra=textwrap.dedent("""\
        pricing: {local: 36.0}
        resources: {cpu: 1}
        stop_when:
          - {name: target, value: 2.0}
        """))
    thrifty("run", config, "--n-trials", "2", cwd=cwd)
    study = th.Study.load("coststudy", storage=url)
    assert study.pricing.to_dict() == {"local": 36.0}
    assert study.resources == {"cpu": 1.0}
    assert [c.to_spec() for c in study.criteria] == [{"name": "target", "value": 2.0}]
    trials = study.trials
    assert len(trials) == 2
    for t in trials:
        assert t.cost_usd == pytest.approx(0.33, rel=0.01)
        assert t.resources == {"cpu": 1.0}


# -- errors ---------------------------------------------------------------------------------------
def test_errors_are_one_line(project, known_study, tmp_path):
    cfg_dir, url, cwd = project
    empty = f"sqlite:///{tmp_path / 'empty.db'}"

    p = thrifty("report", "nosuch", "--storage", url, cwd=cwd, check_rc=None)
    assert_one_line_error(p, "no study named 'nosuch'")
    p = thrifty("report", "ledger", "--top", "0", "--storage", url, cwd=cwd, check_rc=None)
    assert_one_line_error(p, "--top")

    no_workload = _config(cfg_dir / "noworkload.yaml", empty, workload=False)
    p = thrifty("estimate", no_workload, "--trials", "5", cwd=cwd, check_rc=None)
    assert_one_line_error(p, "workload")

    config = _config(cfg_dir / "tune.yaml", empty)
    p = thrifty("estimate", config, "--trials", "0", cwd=cwd, check_rc=None)
    assert_one_line_error(p, "--trials 0")
    p = thrifty("estimate", config, "--trials", "3", "--dry-run-trials", "0", cwd=cwd, check_rc=None)
    assert_one_line_error(p, "--dry-run-trials 0")
    p = thrifty("estimate", config, "--trials", "3", "--from-study", "nosuch", cwd=cwd, check_rc=None)
    assert_one_line_error(p, "no study named 'nosuch'")
    p = thrifty("estimate", config, "--trials", "3", "--from-study", "ledger", "--storage", url, cwd=cwd,
                check_rc=None)
    assert_one_line_error(p, "different space")
    p = thrifty("estimate", cfg_dir / "missing.yaml", "--trials", "3", cwd=cwd, check_rc=None)
    assert_one_line_error(p, "does not exist")

    p = thrifty("estimate", config, cwd=cwd, check_rc=None)  # --trials is required: usage error
    assert p.returncode == 2
