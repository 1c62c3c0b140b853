"""Prices: what an hour of a machine, a GPU or a CPU core costs, in US dollars.

A :class:`Catalogue` holds instance types (``aws:p4d.24xlarge``), per-GPU prices (``a100-40gb``)
and a per-core CPU price, with the source and date of each price. The built-in one lives in
``catalogue.yaml`` beside this module; users extend or override it from their own YAML.

A :class:`Pricing` is a study's rule for turning a trial's wall seconds into dollars, given the
resources the trial holds:

- ``Pricing.none()`` (``pricing=None``): no metering, a trial costs what the objective reports;
- ``Pricing.local(usd_per_hour)``: a flat rate per trial, whatever it holds;
- ``Pricing.instance(name, spot=False)``: a share of an instance type's hourly price. A trial
  holding ``gpu: 2`` on an 8-GPU instance pays 2/8 of it; a CPU-only trial pays its share of the
  vCPUs; a trial that declares no resources pays the whole instance;
- ``Pricing.per_resource(gpu=..., usd_per_core_hour=...)``: GPUs of a model at the catalogue's
  per-GPU rate plus CPU cores at a per-core rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources as _resources
from typing import Any

from thrifty.errors import ValidationError


def _rate(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{what}={value!r}: expected a number of dollars per hour")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValidationError(f"{what}={value!r}: a price must be a finite number of dollars per hour >= 0")
    return v


@dataclass(frozen=True)
class InstanceType:
    """An instance type's hourly prices and what it holds."""

    name: str
    usd_per_hour: float
    spot_usd_per_hour: float | None = None
    gpus: int = 0
    gpu: str | None = None
    vcpus: int = 1
    memory_gib: float | None = None
    provider: str | None = None
    region: str | None = None
    source: str | None = None
    as_of: str | None = None

    def __post_init__(self) -> None:
        _rate(self.usd_per_hour, f"{self.name}: usd_per_hour")
        if self.spot_usd_per_hour is not None:
            _rate(self.spot_usd_per_hour, f"{self.name}: spot_usd_per_hour")
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 0:
            raise ValidationError(f"{self.name}: gpus={self.gpus!r} must be an integer >= 0")
        if isinstance(self.vcpus, bool) or not isinstance(self.vcpus, int) or self.vcpus < 1:
            raise ValidationError(f"{self.name}: vcpus={self.vcpus!r} must be an integer >= 1")

    def price(self, spot: bool = False) -> float:
        """Dollars per hour for the whole instance."""
        if spot:
            if self.spot_usd_per_hour is None:
                raise ValidationError(f"instance type {self.name!r} has no spot price in the catalogue; add one")
            return self.spot_usd_per_hour
        return self.usd_per_hour


@dataclass(frozen=True)
class Catalogue:
    """Instance types, per-GPU prices and a per-core CPU price (dollars per hour)."""

    instances: Mapping[str, InstanceType] = field(default_factory=dict)
    gpus: Mapping[str, float] = field(default_factory=dict)
    usd_per_core_hour: float | None = None

    @classmethod
    def builtin(cls) -> Catalogue:
        """The catalogue shipped with thrifty (see ``catalogue.yaml`` for sources and dates)."""
        return _builtin()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: Catalogue | None = None) -> Catalogue:
        """Read a catalogue; entries override or extend ``base`` (if given)."""
        if not isinstance(data, Mapping):
            raise ValidationError("price catalogue: expected a mapping with 'instances', 'gpus' and/or 'cpu'")
        unknown = sorted(set(data) - {"version", "instances", "gpus", "cpu"})
        if unknown:
            raise ValidationError(f"price catalogue: unknown section(s) {', '.join(unknown)}; known: instances, gpus, cpu")
        instances = dict(base.instances) if base else {}
        for name, spec in (data.get("instances") or {}).items():
            if not isinstance(spec, Mapping):
                raise ValidationError(f"price catalogue: instance {name!r} must be a mapping with usd_per_hour")
            if "usd_per_hour" not in spec:
                raise ValidationError(f"price catalogue: instance {name!r} has no usd_per_hour")
            allowed = set(InstanceType.__dataclass_fields__) - {"name"}
            bad = sorted(set(spec) - allowed)
            if bad:
                raise ValidationError(f"price catalogue: instance {name!r}: unknown field(s) {', '.join(bad)}")
            instances[str(name)] = InstanceType(name=str(name), **dict(spec))
        gpus = dict(base.gpus) if base else {}
        for name, spec in (data.get("gpus") or {}).items():
            value = spec.get("usd_per_hour") if isinstance(spec, Mapping) else spec
            gpus[str(name)] = _rate(value, f"price catalogue: gpu {name!r}: usd_per_hour")
        core = base.usd_per_core_hour if base else None
        cpu = data.get("cpu")
        if cpu is not None:
            value = cpu.get("usd_per_core_hour") if isinstance(cpu, Mapping) else cpu
            core = _rate(value, "price catalogue: cpu usd_per_core_hour")
        return cls(instances=instances, gpus=gpus, usd_per_core_hour=core)

    @classmethod
    def from_yaml(cls, path_or_text: str, base: Catalogue | None = None) -> Catalogue:
        """Read a YAML file (or YAML text) of prices, on top of ``base``."""
        import os

        from thrifty import _yaml as yaml

        text = path_or_text
        if "\n" not in path_or_text and os.path.exists(path_or_text):
            with open(path_or_text, encoding="utf-8") as fh:
                text = fh.read()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValidationError(f"price catalogue is not valid YAML: {exc}") from None
        return cls.from_dict(data or {}, base)

    def instance(self, name: str) -> InstanceType:
        try:
            return self.instances[name]
        except KeyError:
            close = [n for n in self.instances if name.split(":")[-1] in n] or sorted(self.instances)[:8]
            raise ValidationError(
                f"unknown instance type {name!r}; known: {', '.join(close)} (add it with a catalogue YAML)"
            ) from None

    def gpu_price(self, model: str) -> float:
        try:
            return self.gpus[model]
        except KeyError:
            raise ValidationError(
                f"unknown GPU model {model!r}; known: {', '.join(sorted(self.gpus))} (add it with a catalogue YAML)"
            ) from None


@lru_cache(maxsize=1)
def _builtin() -> Catalogue:
    text = _resources.files("thrifty.cost").joinpath("catalogue.yaml").read_text(encoding="utf-8")
    return Catalogue.from_yaml(text)


def check_resources(resources: Mapping[str, Any] | None) -> dict[str, float]:
    """Validate a trial's resources: ``{"gpu": 1, "cpu": 4}`` (counts >= 0)."""
    if resources is None:
        return {}
    if not isinstance(resources, Mapping):
        raise ValidationError(f"resources={resources!r}: expected a mapping like {{'gpu': 1, 'cpu': 4}}")
    out: dict[str, float] = {}
    for k, v in resources.items():
        if k not in ("gpu", "cpu"):
            raise ValidationError(f"resources: unknown resource {k!r}; known: gpu, cpu")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValidationError(f"resources: {k}={v!r} must be a number >= 0")
        out[k] = float(v)
    return out


@dataclass(frozen=True)
class Pricing:
    """A study's rule for turning wall seconds into dollars (see the module docstring)."""

    kind: str = "none"
    usd_per_hour: float | None = None
    instance_type: str | None = None
    spot: bool = False
    gpu: str | None = None
    usd_per_core_hour: float | None = None
    catalogue: Catalogue = field(default_factory=Catalogue.builtin, compare=False, repr=False)
    catalogue_overrides: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    def none(cls) -> Pricing:
        return cls(kind="none")

    @classmethod
    def local(cls, usd_per_hour: float) -> Pricing:
        return cls(kind="local", usd_per_hour=_rate(usd_per_hour, "Pricing.local(usd_per_hour)"))

    @classmethod
    def instance(cls, name: str, spot: bool = False, catalogue: Catalogue | None = None) -> Pricing:
        cat = catalogue or Catalogue.builtin()
        cat.instance(name).price(spot)  # validates the name and the spot price
        return cls(kind="instance", instance_type=name, spot=bool(spot), catalogue=cat)

    @classmethod
    def per_resource(
        cls, gpu: str | None = None, usd_per_core_hour: float | None = None, catalogue: Catalogue | None = None
    ) -> Pricing:
        cat = catalogue or Catalogue.builtin()
        if gpu is not None:
            cat.gpu_price(gpu)
        core = _rate(usd_per_core_hour, "usd_per_core_hour") if usd_per_core_hour is not None else None
        if gpu is None and core is None and cat.usd_per_core_hour is None:
            raise ValidationError("Pricing.per_resource: give a gpu model and/or usd_per_core_hour")
        return cls(kind="resources", gpu=gpu, usd_per_core_hour=core, catalogue=cat)

    @classmethod
    def parse(cls, spec: Any) -> Pricing:
        """Read ``pricing=`` as users write it (also what the study stores).

        ``None``; a :class:`Pricing`; ``"local"`` is refused without a rate; an instance name such
        as ``"aws:g5.xlarge"``; or a mapping: ``{"local": 0.5}``, ``{"instance": "aws:p4d.24xlarge",
        "spot": true}``, ``{"gpu": "a100-40gb", "usd_per_core_hour": 0.04}``, each optionally with
        ``"catalogue": {...}`` or a YAML path of prices that override the built-in ones.
        """
        if spec is None:
            return cls.none()
        if isinstance(spec, Pricing):
            return spec
        if isinstance(spec, str):
            if spec == "none":
                return cls.none()
            if spec == "local":
                raise ValidationError(
                    "pricing='local' needs a rate: pricing={'local': USD_PER_HOUR} or th.Pricing.local(usd_per_hour=...)"
                )
            return cls.instance(spec)
        if not isinstance(spec, Mapping):
            raise ValidationError(f"pricing={spec!r}: expected None, 'INSTANCE_TYPE', a mapping or th.Pricing")
        spec = dict(spec)
        overrides = spec.pop("catalogue", None)
        cat = Catalogue.builtin()
        if overrides is not None:
            cat = Catalogue.from_yaml(overrides, cat) if isinstance(overrides, str) else Catalogue.from_dict(overrides, cat)
        kind = spec.pop("kind", None)
        if "local" in spec or kind == "local":
            rate = spec.pop("local", None) if "local" in spec else spec.pop("usd_per_hour", None)
            out = cls.local(rate)
        elif "instance" in spec or kind == "instance":
            name = spec.pop("instance", None) or spec.pop("instance_type", None)
            spot = spec.pop("spot", False)
            if not isinstance(name, str) or not name:
                raise ValidationError(f"pricing: instance={name!r}: expected an instance type such as 'aws:g5.xlarge'")
            if not isinstance(spot, bool):  # bool("false") would silently pick the spot price
                raise ValidationError(f"pricing: spot={spot!r}: expected true or false")
            out = cls.instance(name, spot, cat)
        elif "gpu" in spec or "usd_per_core_hour" in spec or kind == "resources":
            out = cls.per_resource(spec.pop("gpu", None), spec.pop("usd_per_core_hour", None), cat)
        elif kind == "none":
            out = cls.none()
        else:
            raise ValidationError(
                f"pricing={spec!r}: give one of 'local', 'instance' or 'gpu'/'usd_per_core_hour'"
            )
        leftover = sorted(k for k in spec if k not in ("usd_per_hour", "instance_type", "spot", "gpu", "usd_per_core_hour"))
        if leftover:
            raise ValidationError(f"pricing: unknown key(s) {', '.join(leftover)}")
        if overrides is not None:
            out = _replace(out, catalogue_overrides=overrides if isinstance(overrides, Mapping) else {"path": overrides})
        return out

    def to_dict(self) -> dict[str, Any] | None:
        """The stored form; :meth:`parse` reads it back."""
        if self.kind == "none":
            return None
        d: dict[str, Any]
        if self.kind == "local":
            d = {"local": self.usd_per_hour}
        elif self.kind == "instance":
            d = {"instance": self.instance_type, "spot": self.spot}
        else:
            d = {"gpu": self.gpu, "usd_per_core_hour": self.usd_per_core_hour}
        if self.catalogue_overrides:
            d["catalogue"] = dict(self.catalogue_overrides) if "path" not in self.catalogue_overrides else self.catalogue_overrides["path"]
        return d

    # -- the rate ------------------------------------------------------------------------------
    @property
    def meters(self) -> bool:
        """Whether this pricing charges for time at all."""
        return self.kind != "none"

    def usd_per_hour_for(self, resources: Mapping[str, float] | None = None) -> float:
        """Dollars per hour that a trial holding ``resources`` costs."""
        res = check_resources(resources)
        if self.kind == "none":
            return 0.0
        if self.kind == "local":
            assert self.usd_per_hour is not None
            return self.usd_per_hour
        if self.kind == "instance":
            assert self.instance_type is not None
            it = self.catalogue.instance(self.instance_type)
            price = it.price(self.spot)
            gpus, cpus = res.get("gpu", 0.0), res.get("cpu", 0.0)
            if gpus > 0:
                if it.gpus == 0:
                    raise ValidationError(f"resources ask for {gpus:g} GPU(s) but {it.name} has none")
                if gpus > it.gpus:
                    raise ValidationError(f"resources ask for {gpus:g} GPUs but {it.name} has {it.gpus}")
                return price * gpus / it.gpus
            if cpus > 0:
                if cpus > it.vcpus:
                    raise ValidationError(f"resources ask for {cpus:g} CPUs but {it.name} has {it.vcpus}")
                return price * cpus / it.vcpus
            return price
        rate = 0.0
        if res.get("gpu", 0.0) > 0:
            if self.gpu is None:
                raise ValidationError("resources ask for GPUs but the pricing names no GPU model")
            rate += res["gpu"] * self.catalogue.gpu_price(self.gpu)
        if res.get("cpu", 0.0) > 0:
            core = self.usd_per_core_hour if self.usd_per_core_hour is not None else self.catalogue.usd_per_core_hour
            if core is None:
                raise ValidationError("resources ask for CPUs but the pricing has no usd_per_core_hour")
            rate += res["cpu"] * core
        return rate

    def gpus_held(self, resources: Mapping[str, float] | None = None) -> float:
        """GPUs a trial holding ``resources`` occupies (for GPU-hours): its declared GPUs, or, on
        instance pricing with no resources declared, the whole instance's GPUs (it pays for them)."""
        res = check_resources(resources)
        if "gpu" in res:
            return res["gpu"]
        if self.kind == "instance" and not res and self.instance_type is not None:
            return float(self.catalogue.instance(self.instance_type).gpus)
        return 0.0

    def cost_usd(self, elapsed_s: float, resources: Mapping[str, float] | None = None) -> float:
        """Dollars for holding ``resources`` for ``elapsed_s`` seconds."""
        return self.usd_per_hour_for(resources) * max(elapsed_s, 0.0) / 3600.0


def _replace(p: Pricing, **changes: Any) -> Pricing:
    import dataclasses

    return dataclasses.replace(p, **changes)
