"""The live terminal view: what a user watching a run sees."""

from __future__ import annotations

from rich.console import Console

import thrifty as th
from thrifty.progress import ProgressView


def render(view: ProgressView) -> str:
    console = Console(width=160, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(view)
    return console.export_text()


def test_the_view_shows_running_trials_their_last_report_the_spend_and_the_budget_left():
    study = th.Study.create({"lr": th.Float(1e-4, 1.0, log=True)}, {"acc": "max"}, storage="memory",
                            budget=th.Budget(usd=10.0), pricing={"local": 0.0})
    done = study.ask()
    study.tell(done, {"acc": 0.5}, cost_usd=1.25)
    running = study.ask()
    running.report({"acc": 0.625}, step=3, cost_usd=0.5)
    text = render(ProgressView(study, n_trials=4))
    assert "1 running" in text and "1 completed" in text
    assert "$1.7500 of $10.00" in text and "$8.2500 left" in text
    # The running trial's row: number, step, last report, dollars so far, params (in that order).
    row = next(line.split() for line in text.splitlines() if line.split()[:1] == [str(running.number)])
    assert row[:4] == [str(running.number), "3", "acc=0.625", "0.5000"] and row[4].startswith("lr=")
    # The best line names the completed trial and its value (the running trial's 0.625 is not a result).
    best = next(line.split() for line in text.splitlines() if line.split()[:1] == ["best"])
    assert best[1:4] == ["0.5", "(trial", f"{done.number})"] and best[4].startswith("lr=")


def test_the_best_line_waits_for_a_completed_trial():
    study = th.Study.create({"x": th.Float(0.0, 1.0)}, "max", storage="memory")
    running = study.ask()
    running.report(0.75, step=1)
    best = next(line.split() for line in render(ProgressView(study, n_trials=2)).splitlines()
                if line.split()[:1] == ["best"])
    assert best[1:] == ["none", "yet"]
