"""The meter: the one place where a trial's seconds become dollars (and GPU-seconds)."""

from __future__ import annotations

import pytest

import thrifty as th
from thrifty.cost.meter import Charge, Meter

P4D = "aws:p4d.24xlarge"  # $32.773/h on demand, $12/h spot, 8 GPUs (the built-in catalogue)


def test_no_pricing_charges_only_what_the_objective_reports() -> None:
    meter = Meter(th.Pricing.parse(None), {"gpu": 2})
    assert meter.charge(3600.0, cost_usd=0.25) == Charge(cost_usd=0.25, elapsed_s=3600.0, gpu_s=7200.0)


def test_a_local_rate_is_charged_per_second_plus_the_reported_cost() -> None:
    meter = Meter(th.Pricing.parse({"local": 36.0}))  # $36/h = $0.01 a second
    charge = meter.charge(90.0, cost_usd=0.5)
    assert charge.cost_usd == pytest.approx(0.9 + 0.5) and charge.elapsed_s == 90.0 and charge.gpu_s == 0.0


def test_an_instance_is_charged_per_gpu_held_and_counts_gpu_seconds() -> None:
    whole = Meter(th.Pricing.instance(P4D))  # no resources declared: the whole instance, 8 GPUs
    assert whole.charge(1800.0) == Charge(cost_usd=pytest.approx(32.773 / 2), elapsed_s=1800.0, gpu_s=8 * 1800.0)
    one_gpu = Meter(th.Pricing.instance(P4D, spot=True), {"gpu": 1})  # an eighth of the spot price
    assert one_gpu.charge(3600.0) == Charge(cost_usd=pytest.approx(12.0 / 8), elapsed_s=3600.0, gpu_s=3600.0)


def test_a_zero_interval_costs_only_what_was_reported() -> None:
    assert Meter(th.Pricing.parse({"local": 36.0}), {"gpu": 1}).charge(0.0) == Charge(0.0, 0.0, 0.0)


@pytest.mark.parametrize("elapsed_s, cost_usd, match", [
    (-1.0, 0.0, "elapsed_s=-1.0"), (float("nan"), 0.0, "elapsed_s=nan"), ("10", 0.0, "number of seconds"),
    (1.0, -0.5, "cannot be negative"), (1.0, float("inf"), "must be finite"), (1.0, True, "number of dollars"),
])
def test_bad_intervals_are_refused(elapsed_s: object, cost_usd: object, match: str) -> None:
    with pytest.raises(th.ValidationError, match=match):
        Meter(th.Pricing.parse({"local": 1.0})).charge(elapsed_s, cost_usd)  # type: ignore[arg-type]


def test_bad_resources_are_refused() -> None:
    with pytest.raises(th.ValidationError, match="unknown resource 'tpu'"):
        Meter(th.Pricing.parse(None), {"tpu": 1})


def test_a_study_charges_reports_and_tells_through_its_meter(sqlite_url: str) -> None:
    """What the study records for each interval is the meter's charge for it."""
    study = th.Study.create({"x": th.Float(0, 1)}, "max", storage=sqlite_url, pricing={"local": 36.0},
                            resources={"gpu": 1})
    meter = Meter(th.Pricing.parse({"local": 36.0}), {"gpu": 1})
    trial = study.ask()
    trial.report(0.5, step=1, elapsed_s=10.0, cost_usd=0.2)
    done = study.tell(trial, 0.7, elapsed_s=5.0)
    expected = [meter.charge(10.0, 0.2), meter.charge(5.0)]
    assert [Charge(m.cost_usd, m.elapsed_s, m.gpu_s) for m in done.measurements] == expected
    assert done.cost_usd == pytest.approx(sum(c.cost_usd for c in expected))
    assert study.usage().gpu_hours == pytest.approx(15.0 / 3600.0)
