"""Owning worker processes: stop signals become one exception, and a worker dies with its parent.

Rules (they hold for ``optimize``'s own process and for every worker process it starts):

- SIGINT (Ctrl-C) and SIGTERM (``kill``, ``timeout``, systemd, Slurm, Kubernetes) are one thing: a
  request to stop. The first one raises :class:`StopSignal` (a ``KeyboardInterrupt``, so an
  objective's ``except Exception`` does not swallow it) in the main thread; later ones are ignored
  while the process stops, so a second Ctrl-C cannot cut a trial's bookkeeping in half.
- A worker process asks the kernel to send it SIGTERM when its parent dies (Linux
  ``PR_SET_PDEATHSIG``); elsewhere a thread watches the parent's pid once a second. Either way the
  worker stops as if its parent had sent SIGTERM, and :func:`stop_reason` says the parent is gone.
- A stop signal that lands inside a database transaction or a fork takes effect when it has ended
  (:func:`stop_signals_deferred`): a transaction is never cut in half, nor a stop lost.

Public: the runners (``optimize``'s supervisor and workers) and the SQL storage use these rules,
and so may code that runs its own ``ask``/``tell`` loop and wants the same stops
(:func:`stop_signals_raise`, :func:`stop_signals_deferred`, :func:`interrupt_at`,
:func:`install_worker_handlers`, :func:`stop_reason`, :func:`signal_name`).
"""

from __future__ import annotations

import _signal
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from thrifty.errors import StopSignal

_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Held by stop_signals_deferred: the stop signals and the time limit of interrupt_at.
_HELD_SIGNALS = _STOP_SIGNALS + ((signal.SIGALRM,) if hasattr(signal, "SIGALRM") else ())
_HELD_SIGNAL_NUMBERS = tuple(int(s) for s in _HELD_SIGNALS)
#: ``signal.signal`` without its enum conversions (ten times cheaper; same C function underneath).
_c_signal = _signal.signal


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def stop_reason(signum: int, parent_pid: int | None = None) -> str:
    """Words for a stop by ``signum``; a worker whose parent is gone says so."""
    if parent_pid is not None and os.getppid() != parent_pid:
        return f"interrupted: the run's supervisor process {parent_pid} exited"
    return f"interrupted by {signal_name(signum)}"


def _raise_once(parent_pid: int | None) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        for s in _STOP_SIGNALS:  # the process is stopping: no second interruption
            signal.signal(s, signal.SIG_IGN)
        raise StopSignal(signum, stop_reason(signum, parent_pid))

    return handler


class _Held:
    """State of :func:`stop_signals_deferred` (main thread only): how deep, the handlers it
    replaced, the stop signals that came meanwhile. A process forked in the block inherits it."""

    depth = 0
    previous: dict[int, Any] = {}
    pending: list[int] = []


def _defer(signum: int, _frame: FrameType | None) -> None:
    _Held.pending.append(signum)


class _Deferred:
    """The context manager of :func:`stop_signals_deferred` (one instance serves every block: its
    state is :class:`_Held`). A class rather than a generator, and the C functions of ``_signal``
    rather than ``signal``'s enum wrappers: it runs around every database transaction."""

    __slots__ = ()

    def __enter__(self) -> None:
        if threading.get_ident() != threading.main_thread().ident:
            return
        if _Held.depth == 0:
            _Held.pending = []
            _Held.previous = {s: _c_signal(s, _defer) for s in _HELD_SIGNAL_NUMBERS}  # the handlers replaced
        _Held.depth += 1

    def __exit__(self, *_exc: object) -> None:
        if threading.get_ident() != threading.main_thread().ident:
            return
        _Held.depth -= 1
        if _Held.depth == 0:
            _restore(_Held.previous)
            _resend()


_DEFERRED = _Deferred()


def stop_signals_deferred() -> _Deferred:
    """A stop signal (or the SIGALRM of :func:`interrupt_at`) landing in the block takes effect
    when the block ends (re-sent to this process: the handler in place then acts on it). Two kinds
    of blocks need it:

    - a database transaction: interrupted, SQLAlchemy drops the connection as dead, and a SQLite
      connection dropped while a statement is active keeps its write lock (and the transaction)
      until the statement is freed; the process's own stop path (recording its trial) then waits
      for a lock it holds itself, ignoring further stop signals;
    - a fork: raised inside an at-fork hook, Python ignores the exception, and the handler has set
      later stop signals to be ignored: the stop is lost. A process forked in the block defers
      them too until :func:`install_worker_handlers` (not raised in ``multiprocessing``'s start-up
      code, a traceback per worker).

    Blocks nest. Outside the main thread (where Python runs no signal handler) nothing changes.
    """
    return _DEFERRED


def _restore(handlers: dict[int, Any]) -> None:
    for s, h in handlers.items():
        # None: a handler not set from Python; SIG_DFL and SIG_IGN as the plain ints _signal takes
        _c_signal(s, _signal.SIG_DFL if h is None else int(h) if isinstance(h, int) else h)


def _resend() -> None:
    """Send this process the first signal that was deferred (the others were the same stop)."""
    if _Held.pending:
        signum = _Held.pending[0]
        _Held.pending = []
        os.kill(os.getpid(), signum)


def install_worker_handlers(parent_pid: int) -> None:
    """In a worker process: stop signals raise :class:`StopSignal` once; die with the parent. A
    stop signal that came while the process was being started is raised now."""
    if _Held.depth:  # forked inside the supervisor's deferred block, which this process never leaves
        _Held.depth = 0
        _restore(_Held.previous)
    handler = _raise_once(parent_pid)
    for s in _STOP_SIGNALS:
        signal.signal(s, handler)
    _resend()
    if not _set_parent_death_signal(signal.SIGTERM):
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="thrifty-parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """In ``optimize``'s own process, while it runs: SIGINT and SIGTERM raise :class:`StopSignal`
    once (main thread only; elsewhere Python's defaults stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
    handler = _raise_once(None)
    for s in _STOP_SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        _restore(previous)


@contextmanager
def interrupt_at(when: float | None, reason: str) -> Iterator[None]:
    """Raise :class:`StopSignal` (``signum`` None) in the main thread at time ``when`` (epoch
    seconds) if the block is still running. Code blocked inside a C call that does not return to
    the interpreter is interrupted only when it does; worker processes have no such limit."""
    if when is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        for s in _STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise StopSignal(None, reason)

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(when - time.time(), 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)


def _set_parent_death_signal(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
