"""Storage back ends. :func:`open_storage` turns a URL into a :class:`Storage`."""

from __future__ import annotations

from thrifty.storage.base import SCHEMA_VERSION, AskLimits, RetryPolicy, Storage, StudyRecord, StudySummary

DEFAULT_STORAGE = "sqlite:///thrifty.db"


def open_storage(url: str | Storage = DEFAULT_STORAGE) -> Storage:
    """Open ``sqlite:///PATH`` (default), ``postgresql://USER@HOST:PORT/DB`` or ``"memory"``."""
    if isinstance(url, Storage):
        return url
    from thrifty.storage.sql import SQLStorage, normalize_url

    if normalize_url(url) == "sqlite://":
        from thrifty.storage.memory import MemoryStorage

        return MemoryStorage()
    return SQLStorage(url)


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
