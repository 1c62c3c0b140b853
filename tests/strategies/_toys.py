"""Toy spaces, histories and stepped objectives shared by the multi-fidelity strategy tests."""

from __future__ import annotations

from builders import curve_trial

import thrifty as th

SMALL = th.Space({"x": th.Float(0, 1), "y": th.Float(0, 1)})


def finished(number, values, params=None, state="completed"):
    """A trial that reported ``values`` of ``v`` at steps 1, 2, ... and told the last one."""
    return curve_trial(number, values, state=state, metric="v", final=True, params=params or {"x": 0.5, "y": 0.5})


def run_with_steps(study, n_trials):
    """``n_trials`` trials reporting steps 1..9 of a curve whose end is 1.0 at best (x=1, y=0.3),
    stopped when the study's scheduler says so."""
    for _ in range(n_trials):
        t = study.ask()
        for step in range(1, 10):
            t.report({"v": t.params["x"] * step / 9 - (t.params["y"] - 0.3) ** 2}, step=step)
            if t.should_stop():
                study.tell(t, state="stopped")
                break
        else:
            study.tell(t, {"v": t.params["x"] - (t.params["y"] - 0.3) ** 2})
    return study
