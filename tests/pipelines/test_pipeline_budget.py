"""A hard dollar budget holds for pipeline studies, whose stages are charged only when they end:
no stage starts that the dollars left cannot pay (its cost in recent runs), at admission and
again before each stage."""

from __future__ import annotations

from pathlib import Path

import thrifty as th
from thrifty.clock import ManualClock

#: $3.60 an hour: a cent every ten seconds.
PRICING = {"local": 3.6}


def _pipeline(clock: ManualClock, cache: Path, ran: list[tuple[str, int]], extra_usd: dict[int, float]) -> th.Pipeline:
    """prep 10 s ($0.01), train 20 s ($0.02), eval 1 s ($0.001) on the study's manual clock; prep
    also charges ``extra_usd[n]`` dollars (a bill of its own) when ``n`` is its parameter."""
    def prep(p, data, trial):
        ran.append(("prep", trial.number))
        clock.advance(10)
        if p["n"] in extra_usd:
            trial.charge(cost_usd=extra_usd[p["n"]])
        return {"n": p["n"]}

    def train(p, data, trial):
        ran.append(("train", trial.number))
        clock.advance(20)
        return data["n"] * p["lr"]

    def evaluate(p, data, trial):
        ran.append(("eval", trial.number))
        clock.advance(1)
        return {"f1": data * p["t"]}

    return th.Pipeline([th.Stage("prep", prep, space={"n": th.Int(8, 64)}),
                        th.Stage("train", train, space={"lr": th.Float(1e-4, 1e-1, log=True)}),
                        th.Stage("eval", evaluate, space={"t": th.Float(0.1, 0.9)})], cache_dir=str(cache))


def test_the_last_dollars_go_to_completions_of_cached_prefixes_and_the_budget_is_never_overspent(tmp_path: Path) -> None:
    clock, ran = ManualClock(start_s=1_000.0), []
    study = th.Study.create(pipeline=_pipeline(clock, tmp_path / "cache", ran, {}), objective={"f1": "max"},
                            storage=f"sqlite:///{tmp_path / 'p.db'}", strategy="random", scheduler=None,
                            pricing=PRICING, clock=clock, budget=th.Budget(usd=0.1), seed=3)
    study.optimize(n_trials=60, progress=False)
    trials = study.trials
    # Three whole runs ($0.031 each) leave $0.007: too little for a fresh prep + train + eval
    # ($0.031 at most in recent runs), enough for seven eval-only completions ($0.001 each).
    assert [t.state for t in trials] == [th.TrialState.COMPLETED] * len(trials)
    assert study.cost_usd <= 0.1 + 1e-9
    assert study.cost_usd >= 0.099 - 1e-9
    assert [s for s, n in ran if n >= 3] == ["eval"] * (len(trials) - 3)
    assert len(trials) == 10
    assert all(any(t.params["n"] == first.params["n"] and t.params["lr"] == first.params["lr"]
                   for first in trials[:3]) for t in trials[3:])


def test_a_stage_the_dollars_left_cannot_pay_is_not_started(tmp_path: Path) -> None:
    clock, ran = ManualClock(start_s=1_000.0), []
    study = th.Study.create(pipeline=_pipeline(clock, tmp_path / "cache", ran, {20: 0.015}), objective={"f1": "max"},
                            storage=f"sqlite:///{tmp_path / 'p.db'}", strategy="random", scheduler=None,
                            pricing=PRICING, clock=clock, budget=th.Budget(usd=0.07))
    study.enqueue({"n": 10, "lr": 0.01, "t": 0.5})
    study.enqueue({"n": 20, "lr": 0.01, "t": 0.5})  # its prep's own bill leaves $0.014 < train + eval's $0.021
    study.optimize(n_trials=2, progress=False)
    first, second = study.trials[:2]
    assert first.state is th.TrialState.COMPLETED
    assert second.state is th.TrialState.STOPPED
    assert second.stop is not None and second.stop.kind is th.StopKind.BUDGET and second.stop.limit == "usd"
    assert "stage 'train'" in (second.stop.text or "") and "not started" in (second.stop.text or "")
    assert ran == [("prep", 0), ("train", 0), ("eval", 0), ("prep", 1)]
    assert round(study.cost_usd, 9) == round(0.031 + 0.01 + 0.015, 9)
    # prep's output was whole: cached, so a later trial that can pay for the rest reuses it
    outcomes = [(r.name, r.outcome) for r in study.storage.stage_runs(study.id) if r.trial_id == second.id]
    assert outcomes == [("prep", "run")]


def test_a_soft_budget_is_not_guarded_before_stages(tmp_path: Path) -> None:
    clock, ran = ManualClock(start_s=1_000.0), []
    study = th.Study.create(pipeline=_pipeline(clock, tmp_path / "cache", ran, {20: 0.015}), objective={"f1": "max"},
                            storage=f"sqlite:///{tmp_path / 'p.db'}", strategy="random", scheduler=None,
                            pricing=PRICING, clock=clock, budget=th.Budget(usd=0.07, hard=False))
    study.enqueue({"n": 10, "lr": 0.01, "t": 0.5})
    study.enqueue({"n": 20, "lr": 0.01, "t": 0.5})
    study.optimize(n_trials=2, progress=False)
    assert [t.state for t in study.trials] == [th.TrialState.COMPLETED] * 2
    assert len(ran) == 6
