"""The thrifty error hierarchy.

Every error a user can provoke derives from :class:`ThriftyError`, so callers (and the CLI) can
catch one type and print one clear line. Messages say what was wrong and how to fix it.
"""

from __future__ import annotations


class ThriftyError(Exception):
    """Base class of every error thrifty raises on purpose."""


class SpaceError(ThriftyError, ValueError):
    """A search space or a parameter set is invalid."""


class ValidationError(ThriftyError, ValueError):
    """A value given to the API (a metric, a cost, an argument) is invalid."""


class NotEnoughData(ThriftyError, ValueError):
    """A model was asked for something before it has seen the data it needs (e.g. a cost forecast
    before any trial with a cost)."""


class StorageError(ThriftyError):
    """The storage cannot be opened or used (bad URL, newer schema, unreachable server)."""


class NoDatabase(StorageError):
    """A storage opened read-only has nothing to read: the SQLite file does not exist, or the
    database holds no thrifty tables. Nothing was created."""


class StudyNotFound(ThriftyError, KeyError):
    """No study with the given name exists in the storage."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message.
        return str(self.args[0]) if self.args else "study not found"


class DuplicateStudy(ThriftyError):
    """A study with the given name already exists in the storage."""


class TrialNotRunning(ThriftyError):
    """An operation needs a RUNNING trial, but the trial has already finished."""


class StudyExhausted(ThriftyError):
    """No new trial can be started: a budget, a trial limit or the strategy is used up.

    ``reason`` names what ran out (``"trials"``, ``"usd"``, ``"wall_s"``, ``"strategy"``,
    ``"n_trials"``).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Picklable (a worker process's exception reaches its parent intact).
        return type(self), (str(self.args[0]), self.reason)


class TooManyFailures(ThriftyError):
    """``optimize`` gave up after too many consecutive failed trials."""


class StopSignal(KeyboardInterrupt):
    """The run was asked to stop: by a signal (``signum``: SIGINT, SIGTERM), or by its own time
    limit (``signum`` is ``None``). A ``KeyboardInterrupt``, so an objective's ``except Exception``
    does not swallow it. ``reason`` says it in words, as the interrupted trials record it."""

    def __init__(self, signum: int | None, reason: str) -> None:
        super().__init__(reason)
        self.signum = signum
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[int | None, str]]:
        return type(self), (self.signum, self.reason)


class WorkersKeepDying(ThriftyError):
    """``optimize`` gave up replacing worker processes that keep dying (a crash loop): the message
    says how many died in a row, how the last one ended and in which trial."""


class WorkerError(ThriftyError):
    """A worker process of ``optimize`` stopped on an error it cannot get past (the study was
    deleted, the disk is full, the database is gone): the message is that error, in one line."""


class TrialStopped(ThriftyError):
    """Raised by ``trial.report`` after recording the report, when the trial must end at once
    (a hard budget was reached). ``optimize`` records the trial as STOPPED with the reason."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Picklable (a worker process's exception reaches its parent intact).
        return type(self), (str(self.args[0]), self.reason)


class TrialFailed(ThriftyError):
    """Raise from an objective to record the trial as FAILED with exactly this message (no
    traceback), e.g. a training program's exit status and the tail of its stderr."""


class TrialInfeasible(ThriftyError):
    """Raise from an objective to record the trial as INFEASIBLE: these parameters cannot be
    evaluated (out of memory, invalid combination); the message is the reason."""
