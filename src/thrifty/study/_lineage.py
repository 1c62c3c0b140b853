"""The lineage of a trial: the chain of trials whose checkpoints it continues (population-based
training's clones, :meth:`thrifty.study.Study.lineage`)."""

from __future__ import annotations

from collections.abc import Sequence

from thrifty.errors import ValidationError
from thrifty.trial import Trial


def lineage(trials: Sequence[Trial], number: int, study_name: str) -> list[Trial]:
    """Trial ``number`` of ``trials`` (a study's trials) and its ancestors by ``parent``, root
    first (a parent missing from ``trials`` ends the chain; so does a loop)."""
    by_number = {t.number: t for t in trials}
    if number not in by_number:
        raise ValidationError(f"study {study_name!r} has no trial number {number}")
    chain = [by_number[number]]
    while chain[-1].parent is not None and chain[-1].parent in by_number and len(chain) <= len(by_number):
        chain.append(by_number[chain[-1].parent])
    return chain[::-1]
