"""Study.ask against other workers: a start decided from a stale snapshot is a conflict, and the
ask decides again from a new snapshot (bounded). Two study objects on one SQLite file are the two
workers; a strategy that lets the other worker start a trial while it proposes makes the race
happen at a known moment."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

import thrifty as th
from thrifty.errors import StorageError
from thrifty.space import ParamValue, Space
from thrifty.storage import open_storage
from thrifty.strategies.base import Strategy
from thrifty.trial import Trial, TrialState

SPACE = th.Space({"x": th.Float(0.0, 1.0)})


class Racing(Strategy):
    """Proposes ``values[k]`` at its k-th call (the last one after that); before returning, runs
    ``meanwhile`` (another worker's ask) for the first ``races`` calls. Records what it saw."""

    name = "racing"

    def __init__(self, values: Sequence[float], meanwhile: Callable[[], object], races: int, slow: bool) -> None:
        self.values, self.meanwhile, self.races = list(values), meanwhile, races
        self.slow = slow  # type: ignore[misc]
        self.needs_history = slow  # type: ignore[misc]
        self.calls: list[tuple[int, list[int]]] = []

    def propose(self, space: Space, history: Sequence[Trial], *, seed: int, number: int,
                n: int = 1) -> list[dict[str, ParamValue]]:
        k = len(self.calls)
        self.calls.append((number, [t.number for t in history]))
        if k < self.races:
            self.meanwhile()
        return [{"x": self.values[min(k, len(self.values) - 1)]}]


def _two_workers(tmp_path) -> tuple[th.Study, th.Study]:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    first = th.Study.create(SPACE, "max", name="race", storage=url, strategy="random", scheduler=None)
    return first, th.Study.load("race", storage=url)


def test_a_number_taken_meanwhile_makes_a_cheap_strategy_propose_again(tmp_path) -> None:
    other, me = _two_workers(tmp_path)
    taken: list[int] = []
    me.strategy = Racing([0.3, 0.7], lambda: taken.append(other.ask().number), races=1, slow=False)
    handle = me.ask()
    # The other worker took number 0 while this one proposed for it: the proposal was for 0, so
    # it is made again for 1 (a cheap strategy's proposal is a function of its number), and, after
    # a conflict, for the number after it too (in case another worker takes 1 meanwhile).
    assert taken == [0]
    assert [number for number, _ in me.strategy.calls] == [0, 1, 2]  # type: ignore[attr-defined]
    assert (handle.number, dict(handle.params)) == (1, {"x": 0.7})


def test_a_cheap_strategy_that_lost_its_number_takes_its_proposal_for_the_number_now_next(tmp_path) -> None:
    """After a conflict the ask proposes for the next numbers too: when other workers take the
    number it proposed for first, it starts its proposal for the number that is next, the one
    the strategy makes for that number (here: the other worker starts a trial during each of the
    first two proposals, so 0 and 1 are gone when the second attempt starts)."""
    other, me = _two_workers(tmp_path)
    taken: list[int] = []
    me.strategy = Racing([0.3, 0.6, 0.8], lambda: taken.append(other.ask().number), races=2, slow=False)
    handle = me.ask()
    assert taken == [0, 1]
    assert [number for number, _ in me.strategy.calls] == [0, 1, 2]  # type: ignore[attr-defined]
    assert (handle.number, dict(handle.params)) == (2, {"x": 0.8})
    assert len({t.number for t in me.trials}) == 3


def test_after_a_race_the_ask_proposes_as_far_ahead_as_the_number_moved_then_narrows(tmp_path) -> None:
    """Workers racing on one study keep proposing for as many numbers as were taken while they
    decided (twice that), so they land at once; without a race the margin shrinks by one number
    per ask, down to a lone worker's single proposal."""
    other, me = _two_workers(tmp_path)
    me.strategy = Racing([0.1], lambda: other.ask(), races=2, slow=False)
    handle = me.ask()
    assert handle.number == 2  # 0 and 1 were taken while it decided: the number moved by one after its snapshot
    calls = me.strategy.calls  # type: ignore[attr-defined]
    per_ask = []
    for _ in range(4):
        before = len(calls)
        me.tell(me.ask(), 0.5)
        per_ask.append([number for number, _ in calls[before:]])
    assert per_ask == [[3, 4, 5], [4, 5], [5], [6]]


def test_a_model_proposal_survives_a_race_unless_it_duplicates(tmp_path) -> None:
    other, me = _two_workers(tmp_path)
    # The other worker starts a trial with different params: the model's proposal still holds.
    other.strategy = Racing([0.9], lambda: None, races=0, slow=True)
    me.strategy = Racing([0.5], lambda: other.ask(), races=1, slow=True)
    handle = me.ask()
    assert (handle.number, dict(handle.params)) == (1, {"x": 0.5})
    assert len(me.strategy.calls) == 1  # type: ignore[attr-defined]
    # Now the other worker starts the very params this one is about to propose: never run twice
    # at once; this one proposes again, from a history that shows the other's trial.
    other.strategy = Racing([0.25], lambda: None, races=0, slow=True)
    me.strategy = Racing([0.25, 0.75], lambda: other.ask(), races=1, slow=True)
    handle = me.ask()
    calls = me.strategy.calls  # type: ignore[attr-defined]
    assert len(calls) == 2 and 2 not in calls[0][1] and 2 in calls[1][1]
    assert (handle.number, dict(handle.params)) == (3, {"x": 0.75})
    running = [dict(t.params) for t in me.get_trials([TrialState.RUNNING])]
    assert sorted(p["x"] for p in running) == [0.25, 0.5, 0.75, 0.9]


def test_endless_conflicts_end_in_a_storage_error() -> None:
    # Two study objects on one in-process storage (every proposal, those made ahead after a
    # conflict included, lets the other start a trial: ~1,700 starts, quick in memory).
    store = open_storage("memory")
    other = th.Study.create(SPACE, "max", name="race", storage=store, strategy="random", scheduler=None)
    me = th.Study.load("race", storage=store)
    me.strategy = Racing([0.5], lambda: other.tell(other.ask(), 0.5), races=10**6, slow=False)
    with pytest.raises(StorageError, match=r"no trial could be started in \d+ attempts.*next trial number"):
        me.ask()
    # Every attempt lost its number to the other worker; this one started nothing.
    attempts = len(me.strategy.calls)  # type: ignore[attr-defined]
    assert attempts > 1 and len(me.trials) == attempts
    assert all(t.params["x"] != 0.5 for t in me.trials), "all were the other worker's (random) trials"
