"""No database connection crosses a fork.

A forked child that inherits its parent's open SQLite connection shares the parent's file
descriptors: when the child closes or drops them, POSIX releases the locks its own connections hold
on the file, and a reader elsewhere, believing it is the last connection, checkpoints and removes
the ``-wal`` file the child is still writing (trials lost without an error). An inherited
PostgreSQL socket, once closed by the child, ends the parent's session.

The rule, kept here for every file or server engine of this process: before ``os.fork`` (which
``multiprocessing`` uses) no transaction is in flight in any thread and every pooled connection is
closed; the child starts with empty pools and opens its own connections. Transactions wait while a
fork is in progress (microseconds). In-memory databases are not registered: they cannot be shared
with a child anyway, and closing their only connection would lose them.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine

log = logging.getLogger("thrifty")

#: How long a fork waits for transactions in flight in other threads before it goes ahead anyway.
FORK_WAIT_S = 30.0


class _ForkGate:
    def __init__(self) -> None:
        self._reset()
        self._engines: weakref.WeakSet[Engine] = weakref.WeakSet()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._mine = threading.local()

    def register(self, engine: Engine) -> None:
        self._engines.add(engine)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Marks a transaction in flight; waits while a fork is in progress."""
        with self._cond:
            self._in_flight += 1
        self._mine.n = getattr(self._mine, "n", 0) + 1
        try:
            yield
        finally:
            self._mine.n -= 1
            with self._cond:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._cond.notify_all()

    def before_fork(self) -> None:
        self._cond.acquire()  # held across the fork: no transaction starts meanwhile
        own = getattr(self._mine, "n", 0)  # a fork from inside a transaction cannot wait for itself
        if not self._cond.wait_for(lambda: self._in_flight <= own, timeout=FORK_WAIT_S):
            log.warning("forking while %d database transaction(s) are in flight in other threads",
                        self._in_flight - own)
        for engine in list(self._engines):
            engine.dispose()  # closes this process's pooled connections; they reopen on demand

    def after_in_parent(self) -> None:
        self._cond.release()

    def after_in_child(self) -> None:
        engines = list(self._engines)
        self._reset()
        for engine in engines:
            engine.dispose(close=False)  # forget anything inherited without touching the parent's


GATE = _ForkGate()
os.register_at_fork(before=GATE.before_fork, after_in_parent=GATE.after_in_parent,
                    after_in_child=GATE.after_in_child)
