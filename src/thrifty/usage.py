"""What a trial used while it ran: CPU, resident memory and, where a GPU was visible, GPU
utilisation and memory (:class:`ResourceUsage`, on :attr:`thrifty.trial.Trial.usage`).

The runners read the trial's processes every second or so (:mod:`thrifty.runners.sampling`:
one :class:`Sample` per reading) and store the summary that :func:`summarize` makes of them; this
module is that pure step, with no reading of its own, so it is tested with made-up samples.

Units and rules (the numbers are this module's constants):

- **CPU** is in percent of one core, as ``top`` shows it: 100 is one core busy the whole time, 400
  four. A sample's CPU is the CPU time the trial's processes used since the previous reading,
  divided by the wall time between them (its ``window_s``).
- **Memory** is in MB of 2**20 bytes (MiB): the resident set (RSS) summed over the trial's
  processes (pages they share are counted once per process), and the memory in use on its GPUs.
- **Means are time-weighted**: each sample weighs its ``window_s`` (a sample without a window
  weighs as much as the others' mean window).
- **GPU readings** are per device: a sample holds one utilisation and one memory figure for each
  GPU the trial could see. ``gpu_util_percent_mean`` averages over devices and time;
  ``gpu_memory_mb_max`` is the largest sum over devices in one sample.
- **An idle GPU reading** is one below :data:`GPU_IDLE_UTIL_PERCENT` (5%) utilisation;
  ``gpu_idle_share`` is the time-weighted share of the GPU readings that were idle (0 to 1).
- **A trial's GPU sat idle** (:attr:`ResourceUsage.gpu_idle`) when it had at least one GPU and
  ``gpu_idle_share >= GPU_IDLE_FLAG_SHARE`` (0.5): at least half of its GPU time was idle,
  which is paid hardware doing nothing, the first thing to cut.

A trial without any GPU has ``gpus == 0`` and ``None`` in every GPU field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from thrifty.errors import ValidationError

#: A GPU reading below this utilisation (percent) is idle.
GPU_IDLE_UTIL_PERCENT = 5.0
#: A trial whose share of idle GPU readings is at least this (0 to 1) is flagged: its GPU sat idle.
GPU_IDLE_FLAG_SHARE = 0.5
#: Bytes in one MB of this module (MiB).
BYTES_PER_MB = 2**20


@dataclass(frozen=True)
class Sample:
    """One reading of a trial's processes.

    ``window_s``: wall seconds since the previous reading (0: none, so no CPU figure of its own;
    the sampler's readings always have one); ``cpu_percent``: the processes' CPU use over that window,
    percent of one core; ``rss_mb``: their resident memory now, MB; ``gpu_util_percent`` and
    ``gpu_memory_mb``: one figure per visible GPU (utilisation in percent, memory in use in MB),
    empty where no GPU is visible.
    """

    window_s: float
    cpu_percent: float
    rss_mb: float
    gpu_util_percent: tuple[float, ...] = ()
    gpu_memory_mb: tuple[float, ...] = ()


def _number(data: Mapping[str, Any], name: str, *, high: float | None = None) -> float:
    """``data[name]`` as a finite float >= 0 (and <= ``high``), else a ValidationError."""
    value = data.get(name)
    if type(value) is float and 0.0 <= value < math.inf and (high is None or value <= high):
        return value  # the common case, first: a stored study reads one of these per trial
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
            or (high is not None and value > high):
        bound = f" and <= {high:g}" if high is not None else ""
        raise ValidationError(f"usage {name}={value!r}: expected a finite number >= 0{bound}")
    return float(value)


def _count(data: Mapping[str, Any], name: str, low: int) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValidationError(f"usage {name}={value!r}: expected a whole number >= {low}")
    return value


#: The GPU fields: ``None`` exactly when ``gpus == 0``.
_GPU_FIELDS = ("gpu_util_percent_mean", "gpu_memory_mb_max", "gpu_idle_share")
#: The other fields that are numbers >= 0.
_NUMBER_FIELDS = ("interval_s", "duration_s", "cpu_percent_mean", "cpu_percent_max", "rss_mb_max")


@dataclass(frozen=True)
class ResourceUsage:
    """A trial's resource use over its samples (see the module docstring for units and rules).

    ``samples``: readings taken (at least 1); ``interval_s``: the seconds the sampler waited
    between readings; ``duration_s``: wall seconds the readings cover; ``cpu_percent_mean`` and
    ``cpu_percent_max``: CPU in percent of one core; ``rss_mb_max``: the largest resident memory
    of the trial's processes, MB; ``gpus``: GPUs the trial could see; ``gpu_util_percent_mean``:
    their mean utilisation, percent; ``gpu_memory_mb_max``: the most GPU memory in use at once,
    MB; ``gpu_idle_share``: the share (0 to 1) of GPU readings below
    :data:`GPU_IDLE_UTIL_PERCENT`. The GPU fields are ``None`` when ``gpus`` is 0.
    """

    samples: int
    interval_s: float
    duration_s: float
    cpu_percent_mean: float
    cpu_percent_max: float
    rss_mb_max: float
    gpus: int = 0
    gpu_util_percent_mean: float | None = None
    gpu_memory_mb_max: float | None = None
    gpu_idle_share: float | None = None

    def __post_init__(self) -> None:
        checked = ResourceUsage.check(self.to_dict())
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def gpu_idle(self) -> bool:
        """Whether the trial's GPU sat idle: it had a GPU and at least :data:`GPU_IDLE_FLAG_SHARE`
        of its GPU readings were below :data:`GPU_IDLE_UTIL_PERCENT` utilisation."""
        return self.gpus > 0 and self.gpu_idle_share is not None and self.gpu_idle_share >= GPU_IDLE_FLAG_SHARE

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values (what the storage keeps)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @staticmethod
    def check(data: Mapping[str, Any]) -> dict[str, Any]:
        """The fields of ``data`` validated (types, ranges, the GPU fields ``None`` exactly when
        there is no GPU), as :class:`ResourceUsage` takes them; a ValidationError names the
        first bad one."""
        if not isinstance(data, Mapping):
            raise ValidationError(f"usage {data!r}: expected a mapping of its fields")
        if not data.keys() <= _FIELD_NAMES:
            unknown = sorted(map(str, set(data) - _FIELD_NAMES))
            raise ValidationError(f"usage: unknown field(s) {', '.join(unknown)} "
                                  f"(known: {', '.join(sorted(_FIELD_NAMES))})")
        out: dict[str, Any] = {"samples": _count(data, "samples", 1)}
        for name in _NUMBER_FIELDS:
            out[name] = _number(data, name)
        out["gpus"] = _count(data, "gpus", 0) if "gpus" in data else 0
        if out["cpu_percent_mean"] > out["cpu_percent_max"] * (1 + 1e-9) + 1e-9:
            raise ValidationError(f"usage cpu_percent_mean={out['cpu_percent_mean']!r} is above "
                                  f"cpu_percent_max={out['cpu_percent_max']!r}")
        for name in _GPU_FIELDS:
            given = data.get(name)
            if out["gpus"] == 0:
                if given is not None:
                    raise ValidationError(f"usage {name}={given!r}: a trial without a GPU (gpus=0) has none")
                out[name] = None
            else:
                if given is None:
                    raise ValidationError(f"usage {name}: missing for a trial with {out['gpus']} GPU(s)")
                out[name] = _number(data, name, high=1.0 if name == "gpu_idle_share" else None)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResourceUsage:
        """The record :meth:`to_dict` wrote (validated once; see :meth:`check`)."""
        usage = object.__new__(cls)
        usage.__dict__.update(cls.check(data))
        return usage

    def combined(self, later: ResourceUsage) -> ResourceUsage:
        """This usage and a later run's of the same trial (a paused trial resumed) as one:
        maxima of the maxima; means and the idle share weighted by each part's ``duration_s``
        (GPU figures by GPU-seconds); samples and durations added."""
        total = self.duration_s + later.duration_s
        a, b = (self.duration_s / total, later.duration_s / total) if total > 0 else (0.5, 0.5)
        gpu: dict[str, Any] = {"gpus": max(self.gpus, later.gpus)}
        gpu_parts = [(u, u.duration_s * u.gpus) for u in (self, later) if u.gpus > 0]
        if gpu_parts:
            weight = sum(w for _, w in gpu_parts)

            def mean(name: str) -> float:
                if weight <= 0:
                    return sum(getattr(u, name) for u, _ in gpu_parts) / len(gpu_parts)
                return sum(getattr(u, name) * w for u, w in gpu_parts) / weight

            gpu.update(gpu_util_percent_mean=mean("gpu_util_percent_mean"), gpu_idle_share=mean("gpu_idle_share"),
                       gpu_memory_mb_max=max(u.gpu_memory_mb_max or 0.0 for u, _ in gpu_parts))
        return ResourceUsage(
            samples=self.samples + later.samples, interval_s=later.interval_s, duration_s=total,
            cpu_percent_mean=a * self.cpu_percent_mean + b * later.cpu_percent_mean,
            cpu_percent_max=max(self.cpu_percent_max, later.cpu_percent_max),
            rss_mb_max=max(self.rss_mb_max, later.rss_mb_max), **gpu,
        )


#: Every field's name.
_FIELD_NAMES = frozenset(f.name for f in fields(ResourceUsage))


def _weights(samples: Sequence[Sample]) -> list[float]:
    """Each sample's weight: its window, or (no window: a first reading) the mean window of the
    others (1 each when none has a window)."""
    windows = [s.window_s for s in samples if s.window_s > 0]
    fill = sum(windows) / len(windows) if windows else 1.0
    return [s.window_s if s.window_s > 0 else fill for s in samples]


def summarize(samples: Sequence[Sample], interval_s: float) -> ResourceUsage | None:
    """The :class:`ResourceUsage` of ``samples`` (taken every ``interval_s`` seconds), by the
    rules of the module docstring; ``None`` without any sample.

    The CPU figures use the samples with a window (a first reading has none: if no sample has
    one, CPU is 0). The GPU figures use the samples that hold GPU readings; ``gpus`` is the most
    GPUs one sample saw (0: the GPU fields are ``None``).
    """
    if not samples:
        return None
    timed = [s for s in samples if s.window_s > 0]
    duration = math.fsum(s.window_s for s in timed)
    if timed and duration > 0:
        cpu_mean = math.fsum(s.cpu_percent * s.window_s for s in timed) / duration
        cpu_max = max(s.cpu_percent for s in timed)
    else:
        cpu_mean = cpu_max = 0.0
    usage: dict[str, Any] = {
        "samples": len(samples), "interval_s": float(interval_s), "duration_s": duration,
        "cpu_percent_mean": min(cpu_mean, cpu_max), "cpu_percent_max": cpu_max,
        "rss_mb_max": max(s.rss_mb for s in samples),
    }
    with_gpu = [(s, w) for s, w in zip(samples, _weights(samples), strict=True) if s.gpu_util_percent]
    if with_gpu:
        weight = math.fsum(w * len(s.gpu_util_percent) for s, w in with_gpu)
        usage.update(
            gpus=max(len(s.gpu_util_percent) for s, _ in with_gpu),
            gpu_util_percent_mean=math.fsum(w * u for s, w in with_gpu for u in s.gpu_util_percent) / weight,
            gpu_idle_share=math.fsum(w for s, w in with_gpu for u in s.gpu_util_percent
                                     if u < GPU_IDLE_UTIL_PERCENT) / weight,
            gpu_memory_mb_max=max((math.fsum(s.gpu_memory_mb) for s, _ in with_gpu), default=0.0),
        )
    return ResourceUsage(**usage)


__all__ = [
    "BYTES_PER_MB",
    "GPU_IDLE_FLAG_SHARE",
    "GPU_IDLE_UTIL_PERCENT",
    "ResourceUsage",
    "Sample",
    "summarize",
]
