"""Prices: the built-in catalogue, user overrides, and the errors a study refuses before it
writes anything."""

from __future__ import annotations

import math
from importlib import resources

import pytest
import yaml

import thrifty as th

SPACE = th.Space({"x": th.Float(0.0, 1.0)})


# -- the built-in catalogue -----------------------------------------------------------------------
def _builtin_yaml() -> dict:
    return yaml.safe_load(resources.files("thrifty.cost").joinpath("catalogue.yaml").read_text(encoding="utf-8"))


def test_builtin_catalogue_loads_with_a_source_and_date_for_every_price():
    cat = th.Catalogue.builtin()
    assert len(cat.instances) >= 10 and len(cat.gpus) >= 5 and cat.usd_per_core_hour == 0.0425
    for name, it in cat.instances.items():
        assert it.name == name and ":" in name
        assert it.usd_per_hour > 0
        assert it.source and isinstance(it.source, str), name
        assert it.as_of and isinstance(it.as_of, str), name
        assert it.provider == name.split(":")[0]
        if it.spot_usd_per_hour is not None:
            assert 0 < it.spot_usd_per_hour < it.usd_per_hour
        if it.gpus:
            assert it.gpu in cat.gpus, f"{name}: its GPU model {it.gpu!r} has a per-GPU price too"
    assert all(p > 0 for p in cat.gpus.values())
    # The per-GPU and CPU prices are kept as plain rates; their source and date are in the file.
    raw = _builtin_yaml()
    for section in ("instances", "gpus"):
        for name, spec in raw[section].items():
            assert spec.get("source") and spec.get("as_of"), f"{section}/{name} lacks a source or date"
    assert raw["cpu"].get("source") and raw["cpu"].get("as_of")
    p4d = cat.instance("aws:p4d.24xlarge")
    assert (p4d.usd_per_hour, p4d.gpus, p4d.gpu, p4d.vcpus) == (32.773, 8, "a100-40gb", 96)
    assert cat.gpu_price("a100-40gb") == pytest.approx(p4d.usd_per_hour / 8, abs=1e-3)


def test_pricing_rates_from_the_catalogue():
    p4d = th.Pricing.instance("aws:p4d.24xlarge")
    assert p4d.usd_per_hour_for({"gpu": 2}) == pytest.approx(32.773 / 4)
    assert p4d.usd_per_hour_for({"cpu": 24}) == pytest.approx(32.773 / 4)
    assert p4d.usd_per_hour_for({}) == pytest.approx(32.773)  # no resources: the whole machine
    assert th.Pricing.instance("aws:p4d.24xlarge", spot=True).usd_per_hour_for({"gpu": 8}) == pytest.approx(12.0)
    per = th.Pricing.per_resource(gpu="h100", usd_per_core_hour=0.05)
    assert per.usd_per_hour_for({"gpu": 2, "cpu": 8}) == pytest.approx(2 * 6.88 + 8 * 0.05)
    assert th.Pricing.per_resource(gpu="t4").usd_per_hour_for({"gpu": 1, "cpu": 2}) == pytest.approx(0.35 + 2 * 0.0425)
    assert th.Pricing.local(1.5).cost_usd(3600.0, {"gpu": 4}) == pytest.approx(1.5)
    assert th.Pricing.none().cost_usd(3600.0) == 0.0 and not th.Pricing.none().meters
    for spec in ({"local": 2.0}, {"instance": "gcp:a2-highgpu-8g", "spot": True}, {"gpu": "l4", "usd_per_core_hour": 0.03}):
        p = th.Pricing.parse(spec)
        assert th.Pricing.parse(p.to_dict()) == p
    assert th.Pricing.parse(None) == th.Pricing.none() and th.Pricing.parse("none") == th.Pricing.none()
    assert th.Pricing.parse("aws:g5.xlarge") == th.Pricing.instance("aws:g5.xlarge")


# -- user prices ----------------------------------------------------------------------------------
USER_YAML = """
instances:
  aws:p4d.24xlarge: {usd_per_hour: 20.0, gpus: 8, gpu: a100-40gb, vcpus: 96, source: "our contract", as_of: "2026-01"}
  lab:dgx: {usd_per_hour: 8.0, gpus: 8, gpu: h100, vcpus: 128, source: "internal chargeback", as_of: "2026-01"}
gpus:
  h100: 5.0
  mi300x: {usd_per_hour: 4.5}
cpu: {usd_per_core_hour: 0.05}
"""


def test_user_yaml_overrides_and_extends_the_builtin_prices(tmp_path, sqlite_url):
    path = tmp_path / "prices.yaml"
    path.write_text(USER_YAML)
    builtin = th.Catalogue.builtin()
    cat = th.Catalogue.from_yaml(str(path), base=builtin)
    assert cat.instance("aws:p4d.24xlarge").usd_per_hour == 20.0  # overridden
    assert cat.instance("aws:p4d.24xlarge").source == "our contract"
    assert cat.instance("lab:dgx").usd_per_hour == 8.0  # added
    assert cat.instance("aws:g5.xlarge").usd_per_hour == 1.006  # kept
    assert cat.gpu_price("h100") == 5.0 and cat.gpu_price("mi300x") == 4.5 and cat.gpu_price("t4") == 0.35
    assert cat.usd_per_core_hour == 0.05
    assert th.Catalogue.builtin().instance("aws:p4d.24xlarge").usd_per_hour == 32.773  # not changed
    assert th.Catalogue.from_yaml(USER_YAML, base=builtin).instances == cat.instances  # YAML text works too
    alone = th.Catalogue.from_yaml(USER_YAML)
    assert sorted(alone.instances) == ["aws:p4d.24xlarge", "lab:dgx"]

    # A study priced from the user's file (stored by path) and one from an inline mapping.
    s1 = th.Study.create(SPACE, "max", name="dgx", storage=sqlite_url,
                         pricing={"instance": "lab:dgx", "catalogue": str(path)}, resources={"gpu": 2})
    s2 = th.Study.create(SPACE, "max", name="mi300", storage=sqlite_url,
                         pricing={"gpu": "mi300x", "catalogue": yaml.safe_load(USER_YAML)},
                         resources={"gpu": 2, "cpu": 4})
    for study, rate in ((s1, 2.0), (s2, 2 * 4.5 + 4 * 0.05)):
        assert study.pricing.usd_per_hour_for(study.resources) == pytest.approx(rate)
        loaded = th.Study.load(study.name, storage=sqlite_url)
        assert loaded.pricing.usd_per_hour_for(loaded.resources) == pytest.approx(rate), "the prices are stored"
        t = loaded.ask()
        t.report(0.5, step=1, elapsed_s=1800.0)
        assert loaded.tell(t, 0.5, elapsed_s=0.0).cost_usd == pytest.approx(rate / 2)


def test_bad_catalogues_are_refused_with_clear_messages(tmp_path):
    cases = [
        ({"instances": {"x:y": {"gpus": 1}}}, "no usd_per_hour"),
        ({"instances": {"x:y": {"usd_per_hour": 1.0, "colour": "red"}}}, "unknown field"),
        ({"instances": {"x:y": {"usd_per_hour": 1.0, "gpus": -1}}}, "gpus"),
        ({"gpus": {"h100": "pricey"}}, "expected a number"),
        ({"racks": {}}, "unknown section"),
        ({"cpu": {"usd_per_core_hour": -0.1}}, ">= 0"),
    ]
    for data, match in cases:
        with pytest.raises(th.ValidationError, match=match):
            th.Catalogue.from_dict(data, th.Catalogue.builtin())
    with pytest.raises(th.ValidationError, match="not valid YAML"):
        th.Catalogue.from_yaml("instances: [unclosed\n")


# -- refused before anything is written -----------------------------------------------------------
BAD_STUDIES = [
    pytest.param({"pricing": {"local": -1.0}}, r"local.*-1\.0.*>= 0", id="negative-local-rate"),
    pytest.param({"pricing": {"local": float("nan")}}, "finite", id="nan-local-rate"),
    pytest.param({"pricing": {"local": "cheap"}}, "expected a number of dollars per hour", id="text-rate"),
    pytest.param({"pricing": {"instance": "lab:box", "catalogue": {"instances": {"lab:box": {"usd_per_hour": -3.0}}}}},
                 "lab:box.*usd_per_hour.*>= 0", id="negative-instance-price"),
    pytest.param({"pricing": {"gpu": "h100", "catalogue": {"gpus": {"h100": -1}}}}, "h100.*>= 0", id="negative-gpu-price"),
    pytest.param({"pricing": "aws:nope.large"}, "unknown instance type 'aws:nope.large'", id="unknown-instance"),
    pytest.param({"pricing": {"instance": "gcp:tpu-v9"}}, "unknown instance type", id="unknown-instance-mapping"),
    pytest.param({"pricing": {"gpu": "b200"}}, "unknown GPU model 'b200'", id="unknown-gpu-model"),
    pytest.param({"pricing": "local"}, "needs a rate", id="local-without-rate"),
    pytest.param({"pricing": {"local": None}}, "expected a number", id="local-rate-none"),
    pytest.param({"pricing": {"instance": "aws:p5.48xlarge", "spot": True}}, "no spot price", id="no-spot-price"),
    pytest.param({"pricing": {"local": 1.0, "colour": "red"}}, "unknown key", id="unknown-pricing-key"),
    pytest.param({"pricing": {"instance": "aws:g5.xlarge", "spot": "false"}}, "spot='false'", id="spot-not-bool"),
    pytest.param({"pricing": {"kind": "instance"}}, "instance=None", id="instance-without-name"),
    pytest.param({"pricing": {"instance": 7}}, "instance=7", id="instance-not-a-name"),
    pytest.param({"pricing": 42}, "expected None", id="pricing-not-a-spec"),
    pytest.param({"pricing": "aws:g5.xlarge", "resources": {"gpu": 2}}, "2 GPUs but aws:g5.xlarge has 1", id="too-many-gpus"),
    pytest.param({"pricing": "aws:p4d.24xlarge", "resources": {"gpu": 9}}, "9 GPUs but aws:p4d.24xlarge has 8",
                 id="too-many-gpus-p4d"),
    pytest.param({"pricing": "aws:c6i.xlarge", "resources": {"gpu": 1}}, "has none", id="gpu-on-cpu-instance"),
    pytest.param({"pricing": "aws:c6i.xlarge", "resources": {"cpu": 8}}, "8 CPUs but aws:c6i.xlarge has 4",
                 id="too-many-cpus"),
    pytest.param({"pricing": {"usd_per_core_hour": 0.04}, "resources": {"gpu": 1}}, "no GPU model", id="gpu-unpriced"),
    pytest.param({"resources": {"tpu": 1}}, "unknown resource 'tpu'", id="unknown-resource"),
    pytest.param({"resources": {"gpu": -1}}, "gpu=-1", id="negative-resource"),
    pytest.param({"resources": {"gpu": "two"}}, "gpu='two'", id="text-resource"),
    pytest.param({"budget": {"usd": 0}}, "above zero", id="zero-usd"),
    pytest.param({"budget": {"usd": -5.0}}, "above zero", id="negative-usd"),
    pytest.param({"budget": {"usd": float("nan")}}, "above zero", id="nan-usd"),
    pytest.param({"budget": {"usd": float("inf")}}, "finite", id="infinite-usd"),
    pytest.param({"budget": {"usd": "10"}}, "expected a number of dollars", id="text-usd"),
    pytest.param({"budget": {"usd": True}}, "expected a number of dollars", id="bool-usd"),
    pytest.param({"budget": {"gpu_hours": 0}}, "GPU-hour", id="zero-gpu-hours"),
    pytest.param({"budget": {"gpu_hours": "lots"}}, "GPU-hours", id="text-gpu-hours"),
    pytest.param({"budget": {"wall_s": -1}}, "wall-time", id="negative-wall"),
    pytest.param({"budget": {"wall_s": float("nan")}}, "wall-time", id="nan-wall"),
    pytest.param({"budget": {"trials": 0}}, "at least one trial", id="zero-trials"),
    pytest.param({"budget": {"trials": 2.5}}, "whole number", id="fractional-trials"),
    pytest.param({"budget": {"hard": "yes", "usd": 1.0}}, "hard", id="hard-not-bool"),
    pytest.param({"budget": {"dollars": 5}}, "unknown limit", id="unknown-limit"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_STUDIES)
def test_invalid_prices_resources_and_budgets_write_nothing(sqlite_url, kwargs, match):
    with pytest.raises(th.ValidationError, match=match):
        th.Study.create(SPACE, "max", name="refused", storage=sqlite_url, **kwargs)
    with pytest.raises(th.StudyNotFound):
        th.Study.load("refused", storage=sqlite_url)


@pytest.mark.parametrize(
    "bad", [{"usd": 0}, {"usd": -1.0}, {"usd": float("nan")}, {"usd": "5"}, {"gpu_hours": -2}, {"wall_s": 0}]
)
def test_budget_constructor_and_set_budget_refuse_bad_limits(sqlite_url, bad):
    with pytest.raises(th.ValidationError, match="Budget"):
        th.Budget(**bad)
    study = th.Study.create(SPACE, "max", name="kept", storage=sqlite_url, budget=th.Budget(usd=3.0))
    with pytest.raises(th.ValidationError):
        study.set_budget(bad)
    assert th.Study.load("kept", storage=sqlite_url).budget == th.Budget(usd=3.0)


@pytest.mark.parametrize("bad", ["0.5", None, float("nan"), float("inf"), -0.01, True, [0.1]])
def test_non_numeric_costs_are_refused_and_the_ledger_is_unchanged(db_url, bad):
    study = th.Study.create(SPACE, "max", storage=db_url, pricing={"local": 36.0})
    t = study.ask()
    t.report(0.1, step=1, elapsed_s=10.0, cost_usd=0.25)  # $0.35
    before = (study.cost_usd, study.usage(), len(t.snapshot().measurements), t.cost_usd)
    with pytest.raises(th.ValidationError, match="cost"):
        t.report(0.2, step=2, cost_usd=bad)
    with pytest.raises(th.ValidationError, match="cost"):
        study.tell(t, 0.5, cost_usd=bad)
    with pytest.raises(th.ValidationError, match="cost"):
        study.tell(t, state="failed", error="x", cost_usd=bad)
    with pytest.raises(th.ValidationError, match="cost"):
        study.tell(t.number, 0.5, cost_usd=bad)
    snap = t.snapshot()
    assert snap.state is th.TrialState.RUNNING
    assert (study.cost_usd, len(snap.measurements), t.cost_usd) == (before[0], before[2], before[3])
    assert study.usage().usd == before[1].usd and study.usage().gpu_hours == before[1].gpu_hours
    assert snap.cost_usd == pytest.approx(0.35)
    done = study.tell(t, 0.5, elapsed_s=0.0, cost_usd=0.15)  # still usable
    assert done.cost_usd == pytest.approx(0.5) and study.cost_usd == pytest.approx(0.5)
    assert math.isclose(study.usage().usd, 0.5)


def test_gpus_held_counts_the_whole_instance_when_no_resources_are_declared():
    p = th.Pricing.parse("aws:p4d.24xlarge")
    assert p.gpus_held({}) == 8.0  # it pays for the whole machine, so it holds its 8 GPUs
    assert p.gpus_held({"gpu": 2}) == 2.0
    assert p.gpus_held({"cpu": 4}) == 0.0
    assert th.Pricing.parse({"local": 1.0}).gpus_held({}) == 0.0


def test_budget_stop_is_public(tmp_path):
    study = th.Study.create({"x": th.Float(0, 1)}, storage="memory", budget=th.Budget(usd=0.5))
    assert study.budget_stop is None
    t = study.ask()
    with pytest.raises(th.TrialStopped):
        t.report(0.1, step=1, cost_usd=0.6)
    stop = study.budget_stop
    assert stop is not None and stop.limit == "usd" and stop.message.startswith("the budget of $0.50")
    study.set_budget(th.Budget(usd=5.0))
    assert study.budget_stop is None
