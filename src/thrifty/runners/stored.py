"""How a study runs its objective, stored with the study so that a pull worker (``thrifty worker``)
needs nothing but the storage URL and the study's name.

``thrifty run CONFIG`` writes it on every run (create or resume), from the config's ``workload:``
or ``command:``, under the key :data:`RUNNER_KEY` of the study's stored ``settings``; the latest
run's config wins. It is plain JSON data, checked by :func:`check_runner` when written and again
when read:

- ``{"version": 1, "workload": "module:function", "config_dir": "/abs/folder"}``: the function is
  imported with ``config_dir`` searched first (the worker's working folder next), as ``thrifty run``
  imports it.
- ``{"version": 1, "command": "python train.py --lr {lr}", "metrics": {...}, "step_metric": ...,
  "max_resource": ..., "infeasible_patterns": [...], "grace_s": 10.0, "max_preemptions": 2,
  "metrics_timeout_s": 600, "config_dir": "/abs/folder"}``: the script runner's options, resolved as
  ``thrifty run`` resolves them (``step_metric`` already defaulted); the program runs in
  ``config_dir`` when that folder exists on the worker's machine, else in the worker's working
  folder.
- both may carry ``"trial_timeout_s"``: a workload's trials are ended after that many seconds
  (``optimize(trial_timeout_s=...)``), a command's program is killed (its ``timeout_s``).

The key is outside :data:`thrifty.study._settings.STORED_KEYS`: :meth:`StudySettings.of_record`
ignores it, so studies without it load as before, a thrifty that predates it reads studies that
have it, and it takes no part in the resume rule (:mod:`thrifty.resume`): like ``n_workers``, it is
taken from the config at every run. Pipeline studies store none (their code is passed to
``Study.load``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from thrifty.errors import ValidationError

#: The ``settings`` key the runner spec is stored under.
RUNNER_KEY = "runner"
#: The spec's format version (a spec of a newer version is refused with a clear message).
VERSION = 1
#: The script runner's options a command spec may hold (config keys of the same names).
COMMAND_OPTIONS = ("metrics", "step_metric", "max_resource", "infeasible_patterns", "grace_s", "max_preemptions",
                   "metrics_timeout_s")


def runner_of_config(cfg: Mapping[str, Any], config_dir: str) -> dict[str, Any] | None:
    """The runner spec of a ``thrifty run`` config (``None`` for a pipeline config), checked."""
    if "workload" in cfg:
        spec: dict[str, Any] = {"version": VERSION, "workload": cfg["workload"], "config_dir": config_dir}
    elif "command" in cfg:
        spec = {"version": VERSION, "command": cfg["command"], "config_dir": config_dir}
        for key in COMMAND_OPTIONS:
            if cfg.get(key) is not None:
                spec[key] = cfg[key]
        if "metrics_timeout_s" in cfg and cfg["metrics_timeout_s"] is None:
            spec["metrics_timeout_s"] = None  # null: wait for the program's end (not the default 600 s)
        metrics = cfg.get("metrics")
        if spec.get("step_metric") is None and isinstance(metrics, Mapping):
            step = next((k for k in ("epoch", "step") if k in metrics), None)
            if step is not None:
                spec["step_metric"] = step
    else:
        return None
    if cfg.get("trial_timeout_s") is not None:
        spec["trial_timeout_s"] = cfg["trial_timeout_s"]
    return check_runner(spec)


def check_runner(spec: Any) -> dict[str, Any]:
    """``spec`` if it is a valid runner spec (see the module docstring), else a ValidationError
    saying what is wrong. The command's own rules (placeholders, metrics) are checked when the
    objective is built from it."""
    if not isinstance(spec, Mapping):
        raise ValidationError(f"stored runner {spec!r}: expected a mapping")
    version = spec.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValidationError(f"stored runner: version {version!r} is not a positive integer")
    if version > VERSION:
        raise ValidationError(f"stored runner: version {version} was written by a newer thrifty (this one reads "
                              f"version {VERSION}); upgrade thrifty on this machine")
    kinds = [k for k in ("workload", "command") if k in spec]
    if len(kinds) != 1:
        raise ValidationError("stored runner: expected exactly one of 'workload' and 'command'")
    allowed = {"version", "config_dir", "trial_timeout_s", kinds[0]}
    if kinds[0] == "command":
        allowed |= set(COMMAND_OPTIONS)
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValidationError(f"stored runner: unknown key(s) {', '.join(unknown)}")
    if kinds[0] == "workload" and (not isinstance(spec["workload"], str) or ":" not in spec["workload"]):
        raise ValidationError(f"stored runner: workload {spec['workload']!r} is not 'module:function'")
    if kinds[0] == "command":
        command = spec["command"]
        if not (isinstance(command, str) or (isinstance(command, list) and all(isinstance(c, str) for c in command))):
            raise ValidationError(f"stored runner: command {command!r} is not a string or a list of strings")
        if not isinstance(spec.get("metrics"), Mapping):
            raise ValidationError("stored runner: a command needs its 'metrics' mapping")
    if not isinstance(spec.get("config_dir"), str) or not spec["config_dir"]:
        raise ValidationError(f"stored runner: config_dir {spec.get('config_dir')!r} is not a folder name")
    t = spec.get("trial_timeout_s")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0):
        raise ValidationError(f"stored runner: trial_timeout_s={t!r} is not a number of seconds > 0")
    return dict(spec)


def stored_runner(settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The checked runner spec in a study record's ``settings``, or ``None`` if it has none."""
    spec = settings.get(RUNNER_KEY)
    return None if spec is None else check_runner(spec)


def describe(spec: Mapping[str, Any]) -> str:
    """The spec in a few words: ``workload train:objective`` or ``command 'python train.py ...'``."""
    if "workload" in spec:
        return f"workload {spec['workload']}"
    command = spec["command"]
    return f"command {command if isinstance(command, str) else ' '.join(command)!r}"
