"""The ``thrifty`` command line.

Every subcommand takes ``--storage URL`` (default ``sqlite:///thrifty.db``). Errors are one line on
stderr and exit status 1 (2 for bad usage), never a traceback, unless ``--debug`` is given. The exit
statuses are those of :mod:`thrifty.exitcodes` (``thrifty run``: also 3, every trial failed; 130,
Ctrl-C; 143, SIGTERM).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from thrifty import exitcodes
from thrifty.errors import ThriftyError, ValidationError
from thrifty.storage import DEFAULT_STORAGE

#: Keys a ``thrifty run`` config file may hold.
CONFIG_KEYS = {
    "name": "study name (default: the config file's stem)",
    "storage": "storage URL (default sqlite:///thrifty.db)",
    "space": "the search space (required)",
    "objective": "'min', 'max' or {metric: min|max} (default max)",
    "workload": "module:function to call with each trial (this or command)",
    "command": "program to run per trial, e.g. 'python train.py --lr {lr}' (this or workload)",
    "pipeline": "instead of space and workload: stages run in order, each {name, function: module:function "
                "or command: 'program {param} {stage_input} {stage_output}' (with metrics, step_metric, "
                "timeout_s, ... as for command), space: {...}, version, cache}; or {stages: [...], "
                "cache_dir: FOLDER, cache_max_bytes: N}",
    "metrics": "with command: {name: {regex: '...', goal: max|min}}, read from what the program prints",
    "step_metric": "with command: the metric that is the report's step (default: 'epoch' or 'step' if defined)",
    "max_resource": "with command: the step a full trial reaches ({max_resource} in the command)",
    "infeasible_patterns": "with command: output patterns that make a trial INFEASIBLE (e.g. 'CUDA out of memory')",
    "trial_timeout_s": "seconds after which a trial is ended (FAILED 'timeout after N s', retried by max_retries)",
    "stop_grace_s": "seconds trials may run on after timeout_s before they are ended (default 10)",
    "max_worker_deaths": "worker processes dying in a row with no trial finished before the run gives up "
                         "(default: twice the workers, at least 5)",
    "grace_s": "with command: seconds between SIGTERM and SIGKILL when a trial is stopped (default 10)",
    "max_preemptions": "with command: restarts of a program killed by a signal thrifty did not send (default 2)",
    "metrics_timeout_s": "with command: seconds within which each objective/step metric must first match, or the "
                         "trial is stopped and FAILED (default 600; null: wait for the program's end)",
    "artifact_root": "folder of the trials' logs and checkpoints (default thrifty_artifacts)",
    "keep_checkpoints": "keep the checkpoints of the best K finished trials only (default 3; null keeps all)",
    "strategy": "strategy name or {name: ..., ...} (default auto)",
    "scheduler": "scheduler name or {name: ..., ...} (default auto: stops early only where the study's data show it pays; none: never)",
    "seed": "integer seed (default 0)",
    "budget": "{trials: N, usd: X}",
    "max_retries": "re-runs of a trial whose worker died (default 0)",
    "heartbeat_grace_s": "seconds without heartbeat before a worker is presumed dead (default 60)",
    "n_trials": "trials to start in this run (default: until the budget is used up)",
    "n_workers": "worker processes (default 1)",
    "backend": "where trials run: local (default: this machine) or ray (Ray tasks on a Ray cluster, docs/ray.md)",
    "ray_address": "with backend ray: the cluster, auto or HOST:PORT of its head node (default: a private one here)",
    "timeout_s": "start no trial after this many seconds; end those still running stop_grace_s later",
    "max_consecutive_failures": "give up after this many failures in a row (default 20)",
    "pricing": "how trial time becomes dollars: {local: USD_PER_HOUR}, an instance type, or {gpu: MODEL, ...}",
    "resources": "what each trial holds and pays for, e.g. {gpu: 1, cpu: 4}",
    "stop_when": "completion criteria, e.g. [{name: target, value: 0.98}]",
}


#: How ``thrifty run`` resumes a study whose settings differ from the config (``--help``; the
#: full rule and its reasons: :mod:`thrifty.resume`).
RESUME_RULE = """resuming a study (its name exists in the storage):
  the config's settings (omitted keys: their defaults) are compared with the stored study's.
  space, objective, seed, artifact_root: never change (run under another --name, or delete the
    study: thrifty delete NAME)
  pricing, resources, strategy, scheduler, stop_when, max_retries, heartbeat_grace_s,
    keep_checkpoints: applied with --update, from now on (recorded trials keep their costs);
    without --update a difference is refused, naming each setting with its old and new value
  budget: applied whenever the config gives one (a config without budget keeps the stored one)
  n_trials, n_workers, timeout_s, max_consecutive_failures, trial_timeout_s, stop_grace_s,
  max_worker_deaths, backend, ray_address, workload/command: not compared, taken
    from the config and the options at every run (workload/command are stored for
    `thrifty worker` at every run: the latest config wins)"""


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}"
    return str(v)


def _ts(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


# -- config -----------------------------------------------------------------------------------
def load_config(path: str, required: Sequence[str] = ("space|pipeline", "workload|command|pipeline")) -> dict[str, Any]:
    """Read and check a ``thrifty run`` config file (YAML or JSON); ``required``: keys it must hold."""
    from thrifty import _yaml as yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ValidationError(f"config file {path!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"config file {path!r} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ValidationError(f"config file {path!r}: expected a mapping of settings at the top level")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise ValidationError(
            f"config file {path!r}: unknown key(s) {', '.join(unknown)}; known: {', '.join(CONFIG_KEYS)}"
        )
    for key in required:
        options = key.split("|")
        present = [k for k in options if k in data]
        if not present:
            what = " or ".join(f"{k!r} ({CONFIG_KEYS[k]})" for k in options)
            raise ValidationError(f"config file {path!r}: missing {what}")
        if len(present) > 1:
            raise ValidationError(f"config file {path!r}: give one of {' or '.join(map(repr, options))}, not both")
    command_only = [k for k in ("metrics", "step_metric", "max_resource", "infeasible_patterns",
                                "grace_s", "max_preemptions", "metrics_timeout_s") if k in data]
    if command_only and "command" not in data:
        raise ValidationError(f"config file {path!r}: {', '.join(command_only)} only apply with 'command'")
    if "command" in data and "metrics" not in data:
        raise ValidationError(f"config file {path!r}: 'command' needs 'metrics' ({CONFIG_KEYS['metrics']})")
    return dict(data)


def script_objective(cfg: Mapping[str, Any], config_dir: str, space: Any = None) -> tuple[Any, Any]:
    """The ScriptObjective of a ``command:`` config and the study objective it implies (the
    metrics with a goal, unless the config names ``objective``).

    Everything is checked here, before any study is created: the command's placeholders against
    ``space`` (default: the config's), and that every objective is one of the metrics."""
    from thrifty.runners.script import ScriptObjective
    from thrifty.space import Space
    from thrifty.study import parse_objectives

    metrics = cfg["metrics"]
    step = cfg.get("step_metric")
    if step is None and isinstance(metrics, Mapping):
        step = next((k for k in ("epoch", "step") if k in metrics), None)
    optional = {k: cfg[k] for k in ("metrics_timeout_s",) if k in cfg}
    fn = ScriptObjective(
        cfg["command"], metrics, step_metric=step, max_resource=cfg.get("max_resource"),
        infeasible_patterns=cfg.get("infeasible_patterns", ()), timeout_s=cfg.get("trial_timeout_s"),
        grace_s=cfg.get("grace_s", 10.0), max_preemptions=cfg.get("max_preemptions", 2), cwd=config_dir,
        space=space if space is not None else Space(cfg["space"]), **optional,
    )
    objective = cfg.get("objective")
    if objective is None:
        goals = {k: v["goal"] for k, v in metrics.items() if isinstance(v, Mapping) and v.get("goal")}
        if not goals:
            raise ValidationError("metrics: give one metric a goal (max or min), or set 'objective'")
        objective = goals
    fn.check_objectives(parse_objectives(objective))
    return fn, objective


def import_workload(spec: str, search_dirs: Sequence[str] = ()) -> Any:
    """Import ``module:function``; the config's folder and the working folder are searched first."""
    import importlib

    if not isinstance(spec, str) or ":" not in spec:
        raise ValidationError(f"workload={spec!r}: expected 'module:function', e.g. 'train:objective'")
    module_name, _, attr = spec.partition(":")
    for d in reversed([os.getcwd(), *search_dirs]):
        if d not in sys.path:
            sys.path.insert(0, d)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidationError(f"workload {spec!r}: cannot import module {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ValidationError(f"workload {spec!r}: module {module_name!r} has no function {attr!r}")
    return fn


#: Keys a ``pipeline:`` stage may hold; those of :data:`STAGE_COMMAND_KEYS` with ``command`` only.
STAGE_KEYS = ("name", "function", "command", "space", "version", "cache")
#: A command stage's options (the script runner's, for this stage's program).
STAGE_COMMAND_KEYS = ("metrics", "step_metric", "max_resource", "infeasible_patterns", "timeout_s", "grace_s",
                      "max_preemptions", "metrics_timeout_s", "env")


def pipeline_from_config(spec: Any, search_dirs: Sequence[str] = (), cwd: str | None = None) -> Any:
    """The :class:`~thrifty.pipelines.Pipeline` of a config's ``pipeline:`` key: a list of stages,
    or a mapping with ``stages`` and optionally ``cache_dir`` and ``cache_max_bytes``.

    A stage is ``{name, function: module:function, space: {...}, version: 1, cache: true}`` or,
    instead of ``function``, ``command: 'program ...'`` (:mod:`thrifty.pipelines.command`) with the
    script runner's options for its program: ``metrics`` (required for the last stage),
    ``step_metric`` (default: ``epoch`` or ``step`` if a metric has that name), ``max_resource``,
    ``infeasible_patterns``, ``timeout_s`` (seconds, this stage's run), ``grace_s``,
    ``max_preemptions``, ``metrics_timeout_s``, ``env``. Commands run in ``cwd`` (``thrifty run``:
    the config's folder). Every error is one line naming the stage, raised before anything runs."""
    from thrifty.pipelines import Pipeline, Stage

    options: dict[str, Any] = {}
    stages = spec
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"stages", "cache_dir", "cache_max_bytes"})
        if unknown:
            raise ValidationError(f"pipeline: unknown key(s) {', '.join(unknown)}; known: stages, cache_dir, "
                                  "cache_max_bytes")
        stages = spec.get("stages")
        options = {k: spec[k] for k in ("cache_dir", "cache_max_bytes") if k in spec}
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
        raise ValidationError(f"pipeline: expected a list of stages, each {{name: ..., function: module:function "
                              f"or command: 'program ...', space: {{...}}}}, got {stages!r}")
    built = []
    for i, st in enumerate(stages):
        if not isinstance(st, Mapping):
            raise ValidationError(f"pipeline stage {i}: expected a mapping with name, function or command, and space")
        label = f"pipeline stage {i}" + (f" ({st['name']!r})" if isinstance(st.get("name"), str) else "")
        unknown = sorted(set(st) - {*STAGE_KEYS, *STAGE_COMMAND_KEYS})
        if unknown:
            raise ValidationError(f"{label}: unknown key(s) {', '.join(unknown)}; known: {', '.join(STAGE_KEYS)} "
                                  f"and, with command, {', '.join(STAGE_COMMAND_KEYS)}")
        if ("function" in st) == ("command" in st):
            what = "both function and command" if "function" in st else "neither function nor command"
            raise ValidationError(f"{label}: {what}; give function: module:function or command: 'program ...'")
        common = {"space": st.get("space") or {}, "version": st.get("version", 1), "cache": st.get("cache", True)}
        name = st.get("name", f"stage{i}")
        script = {k: st[k] for k in STAGE_COMMAND_KEYS if k in st}
        if "function" in st:
            if script:
                raise ValidationError(f"{label}: {', '.join(script)} only apply with 'command'")
            built.append(Stage(name, import_workload(st["function"], search_dirs), **common))
            continue
        metrics = script.get("metrics")
        if script.get("step_metric") is None and isinstance(metrics, Mapping):
            script["step_metric"] = next((k for k in ("epoch", "step") if k in metrics), None)
        built.append(Stage(name, command=st["command"], cwd=cwd, **common, **script))
    return Pipeline(built, **options)


def pipeline_objective(cfg: Mapping[str, Any], pipeline: Any) -> Any:
    """The study objective of a ``pipeline:`` config: ``objective`` (default ``max``); when the
    last stage runs a command, the default is its metrics with a goal, and every objective must be
    one of its metrics (a one-line error naming the stage otherwise)."""
    from thrifty.study import parse_objectives

    last = pipeline.stages[-1]
    objective = cfg.get("objective")
    if last.runner is None:
        return objective if objective is not None else "max"
    if objective is None:
        objective = last.runner.goals
        if not objective:
            raise ValidationError(f"Stage {last.name!r} (the last stage): give one of its metrics a goal (max or "
                                  "min), or set 'objective'")
    last.runner.check_objectives(parse_objectives(objective))
    return objective


# -- commands ---------------------------------------------------------------------------------
def _run_args(args: argparse.Namespace, cfg: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The arguments of this run's ``optimize`` (``n_trials``, ``n_workers``, ``timeout_s``,
    ``max_consecutive_failures``, ``trial_timeout_s``, ``stop_grace_s``, ``max_worker_deaths``;
    the command line's options over the config's), checked before anything is written: an error
    names the key and where its value came from."""
    from thrifty.runners.local import check_run_args

    given = {"n_trials": args.n_trials, "n_workers": args.workers, "timeout_s": args.timeout,
             "max_consecutive_failures": None, "trial_timeout_s": None, "stop_grace_s": None,
             "max_worker_deaths": None}
    flags = {"n_trials": "--n-trials", "n_workers": "--workers", "timeout_s": "--timeout"}
    defaults = {"n_trials": None, "n_workers": 1, "timeout_s": None, "max_consecutive_failures": 20,
                "trial_timeout_s": None, "stop_grace_s": 10.0, "max_worker_deaths": None}
    values = {k: given[k] if given[k] is not None else cfg.get(k, defaults[k]) for k in defaults}
    for key, value in values.items():
        try:
            check_run_args(**{**defaults, key: value})
        except ValidationError as exc:
            where = f"from {flags[key]}" if given[key] is not None else f"in config file {path!r}"
            raise ValidationError(f"{exc} ({where})") from None
    return values


def _backend_args(args: argparse.Namespace, cfg: Mapping[str, Any], path: str) -> tuple[str, str | None]:
    """This run's ``backend`` and Ray ``address`` (``--backend``/``--address`` over the config's
    ``backend``/``ray_address``), checked before anything is written."""
    from thrifty.runners.ray import check_backend

    backend = args.backend if args.backend is not None else cfg.get("backend", "local")
    address = args.address if args.address is not None else cfg.get("ray_address")
    try:
        check_backend(backend, address)
    except ValidationError as exc:
        given = args.backend is not None or args.address is not None
        raise ValidationError(f"{exc} ({'from --backend/--address' if given else f'in config file {path!r}'})") from None
    return backend, address


def cmd_run(args: argparse.Namespace) -> int:
    """Run or resume the config's study; the exit status is one of :mod:`thrifty.exitcodes`.

    Everything the config and the options say is checked before the storage is touched, so a bad
    value leaves no study behind. An existing study of that name is resumed; where the config's
    settings differ from the stored ones, the rule of :mod:`thrifty.resume` applies: ``space``,
    ``objective``, ``seed`` and ``artifact_root`` never change; ``pricing``, ``resources``,
    ``strategy``, ``scheduler``, ``stop_when``, ``max_retries``, ``heartbeat_grace_s`` and
    ``keep_checkpoints`` change only with ``--update`` (from now on: recorded trials keep their
    costs); ``budget`` is applied whenever the config gives one. Otherwise the run is refused with
    one line naming every difference.
    """
    import thrifty as th
    from thrifty import exitcodes
    from thrifty.errors import TooManyFailures
    from thrifty.runners.pool import plan_slots
    from thrifty.study import SETTING_NAMES, normalize_settings

    cfg = load_config(args.config)
    config_dir = os.path.dirname(os.path.abspath(args.config))
    storage = storage_url(args, cfg)
    name = args.name or cfg.get("name") or os.path.splitext(os.path.basename(args.config))[0]
    pipeline = pipeline_from_config(cfg["pipeline"], [config_dir], config_dir) if "pipeline" in cfg else None
    space = pipeline.space if pipeline is not None else th.Space(cfg["space"])
    if pipeline is not None:
        from thrifty.pipelines import PipelineObjective

        objective_fn, objective = PipelineObjective(pipeline), pipeline_objective(cfg, pipeline)
    elif "command" in cfg:
        objective_fn, objective = script_objective(cfg, config_dir, space)
    else:
        objective_fn, objective = import_workload(cfg["workload"], [config_dir]), cfg.get("objective", "max")
    # Only the settings the config gives: the others take normalize_settings' defaults (one place).
    settings: dict[str, Any] = {k: cfg[k] for k in SETTING_NAMES if k in cfg}
    wanted = normalize_settings(space, objective, pipeline=pipeline.shape if pipeline is not None else None,
                                **settings)
    run_args = _run_args(args, cfg, args.config)
    from thrifty.runners.stored import RUNNER_KEY, runner_of_config

    runner = runner_of_config(cfg, config_dir)  # stored for `thrifty worker` (checked before anything is written)
    n_trials, n_workers, max_failures = run_args["n_trials"], run_args["n_workers"], run_args["max_consecutive_failures"]
    if "command" in cfg:  # the program's own timeout (ScriptObjective) ends it; no process per trial needed
        run_args["trial_timeout_s"] = None
    backend, address = _backend_args(args, cfg, args.config)
    if backend == "local":
        plan_slots(wanted.resources, n_workers, None)  # e.g. more GPUs per trial than visible
    else:
        from thrifty.runners.ray import join_cluster

        join_cluster(storage, address, wanted.resources)  # refused before the study is written
    out = _console()
    # Create or load in one atomic step: several `thrifty run` of one config may start at once.
    if pipeline is not None:
        study = th.Study.create(objective=objective, name=name, storage=storage, load_if_exists=True,
                                pipeline=pipeline, **settings)
    else:
        study = th.Study.create(space, objective, name=name, storage=storage, load_if_exists=True, **settings)
    resumed = not study.created
    if resumed:
        from thrifty.resume import reconcile

        how_to_delete = f"thrifty delete {name} --storage {study.storage_url}"
        study, lines = reconcile(study, wanted, budget_given=cfg.get("budget") is not None, update=args.update,
                                 how_to_delete=how_to_delete)
        from rich.markup import escape

        for line in lines:
            out.print(f"[bold]thrifty[/]: {escape(line)}")
    if runner is not None:  # the latest run's config is what `thrifty worker` runs
        study.storage.update_study(study.id, settings={RUNNER_KEY: runner})
    before = sum(study.counts().values())
    verb = "resuming" if resumed else "created"
    out.print(
        f"[bold]thrifty[/]: {verb} study [cyan]{study.name}[/] in {study.storage_url} "
        f"({study.strategy.name} search, {n_workers} worker{'s' if n_workers != 1 else ''}"
        f"{f', {n_trials} trials' if n_trials else ''})"
    )
    started = time.monotonic()
    result = None
    failure: str | None = None
    try:
        # A terminal gets the live view, a pipe or a log one line per finished trial.
        progress: bool | str = False if args.no_progress else (True if sys.stdout.isatty() else "lines")
        result = study.optimize(objective_fn, progress=progress, backend=backend, address=address, **run_args)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (thrifty.errors.StopSignal): a clean stop
        _print_summary(study, time.monotonic() - started, sum(study.counts().values()) - before)
        term = getattr(exc, "signum", None) == signal.SIGTERM
        out.print(f"[yellow]interrupted by {'SIGTERM' if term else 'SIGINT'}[/]: run the same command again to "
                  f"resume study {study.name!r}")
        return exitcodes.TERMINATED if term else exitcodes.INTERRUPTED
    except TooManyFailures:
        failure = f"{max_failures} trials of this run failed in a row (max_consecutive_failures: {max_failures})"
    _print_summary(study, time.monotonic() - started, sum(study.counts().values()) - before,
                   result.message if result is not None else None)
    if result is not None and result.all_failed:
        n = sum(result.counts.values())
        failure = f"{'the' if n == 1 else f'all {n}'} trial{'s' if n != 1 else ''} of this run failed"
    if failure is None:
        return exitcodes.OK
    _print_failure(study, failure, args.debug)
    return exitcodes.TRIALS_FAILED


#: Seconds ``thrifty worker`` may take after SIGTERM beyond a command's ``grace_s`` (a workload:
#: beyond :data:`~thrifty.runners.local.KILL_AFTER_S`): recording the handed-back trial, the
#: worker processes' exit, the connections' close.
WORKER_STOP_MARGIN_S = 10.0


def worker_stop_bound_s(runner: Mapping[str, Any]) -> float:
    """The seconds within which ``thrifty worker`` exits after SIGTERM (docs/workers.md): the
    script runner's ``grace_s`` (a command's program gets SIGTERM, SIGKILL that much later) or,
    for a Python workload, the worker processes' ``KILL_AFTER_S``, plus :data:`WORKER_STOP_MARGIN_S`."""
    from thrifty.runners.local import KILL_AFTER_S

    first = float(runner.get("grace_s", 10.0)) if "command" in runner else KILL_AFTER_S
    return first + WORKER_STOP_MARGIN_S


def runner_objective(runner: Mapping[str, Any], study: Any) -> tuple[Any, float | None]:
    """The objective a stored runner spec (:mod:`thrifty.runners.stored`) describes, built as
    ``thrifty run`` builds a config's, and the ``trial_timeout_s`` to run it under (``None`` for a
    command: its program's own timeout ends it). The config's folder is searched first (a
    workload) or run in (a command) when it exists on this machine, else the working folder."""
    config_dir = str(runner["config_dir"])
    here = config_dir if os.path.isdir(config_dir) else os.getcwd()
    if "workload" in runner:
        return import_workload(runner["workload"], [here]), runner.get("trial_timeout_s")
    cfg = {k: v for k, v in runner.items() if k not in ("version", "config_dir")}
    cfg["objective"] = dict(study.objectives)
    fn, _ = script_objective(cfg, here, study.space)
    return fn, None


def cmd_worker(args: argparse.Namespace) -> int:
    """A pull worker: run the stored study's trials (ask, run, tell) until it is done, its budget
    is spent, ``--max-trials`` have started or nothing was left to run for ``--idle-exit``
    seconds. The objective is the one the study stores (:mod:`thrifty.runners.stored`, written by
    ``thrifty run``). SIGTERM hands the running trial back for retry (re-enqueued while
    ``max_retries`` allows; the retry starts from its checkpoint) and exits 143 within
    :func:`worker_stop_bound_s`. Exit statuses as ``thrifty run``'s."""
    import thrifty as th
    from thrifty.errors import TooManyFailures
    from thrifty.runners.local import check_run_args
    from thrifty.runners.stored import describe, stored_runner

    for flag, kw in (("--max-trials", {"n_trials": args.max_trials}), ("--n-workers", {"n_workers": args.n_workers}),
                     ("--idle-exit", {"idle_exit_s": args.idle_exit})):
        try:
            check_run_args(**{"n_trials": None, "n_workers": 1, "timeout_s": None, "max_consecutive_failures": 20,
                              **kw})
        except ValidationError as exc:
            raise ValidationError(f"{exc} (from {flag})") from None
    url = storage_url(args)
    try:
        store = _read_storage(url)  # a typo in the URL or the name creates nothing
    except th.NoDatabase as exc:
        raise th.StudyNotFound(f"no study named {args.study!r} in {url}: {exc}") from exc
    try:
        record = store.load_study(args.study)
    finally:
        store.close()
    if record.settings.get("pipeline") is not None:
        raise ValidationError(f"study {args.study!r} runs a pipeline, whose stages' code is not stored: thrifty worker "
                              "cannot run it; run `thrifty run CONFIG` on each machine instead")
    runner = stored_runner(record.settings)
    if runner is None:
        raise ValidationError(f"study {args.study!r} stores no objective to run (it was not created or last run by "
                              f"`thrifty run CONFIG` of this thrifty): run `thrifty run CONFIG --n-trials 1 --storage "
                              f"{url}` once with its config, then start the workers")
    study = th.Study.load(args.study, storage=url)
    objective_fn, trial_timeout_s = runner_objective(runner, study)
    bound = worker_stop_bound_s(runner)
    n = args.n_workers
    extras = "".join([f", at most {args.max_trials} trials" if args.max_trials else "",
                      f", leaving after {args.idle_exit:g} s idle" if args.idle_exit is not None else ""])
    # Plain lines, never folded: a worker's output goes to logs (a pod's, a job's).
    _say(f"thrifty: worker for study {study.name} in {study.storage_url} ({describe(runner)}, {n} "
         f"process{'es' if n != 1 else ''}{extras}); SIGTERM hands its trial back for retry and exits within "
         f"{bound:g} s")
    if study.max_retries == 0:
        _say("thrifty: note: the study's max_retries is 0: a trial interrupted by SIGTERM (a preempted machine, an "
             "evicted pod) fails and is not retried; set max_retries in its config")
    began = time.time()
    progress: bool | str = False if args.no_progress else (True if sys.stdout.isatty() else "lines")
    try:
        result = study.optimize(objective_fn, n_trials=args.max_trials, n_workers=n, progress=progress,
                                trial_timeout_s=trial_timeout_s, idle_exit_s=args.idle_exit)
    except KeyboardInterrupt as exc:  # SIGTERM or Ctrl-C (thrifty.errors.StopSignal): a clean stop
        term = getattr(exc, "signum", None) == signal.SIGTERM
        _say(f"thrifty: worker stopped by {'SIGTERM' if term else 'SIGINT'}: {_handed_back(study, began)}")
        return exitcodes.TERMINATED if term else exitcodes.INTERRUPTED
    except TooManyFailures as exc:
        _print_failure(study, f"{exc}".split(";")[0], args.debug)
        return exitcodes.TRIALS_FAILED
    counts = ", ".join(f"{k} {s.value}" for s, k in sorted(result.counts.items(), key=lambda kv: kv[0].value))
    _say(f"thrifty: worker done: {result.message}; this worker's trials: {counts or 'none'}; "
         f"${result.spent_usd:,.4f} spent in the study")
    if result.all_failed:
        k = sum(result.counts.values())
        _print_failure(study, f"{'the' if k == 1 else f'all {k}'} trial{'s' if k != 1 else ''} of this worker failed",
                       args.debug)
        return exitcodes.TRIALS_FAILED
    return exitcodes.OK


def _say(line: str) -> None:
    print(line, flush=True)


def _handed_back(study: Any, since: float) -> str:
    """What became of the trials this worker was running when it was stopped, in words."""
    from thrifty.trial import TrialState

    ours = study.worker_id
    trials = study.get_trials(with_measurements=False)
    stopped = [t for t in trials if t.state is TrialState.FAILED and t.worker_id is not None
               and (t.worker_id == ours or t.worker_id.startswith(ours + "/")) and (t.finished_at or 0.0) >= since
               and "interrupted" in (t.error or "")]
    if not stopped:
        return "no trial was running; nothing to hand back"
    retries = {t.retry_of: t.number for t in trials if t.retry_of is not None}
    parts = []
    for t in stopped:
        if t.number in retries:
            parts.append(f"trial {t.number} handed back for retry as trial {retries[t.number]}, which starts from "
                         f"trial {t.number}'s checkpoint (if it saved one)")
        else:
            parts.append(f"trial {t.number} failed and is not retried (max_retries={study.max_retries} used up)")
    return "; ".join(parts)


def _print_failure(study: Any, message: str, debug: bool) -> None:
    """The one line of a run whose trials all failed: what, the last error's gist, where to look;
    with ``--debug`` the last error's whole text (a traceback for a Python workload) follows."""
    from thrifty.analysis.report import error_gist

    failed = study.get_trials(["failed"], with_measurements=False)
    last = failed[-1].error if failed else None
    if last:
        message += f"; the last error: {error_gist(last)}"
    print(f"thrifty: error: {message} (see `thrifty trials {study.name} --state failed "
          f"--storage {study.storage_url}`)", file=sys.stderr)
    if last and debug:
        print(f"the last failed trial's error:\n{last.rstrip()}", file=sys.stderr)


#: How many of ``auto``'s latest choices the run summary lists.
AUTO_CHANGES_SHOWN = 3


def _print_summary(study: Any, elapsed_s: float, new_trials: int, stopped: str | None = None) -> None:
    from rich.table import Table

    from thrifty.trial import TrialState

    out = _console()
    counts = study.counts()
    table = Table(title=f"study {study.name}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("trials", ", ".join(f"{n} {s.value}" for s, n in sorted(counts.items(), key=lambda kv: kv[0].value)))
    table.add_row("this run", f"{new_trials} trial{'s' if new_trials != 1 else ''} in {elapsed_s:.1f} s")
    if stopped:
        table.add_row("run ended", stopped)
    changes = getattr(study.strategy, "changes", None)  # auto: what it chose and why
    if changes:
        shown = changes[-AUTO_CHANGES_SHOWN:]
        table.add_row("search", "\n".join(f"auto chose {name} from trial {first}: {why}" for first, name, why in shown))
    usage = study.usage()
    budget = study.budget
    spent = f"${usage.usd:,.4f} in total"
    if budget.usd is not None:
        spent += f" of a ${budget.usd:,.2f} budget, ${max(budget.usd - usage.usd, 0.0):,.4f} left"
    table.add_row("spent", spent)
    n_stopped = counts.get(TrialState.STOPPED, 0)
    if n_stopped:
        from thrifty.analysis.report import cost_report

        saved = cost_report(study).saved_by_early_stopping
        if saved.usd > 0:
            table.add_row("early stopping", f"{n_stopped} trial{'s' if n_stopped != 1 else ''} stopped early saved about "
                          f"${saved.usd:,.4f} (estimate: ${saved.low_usd:,.4f} to ${saved.high_usd:,.4f})")
    if study.is_multi_objective:
        front = study.pareto_front()
        table.add_row("pareto front", f"{len(front)} trials (thrifty best {study.name} lists them)")
    elif counts.get(TrialState.COMPLETED):
        try:
            best = study.best
        except ThriftyError:
            table.add_row("best", "no completed trial with a finite value")
        else:
            metric = next(iter(study.objectives))
            table.add_row("best", f"{metric} = {_fmt(best.value)} ({study.objectives[metric]}imized), trial {best.number}")
            table.add_row("params", ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items()))
    where = "" if study.storage_url == DEFAULT_STORAGE else f" --storage {study.storage_url}"
    table.add_row("next", f"thrifty report {study.name}{where}\nthrifty report {study.name}{where} --html report.html"
                          f"\nthrifty dashboard{where}")
    out.print(table)


def _read_storage(url: str) -> Any:
    """Open a storage for a command that only reads: nothing is created, neither a database file
    nor tables (a missing file is "no database at PATH")."""
    from thrifty.storage import open_storage

    return open_storage(url, read_only=True)


def storage_url(args: argparse.Namespace, cfg: Mapping[str, Any] | None = None) -> str:
    """The storage a command uses: ``--storage``, else the config's ``storage:`` (``cfg``, or the
    file of ``-c CONFIG``), else ``$THRIFTY_STORAGE``, else the default."""
    if getattr(args, "storage", None):
        return str(args.storage)
    if cfg is None and getattr(args, "config_file", None):
        cfg = load_config(args.config_file, required=())
    if cfg and cfg.get("storage"):
        return str(cfg["storage"])
    return os.environ.get("THRIFTY_STORAGE") or DEFAULT_STORAGE


def _open(args: argparse.Namespace) -> Any:
    """The study a read command names, from a storage opened read-only."""
    import thrifty as th

    url = storage_url(args)
    try:
        store = _read_storage(url)
    except th.NoDatabase as exc:
        raise th.StudyNotFound(f"no study named {args.study!r} in {url}: {exc}") from exc
    return th.Study.load(args.study, storage=store)


def cmd_studies(args: argparse.Namespace) -> int:
    from rich.table import Table

    store = _read_storage(storage_url(args))
    summaries = store.list_studies()
    if args.json:
        print(json.dumps([
            {"name": s.name, "created_at": s.created_at, "objectives": dict(s.objectives),
             "counts": dict(s.counts), "spent_usd": s.spent_usd}
            for s in summaries
        ], indent=2))
        return 0
    if not summaries:
        _console().print(f"no studies in {store.url}")
        return 0
    from rich import box

    # Fits 80 columns: short headers, no vertical rules, minutes not seconds; a long name folds.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)
    table.add_column("name", overflow="fold", min_width=10)
    table.add_column("created", no_wrap=True)
    table.add_column("objective", overflow="fold", min_width=12)
    for col in ("trials", "done", "run", "failed", "spent $"):
        table.add_column(col, justify="right", no_wrap=True)
    for s in summaries:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created_at)) if s.created_at else "-"
        table.add_row(
            s.name, created, ", ".join(f"{v} {k}" for k, v in s.objectives.items()),
            str(sum(s.counts.values())), str(s.counts.get("completed", 0)), str(s.counts.get("running", 0)),
            str(s.counts.get("failed", 0)), f"{s.spent_usd:,.4f}",
        )
    _console().print(f"studies in {store.url}", soft_wrap=True)  # a long URL is not folded
    _console().print(table)
    return 0


def cmd_trials(args: argparse.Namespace) -> int:
    from rich.table import Table

    study = _open(args)
    if args.page < 1 or args.per_page < 1:
        raise ValidationError("--page and --per-page must be at least 1")
    states = [args.state] if args.state else None
    total = sum(n for s, n in study.counts().items() if states is None or s.value == args.state)
    pages = max(1, math.ceil(total / args.per_page))
    trials = study.get_trials(states, with_measurements=False, offset=(args.page - 1) * args.per_page, limit=args.per_page)
    metric_names: list[str] = list(study.objectives)
    table = Table(
        title=f"study {study.name}: trials (page {args.page} of {pages}, {total} trials)", title_justify="left"
    )
    for col in ("#", "state", *metric_names, "cost $", "seconds", "params", "reason / error"):
        table.add_column(col, overflow="fold")
    for t in trials:  # why an infeasible trial is infeasible (its error), why a stopped one stopped
        error = (t.error or t.reason or "").strip().splitlines()[-1:] or [""]
        table.add_row(
            str(t.number), t.state.value, *(_fmt(t.metrics.get(m, "")) for m in metric_names),
            f"{t.cost_usd:.4f}", f"{t.elapsed_s:.2f}", ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items()),
            error[0][:80],
        )
    _console().print(table)
    if args.page < pages:
        from rich.markup import escape

        # The hint must be runnable as shown: keep the page size and the storage the user gave.
        hint = f"thrifty trials {study.name} --page {args.page + 1}"
        if args.per_page != 50:
            hint += f" --per-page {args.per_page}"
        if args.storage:
            hint += f" --storage {args.storage}"
        _console().print(f"[dim]next page: {escape(hint)}[/]")
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    study = _open(args)
    trials = study.pareto_front() if study.is_multi_objective else [study.best]
    if args.json:
        print(json.dumps([_trial_dict(t) for t in trials], indent=2))
        return 0
    out = _console()
    for t in trials:
        metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in t.metrics.items())
        out.print(f"[bold]trial {t.number}[/]: {metrics}")
        for k, v in t.params.items():
            out.print(f"  {k} = {_fmt(v)}")
        if t.usage is not None:
            out.print(f"  [dim]used: {_usage_text(t.usage)}[/]")
    return 0


def _usage_text(u: Any) -> str:
    """A trial's resource use (:class:`thrifty.usage.ResourceUsage`) in one line."""
    text = (f"CPU {u.cpu_percent_mean:.0f}% of a core on average, {u.cpu_percent_max:.0f}% at most; "
            f"RSS {u.rss_mb_max:,.0f} MB at most")
    if u.gpus:
        text += (f"; {u.gpus} GPU{'s' if u.gpus != 1 else ''} {u.gpu_util_percent_mean:.0f}% busy on average, "
                 f"{u.gpu_memory_mb_max:,.0f} MB at most, idle {u.gpu_idle_share:.0%} of the time"
                 + (" (sat idle)" if u.gpu_idle else ""))
    return text


def cmd_importance(args: argparse.Namespace) -> int:
    from rich.table import Table

    from thrifty.analysis.importance import param_importances

    if args.trees < 1:
        raise ValidationError(f"--trees {args.trees}: expected at least 1 tree")
    study = _open(args)
    report = param_importances(study, objective=args.objective, n_trees=args.trees)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    table = Table(title=(f"parameter importance for {report.objective} (fANOVA on a random forest, "
                         f"{report.n_trials} completed trials)"), title_justify="left")
    table.add_column("parameter")
    table.add_column("share of variance", justify="right")
    table.add_column("+/- (sd over trees)", justify="right")
    for i in report.importances:
        table.add_row(i.param, f"{i.fraction:.1%}", f"{i.fraction_sd:.1%}")
    table.add_row("[dim]interactions[/]", f"[dim]{report.interactions:.1%}[/]", "")
    out = _console()
    out.print(table)
    for note in report.notes:
        out.print(f"note: {note}")
    return 0


def cmd_suggest_space(args: argparse.Namespace) -> int:
    import yaml
    from rich.markup import escape
    from rich.table import Table

    from thrifty.analysis.space_reduction import suggest_space

    target = Path(args.output)
    if target.exists() and not args.force:
        raise ValidationError(f"-o {args.output}: the file exists; choose another path or add --force")
    if not target.parent.is_dir():
        raise ValidationError(f"-o {args.output}: the folder {str(target.parent)!r} does not exist")
    base = load_config(args.config_file, required=()) if args.config_file else {}
    study = _open(args)
    suggestion = suggest_space(study, objective=args.objective, min_importance=args.min_importance)
    config = {**base, "name": f"{study.name}-smaller", "space": suggestion.space.to_dict()}
    if "objective" not in config:
        config["objective"] = dict(study.objectives)
    header = [f"Suggested by `thrifty suggest-space {study.name}` from {suggestion.importance.n_trials} completed "
              f"trials of {suggestion.importance.objective} (the {suggestion.n_good} best set the ranges).",
              "Changes:"]
    header += [f"  {c.param}: {c.action}" + (f" {c.before} -> {c.after}" if c.action != "kept" else "") + f" ({c.why})"
               for c in suggestion.changes]
    if not args.config_file:
        header.append("Add `workload:` or `command:` (and a budget) before running it, or pass --config ORIGINAL.yaml.")
    text = "".join(f"# {line}\n" for line in header) + yaml.safe_dump(config, sort_keys=False)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    table = Table(title=f"suggested space for {escape(study.name)}: written to {escape(str(target))}",
                  title_justify="left")
    for col in ("parameter", "change", "before", "after", "why"):
        table.add_column(col)
    for c in suggestion.changes:
        table.add_row(escape(c.param), c.action, escape(c.before), escape(c.after), escape(c.why))
    _console().print(table)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise ValidationError(f"--port {args.port}: expected a port from 1 to 65535")
    try:
        import uvicorn

        from thrifty.server import create_app
    except ImportError as exc:
        raise ValidationError(f"thrifty dashboard needs its server packages ({exc.name} is missing): "
                              "pip install 'thrifty[dashboard]'") from None
    url = storage_url(args)
    store = _read_storage(url)
    app = create_app(store)
    print(f"thrifty dashboard: http://{args.host}:{args.port}/ (storage {url}, read-only); Ctrl-C to stop", flush=True)
    # Ctrl-C stops within seconds even while a picture of a large study is being computed.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3)
    return 0


def _trial_dict(t: Any) -> dict[str, Any]:
    return {
        "number": t.number,
        "state": t.state.value,
        "params": dict(t.params),
        "metrics": {k: (v if math.isfinite(v) else str(v)) for k, v in t.metrics.items()},
        "cost_usd": t.cost_usd,
        "elapsed_s": t.elapsed_s,
        "error": t.error,
        "reason": t.reason,
        "stop_kind": t.stop_kind.value if t.stop_kind is not None else None,
        "stop_limit": t.stop_limit,
        "created_at": t.created_at,
        "started_at": t.started_at,
        "finished_at": t.finished_at,
        "worker_id": t.worker_id,
        "retry_of": t.retry_of,
        "usage": t.usage.to_dict() if t.usage is not None else None,
        "measurements": [
            {"step": m.step, "metrics": {k: (v if math.isfinite(v) else str(v)) for k, v in m.metrics.items()},
             "cost_usd": m.cost_usd, "elapsed_s": m.elapsed_s, "timestamp": m.timestamp}
            for m in t.measurements
        ],
    }


def cmd_export(args: argparse.Namespace) -> int:
    study = _open(args)
    trials = study.trials
    if args.format == "json":
        text = json.dumps(
            {"study": study.name, "objectives": study.objectives, "space": study.space.to_dict(),
             "trials": [_trial_dict(t) for t in trials]},
            indent=2,
        )
    else:
        param_names = list(study.space)
        metric_names = sorted({k for t in trials for k in t.metrics})
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["number", "state", *[f"param_{p}" for p in param_names], *[f"metric_{m}" for m in metric_names],
                    "cost_usd", "elapsed_s", "started_at", "finished_at", "error", "reason"])
        for t in trials:
            w.writerow([t.number, t.state.value, *[t.params.get(p, "") for p in param_names],
                        *[t.metrics.get(m, "") for m in metric_names], t.cost_usd, t.elapsed_s,
                        t.started_at or "", t.finished_at or "", (t.error or "").strip(), t.reason or ""])
        text = buf.getvalue()
    if args.output and args.output != "-":
        with open(args.output, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        _console(stderr=True).print(f"wrote {len(trials)} trials to {args.output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from thrifty.storage import open_storage

    study = _open(args)  # read-only first: a mistyped path is "no database at PATH", nothing created
    from thrifty.checkpoints import study_dir

    folder = study_dir(study)
    study.close()
    store = open_storage(storage_url(args))
    if not args.yes:
        if not sys.stdin.isatty():
            raise ValidationError(f"refusing to delete study {args.study!r} without confirmation; pass --yes")
        answer = input(f"delete study {args.study!r} and all its trials from {store.url}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 1
    store.delete_study(args.study)
    _console().print(f"deleted study {args.study!r} from {store.url}")
    if folder.is_dir():
        import shutil

        shutil.rmtree(folder)
        _console().print(f"deleted its artifacts folder {folder}")
    return 0


# -- cost: report and estimate ----------------------------------------------------------------
def _usd(v: float | None) -> str:
    """Dollars for people: 4 decimals below $100, cents above."""
    if v is None:
        return "-"
    return f"${v:,.4f}" if abs(v) < 100 else f"${v:,.2f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min ({seconds:,.0f} s)"
    return f"{seconds / 3600:.2f} h ({seconds:,.0f} s)"


_LIMIT_LABELS = {"trials": "trials", "usd": "dollars", "gpu_hours": "GPU-hours", "wall_s": "active wall time"}


def _limit_text(lim: Any) -> str:
    if lim.limit == "trials":
        return f"{lim.used} of {lim.value} started, {lim.left} left"
    if lim.limit == "usd":
        return f"{_usd(lim.used)} of {_usd(lim.value)} spent, {_usd(lim.left)} left"
    if lim.limit == "gpu_hours":
        return f"{lim.used:.3f} of {lim.value:g} GPU-hours used, {lim.left:.3f} left"
    return f"{lim.used:,.1f} of {lim.value:g} s used, {lim.left:,.1f} s left"


def cmd_report(args: argparse.Namespace) -> int:
    from thrifty.analysis.report import cost_report

    if args.top < 1:
        raise ValidationError(f"--top {args.top}: expected at least 1 trial")
    if args.html is not None:
        if args.json:
            raise ValidationError("--html and --json: choose one (the HTML file holds the same report)")
        target = Path(args.html)
        if not target.parent.is_dir():
            raise ValidationError(f"--html {args.html}: the folder {str(target.parent)!r} does not exist")
        from thrifty.plot import write_html_report

        study = _open(args)
        written = write_html_report(study, target, top=args.top)
        print(f"wrote {written} ({written.stat().st_size / 1e6:,.1f} MB, self-contained): open it in a browser")
        return 0
    study = _open(args)
    report = cost_report(study)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    _print_report(report, args.top)
    return 0


#: How many trial numbers the report's idle-GPU line names.
IDLE_TRIALS_NAMED = 10


def _idle_gpu_text(numbers: Sequence[int], usd: float) -> str:
    """The report's line on trials whose GPU sat idle (:attr:`thrifty.usage.ResourceUsage.gpu_idle`),
    with what they cost and the first trial numbers."""
    from thrifty.usage import GPU_IDLE_FLAG_SHARE, GPU_IDLE_UTIL_PERCENT

    n = len(numbers)
    named = ", ".join(map(str, numbers[:IDLE_TRIALS_NAMED])) + (", ..." if n > IDLE_TRIALS_NAMED else "")
    return (f"{n} trial{'s' if n != 1 else ''} held a GPU that sat idle most of the time: {_usd(usd)} "
            f"(trial{'s' if n != 1 else ''} {named}; idle: below {GPU_IDLE_UTIL_PERCENT:g}% use in "
            f"{GPU_IDLE_FLAG_SHARE:.0%} of the readings or more)")


def _memo_cache_text(mc: Any) -> str:
    """The report's memo cache line: hits, misses, dollars saved, then each cached stage's."""
    text = (f"{mc.hits} hit{'s' if mc.hits != 1 else ''}, {mc.misses} miss{'es' if mc.misses != 1 else ''}, "
            f"{_usd(mc.saved_usd)} saved ({_duration(mc.saved_s)})")
    per = [f"{s.name}: {s.hits} hits, {s.misses} misses, {_usd(s.saved_usd)} saved" for s in mc.stages
           if s.hits or s.misses]
    return text + ("; " + "; ".join(per) if per else "")


def _print_report(report: Any, top: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = _console()
    # The study summary.
    table = Table(title=f"cost report: study {escape(report.study)}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("storage", escape(report.storage))
    table.add_row("spent", f"{_usd(report.spent_usd)} in total (every trial, failed ones included)")
    table.add_row("trials", f"{report.trials_started} started, {report.trials_total} in the study")
    table.add_row("GPU-hours", f"{report.gpu_hours:,.3f}")
    table.add_row("active wall time", _duration(report.wall_s))
    budget = report.budget
    if not budget.limits:
        table.add_row("budget", "none")
    for lim in budget.limits:
        table.add_row(f"budget: {_LIMIT_LABELS[lim.limit]}", _limit_text(lim))
    if budget.limits:
        table.add_row("budget kind", "hard (running trials are stopped at a limit)" if budget.hard
                      else "soft (a limit only keeps new trials from starting)")
    if budget.exhausted:
        table.add_row("budget used up", escape(budget.exhausted))
    if budget.breaker_tripped:
        which = _LIMIT_LABELS.get(budget.breaker_limit or "", "an unknown limit")
        table.add_row("circuit breaker", f"[red]tripped[/] on {which} at {_ts(budget.breaker_at)}: "
                                         f"{escape(budget.breaker_message or '')}")
    elif budget.hard and any(lim.limit != "trials" for lim in budget.limits):
        table.add_row("circuit breaker", "not tripped")
    saved = report.saved_by_early_stopping
    if saved.usd > 0:
        table.add_row("saved by early stopping",
                      f"~{_usd(saved.usd)} (range {_usd(saved.low_usd)} to {_usd(saved.high_usd)}) over "
                      f"{saved.stopped_trials} stopped trial{'s' if saved.stopped_trials != 1 else ''}; "
                      f"{escape(saved.note)}")
    else:
        table.add_row("saved by early stopping", f"$0 ({escape(saved.note)})")
    if report.near_duplicate_full_trainings:
        table.add_row("paid twice", f"{report.near_duplicate_full_trainings} completed trial"
                      f"{'s' if report.near_duplicate_full_trainings != 1 else ''} within 1% of an earlier one's "
                      f"configuration ({_usd(report.near_duplicate_usd)})")
    if report.idle_gpu_trials:
        table.add_row("idle GPUs", _idle_gpu_text(report.idle_gpu_trials, report.idle_gpu_usd))
    if report.memo_cache is not None:
        table.add_row("memo cache", escape(_memo_cache_text(report.memo_cache)))
    fc = report.forecast_to_finish
    if fc.usd is not None:
        text = f"~{_usd(fc.usd)} for {fc.remaining_trials} more trial{'s' if fc.remaining_trials != 1 else ''}"
        if fc.capped:
            text += f" (capped by the dollars left; {_usd(fc.uncapped_usd)} uncapped)"
        if fc.per_trial_usd is not None:
            text += f"; {_usd(fc.per_trial_usd)} per trial from the {escape(fc.basis or '')}"
        table.add_row("forecast to finish", text + " (estimate)")
    else:
        table.add_row("forecast to finish", f"- ({escape(fc.note)})")
    if report.best is not None:
        b = report.best
        table.add_row("best", f"{escape(b.metric)} = {_fmt(b.value)} ({b.direction}imized), trial {b.number}, "
                              f"cost {_usd(b.cost_usd)}")
    for note in report.notes:
        table.add_row("note", escape(note))
    out.print(table)

    # Spend by state.
    states = Table(title="spend by trial state", title_justify="left")
    for col in ("state", "trials", "cost $", "share", "seconds", "GPU-hours"):
        states.add_column(col, justify="left" if col == "state" else "right")
    total = sum(s.cost_usd for s in report.by_state)
    for s in report.by_state:
        label = "stopped early" if s.state == "stopped" else s.state
        share = f"{100 * s.cost_usd / total:.1f}%" if total > 0 else "-"
        states.add_row(label, str(s.trials), f"{s.cost_usd:,.4f}", share, f"{s.elapsed_s:,.1f}", f"{s.gpu_hours:,.3f}")
    states.add_row("[bold]total[/]", str(sum(s.trials for s in report.by_state)), f"{total:,.4f}",
                   "100.0%" if total > 0 else "-", f"{sum(s.elapsed_s for s in report.by_state):,.1f}",
                   f"{sum(s.gpu_hours for s in report.by_state):,.3f}")
    out.print(states)

    # The ledger, most expensive first.
    shown = report.most_expensive(top)
    ledger = Table(title=f"trials by cost (top {len(shown)} of {len(report.trials)})", title_justify="left")
    for col in ("#", "state", "cost $", "seconds", "GPU-hours", "last step", "resources", "reason / error"):
        numeric = col in ("#", "cost $", "seconds", "GPU-hours", "last step")
        ledger.add_column(col, justify="right" if numeric else "left", overflow="fold",
                          no_wrap=col not in ("resources", "reason / error"))
    for t in shown:
        ledger.add_row(
            str(t.number), t.state, f"{t.cost_usd:,.4f}", f"{t.elapsed_s:,.1f}", f"{t.gpu_hours:,.3f}",
            "-" if t.last_step is None else _fmt(float(t.last_step)),
            escape(", ".join(f"{k}={_fmt(v)}" for k, v in t.resources.items()) or "-"),
            escape((t.note or "")[:100]),
        )
    out.print(ledger)

    # Infeasible trials and why (they cost money and are never the best).
    infeasible = [t for t in report.trials if t.state == "infeasible"]
    if infeasible:
        why = Table(title=f"infeasible trials, never the best ({min(len(infeasible), top)} of {len(infeasible)})",
                    title_justify="left")
        why.add_column("#", justify="right")
        why.add_column("cost $", justify="right")
        why.add_column("reason", overflow="fold")
        for t in infeasible[:top]:
            why.add_row(str(t.number), f"{t.cost_usd:,.4f}", escape(t.note or ""))
        out.print(why)


_FINISHED = ("completed", "stopped", "failed", "infeasible")


def _basis_study(name: str, storage: str, space: Any, explicit: bool, notes: list[str]) -> Any:
    """The stored study to estimate from, or None (then a dry run). With ``--from-study``
    (``explicit``) a study that cannot be used is an error, not a reason to dry-run."""
    import thrifty as th
    from thrifty.cost.forecast import CostModel

    try:
        study = th.Study.load(name, storage=_read_storage(storage))
    except th.NoDatabase as exc:
        if explicit:
            raise th.StudyNotFound(f"no study named {name!r} in {storage}: {exc}") from exc
        notes.append(f"no study named {name!r} in {storage} ({exc})")
        return None
    except th.StudyNotFound:
        if explicit:
            raise
        notes.append(f"no study named {name!r} in {storage}")
        return None
    if study.space != space:
        if explicit:
            raise ValidationError(f"study {name!r} in {storage} has a different space than the config; "
                                  "its costs do not apply")
        notes.append(f"study {name!r} in {storage} has a different space than the config; not used")
        return None
    if not any(CostModel.observations(t) for t in study.get_trials(_FINISHED)):
        if explicit:
            raise ValidationError(f"study {name!r} in {storage} has no finished trial with a cost to estimate from; "
                                  "leave out --from-study to estimate by a dry run")
        notes.append(f"study {name!r} in {storage} has no finished trial with a cost yet; not used")
        return None
    return study


def _dry_run(cfg: dict[str, Any], config_path: str, name: str, k: int) -> tuple[Any, dict[str, Any]]:
    """Run ``k`` trials of the config's workload in a throwaway in-memory study (the config's
    space, objective, pricing and resources; random search, no scheduler, no budget)."""
    import contextlib

    import thrifty as th

    config_dir = os.path.dirname(os.path.abspath(config_path))
    if "command" in cfg:
        objective_fn, objective = script_objective(cfg, config_dir)
        what = cfg["command"]
    elif "workload" in cfg:
        objective_fn, objective = import_workload(cfg["workload"], [config_dir]), cfg.get("objective", "max")
        what = cfg["workload"]
    else:
        raise ValidationError(
            f"config file {config_path!r}: no study to estimate from and no 'workload' or 'command' to dry-run "
            f"({CONFIG_KEYS['workload']})"
        )
    study = th.Study.create(
        th.Space(cfg["space"]), objective, name=f"{name}-dry-run", storage="memory",
        strategy="random", seed=cfg.get("seed", 0), pricing=cfg.get("pricing"), resources=cfg.get("resources"),
    )
    print(f"thrifty: dry run: running {k} trial{'s' if k != 1 else ''} of {what} in a throwaway "
          "in-memory study to measure their cost", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the workload's prints must not mix with the output
            study.optimize(objective_fn, n_trials=k, progress=False, max_consecutive_failures=None)
    except BaseException:
        study.close()
        raise
    trials = study.trials
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.value] = counts.get(t.state.value, 0) + 1
    failed = [t for t in trials if t.state.value in ("failed", "infeasible")]
    info = {
        "trials": len(trials),
        "cost_usd": study.cost_usd,
        "elapsed_s": time.monotonic() - started,
        "states": counts,
        "storage": "memory (throwaway)",
    }
    if failed and len(failed) == len(trials):
        from thrifty.analysis.report import error_gist

        study.close()
        raise ValidationError(
            f"all {len(trials)} dry-run trials of {cfg['workload']} failed (the last: "
            f"{error_gist(failed[-1].error)}); fix the workload before estimating"
        )
    return study, info


def cmd_estimate(args: argparse.Namespace) -> int:
    import thrifty as th

    if args.trials < 1:
        raise ValidationError(f"--trials {args.trials}: expected at least 1 trial to estimate")
    if args.dry_run_trials < 1:
        raise ValidationError(f"--dry-run-trials {args.dry_run_trials}: expected at least 1 trial")
    cfg = load_config(args.config, required=("space",))
    storage = storage_url(args, cfg)
    name = cfg.get("name") or os.path.splitext(os.path.basename(args.config))[0]
    basis_name = args.from_study or name
    space = th.Space(cfg["space"])
    # Check the config's cost settings before anything runs (a dry run needs them).
    pricing = th.Pricing.parse(cfg.get("pricing"))
    from thrifty.cost.pricing import check_resources

    resources = check_resources(cfg.get("resources"))
    pricing.usd_per_hour_for(resources)
    notes: list[str] = []
    study = _basis_study(basis_name, storage, space, bool(args.from_study), notes)
    dry: dict[str, Any] | None = None
    if study is not None:
        as_is = f"study {basis_name!r}'s; its recorded costs are used as they are"
        if cfg.get("pricing") is not None and pricing.to_dict() != study.pricing.to_dict():
            notes.append(f"the config's pricing differs from {as_is}")
        if cfg.get("resources") is not None and dict(resources) != dict(study.resources):
            notes.append(f"the config's resources differ from {as_is}")
    else:
        study, dry = _dry_run(cfg, args.config, name, args.dry_run_trials)
    try:
        return _estimate(args, cfg, study, basis_name, name, storage, space, dry, notes)
    finally:
        if dry is not None:
            study.close()  # the throwaway in-memory study is gone with it


def _estimate(args: argparse.Namespace, cfg: dict[str, Any], study: Any, basis_name: str, name: str, storage: str,
              space: Any, dry: dict[str, Any] | None, notes: list[str]) -> int:
    import thrifty as th
    from thrifty.analysis.report import error_gist, forecast_trials
    from thrifty.cost.forecast import CostModel
    from thrifty.ranking import full_resource, measured  # measured: a trial that broke a constraint ran

    finished = study.get_trials(_FINISHED)
    with_cost = [t for t in finished if CostModel.observations(t)]
    if not with_cost:
        raise ValidationError(
            f"the {len(finished)} dry-run trials recorded no cost: give the config a 'pricing' "
            "(e.g. {local: USD_PER_HOUR}) or report cost_usd from the workload"
        )
    failed = [t for t in finished if t.state.value in ("failed", "infeasible") and not measured(t)]
    if failed:
        notes.append(f"{len(failed)} of the {len(finished)} trials failed (their cost is counted); "
                     f"the last: {error_gist(failed[-1].error)}")
    model = study.cost_model()
    resource = full_resource(finished)
    if resource is None:
        notes.append("no completed trial reported a step: trials are taken to cost what the finished ones did")
        resource = 1.0
    if not model.is_fitted:
        notes.append(f"only {len(with_cost)} trial{'s' if len(with_cost) != 1 else ''} with costs: too few to fit "
                     "the cost model, so the forecast is rough (more --dry-run-trials give a better one)")
    try:
        seed = cfg["seed"] if isinstance(cfg.get("seed"), int) else 0
        fc = forecast_trials(model, space, args.trials, resource, seed=seed)
    except ThriftyError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line
        raise ValidationError(f"cannot forecast from {len(with_cost)} trials with costs: {exc}") from None
    budget = th.Budget.from_dict(cfg.get("budget"))
    if budget.usd is not None and fc.mean_usd > budget.usd:
        notes.append(f"the expected cost exceeds the config's ${budget.usd:,.2f} budget, which pays for about "
                     f"{int(budget.usd // max(fc.per_trial_usd, 1e-12))} such trials")
    if cfg.get("scheduler", "auto") not in (None, "none"):
        notes.append("the forecast is for trials run to the full resource; the config's scheduler stops some "
                     "early, so the study will likely cost less")
    basis = {
        "kind": "study" if dry is None else "dry_run",
        "study": basis_name if dry is None else None,
        "storage": storage if dry is None else "memory",
        "trials": len(finished),
        "trials_with_cost": len(with_cost),
        "model_fitted": model.is_fitted,
    }
    result = {
        "config": args.config,
        "study": name,
        "n_trials": args.trials,
        "expected_usd": fc.mean_usd,
        "low_usd": fc.low_usd,
        "high_usd": fc.high_usd,
        "per_trial_usd": fc.per_trial_usd,
        "resource": fc.resource,
        "method": fc.method,
        "basis": basis,
        "dry_run": dry,
        "notes": notes,
        "estimate": True,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from rich.markup import escape
    from rich.table import Table

    out = _console()
    table = Table(title=f"estimate: {args.trials} trial{'s' if args.trials != 1 else ''} of {escape(name)}",
                  show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("expected cost", f"{_usd(fc.mean_usd)} (90% interval {_usd(fc.low_usd)} to {_usd(fc.high_usd)})")
    table.add_row("per trial", f"{_usd(fc.per_trial_usd)} (mean forecast over {fc.n_configs} random configurations "
                               f"at step {fc.resource:g})")
    if dry is None:
        table.add_row("basis", escape(f"study {basis_name!r} in {storage}: {len(with_cost)} trials with costs "
                                      f"({len(finished)} finished)"))
    else:
        states = ", ".join(f"{n} {s}" for s, n in sorted(dry["states"].items()))
        plural = "s" if dry["trials"] != 1 else ""
        table.add_row("basis", f"a DRY RUN of {dry['trials']} trial{plural} ({states}) in a throwaway in-memory study, "
                               f"because no stored study could be used")
        table.add_row("dry run cost", f"{_usd(dry['cost_usd'])} ({dry['elapsed_s']:.1f} s), already spent")
    table.add_row("method", escape(fc.method))
    for note in notes:
        table.add_row("note", escape(note))
    out.print(table)
    return 0


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    def common_options(top: bool) -> argparse.ArgumentParser:
        # argparse copies a subcommand's defaults over the main namespace, which would silently drop
        # `thrifty --storage X studies`; so only the top level has defaults, subcommands SUPPRESS.
        p = argparse.ArgumentParser(add_help=False)
        p.add_argument("--storage", default=None if top else argparse.SUPPRESS,
                       help=f"storage URL (default: -c CONFIG's storage, $THRIFTY_STORAGE or {DEFAULT_STORAGE})")
        p.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                       help="show tracebacks")
        return p

    common = common_options(top=False)
    # The read commands also find the storage in a config file's `storage:` (and $THRIFTY_STORAGE).
    reads = argparse.ArgumentParser(add_help=False)
    reads.add_argument("-c", "--config", dest="config_file", default=None, metavar="CONFIG",
                       help="read the storage URL from this config file's `storage:`")
    parser = argparse.ArgumentParser(
        prog="thrifty", description="Hyperparameter tuning for the least money.", parents=[common_options(top=True)]
    )
    from thrifty import __version__

    parser.add_argument("--version", action="version", version=f"thrifty {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from thrifty.exitcodes import TABLE

    p = sub.add_parser("run", parents=[common], help="run (or resume) a study from a config file",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=RESUME_RULE + "\n\n" + TABLE)
    p.add_argument("config", help="YAML/JSON file with space, objective, workload, strategy, budget, ...")
    p.add_argument("--name", help="study name (overrides the config)")
    p.add_argument("--n-trials", type=int, help="trials to start in this run")
    p.add_argument("--workers", type=int, help="worker processes")
    p.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    p.add_argument("--backend", choices=["local", "ray"], default=None,
                   help="where trials run: local (default) or ray (Ray tasks; docs/ray.md)")
    p.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                   help="with --backend ray: the Ray cluster to join (default: a private one on this machine)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress output (a live view in a terminal, a line per finished trial otherwise)")
    p.add_argument("--update", action="store_true",
                   help="resuming: apply the config's changed pricing, resources, strategy, scheduler, stop_when, "
                        "max_retries, heartbeat_grace_s, keep_checkpoints from now on (see below)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("worker", parents=[common],
                       help="a pull worker: run a stored study's trials until it is done (any machine, one storage)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="The study must have been created (or last run) by `thrifty run CONFIG`, which stores\n"
                              "its workload or command. SIGTERM hands the running trial back for retry (from its\n"
                              "checkpoint; max_retries must allow it) and exits 143 within grace_s + 10 s for a\n"
                              "command, 15 s for a workload. See docs/workers.md.\n\n" + TABLE)
    p.add_argument("--study", required=True, help="the study's name")
    p.add_argument("--max-trials", type=int, default=None, metavar="N", help="start at most N trials, then exit")
    p.add_argument("--idle-exit", type=float, default=None, metavar="S",
                   help="exit after S seconds with nothing to run (default: wait while trials running elsewhere "
                        "may come back as retries)")
    p.add_argument("--n-workers", type=int, default=1, metavar="K", help="worker processes on this machine (default 1)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress output (a live view in a terminal, a line per finished trial otherwise)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("studies", parents=[common, reads], help="list the studies in a storage")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_studies)

    p = sub.add_parser("trials", parents=[common, reads], help="list a study's trials, a page at a time")
    p.add_argument("study")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--per-page", type=int, default=50)
    p.add_argument("--state", choices=[s for s in ("pending", "running", "completed", "stopped", "failed", "infeasible")])
    p.set_defaults(func=cmd_trials)

    p = sub.add_parser("best", parents=[common, reads], help="the best trial (or the Pareto front)")
    p.add_argument("study")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_best)

    p = sub.add_parser("importance", parents=[common, reads],
                       help="which parameters matter: each one's share of the objective's variance (fANOVA)")
    p.add_argument("study")
    p.add_argument("--objective", default=None, help="the objective (needed with several)")
    p.add_argument("--trees", type=int, default=64, metavar="N", help="trees in the random forest (default 64)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_importance)

    p = sub.add_parser("suggest-space", parents=[common],
                       help="write a config with a smaller space: unimportant parameters fixed, ranges narrowed")
    p.add_argument("study")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the config file to write (YAML)")
    p.add_argument("--config", "-c", dest="config_file", default=None, metavar="CONFIG",
                   help="the study's original config: its other keys (workload, budget, ...) are kept, its storage used")
    p.add_argument("--objective", default=None, help="the objective (needed with several)")
    p.add_argument("--min-importance", type=float, default=0.02, metavar="SHARE",
                   help="fix parameters explaining less than this share of the variance (default 0.02)")
    p.add_argument("--force", action="store_true", help="overwrite FILE")
    p.set_defaults(func=cmd_suggest_space)

    p = sub.add_parser("dashboard", parents=[common, reads],
                       help="a live, read-only dashboard of the storage's studies in the browser (and /metrics)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8788, help="port (default 8788)")
    p.set_defaults(func=cmd_dashboard)

    from thrifty.server.commands import add_parsers as add_service_parsers

    add_service_parsers(sub, common, storage_url)  # serve, token (docs/service.md)

    p = sub.add_parser("export", parents=[common, reads], help="export a study's trials as CSV or JSON")
    p.add_argument("study")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", parents=[common, reads], help="where a study's money went: spend, budget, savings, forecast")
    p.add_argument("study")
    p.add_argument("--json", action="store_true", help="the full report as JSON")
    p.add_argument("--html", metavar="FILE", default=None,
                   help="write the report with its pictures to one self-contained HTML file, to share")
    p.add_argument("--top", type=int, default=20, metavar="N",
                   help="trials in the ledger, most expensive first (default 20)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("estimate", parents=[common],
                       help="what N trials of a config's study would cost, before running it")
    p.add_argument("config", help="the YAML/JSON config file of `thrifty run`")
    p.add_argument("--trials", type=int, required=True, metavar="N", help="trials to estimate")
    p.add_argument("--dry-run-trials", type=int, default=3, metavar="K",
                   help="trials to dry-run when no stored study has cost data (default 3)")
    p.add_argument("--from-study", metavar="NAME", help="estimate from this stored study (default: the config's name)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("delete", parents=[common, reads], help="delete a study and its trials")
    p.add_argument("study")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_delete)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("thrifty: interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED
    except (ThriftyError, OSError) as exc:
        if args.debug:
            raise
        print(f"thrifty: error: {exc}", file=sys.stderr)
        return exitcodes.ERROR
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        print(f"thrifty: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return exitcodes.ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
