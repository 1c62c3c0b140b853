"""Seeded studies that exercise every scheduler, and the decisions they make at every report.

Each case runs a study in this process with several trials open at once (reports interleaved at
random, as with parallel workers), curves whose early ranks predict the end only partly, a few
NaN reports, failures, user stops, trials that end before the others, paused trials resumed by the
next ask and PBT clones. Everything is seeded, so the sequence of decisions is a function of the
scheduler's rule only: tests/schedulers/test_incremental.py checks that it is the same, report for
report, as the one recorded in tests/schedulers/data/decisions.json from the code before the
schedulers kept incremental state (main at 5bce165).

Record (only when the rules are meant to change; run with the code whose decisions are the
reference)::

    PYTHONPATH=src python tests/helpers/scheduler_replay.py tests/schedulers/data/decisions.json
"""

from __future__ import annotations

import json
import math
import random
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import thrifty as th
from thrifty.errors import StudyExhausted, TrialNotRunning

SPACE = {"x": th.Float(0.0, 1.0), "y": th.Float(0.0, 1.0)}
MAX_STEPS = 27

#: name -> (scheduler spec, settings); settings: trials, parallel, direction, resource, studies.
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "auto": ({"name": "auto"}, {}),
    "auto-min-nan": ({"name": "auto"}, {"direction": "min", "nan": 0.03, "seed": 2}),
    "auto-two-studies": ({"name": "auto"}, {"studies": 2, "storage": "sqlite", "seed": 3}),
    "auto-infeasible": ({"name": "auto"}, {"constraint": True, "seed": 18}),
    "auto-min-resource": ({"name": "auto", "min_resource": 2, "reduction_factor": 2}, {"seed": 4}),
    "asha": ({"name": "asha", "max_resource": 27}, {}),
    "asha-classic": ({"name": "asha", "max_resource": 27, "check_rungs": False}, {"seed": 5}),
    "asha-promotion": ({"name": "asha", "max_resource": 27, "mode": "promotion"}, {"seed": 6}),
    "asha-promotion-classic": ({"name": "asha", "max_resource": 27, "mode": "promotion", "check_rungs": False},
                               {"seed": 7}),
    "asha-cost": ({"name": "asha", "min_resource": 0.05, "max_resource": 2.0, "resource": "cost_usd"},
                  {"cost": True, "seed": 8, "trials": 60}),
    "median": ({"name": "median"}, {"seed": 9}),
    "median-infeasible": ({"name": "median"}, {"constraint": True, "seed": 19}),
    "percentile-mean": ({"name": "percentile", "q": 30, "statistic": "mean", "min_trials": 3},
                        {"direction": "min", "nan": 0.02, "seed": 10}),
    "percentile-cost": ({"name": "percentile", "q": 40, "resource": "cost_usd", "min_resource": 0.1},
                        {"cost": True, "seed": 11, "trials": 60}),
    "hyperband": ({"name": "hyperband", "max_resource": 27, "seed": 3}, {"seed": 12}),
    "hyperband-sync": ({"name": "hyperband", "max_resource": 27, "synchronous": True}, {"seed": 13}),
    "adaptive": ({"name": "adaptive", "max_resource": 27}, {"seed": 14}),
    "patience": ({"name": "patience", "patience": 3, "adaptive": True}, {"seed": 15, "trials": 30}),
    "threshold": ({"name": "threshold", "value": 0.45, "min_resource": 3}, {"nan": 0.03, "seed": 16, "trials": 30}),
    "pbt": ({"name": "pbt", "population_size": 6, "perturbation_interval": 3, "max_resource": 27},
            {"trials": 60, "seed": 17}),
}


def _quality(rng: random.Random, x: float, y: float) -> tuple[float, float, float]:
    """A trial's final quality, how much of it shows early, and its early bias."""
    final = 1.0 - (x - 0.3) ** 2 - (y - 0.6) ** 2
    return final, rng.uniform(2.0, 8.0), rng.uniform(-0.15, 0.15)


def run_case(name: str, on_study: Callable[[th.Study], None] | None = None) -> list[list[Any]]:
    """Run case ``name``; what happened at each report, in order: ``[trial, step, "continue"]``,
    ``[trial, step, "stop" or "pause", reason]``, then ``"completed"``, ``"infeasible"`` or
    ``"failed"`` rows.
    ``on_study`` is called with each study once it is open (tests wrap its scheduler there)."""
    spec, settings = CASES[name]
    rng = random.Random(settings.get("seed", 1))
    n_trials, parallel = settings.get("trials", 80), settings.get("parallel", 4)
    direction, nan_p, cost = settings.get("direction", "max"), settings.get("nan", 0.0), settings.get("cost", False)
    with tempfile.TemporaryDirectory(prefix="thrifty-replay-") as tmp:
        url = f"sqlite:///{tmp}/study.db" if settings.get("storage") == "sqlite" else "memory"
        # With a constraint, a trial that completes with y > 0.5 is INFEASIBLE: it still counts as
        # having run to the end (thrifty.ranking.measured) for the rules that learn from those.
        constraints = {"aux": ("<=", 0.5)} if settings.get("constraint") else None
        first = th.Study.create(SPACE, direction, name="replay", storage=url, strategy="random",
                                scheduler=spec, seed=settings.get("seed", 1), constraints=constraints)
        studies = [first] + [th.Study.load("replay", storage=url) for _ in range(settings.get("studies", 1) - 1)]
        for s in studies:
            if on_study is not None:
                on_study(s)
        out: list[list[Any]] = []
        open_: list[dict[str, Any]] = []
        curves: dict[int, tuple[float, float, float, int]] = {}
        asked, exhausted = 0, False
        while True:
            while len(open_) < parallel and asked < n_trials and not exhausted:
                study = studies[asked % len(studies)]
                try:
                    h = study.ask()
                except StudyExhausted:
                    exhausted = not open_
                    break
                asked += 1
                if h.number not in curves:  # a resumed trial goes on with its own curve
                    end = MAX_STEPS if rng.random() > 0.1 else rng.randint(4, MAX_STEPS - 1)
                    curves[h.number] = (*_quality(rng, h.params["x"], h.params["y"]), end)
                final, tau, bias, end = curves[h.number]
                open_.append({"study": study, "h": h, "step": int(h.last_step or 0), "end": end,
                              "final": final, "tau": tau, "bias": bias})
            if not open_:
                break
            job = open_[rng.randrange(len(open_))]
            h, study = job["h"], job["study"]
            job["step"] += 1
            step = job["step"]
            shown = math.exp(-step / job["tau"])
            v = job["final"] * (1.0 - 0.5 * shown) + job["bias"] * shown + rng.gauss(0.0, 0.01)
            v = float("nan") if rng.random() < nan_p else (v if direction == "max" else 1.0 - v)
            r = rng.random()
            try:
                if r < 0.005:
                    study.tell(h, state="failed", error="simulated failure")
                    out.append([h.number, step, "failed"])
                    open_.remove(job)
                    continue
                if r < 0.01:
                    study.stop_trial(h.number)
                h.report(v, step=step, cost_usd=rng.uniform(0.001, 0.02) if cost else 0.0, elapsed_s=1.0)
                stop = h.should_stop()
            except TrialNotRunning:
                open_.remove(job)
                continue
            if stop:
                out.append([h.number, step, "pause" if h.pausing else "stop", h.stop_reason])
            else:
                out.append([h.number, step, "continue"])
            if stop:
                study.tell(h, state="paused" if h.pausing else "stopped")
                open_.remove(job)
            elif step >= job["end"]:
                final = v if math.isfinite(v) else 0.0
                told = study.tell(h, {"value": final, "aux": h.params["y"]} if constraints else final)
                out.append([h.number, step, told.state.value])
                open_.remove(job)
        for s in studies:
            s.close()
    return out


def record(path: str) -> None:
    data = {name: run_case(name) for name in CASES}
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
                                    for k, v in data.items()) + "\n}\n")
    for name, rows in data.items():
        kinds = {k: sum(1 for r in rows if r[2] == k)
                 for k in ("continue", "stop", "pause", "completed", "infeasible", "failed")}
        print(f"{name}: {len(rows)} rows {kinds}")


if __name__ == "__main__":
    record(sys.argv[1])
