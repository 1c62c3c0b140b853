"""``mfgp``'s cost premium: a configuration pays in expected improvement for what it costs above a
typical one, so the search does not chase a small gain into configurations a hundred times dearer.

Whole studies in memory with the default scheduler, on a deterministic objective with steps whose
value improves slightly (by 0.05 of 1) with ``y`` while a step's cost grows a hundredfold with it.
"""

from __future__ import annotations

import math

import pytest

import thrifty as th

SPACE = th.Space({"x": th.Float(0.0, 1.0), "y": th.Float(0.0, 1.0), "z": th.Float(0.0, 1.0)})
STEPS = 9


def quality(p) -> float:
    return 1.0 - (p["x"] - 0.3) ** 2 - 0.5 * (p["z"] - 0.6) ** 2 + 0.05 * p["y"]


def step_cost_usd(p) -> float:
    return 0.01 * math.exp(4.6 * p["y"])  # y = 1 costs 100 times y = 0


def run(premium: bool, seed: int, n_trials: int = 40) -> tuple[float, float, float]:
    """(dollars spent on configurations with y > 0.5, dollars in all, best value)."""
    study = th.Study.create(SPACE, {"v": "max"}, storage="memory", seed=seed,
                            strategy={"name": "mfgp", "cost_premium": premium})
    dear = total = 0.0
    for _ in range(n_trials):
        t = study.ask()
        q, c = quality(t.params), step_cost_usd(t.params)
        for step in range(1, STEPS + 1):
            t.report({"v": q * step / STEPS}, step=step, cost_usd=c)
            total += c
            dear += c if t.params["y"] > 0.5 else 0.0
            if step < STEPS and t.should_stop():
                study.tell(t, state="stopped")
                break
        else:
            study.tell(t, q)
    assert study.cost_usd == pytest.approx(total)
    return dear, total, study.best.metrics["v"]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_premium_keeps_the_search_off_configurations_a_hundred_times_dearer(seed):
    dear, total, best = run(True, seed)
    dear_without, total_without, best_without = run(False, seed)
    # Measured: with the premium $14-19 in all (a third to a half on y > 0.5), without it
    # $104-112 (almost all on y > 0.5), with the same best value.
    assert total < total_without / 3, (total, total_without)
    assert dear < dear_without / 5, (dear, dear_without)
    assert best >= best_without - 0.01, (best, best_without)


def test_the_premium_is_on_by_default_and_stored_only_when_switched_off():
    from thrifty.strategies import make_strategy

    assert make_strategy("mfgp").spec.cost_premium is True
    assert "cost_premium" not in make_strategy("mfgp").to_spec()
    assert make_strategy({"name": "mfgp", "cost_premium": False}).to_spec()["cost_premium"] is False
    with pytest.raises(ValueError, match="cost_premium"):
        make_strategy({"name": "mfgp", "cost_premium": "yes"})
