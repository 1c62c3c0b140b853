"""Storage back ends. :func:`open_storage` turns a URL into a :class:`Storage`."""

from __future__ import annotations

from thrifty.storage.base import SCHEMA_VERSION, AskLimits, RetryPolicy, Storage, StudyRecord, StudySummary

DEFAULT_STORAGE = "sqlite:///thrifty.db"


def open_storage(url: str | Storage = DEFAULT_STORAGE, *, read_only: bool = False) -> Storage:
    """Open ``sqlite:///PATH`` (default), ``postgresql://USER@HOST:PORT/DB`` or ``"memory"``.

    ``read_only=True`` (for commands that only read): nothing is created or changed; a missing
    SQLite file or a database without thrifty's tables raises :class:`~thrifty.errors.NoDatabase`.
    A :class:`Storage` instance is returned as it is.
    """
    if isinstance(url, Storage):
        return url
    from thrifty.storage.sql import SQLStorage, normalize_url

    if normalize_url(url) == "sqlite://":
        from thrifty.storage.memory import MemoryStorage

        return MemoryStorage()
    return SQLStorage(url, read_only=read_only)


__all__ = [
    "DEFAULT_STORAGE",
    "SCHEMA_VERSION",
    "AskLimits",
    "RetryPolicy",
    "Storage",
    "StudyRecord",
    "StudySummary",
    "open_storage",
]
