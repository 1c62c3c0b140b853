"""Scheduler state kept up to date from the history delta, so a decision's cost does not grow
with the study.

A :class:`CurveIndex` holds the learning curve (:func:`~thrifty.schedulers.curves.curve`) of one
metric of every trial of a study, and what the rules derive from the curves: the values at each
rung (sorted, to rank a newcomer with a binary search), the trials that ran to the end (for the
rank correlations of measured rungs and the percentile rules: :func:`thrifty.ranking.measured`),
the smallest first resource and the
largest last resource reported. Everything it answers equals what a scan of the whole history
would give: it is a cache of the history, never a second source of truth (rule 1 of the
architecture).

How it stays exact. Curves only grow: a trial's measurements are append-only, and a finished
trial never changes. Given a :class:`~thrifty.history.History` from the study object it followed
last, the index reads only the trials settled since and the live ones, and extends each trial's
curve from where it stopped. Each trial's entry remembers how many measurements it has read and
the last one; a trial with fewer measurements, or a different one at that place, means the
history is not the one followed (another study, a hand-made list): the index is then rebuilt
from the whole history. Any other sequence of trials is read whole, into a fresh index.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right, insort
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from thrifty.history import History, TrialLog
from thrifty.ranking import measured
from thrifty.schedulers.curves import first_at_or_after
from thrifty.schedulers._rank import correlations
from thrifty.trial import Measurement, Trial

Points = list[tuple[float, float]]


@dataclass
class _Entry:
    """One trial's curve so far, and how much of its measurements it covers."""

    measured: bool
    measurements: tuple[Measurement, ...] = ()
    points: Points = field(default_factory=list)
    spent: float = 0.0


class RungTable:
    """The values at one rung of the trials that reached it (their first report at or beyond it;
    NaN and infinities count as the worst, ``-inf``), by trial number and sorted."""

    def __init__(self, level: float, member: Callable[[int], bool] | None) -> None:
        self.level = level
        self.member = member
        self.values: dict[int, float] = {}
        self._sorted: list[float] = []

    def add(self, number: int, value: float) -> None:
        if number in self.values or (self.member is not None and not self.member(number)):
            return
        v = value if math.isfinite(value) else -math.inf
        self.values[number] = v
        insort(self._sorted, v)

    def better(self, value: float) -> int:
        """How many values are strictly greater than ``value``."""
        return len(self._sorted) - bisect_right(self._sorted, value)


class CurveIndex:
    """Curves of one ``(metric, sign, resource)`` for every trial of the history (module doc)."""

    def __init__(self, metric: str, sign: float, resource: str) -> None:
        self.metric, self.sign, self.resource = metric, sign, resource
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.entries: dict[int, _Entry] = {}
        self._log: TrialLog | None = None
        self._consumed = 0
        #: Whether the trials came in number order (a History) or in a plain sequence's order.
        self._number_order = True
        self._broken = False
        self.first_min: float | None = None
        #: Dollars of all the measurements read so far (every trial's).
        self.spent_total = 0.0
        self._last_max = -math.inf
        self._last_max_stale = False
        #: The trials that ran to the end (:func:`~thrifty.ranking.measured`), in the order they were
        #: read so; ``version`` counts changes.
        self.measured: dict[int, _Entry] = {}
        self.version = 0
        self._rungs: dict[tuple[Hashable, float], RungTable] = {}
        self._rhos: dict[tuple[tuple[float, ...], int], tuple[int, dict[float, float | None]]] = {}
        self._stats: dict[tuple[float, Callable[..., float | None]], tuple[int, dict[int, float]]] = {}

    # -- following the history ---------------------------------------------------------------
    def sync(self, history: Sequence[Trial]) -> None:
        """Bring the index up to ``history``: its delta if it follows the log read last, else
        all of it (into a fresh index)."""
        if isinstance(history, History) and history.log is self._log and self._consumed <= history.n_settled:
            for t in history.log.settled[self._consumed:history.n_settled]:
                self._update(t)
            for t in history.live.values():
                self._update(t)
            self._consumed = history.n_settled
            if not self._broken:
                return
        self._reset()
        for t in history:
            self._update(t)
        if isinstance(history, History):
            self._log, self._consumed = history.log, history.n_settled
        else:
            self._number_order = False

    def _update(self, t: Trial) -> None:
        e = self.entries.get(t.number)
        ms = t.measurements
        if e is None:
            e = self.entries[t.number] = _Entry(False)
            start = 0
        elif e.measurements is ms:
            start = len(ms)
        else:
            start = len(e.measurements)
            if len(ms) < start or (start and not self._same(ms[start - 1], e.measurements[-1])):
                self._broken = True  # not the history this index followed: rebuilt by sync
                return
        if start < len(ms):
            self._extend(t.number, e, ms, start)
        e.measurements = ms
        done = measured(t)
        if done is not e.measured:
            e.measured = done
            if done:
                self.measured[t.number] = e
            else:
                del self.measured[t.number]
            self.version += 1

    def _same(self, a: Measurement, b: Measurement) -> bool:
        """Whether two reads of one measurement agree (NaN equal to NaN)."""
        if a is b:
            return True
        va, vb = a.metrics.get(self.metric), b.metrics.get(self.metric)
        return (a.step == b.step and a.timestamp == b.timestamp and a.cost_usd == b.cost_usd
                and (va == vb or (va is not None and vb is not None and math.isnan(va) and math.isnan(vb))))

    def _extend(self, number: int, e: _Entry, ms: tuple[Measurement, ...], start: int) -> None:
        """Append the curve points of ``ms[start:]`` (as :func:`curve` computes them)."""
        pts, metric, sign, by_step = e.points, self.metric, self.sign, self.resource == "step"
        before = len(pts)
        spent = e.spent
        for m in ms[start:]:
            spent += m.cost_usd
            r = m.step if by_step else spent
            if r is None or metric not in m.metrics:
                continue
            pts.append((float(r), sign * m.metrics[metric]))
        self.spent_total += spent - e.spent
        e.spent = spent
        if len(pts) == before:
            return
        if before == 0:
            first = pts[0][0]
            self.first_min = first if self.first_min is None else min(self.first_min, first)
        elif pts[-1][0] < pts[before - 1][0]:
            self._last_max_stale = True  # a curve whose resource went back: recount the maximum
        self._last_max = max(self._last_max, pts[-1][0])
        for table in self._rungs.values():
            if number not in table.values:
                for r, v in pts[before:]:
                    if r >= table.level:
                        table.add(number, v)
                        break

    # -- what the rules ask ------------------------------------------------------------------
    def median_measured_spent(self) -> float | None:
        """The median dollars of the trials that ran to the end (``None`` while none has)."""
        if not self.measured:
            return None
        costs = sorted(e.spent for e in self.measured.values())
        k = len(costs)
        return costs[k // 2] if k % 2 else 0.5 * (costs[k // 2 - 1] + costs[k // 2])

    def leads(self, number: int, step: float, value: float, peers: int) -> bool:
        """Whether ``value``, trial ``number``'s at ``step``, is at least as good as the value of
        every other trial that reached ``step`` (its first at or after it), with at least ``peers``
        such trials. Values are signed: larger is better. The index's form of
        :func:`thrifty.cost.spend.proven` (which scans a history), for the auto scheduler's rule 4."""
        n = 0
        for other, e in self.entries.items():
            if other == number:
                continue
            v = first_at_or_after(e.points, step)
            if v is None or not math.isfinite(v):
                continue
            if v > value:
                return False
            n += 1
        return n >= peers

    def last_max(self) -> float:
        """The largest last resource any trial reported (``-inf`` if none)."""
        if self._last_max_stale:
            self._last_max = max((e.points[-1][0] for e in self.entries.values() if e.points), default=-math.inf)
            self._last_max_stale = False
        return self._last_max

    def rung(self, level: float, group: Hashable = None, member: Callable[[int], bool] | None = None) -> RungTable:
        """The table of rung ``level`` (of the trials ``member`` accepts, one table per ``group``)."""
        table = self._rungs.get((group, level))
        if table is None:
            table = self._rungs[(group, level)] = RungTable(level, member)
            for number, e in self.entries.items():
                v = first_at_or_after(e.points, level)
                if v is not None:
                    table.add(number, v)
        return table

    def correlations(self, levels: Sequence[float], min_complete: int) -> dict[float, float | None]:
        """:func:`~thrifty.schedulers._rank.correlations` over the measured trials in the order
        a scan of the history meets them (the sums behind a correlation depend on it), computed
        again only when they change."""
        key = (tuple(levels), min_complete)
        hit = self._rhos.get(key)
        if hit is not None and hit[0] == self.version:
            return hit[1]
        done = sorted(self.measured.items()) if self._number_order else self.measured.items()
        finals = [(e.points, e.points[-1][1]) for _, e in done if e.points and math.isfinite(e.points[-1][1])]
        rhos = correlations(finals, levels, min_complete)
        if len(self._rhos) > 16:
            self._rhos.clear()
        self._rhos[key] = (self.version, rhos)
        return rhos

    def measured_stats(self, r: float, stat: Callable[[Points, float], float | None]) -> dict[int, float]:
        """Trial number -> ``stat(curve, r)`` for the measured trials where it is not None, kept
        per ``(r, stat)`` and extended with the trials measured since."""
        key = (r, stat)
        hit = self._stats.get(key)
        if hit is not None and hit[0] == self.version:
            return hit[1]
        out = hit[1] if hit is not None and hit[1].keys() <= self.measured.keys() else {}
        for number, e in self.measured.items():
            if number not in out:
                v = stat(e.points, r)
                if v is not None:
                    out[number] = v
        if hit is None and len(self._stats) >= 64:
            del self._stats[next(iter(self._stats))]
        self._stats[key] = (self.version, out)
        return out


class Indexed:
    """Mixin of the schedulers that read the history: one :class:`CurveIndex` per watched
    ``(metric, sign, resource)``, brought up to date with :meth:`index`."""

    def __getstate__(self) -> dict[str, object]:  # an index is a cache (with a lock): not copied
        return {k: v for k, v in self.__dict__.items() if k != "_indexes"}

    @contextmanager
    def indexed(self, history: Sequence[Trial], metric: str, sign: float, resource: str) -> Iterator[CurveIndex]:
        """The index of ``history``, brought up to date and held (locked) while in use. A study's
        :class:`~thrifty.history.History` updates the index kept for it; any other sequence
        gets a fresh index of its own (and leaves the kept one alone)."""
        if not isinstance(history, History):
            fresh = CurveIndex(metric, sign, resource)
            fresh.sync(history)
            yield fresh
            return
        indexes: dict[tuple[str, float, str], CurveIndex] = self.__dict__.setdefault("_indexes", {})
        key = (metric, sign, resource)
        idx = indexes.get(key)
        if idx is None:
            idx = indexes.setdefault(key, CurveIndex(metric, sign, resource))
        with idx.lock:
            idx.sync(history)
            yield idx
