"""Where trials keep their checkpoints, copying them for clones, and cleaning them up.

Each trial has a folder ``<artifact_root>/<study>/trial-NNNNN/`` (logs, params) with a
``checkpoint/`` folder inside that the objective writes. The database holds no blobs: a resumed
trial finds its checkpoint by its number, a clone (population-based training) gets a copy of its
parent's at the moment it was made.

Cleanup (after each trial finishes, when ``keep_checkpoints`` is set and more than ``keep`` trials
have a checkpoint folder): the checkpoint folders of finished trials are deleted except those of
the first ``keep`` trials of the study's ranking (:func:`thrifty.ranking.rank`: COMPLETED, finite
value, every constraint met; best first, ties by trial number). So stopped, failed and infeasible
trials lose theirs, and an infeasible trial never pushes out the best feasible one. Pending,
running and paused trials keep theirs, and so does a failed trial whose retry has not finished
(the retry starts from it). Multi-objective studies keep every checkpoint (there is no single
"best"). Logs are never deleted.

Retries continue the checkpoint (:func:`inherit_checkpoint`): a trial re-enqueued because its
worker died or was stopped (SIGTERM: a preempted machine, an evicted pod) runs again under a new
number with ``retry_of`` set; when it starts, the interrupted trial's checkpoint folder is copied
into its own, so an objective that resumes from what it finds in ``trial.checkpoint_dir`` (its own
record of the step it saved) goes on from the last checkpoint instead of from the start. Workers on
several machines share checkpoints only through a shared ``artifact_root``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from thrifty.ranking import rank
from thrifty.trial import Trial


class ArtifactOwner(Protocol):
    """What the folders are named after: a study (or a study's state) with a name and a root."""

    @property
    def name(self) -> str: ...

    @property
    def artifact_root(self) -> str:
        """The folder of the trials' folders, relative to the working folder."""
        ...


class CheckpointOwner(ArtifactOwner, Protocol):
    """What cleanup reads: the study's objectives, constraints and trials (a ``Study``)."""

    @property
    def objectives(self) -> Mapping[str, str]: ...

    @property
    def constraints(self) -> Mapping[str, tuple[str, float]]: ...

    def get_trials(self, *, with_measurements: bool = True) -> list[Trial]: ...


def study_dir(study: ArtifactOwner) -> Path:
    """The study's artifact folder (not created here)."""
    return _study_folder(study.artifact_root, study.name)


@functools.lru_cache(maxsize=64)
def _study_folder(artifact_root: str, name: str) -> Path:
    return Path(artifact_root) / re.sub(r"[^A-Za-z0-9._-]", "_", name)


def trial_dir(study: ArtifactOwner, number: int) -> Path:
    """Trial ``number``'s artifact folder (not created here)."""
    return study_dir(study) / f"trial-{number:05d}"


def checkpoint_dir(study: ArtifactOwner, number: int) -> Path:
    return trial_dir(study, number) / "checkpoint"


def copy_checkpoint(study: ArtifactOwner, parent: int, child: int) -> None:
    """Copy ``parent``'s checkpoint folder into ``child``'s (an empty folder if the parent has
    none yet). Files the parent is writing at this moment may be caught half-written: objectives
    should write checkpoints to a temporary name and rename them (atomic on one file system)."""
    source, target = checkpoint_dir(study, parent), checkpoint_dir(study, child)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        target.mkdir(exist_ok=True)


def inherit_checkpoint(study: ArtifactOwner, retry_of: int, number: int) -> bool:
    """Give the retry ``number`` a copy of the checkpoint folder of ``retry_of``, the trial it re-runs,
    unless it has a checkpoint folder already or ``retry_of`` left none (or an empty one). Returns
    whether a checkpoint was copied."""
    source, target = checkpoint_dir(study, retry_of), checkpoint_dir(study, number)
    if target.exists() or not source.is_dir() or not any(source.iterdir()):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, dirs_exist_ok=True)
    return True


def clean_checkpoints(study: CheckpointOwner, keep: int) -> list[int]:
    """Delete checkpoint folders of finished trials outside the best ``keep`` (see the module
    docstring). Returns the trial numbers whose checkpoints were deleted."""
    folder = study_dir(study)
    if len(study.objectives) != 1 or not os.path.isdir(folder):  # after every tell: the cheapest stat
        return []
    present: dict[int, Path] = {}
    for entry in folder.iterdir():
        if entry.name.startswith("trial-") and (entry / "checkpoint").is_dir():
            try:
                present[int(entry.name[6:])] = entry / "checkpoint"
            except ValueError:
                continue
    if len(present) <= keep:
        return []
    everything = study.get_trials(with_measurements=False)
    finished = [t for t in everything if t.is_finished]
    kept = {t.number for t in rank(finished, study.objectives, study.constraints)[:keep]}
    kept |= {t.retry_of for t in everything if t.retry_of is not None and not t.is_finished}  # a retry's source
    removed = []
    for number in sorted(t.number for t in finished if t.number in present and t.number not in kept):
        shutil.rmtree(present[number], ignore_errors=True)
        removed.append(number)
    return removed
