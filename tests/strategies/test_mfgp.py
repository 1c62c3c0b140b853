"""``mfgp``: one GP over (configuration, resource), proposing at the full resource."""

from __future__ import annotations

import math

import pytest

import thrifty as th
from thrifty.strategies.base import Context
from thrifty.strategies.bohb import BOHB
from thrifty.strategies.gp import GP
from thrifty.strategies.mfgp import MFGP, RESOURCE

from _toys import SMALL, finished, run_with_steps


def bound(rule):
    rule.bind(Context(objectives={"v": "max"}))
    return rule


def test_every_level_a_trial_reached_is_an_observation():
    rule = bound(MFGP(min_resource=1, reduction_factor=3))
    history = [finished(0, [0.1 * s for s in range(1, 10)], params={"x": 0.1, "y": 0.2}),  # completed at 9
               finished(1, [0.5, 0.6, 0.7, 0.8], params={"x": 0.3, "y": 0.4}, state="stopped"),
               finished(2, [], params={"x": 0.9, "y": 0.9}, state="running")]
    view = rule.observations(SMALL, history)
    got = sorted((t.params["x"], round(t.params[RESOURCE], 6), t.state.value, t.metrics.get("v")) for t in view)
    # top = 9 (the completed trial): u = log(r) / log(9), so the levels 1 and 3 sit at 0 and 0.5.
    assert got == [
        (0.1, 0.0, "completed", pytest.approx(0.1)), (0.1, 0.5, "completed", pytest.approx(0.3)),
        (0.1, 1.0, "completed", pytest.approx(0.9)),
        (0.3, 0.0, "completed", 0.5), (0.3, 0.5, "completed", 0.7),
        (0.3, round(math.log(4) / math.log(9), 6), "completed", 0.8),  # its last report, at step 4
        (0.9, 1.0, "running", None),
    ]
    # Without any trial reporting two steps there is nothing to learn about the resource.
    assert rule.observations(SMALL, [finished(0, [0.4])]) is None


def test_the_memoised_view_is_the_view_a_fresh_worker_builds():
    """observations() memoises each trial's rows; a worker that has seen earlier histories (the
    trial running then, stopped now; the full resource grown) must see what a fresh one sees."""
    study = run_with_steps(th.Study.create(SMALL, {"v": "max"}, storage="memory", strategy="mfgp", seed=1,
                                           scheduler={"name": "asha", "max_resource": 9}), 12)
    trials = study.trials
    warm = bound(MFGP())
    # The stopped trials alone: no trial completed, so the full resource is a lower one.
    assert warm.observations(SMALL, [t for t in trials if t.state.value == "stopped"]) is not None
    for k in range(2, len(trials)):
        warm.observations(SMALL, trials[:k])  # earlier histories, seen in passing
    # The last trials while they ran, with every report they have now.
    running = [th.Trial(number=t.number, state="running", params=t.params, measurements=t.measurements)
               for t in trials[-3:]]
    warm.observations(SMALL, trials[:-3] + running)

    def view(rule):
        return [(t.number, t.state, dict(t.params), dict(t.metrics)) for t in rule.observations(SMALL, trials)]

    assert view(warm) == view(bound(MFGP()))
    seen = dict(seed=4, number=len(trials))
    assert warm.propose(SMALL, trials, **seen) == bound(MFGP()).propose(SMALL, trials, **seen)


def test_finds_the_optimum_of_a_stepped_toy_and_is_deterministic():
    def run(seed):
        return run_with_steps(th.Study.create(SMALL, {"v": "max"}, storage="memory", strategy="mfgp", seed=seed,
                                              scheduler={"name": "asha", "max_resource": 9}), 25)

    a, b = run(5), run(5)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert a.best.value > 0.9  # the optimum is 1.0 at x=1, y=0.3


def test_never_proposes_a_configuration_tried_at_any_resource():
    space = th.Space({"x": th.Int(0, 3), "y": th.Int(0, 3)})  # 16 configurations
    study = th.Study.create(space, {"v": "max"}, storage="memory", strategy="mfgp", seed=2,
                            scheduler={"name": "asha", "max_resource": 9, "check_rungs": False})
    for _ in range(12):
        t = study.ask()
        for step in range(1, 10):
            t.report({"v": (t.params["x"] - t.params["y"]) * step}, step=step)
            if t.should_stop():
                study.tell(t, state="stopped")
                break
        else:
            study.tell(t, {"v": (t.params["x"] - t.params["y"]) * 9})
    keys = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert len(set(keys)) == len(keys) == 12
    assert any(t.state.value == "stopped" for t in study.trials)  # low resources were in the history


def test_the_space_filling_share_is_bohbs_and_stored_only_when_set():
    study = run_with_steps(th.Study.create(SMALL, {"v": "max"}, storage="memory", strategy="mfgp", seed=1,
                                           scheduler={"name": "asha", "max_resource": 9}), 12)
    trials = study.trials
    mine = bound(MFGP(random_fraction=1.0))
    spread = bound(BOHB(inner="gp", min_points=2, random_fraction=1.0))
    modelled = bound(MFGP())
    at = dict(seed=7, number=len(trials), n=3)
    assert mine.propose(SMALL, trials, **at) == spread.propose(SMALL, trials, **at)  # one Sobol' sequence
    assert mine.propose(SMALL, trials, **at) != modelled.propose(SMALL, trials, **at)
    assert "random_fraction" not in MFGP().spec.params()  # specs stored before it store back unchanged
    assert MFGP(random_fraction=0.25).spec.params()["random_fraction"] == 0.25


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"MFGP\(min_resource=0\)"):
        MFGP(min_resource=0)
    with pytest.raises(ValueError, match=r"MFGP\(reduction_factor=1\)"):
        MFGP(reduction_factor=1)
    with pytest.raises(ValueError, match="may not have a parameter named"):
        MFGP().augmented(th.Space({RESOURCE: th.Float(0, 1)}))
    with pytest.raises(ValueError, match="not a float parameter"):
        bound(GP()).propose_pinned(th.Space({"k": th.Int(0, 3)}), [], seed=0, number=0, pinned={"k": 1.0})
