"""A study's history read incrementally, and what changed since an earlier read.

Finished and paused trials change only by being resumed (then they are read as live again), so a
:class:`TrialLog` keeps every settled trial read so far, in the order read, and each read fetches
only the trials that are unsettled or settled since (``Storage.get_trials(finished_after=...)``).
A read returns a :class:`History`: the trials in number order, as any ``Sequence[Trial]``, plus
what a consumer needs to catch up from its own last read without scanning them all: the log, how
much of it this read covers (``n_settled``) and the live trials. Schedulers keep their state this
way (:mod:`thrifty.schedulers._index`); anything else may treat a History as a plain sequence.

The rule of the architecture holds: the history is the stored one; the log is a cache of it.

Public: :meth:`thrifty.study.Study.read_history` returns a :class:`History`, and a scheduler
given one (rather than a plain list) catches up from its delta.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from thrifty.trial import Trial


class TrialLog:
    """Every settled trial one study object has read, in the order read (append-only; a trial
    that settles again, after a resume, appears again), and the latest version of each by id."""

    def __init__(self) -> None:
        self.settled: list[Trial] = []
        self.by_id: dict[int, Trial] = {}
        #: The largest ``finish_order`` read: the next read asks for the trials settled after it.
        self.seen = 0
        #: How many of the trials in ``by_id`` are finished (a paused trial is settled, not finished).
        self.n_finished = 0

    def read(self, fresh: Iterable[Trial]) -> History:
        """Add a read's trials (the unsettled ones and those settled since ``seen``) and return
        the history as of that read."""
        live: dict[int, Trial] = {}
        for t in fresh:
            assert t.id is not None
            if t.state.is_settled:  # finished or paused: changes only by being resumed (then live)
                before = self.by_id.get(t.id)
                self.n_finished += int(t.is_finished) - int(before is not None and before.is_finished)
                self.settled.append(t)
                self.by_id[t.id] = t
                self.seen = max(self.seen, t.finish_order or 0)
            else:
                live[t.id] = t
        return History(self, len(self.settled), live, self.n_finished)


class History(Sequence[Trial]):
    """The trials of a study as of one read, in number order (built on first use), with the
    delta a consumer can catch up from: ``log.settled[:n_settled]`` and ``live`` (by id)."""

    def __init__(self, log: TrialLog, n_settled: int, live: dict[int, Trial], n_finished: int = 0) -> None:
        self.log = log
        self.n_settled = n_settled
        self.live = live
        #: How many trials are finished (COMPLETED, STOPPED, FAILED, INFEASIBLE) as of this read.
        self.n_finished = n_finished
        self._trials: list[Trial] | None = None

    def trial(self, trial_id: int) -> Trial | None:
        """The trial with this storage id, as of this read (``None`` if it is not in the study)."""
        t = self.live.get(trial_id)
        return t if t is not None else self.log.by_id.get(trial_id)

    def trials(self) -> list[Trial]:
        """Every trial, in number order (a new list)."""
        if self._trials is None:
            merged = {t.id: t for t in self.log.settled[:self.n_settled]}
            merged.update(self.live)
            self._trials = sorted(merged.values(), key=lambda t: t.number)
        return list(self._trials)

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[Trial]:
        return iter(self._all())

    @overload
    def __getitem__(self, i: int) -> Trial: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Trial]: ...

    def __getitem__(self, i: int | slice) -> Trial | Sequence[Trial]:
        return self._all()[i]

    def _all(self) -> list[Trial]:
        if self._trials is None:
            self.trials()
        assert self._trials is not None
        return self._trials
