"""Creating a study's stored record, or finding the one that exists.

``Study.create`` validates every argument first (:func:`~thrifty.study._settings.normalize_settings`),
then, with ``load_if_exists``, loads a study of that name if there is one; otherwise it inserts
the record atomically (of several processes creating one study at once, one inserts it and the
others load it).
"""

from __future__ import annotations

import dataclasses

from thrifty.errors import StudyNotFound
from thrifty.storage import Storage, StudyRecord
from thrifty.study._settings import StudySettings


def find_study(storage: Storage, name: str) -> StudyRecord | None:
    """The stored study called ``name``, or ``None``."""
    try:
        return storage.load_study(name)
    except StudyNotFound:
        return None


def insert_study(storage: Storage, name: str, wanted: StudySettings, load_if_exists: bool) -> tuple[StudyRecord, bool]:
    """Insert the study (atomic with ``load_if_exists``: another process may be creating it right
    now). Returns its record and whether this call inserted it."""
    return storage.create_study(
        name=name,
        space=wanted.space.to_dict(),
        objectives=dict(wanted.objectives),
        strategy=wanted.strategy.to_spec(),
        scheduler=wanted.scheduler.to_spec(),
        seed=wanted.seed,
        budget=wanted.budget.to_dict(),
        settings=wanted.stored(),
        load_if_exists=load_if_exists,
    )


def created_settings(record: StudyRecord, wanted: StudySettings) -> StudySettings:
    """The settings of a study just inserted: as stored, but with the caller's strategy and
    scheduler instances (they may carry state their spec cannot, e.g. callbacks)."""
    return dataclasses.replace(StudySettings.of_record(record), strategy=wanted.strategy, scheduler=wanted.scheduler)
