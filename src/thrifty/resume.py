"""What ``thrifty run`` does when the config's settings differ from the study it resumes.

The config's effective settings (an omitted key takes the default ``Study.create`` gives it) are
normalized as ``Study.create`` stores them and compared with the stored study's, read back the same
way, so an unchanged config never counts as changed. Then:

* **Never changed** (refused with or without ``--update``): ``space``, ``objective``, ``seed`` and
  ``artifact_root``. The stored trials were drawn from that space and scored by that objective: in
  another space or under another goal they mean something else (the best trial, the models, the
  forecasts would mix two studies). Proposals are a function of the seed, the trial number and
  the history, so a new seed would make the study a run of neither seed and no longer reproducible
  from its record. Paused trials resume from, and ``keep_checkpoints`` cleans, checkpoints under
  ``artifact_root``: a new folder would lose them. Use another ``--name``, or delete the study.
* **Applied with** ``--update`` (refused without it, naming each difference): ``pricing`` and
  ``resources`` (trials started or resumed from now on are metered and placed by the new ones;
  recorded costs are not rewritten), ``max_retries``, ``heartbeat_grace_s``, ``stop_when``,
  ``keep_checkpoints``, and ``strategy`` and ``scheduler``. Changing those two is safe: a
  strategy's proposals and a scheduler's decisions are functions of the stored history (the
  study rebuilds both from their stored specs at every load and they keep no state elsewhere), so
  a new one simply decides from the same trials from now on; the recorded trials stay valid.
  Trials PAUSED by a scheduler that resumes paused trials (ASHA promotion, Hyperband, PBT) stay
  paused under one that does not (a line says so); they are not lost.
* **Always applied** when the config gives one: ``budget``, as before (it is a limit on what the
  study may still spend and is meant to be changed: raising it continues a stopped study). A
  config without ``budget`` keeps the stored one.
* **Not stored**, taken from the config or the command line at every run: ``n_trials``,
  ``n_workers``, ``timeout_s``, ``max_consecutive_failures``, and how a trial runs (``workload``
  or ``command`` with its keys).

Each applied change prints one line, e.g. ``pricing: {'local': 36.0} -> {'local': 0.36}
(applies to new trials)``; all of them are written in one storage transaction. Processes already
running the study keep the settings they loaded until they restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.errors import ValidationError
from thrifty.study import Study, StudySettings

#: Settings that never change on a resumed study.
FIXED = ("space", "objective", "seed", "artifact_root")
#: Settings ``--update`` applies, with what they apply to.
UPDATABLE = {
    "pricing": "applies to new trials",
    "resources": "applies to new trials",
    "strategy": "applies to new proposals",
    "scheduler": "applies to decisions from now on",
    "stop_when": "applies from now on",
    "max_retries": "applies to trials that fail from now on",
    "heartbeat_grace_s": "applies from now on",
    "keep_checkpoints": "applies to checkpoints cleaned from now on",
}
_STORED_SETTINGS = ("pricing", "resources", "stop_when", "max_retries", "heartbeat_grace_s", "keep_checkpoints")


@dataclass(frozen=True)
class Change:
    """One setting whose wanted value differs from the stored one (plain JSON data each)."""

    key: str
    old: Any
    new: Any

    @property
    def text(self) -> str:
        """``key: old -> new`` in short reprs; for the space, which parameters differ and how."""
        if self.key == "space":
            return f"space: {space_changes(self.old, self.new)}"
        if self.key in ("strategy", "scheduler") and self.old.get("name") == self.new.get("name"):
            return f"{self.key} {self.old['name']}: {field_changes(self.old, self.new)}"
        return f"{self.key}: {_short(self.key, self.old)} -> {_short(self.key, self.new)}"


def _short(key: str, value: Any, limit: int = 60) -> str:
    """A short repr; a strategy's or scheduler's spec as its name and the options that differ from
    that name's defaults, e.g. ``asha(max_resource=9.0, mode='promotion')``."""
    text = repr(value)
    if key in ("strategy", "scheduler") and isinstance(value, Mapping) and isinstance(value.get("name"), str):
        from thrifty.schedulers import make_scheduler
        from thrifty.strategies import make_strategy

        build: Callable[[str], Any] = make_strategy if key == "strategy" else make_scheduler
        try:
            defaults = _plain(build(value["name"]).to_spec())
        except ValidationError:  # the name alone is not enough to build one (a required option)
            defaults = {}
        options = ", ".join(f"{k}={v!r}" for k, v in value.items() if k != "name" and defaults.get(k) != v)
        text = f"{value['name']}({options})" if options else value["name"]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``k old -> new`` for each key whose value differs (``unset`` where a side lacks it)."""
    keys = [*old, *(k for k in new if k not in old)]
    return ", ".join(
        f"{k} {_short(k, old[k]) if k in old else 'unset'} -> {_short(k, new[k]) if k in new else 'unset'}"
        for k in keys if old.get(k) != new.get(k) or (k in old) != (k in new)
    )


def space_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Which parameters two stored spaces (``Space.to_dict()``) add, remove and change."""
    parts = [f"added {k} ({_short(k, new[k])})" for k in new if k not in old]
    parts += [f"removed {k}" for k in old if k not in new]
    parts += [f"changed {k} ({field_changes(old[k], new[k])})" for k in old if k in new and old[k] != new[k]]
    return ", ".join(parts)


def differences(stored: StudySettings, wanted: StudySettings, *, budget_given: bool) -> list[Change]:
    """Every config setting whose wanted value differs from the stored one (budget only when the
    config gives one), in the order of :data:`FIXED`, then budget, then :data:`UPDATABLE`."""
    old, new = stored.comparable(), wanted.comparable()
    keys = [*FIXED, *(["budget"] if budget_given else []), *UPDATABLE]
    return [Change(k, old[k], new[k]) for k in keys if old[k] != new[k]]


def reconcile(study: Study, wanted: StudySettings, *, budget_given: bool, update: bool,
              how_to_delete: str) -> tuple[Study, list[str]]:
    """Apply the rule of this module to a loaded ``study`` and the config's ``wanted`` settings.

    Returns the study to run (reloaded when settings were written) and one line per applied
    change. Raises :class:`~thrifty.errors.ValidationError`, one line naming every difference
    with its old and new value and how to proceed, when a setting of :data:`FIXED` differs or one
    of :data:`UPDATABLE` differs without ``update``; nothing is written then.
    """
    changes = differences(study.settings, wanted, budget_given=budget_given)
    fixed = [c for c in changes if c.key in FIXED]
    updatable = [c for c in changes if c.key in UPDATABLE]
    if fixed or (updatable and not update):
        listed = "; ".join(c.text for c in [*fixed, *updatable])
        elsewhere = f"run it under another --name or delete the study first ({how_to_delete})"
        if fixed:
            advice = f"{' and '.join(c.key for c in fixed)} cannot change on a resumed study: {elsewhere}"
            if updatable:
                advice += f" (--update would apply only {', '.join(c.key for c in updatable)})"
        else:
            them = "it" if len(updatable) == 1 else "them"
            advice = f"to go on, rerun with --update (applies {them} from now on), or {elsewhere}"
        raise ValidationError(
            f"study {study.name!r} in {study.storage_url} has other settings than the config: {listed}; {advice}"
        )
    if not changes:
        return study, []
    by_key = {c.key: c for c in changes}
    stored = wanted.stored()
    settings = {k: stored[k] for k in _STORED_SETTINGS if k in by_key}
    study.storage.update_study(
        study.id,
        budget=wanted.budget.to_dict() if "budget" in by_key else None,
        strategy=wanted.strategy.to_spec() if "strategy" in by_key else None,
        scheduler=wanted.scheduler.to_spec() if "scheduler" in by_key else None,
        settings=settings or None,
    )
    lines = [f"{c.text} ({UPDATABLE.get(c.key, 'applies at once')})" for c in changes]
    if "scheduler" in by_key and not wanted.scheduler.plans_asks:
        from thrifty.trial import TrialState

        paused = study.counts().get(TrialState.PAUSED, 0)
        if paused and study.scheduler.plans_asks:
            lines.append(f"scheduler: {paused} paused trial{'s stay' if paused != 1 else ' stays'} paused "
                         f"({wanted.scheduler.name} resumes no paused trial)")
    return Study(study.storage, study.storage.load_study(study.name)), lines
