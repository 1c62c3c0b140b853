"""Reading what a trial's processes use while it runs: the sampler behind :mod:`thrifty.usage`.

A :class:`UsageSampler` is a daemon thread that reads a process *tree* (a pid and all its
descendants, so a script runner's command and the programs it starts count, as does the worker
process itself) with psutil: the first reading ``first_s`` seconds after :meth:`UsageSampler.start`,
then every ``interval_s`` seconds, each one a :class:`~thrifty.usage.Sample`. Where the package
``nvidia-ml-py`` (module ``pynvml``: ``pip install 'thrifty[gpu]'``) imports and NVML reports
devices, a reading also holds the utilisation and the memory in use of each GPU this process may
see (:func:`visible_gpu_ids`). :meth:`UsageSampler.summary` is :func:`~thrifty.usage.summarize`
of the readings so far.

Rules:

- **Sampling never fails a trial.** A reading that fails (a process gone, access denied, an NVML
  error) is logged at debug level and the next one goes on; a sampler that cannot read its pid at
  the start reads nothing (its summary is ``None``); ``on_update`` errors are logged at debug level.
- **Descendants are looked for at each reading** (behind a busy objective, less often: see
  :class:`ProcessTree`): one started since the previous reading counts from its start, one found
  later from then; the CPU a child used after its last reading, before it exited, is not
  counted. CPU time is the processes' user + system seconds (psutil ``cpu_times``), resident
  memory their RSS summed (pages they share counted once per process).
- **GPU figures are the device's**, whoever uses it: a GPU shared by trials (a fractional
  ``gpu`` resource) shows their joint use, and another program on it counts too.
- **Readings closer than** :data:`MIN_WINDOW_S` to the previous one are not taken (their CPU
  figure would be a clock tick over a sliver of time), except by :meth:`UsageSampler.stop` for a
  trial that has no reading yet. The last reading (:meth:`UsageSampler.stop`) reads the
  processes already found, without a new search (a trial of a few milliseconds costs two
  readings of one process).
- ``on_update`` gets the summary every ``update_every_s`` seconds, from the sampler's thread.
  :meth:`UsageSampler.stop` ends the thread (waiting at most :data:`JOIN_TIMEOUT_S` for a call
  of ``on_update`` in flight), takes a last reading and returns the summary.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import psutil

from thrifty.usage import BYTES_PER_MB, ResourceUsage, Sample, summarize

log = logging.getLogger("thrifty")

#: Seconds between two readings of a running trial.
DEFAULT_INTERVAL_S = 1.0
#: Seconds from the start to the first reading (a shorter trial gets one when it ends).
FIRST_SAMPLE_S = 0.2
#: Seconds between two summaries handed to ``on_update`` (what the runners store while a trial runs).
UPDATE_EVERY_S = 10.0
#: The shortest window a reading covers (see the module docstring).
MIN_WINDOW_S = 0.1
#: Seconds :meth:`UsageSampler.stop` waits for the thread (a call of ``on_update`` in flight).
JOIN_TIMEOUT_S = 5.0
#: A reading of the known processes quicker than this (seconds) looks for new descendants at once.
QUICK_READ_S = 0.01
#: After a slow reading, seconds between two searches for new descendants.
SLOW_SEARCH_EVERY_S = 5.0

_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)


class ProcessTree:
    """CPU and resident memory of a process and its descendants, read with psutil.

    Made with the CPU baseline of ``pid`` alone (its CPU seconds so far; not a sample: cheap,
    for a trial that lasts milliseconds); each :meth:`read` then gives the window since the
    previous reading, the CPU used in it (percent of one core) and the resident memory now (MB).
    Raises ``psutil.Error`` when ``pid`` cannot be read.

    Finding the descendants reads every process of the machine (psutil's parent map), so a
    reading first reads the processes already known; when that was quick (under
    :data:`QUICK_READ_S`), it looks for new descendants at once and reads them too (one started
    since the previous reading counts from its start, an older one from now). When it was slow,
    this thread is waiting for the interpreter's lock behind a busy objective (a pure-Python
    loop hands it over every 5 ms, so the machine-wide search would take seconds): the search
    then runs after the reading, at most every :data:`SLOW_SEARCH_EVERY_S` seconds, and what
    it finds counts from then.
    """

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        #: The processes read, and the CPU seconds of each at the last reading, by (pid, start
        #: time): a reused pid is another process.
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._cpu_s: dict[tuple[int, float], float] = {}
        self._last = time.monotonic()
        self._last_wall = time.time()
        self._next_search = self._last
        key = (pid, self._root.create_time())
        self._cpu_s[key], _ = _cpu_and_rss(self._root)
        self._procs[key] = self._root

    def _search(self, counted_since: float | None) -> tuple[float, int]:
        """Add the descendants not known yet (reading them); returns the CPU seconds to count for
        them (those started after ``counted_since``, epoch seconds: all of it; others none) and
        their resident bytes."""
        try:
            found = [self._root, *self._root.children(recursive=True)]
        except _GONE:
            found = [self._root]
        cpu, rss = 0.0, 0
        for p in found:
            try:
                key = (p.pid, p.create_time())
                if key in self._procs:
                    continue
                seconds, resident = _cpu_and_rss(p)
            except _GONE:
                continue
            self._procs[key] = p
            self._cpu_s[key] = 0.0 if counted_since is not None and key[1] >= counted_since else seconds
            cpu += seconds - self._cpu_s[key]
            self._cpu_s[key] = seconds
            rss += resident
        return cpu, rss

    def since_last(self) -> float:
        """Seconds since the previous reading."""
        return time.monotonic() - self._last

    def read(self, search: bool = True) -> tuple[float, float, float]:
        """(window_s, cpu_percent, rss_mb) since the previous reading (see the class docstring;
        ``search=False``: the known processes only)."""
        began = time.monotonic()
        cpu, rss = 0.0, 0
        for key, p in list(self._procs.items()):
            try:
                seconds, resident = _cpu_and_rss(p)
            except _GONE:
                del self._procs[key], self._cpu_s[key]
                continue
            cpu += max(seconds - self._cpu_s[key], 0.0)
            self._cpu_s[key] = seconds
            rss += resident
        quick = time.monotonic() - began < QUICK_READ_S
        if quick and search:
            more_cpu, more_rss = self._search(counted_since=self._last_wall)
            cpu, rss = cpu + more_cpu, rss + more_rss
        if not self._procs:
            raise psutil.NoSuchProcess(self._root.pid, msg="the process and its children are gone")
        now = time.monotonic()
        window = now - self._last
        self._last, self._last_wall = now, time.time()
        if search and not quick and now >= self._next_search:
            self._search(counted_since=None)
            self._next_search = time.monotonic() + SLOW_SEARCH_EVERY_S
        return window, 100.0 * cpu / window if window > 0 else 0.0, rss / BYTES_PER_MB


def _cpu_and_rss(p: psutil.Process) -> tuple[float, int]:
    """A process's CPU seconds (user + system) and resident bytes."""
    with p.oneshot():
        times = p.cpu_times()
        return times.user + times.system, p.memory_info().rss


def visible_gpu_ids(cuda_visible_devices: str | None, count: int) -> list[int | str]:
    """The GPUs a process may see, as NVML finds them: device indices (NVML's order, the PCI bus
    order: set ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that CUDA counts alike) or ``GPU-`` UUIDs.

    ``cuda_visible_devices`` is ``CUDA_VISIBLE_DEVICES`` (``None``: unset, every one of the
    ``count`` devices). As CUDA reads it, the list ends at the first entry that names no device
    (``-1``, an index past ``count``, a word); ``MIG-`` instances are left out (NVML gives no
    utilisation for them)."""
    if cuda_visible_devices is None:
        return list(range(count))
    ids: list[int | str] = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        if entry.startswith("MIG-"):
            continue
        if entry.startswith("GPU-"):
            ids.append(entry)
        elif entry.isdigit() and int(entry) < count:
            ids.append(int(entry))
        else:
            break
    return ids


class _Nvml:
    """NVML, initialised once per process (``nvmlInit`` can take a good part of a second on a
    large machine); ``None`` where ``pynvml`` does not import or NVML does not start."""

    module: ModuleType | None = None
    pid: int | None = None

    @classmethod
    def get(cls) -> ModuleType | None:
        if cls.pid == os.getpid():
            return cls.module
        cls.pid, cls.module = os.getpid(), None
        try:
            import pynvml  # nvidia-ml-py: thrifty[gpu]
        except Exception:  # noqa: BLE001 - ImportError, or a broken install: no GPU readings
            return None
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - pynvml.NVMLError, OSError: no driver here
            log.debug("NVML did not start (%s): no GPU readings", exc)
            return None
        cls.module = pynvml
        return pynvml


class GpuReader:
    """Utilisation (percent) and memory in use (MB) of each GPU this process may see (NVML)."""

    def __init__(self, nvml: ModuleType, handles: list[Any]) -> None:
        self._nvml = nvml
        self._handles = handles

    @classmethod
    def open(cls) -> GpuReader | None:
        """The reader of the GPUs ``CUDA_VISIBLE_DEVICES`` lets this process see, or ``None``
        (no ``pynvml``, no NVML, no visible GPU)."""
        nvml = _Nvml.get()
        if nvml is None:
            return None
        try:
            ids = visible_gpu_ids(os.environ.get("CUDA_VISIBLE_DEVICES"), nvml.nvmlDeviceGetCount())
            handles = [nvml.nvmlDeviceGetHandleByUUID(i.encode()) if isinstance(i, str)
                       else nvml.nvmlDeviceGetHandleByIndex(i) for i in ids]
        except Exception as exc:  # noqa: BLE001 - pynvml.NVMLError: no GPU readings, the trial goes on
            log.debug("NVML could not name the visible GPUs (%s): no GPU readings", exc)
            return None
        return cls(nvml, handles) if handles else None

    def read(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(utilisation per GPU in percent, memory in use per GPU in MB)."""
        nvml = self._nvml
        util = tuple(float(nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in self._handles)
        memory = tuple(nvml.nvmlDeviceGetMemoryInfo(h).used / BYTES_PER_MB for h in self._handles)
        return util, memory


class UsageSampler:
    """Samples the process tree of ``pid`` (default: this process) while a trial runs (see the
    module docstring). ``prior``: the usage of the trial's earlier runs (a resumed trial), combined
    into :meth:`summary`; ``gpu=False`` reads no GPU."""

    def __init__(
        self,
        pid: int | None = None,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        first_s: float = FIRST_SAMPLE_S,
        on_update: Callable[[ResourceUsage], object] | None = None,
        update_every_s: float = UPDATE_EVERY_S,
        prior: ResourceUsage | None = None,
        gpu: bool = True,
    ) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.interval_s = float(interval_s)
        self.first_s = float(first_s)
        self.update_every_s = float(update_every_s)
        self._on_update = on_update
        self._prior = prior
        self._want_gpu = gpu
        self._gpus: GpuReader | None = None
        self._tree: ProcessTree | None = None
        self._samples: list[Sample] = []
        self._lock = threading.Lock()  # the samples, and one reading at a time
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> UsageSampler:
        """Take the CPU baseline, find the GPUs and start the thread (returns ``self``). Done here,
        not in the thread: a thread behind a busy objective gets the interpreter's lock only every
        few milliseconds, and looking for ``pynvml`` on the import path takes many turns."""
        try:
            self._tree = ProcessTree(self.pid)
        except Exception as exc:  # noqa: BLE001 - psutil.Error, OSError: sampling never fails a trial
            log.debug("cannot read process %d (%s): no resource readings for this trial", self.pid, exc)
            return self
        if self._want_gpu:
            self._gpus = GpuReader.open()
        self._thread = threading.Thread(target=self._run, name=f"thrifty-usage-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        wait, last_update = self.first_s, time.monotonic()
        while not self._stopping.wait(wait):
            self._take()
            wait = self.interval_s
            if self._on_update is not None and time.monotonic() - last_update >= self.update_every_s:
                last_update = time.monotonic()
                self._update()

    def _take(self, last: bool = False) -> None:
        """One reading, appended to the samples (failures logged, never raised)."""
        tree = self._tree
        if tree is None:
            return
        with self._lock:
            if tree.since_last() < MIN_WINDOW_S and not (last and not self._samples):
                return
            try:
                window, cpu, rss = tree.read(search=not last)
                util: tuple[float, ...] = ()
                memory: tuple[float, ...] = ()
                if self._gpus is not None:
                    util, memory = self._gpus.read()
            except Exception as exc:  # noqa: BLE001 - sampling never fails a trial
                log.debug("resource reading of process %d failed: %s", self.pid, exc)
                return
            self._samples.append(Sample(window, cpu, rss, util, memory))

    def _update(self) -> None:
        usage = self.summary()
        if usage is None or self._on_update is None:
            return
        try:
            self._on_update(usage)
        except Exception as exc:  # noqa: BLE001 - a lost update is replaced by the next
            log.debug("could not record the resource use of process %d: %s", self.pid, exc)

    def summary(self) -> ResourceUsage | None:
        """The usage so far (combined with ``prior``), or ``None`` before any reading."""
        with self._lock:
            usage = summarize(self._samples, self.interval_s)
        if self._prior is None:
            return usage
        return self._prior if usage is None else self._prior.combined(usage)

    def stop(self) -> ResourceUsage | None:
        """End the thread, take a last reading and return :meth:`summary` (call it once the
        trial's work is done; calling it again only returns the summary)."""
        if not self._stopping.is_set():
            self._stopping.set()
            if self._thread is not None:
                self._thread.join(JOIN_TIMEOUT_S)
                self._take(last=True)
        return self.summary()


__all__ = [
    "DEFAULT_INTERVAL_S",
    "FIRST_SAMPLE_S",
    "UPDATE_EVERY_S",
    "GpuReader",
    "ProcessTree",
    "UsageSampler",
    "visible_gpu_ids",
]
