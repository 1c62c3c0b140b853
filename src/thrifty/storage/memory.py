"""In-process storage (``storage="memory"``).

It is the SQL storage on an in-memory SQLite database: one implementation of every rule (atomic
ask, dense numbers, the ledger), so "memory" behaves exactly like a file, only faster and gone when
the process ends. It cannot be shared between processes: ``optimize(n_workers>1)`` needs a file or
a server.
"""

from __future__ import annotations

from thrifty.storage.sql import SQLStorage


class MemoryStorage(SQLStorage):
    """A study database that lives in this process's memory."""

    def __init__(self) -> None:
        super().__init__("memory")
