"""The cost model (thrifty.cost.forecast) on workloads whose true cost is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builders import curve_trial, trial

import thrifty as th
from thrifty.analysis.report import forecast_trials
from thrifty.trial import Measurement

SPACE = th.Space({
    "batch_size": th.Int(16, 512, log=True),
    "units": th.Int(32, 1024, log=True),
    "lr": th.Float(1e-4, 1e-1, log=True),  # irrelevant to cost
})
EPOCHS = 20


def true_cost_per_epoch(p) -> float:
    """Dollars per epoch: more units cost more, bigger batches cost less (a training job's shape)."""
    return 0.02 * (p["units"] / 128) ** 0.8 * (p["batch_size"] / 64) ** -0.6


def trials(n: int, seed: int, noise: float = 0.1) -> list[th.Trial]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = SPACE.decode(rng.random(SPACE.n_dims))
        per = true_cost_per_epoch(p) * math.exp(noise * rng.standard_normal())
        out.append(curve_trial(i, [None] * EPOCHS, state="completed", params=p, step_cost_usd=per,
                               cost_usd=per * EPOCHS))
    return out


def held_out(n: int = 100, seed: int = 99) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [SPACE.decode(rng.random(SPACE.n_dims)) for _ in range(n)]


def test_forecast_learns_a_known_cost_function():
    model = th.CostModel(SPACE).fit(trials(30, seed=1))
    configs = held_out()
    truth = np.array([true_cost_per_epoch(p) * EPOCHS for p in configs])
    forecasts = [model.predict(p, EPOCHS) for p in configs]
    median = np.array([f.median_usd for f in forecasts])
    assert np.mean(np.abs(median - truth) / truth) < 0.15  # the true costs span a factor ~40
    inside = np.mean([f.low_usd <= t <= f.high_usd for f, t in zip(forecasts, truth)])
    assert inside > 0.75
    for f in forecasts:
        assert f.low_usd < f.median_usd < f.mean_usd < f.high_usd


def test_forecast_at_a_lower_resource_scales_with_the_epochs():
    model = th.CostModel(SPACE).fit(trials(30, seed=2))
    p = held_out(1)[0]
    full = model.predict(p, EPOCHS).median_usd
    half = model.predict(p, EPOCHS / 2).median_usd
    assert half / full == pytest.approx(0.5, rel=0.15)


def test_a_window_of_early_stopped_trials_still_forecasts_the_full_resource():
    """The last ``max_trials`` trials all stopped at step 2 (a scheduler's first rung): the model
    keeps earlier trials that reached the full resource, so its forecast there rests on measured
    full costs, not on carrying two steps to twenty (the first step here also pays a start-up
    cost three times a later step's, as loading data does)."""
    rng = np.random.default_rng(5)
    history = []
    for i in range(80):
        p = SPACE.decode(rng.random(SPACE.n_dims))
        per = true_cost_per_epoch(p)
        ms = tuple(Measurement(step=k + 1, metrics={}, cost_usd=per * (3.0 if k == 0 else 1.0))
                   for k in range(EPOCHS if i < 20 else 2))
        history.append(trial(i, state="completed" if i < 20 else "stopped", params=p, measurements=ms,
                             cost_usd=math.fsum(m.cost_usd for m in ms)))
    model = th.CostModel(SPACE, max_trials=50).fit(history)
    configs = held_out()
    truth = np.array([true_cost_per_epoch(p) * (EPOCHS + 2) for p in configs])
    median = np.array([model.predict(p, EPOCHS).median_usd for p in configs])
    assert np.mean(np.abs(median - truth) / truth) < 0.3


def test_joint_draws_match_the_marginals_and_share_the_models_uncertainty():
    model = th.CostModel(SPACE).fit(trials(6, seed=3, noise=0.02))
    configs = held_out(40)
    draws = model.sample_log(configs, EPOCHS, 4000, np.random.default_rng(0))
    assert draws.shape == (4000, 40)
    mu, sd = model.predict_log(configs, EPOCHS)
    assert np.allclose(draws.mean(axis=0), mu, atol=0.1 + 0.1 * sd.max())
    assert np.allclose(draws.std(axis=0), sd, rtol=0.25)
    # With 6 trials the level is uncertain for every configuration at once: draws are correlated,
    # so the spread of a total is wider than if each trial's cost were drawn on its own.
    independent_sd = math.sqrt(float(np.sum(draws.var(axis=0))))
    assert draws.sum(axis=1).std() > 1.5 * independent_sd
    with pytest.raises(ValueError, match="draws"):
        model.sample_log(configs, EPOCHS, 0, np.random.default_rng(0))


@pytest.mark.slow  # statistical: coverage of an interval over many simulated studies
def test_study_spend_forecast_interval_holds_the_actual_totals():
    """The 90% interval of the total of 50 new random trials holds the actual total of most of
    40 independent sets of 50 trials (a calibrated interval: about 36 of 40; a point-like or
    badly biased one would hold few)."""
    model = th.CostModel(SPACE).fit(trials(20, seed=4))
    forecast = forecast_trials(model, SPACE, 50, float(EPOCHS), seed=5, n_configs=1024)
    actual = [math.fsum(t.cost_usd for t in trials(50, seed=100 + k)) for k in range(40)]
    inside = sum(forecast.low_usd <= a <= forecast.high_usd for a in actual)
    assert inside >= 30, (inside, forecast, sorted(actual))
    assert forecast.low_usd < forecast.mean_usd < forecast.high_usd
    assert forecast.mean_usd == pytest.approx(50 * forecast.per_trial_usd)


def test_an_unfitted_model_says_so_and_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="no trial with a cost"):
        th.CostModel(SPACE).predict(held_out(1)[0], EPOCHS)
    with pytest.raises(ValueError, match="min_trials"):
        th.CostModel(SPACE, min_trials=1)
    with pytest.raises(ValueError, match="rows_per_trial"):
        th.CostModel(SPACE, rows_per_trial=0)
