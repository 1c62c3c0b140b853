"""Resource slots of this machine: which GPUs and CPU cores each local worker may use.

``plan_slots({"gpu": 1}, ...)`` on a machine with GPUs 0-3 gives four slots, one GPU each; a
worker process in a slot sees only its GPUs (``CUDA_VISIBLE_DEVICES``) and runs on its cores
(CPU affinity; ``OMP_NUM_THREADS`` and friends set to its core count), so trials running side by
side never share a device by accident. A trial asking for a fraction of a GPU (``0.5``) shares one
with ``1/fraction - 1`` others.

Visible GPUs come from ``gpus=`` if given, else ``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``;
cores from the process's CPU affinity.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from thrifty.errors import ValidationError

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class Slot:
    """What one worker may use: GPU ids (as CUDA names them), CPU core ids (empty: no pinning) and
    the number of threads its numeric libraries (BLAS, OpenMP) may start (0: leave them alone)."""

    gpus: tuple[str, ...] = ()
    cpus: tuple[int, ...] = ()
    threads: int = 0

    def apply(self) -> None:
        """Confine this process (and the programs it starts) to the slot."""
        if self.gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        if self.cpus:
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, set(self.cpus))
        threads = len(self.cpus) or self.threads
        if threads:
            for var in _THREAD_VARS:  # for the programs this worker starts
                os.environ[var] = str(threads)
            # ... and for this (forked) process, whose libraries already read the variables: without
            # this, N workers each run BLAS with one thread per core and stall each other.
            from threadpoolctl import threadpool_limits

            threadpool_limits(threads)
        os.environ["THRIFTY_SLOT_GPUS"] = ",".join(self.gpus)
        os.environ["THRIFTY_SLOT_CPUS"] = ",".join(map(str, self.cpus))


def visible_gpus(gpus: Sequence[int | str] | None = None) -> list[str]:
    """GPU ids this process may hand out (see the module docstring)."""
    if gpus is not None:
        return [str(g) for g in gpus]
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired):
            return []
        return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]
    return []


def visible_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def plan_slots(
    resources: Mapping[str, float], n_workers: int | None, gpus: Sequence[int | str] | None = None,
) -> list[Slot]:
    """The slots for up to ``n_workers`` workers whose trials each hold ``resources``.

    Without GPU or CPU requests there is no pinning: ``n_workers`` plain slots (1 if None), whose
    numeric libraries share the cores (``cores // n_workers`` threads each, at least 1, when there is
    more than one worker). Otherwise as many slots as the machine holds, capped by ``n_workers``.
    """
    gpu = float(resources.get("gpu", 0.0))
    cpu = float(resources.get("cpu", 0.0))
    if gpu <= 0 and cpu <= 0:
        n = n_workers or 1
        threads = max(1, len(visible_cpus()) // n) if n > 1 else 0
        return [Slot(threads=threads) for _ in range(n)]
    gpu_groups: list[tuple[str, ...]] | None = None
    if gpu > 0:
        ids = visible_gpus(gpus)
        if not ids:
            raise ValidationError(
                f"trials ask for {gpu:g} GPU(s) each but no GPU is visible here; set CUDA_VISIBLE_DEVICES, pass "
                "gpus=[...] or drop 'gpu' from resources"
            )
        if gpu < 1:
            share = 1 / gpu
            if abs(share - round(share)) > 1e-9:
                raise ValidationError(f"resources gpu={gpu:g}: a fraction of a GPU must be 1/k (0.5, 0.25, ...)")
            gpu_groups = [(g,) for g in ids for _ in range(round(share))]
        else:
            if not float(gpu).is_integer():
                raise ValidationError(f"resources gpu={gpu:g}: more than one GPU must be a whole number")
            per = int(gpu)
            if per > len(ids):
                raise ValidationError(f"trials ask for {per} GPUs each but only {len(ids)} are visible ({', '.join(ids)})")
            gpu_groups = [tuple(ids[i:i + per]) for i in range(0, len(ids) - per + 1, per)]
    cpu_groups: list[tuple[int, ...]] | None = None
    if cpu > 0:
        cores = visible_cpus()
        per_c = max(1, math.floor(cpu))
        if per_c > len(cores):
            raise ValidationError(f"trials ask for {cpu:g} CPU cores each but this process may use {len(cores)}")
        cpu_groups = [tuple(cores[i:i + per_c]) for i in range(0, len(cores) - per_c + 1, per_c)]
    n_slots = min(len(g) for g in (gpu_groups, cpu_groups) if g is not None)
    if n_workers is not None:
        n_slots = min(n_slots, n_workers)
    return [
        Slot(gpus=gpu_groups[i] if gpu_groups else (), cpus=cpu_groups[i] if cpu_groups else ())
        for i in range(n_slots)
    ]
