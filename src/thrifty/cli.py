"""The ``thrifty`` command line.

Every subcommand takes ``--storage URL`` (default ``sqlite:///thrifty.db``). Errors are one line on
stderr and exit status 1 (2 for bad usage), never a traceback, unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from thrifty.errors import ThriftyError, ValidationError
from thrifty.storage import DEFAULT_STORAGE

#: Keys a ``thrifty run`` config file may hold.
CONFIG_KEYS = {
    "name": "study name (default: the config file's stem)",
    "storage": "storage URL (default sqlite:///thrifty.db)",
    "space": "the search space (required)",
    "objective": "'min', 'max' or {metric: min|max} (default max)",
    "workload": "module:function to call with each trial (required)",
    "strategy": "strategy name or {name: ..., ...} (default random)",
    "scheduler": "scheduler name or {name: ..., ...} (default none)",
    "seed": "integer seed (default 0)",
    "budget": "{trials: N, usd: X}",
    "max_retries": "re-runs of a trial whose worker died (default 0)",
    "heartbeat_grace_s": "seconds without heartbeat before a worker is presumed dead (default 60)",
    "n_trials": "trials to start in this run (default: until the budget is used up)",
    "n_workers": "worker processes (default 1)",
    "timeout_s": "start no trial after this many seconds",
    "max_consecutive_failures": "give up after this many failures in a row (default 20)",
}


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
def load_config(path: str) -> dict[str, Any]:
    """Read and check a ``thrifty run`` config file (YAML or JSON)."""
    import yaml

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
    for key in ("space", "workload"):
        if key not in data:
            raise ValidationError(f"config file {path!r}: missing {key!r} ({CONFIG_KEYS[key]})")
    return dict(data)


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


# -- commands ---------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    import thrifty as th

    cfg = load_config(args.config)
    config_dir = os.path.dirname(os.path.abspath(args.config))
    storage = args.storage or cfg.get("storage", DEFAULT_STORAGE)
    name = args.name or cfg.get("name") or os.path.splitext(os.path.basename(args.config))[0]
    objective_fn = import_workload(cfg["workload"], [config_dir])
    space = th.Space(cfg["space"])
    create_kwargs = dict(
        space=space,
        objective=cfg.get("objective", "max"),
        name=name,
        storage=storage,
        strategy=cfg.get("strategy", "random"),
        scheduler=cfg.get("scheduler"),
        seed=cfg.get("seed", 0),
        budget=cfg.get("budget"),
        max_retries=cfg.get("max_retries", 0),
        heartbeat_grace_s=cfg.get("heartbeat_grace_s", 60.0),
    )
    try:
        study = th.Study.load(name, storage=storage)
    except th.StudyNotFound:
        study = th.Study.create(**create_kwargs)  # type: ignore[arg-type]
        resumed = False
    else:
        resumed = True
        if study.space != space:
            raise ValidationError(
                f"study {name!r} already exists in {storage} with a different space; "
                f"choose another name (--name) or delete it (thrifty delete {name})"
            )
        if cfg.get("budget") is not None:
            study.set_budget(cfg["budget"])
    n_trials = args.n_trials if args.n_trials is not None else cfg.get("n_trials")
    n_workers = args.workers if args.workers is not None else cfg.get("n_workers", 1)
    timeout_s = args.timeout if args.timeout is not None else cfg.get("timeout_s")
    out = _console()
    before = sum(study.counts().values())
    verb = "resuming" if resumed else "created"
    out.print(
        f"[bold]thrifty[/]: {verb} study [cyan]{study.name}[/] in {study.storage_url} "
        f"({study.strategy.name} search, {n_workers} worker{'s' if n_workers != 1 else ''}"
        f"{f', {n_trials} trials' if n_trials else ''})"
    )
    started = time.monotonic()
    interrupted = False
    result = None
    try:
        result = study.optimize(
            objective_fn,
            n_trials=n_trials,
            n_workers=n_workers,
            timeout_s=timeout_s,
            max_consecutive_failures=cfg.get("max_consecutive_failures", 20),
            progress=False if args.no_progress else None,
        )
    except KeyboardInterrupt:
        interrupted = True
    _print_summary(study, time.monotonic() - started, sum(study.counts().values()) - before,
                   result.message if result is not None else None)
    if interrupted:
        out.print(f"[yellow]interrupted[/]: run the same command again to resume study {study.name!r}")
        return 130
    return 0


def _print_summary(study: Any, elapsed_s: float, new_trials: int, stopped: str | None = None) -> None:
    from rich.table import Table

    from thrifty.trial import TrialState

    out = _console()
    counts = study.counts()
    table = Table(title=f"study {study.name}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("trials", ", ".join(f"{n} {s.value}" for s, n in sorted(counts.items(), key=lambda kv: kv[0].value)))
    table.add_row("this run", f"{new_trials} trials in {elapsed_s:.1f} s")
    if stopped:
        table.add_row("stopped", stopped)
    usage = study.usage()
    budget = study.budget
    spent = f"${usage.usd:,.4f} in total"
    if budget.usd is not None:
        spent += f" of a ${budget.usd:,.2f} budget"
    table.add_row("spent", spent)
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
    out.print(table)


def _open(args: argparse.Namespace) -> Any:
    import thrifty as th

    return th.Study.load(args.study, storage=args.storage or DEFAULT_STORAGE)


def cmd_studies(args: argparse.Namespace) -> int:
    from rich.table import Table

    from thrifty.storage import open_storage

    store = open_storage(args.storage or DEFAULT_STORAGE)
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
    table = Table(title=f"studies in {store.url}", title_justify="left")
    for col in ("name", "created", "objective", "trials", "completed", "running", "failed", "spent $"):
        table.add_column(col, justify="right" if col in ("trials", "completed", "running", "failed", "spent $") else "left")
    for s in summaries:
        table.add_row(
            s.name, _ts(s.created_at), ", ".join(f"{k} ({v})" for k, v in s.objectives.items()),
            str(sum(s.counts.values())), str(s.counts.get("completed", 0)), str(s.counts.get("running", 0)),
            str(s.counts.get("failed", 0)), f"{s.spent_usd:,.4f}",
        )
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
    for col in ("#", "state", *metric_names, "cost $", "seconds", "params", "error"):
        table.add_column(col, overflow="fold")
    for t in trials:
        error = (t.error or "").strip().splitlines()[-1:] or [""]
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
        "created_at": t.created_at,
        "started_at": t.started_at,
        "finished_at": t.finished_at,
        "worker_id": t.worker_id,
        "retry_of": t.retry_of,
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
                    "cost_usd", "elapsed_s", "started_at", "finished_at", "error"])
        for t in trials:
            w.writerow([t.number, t.state.value, *[t.params.get(p, "") for p in param_names],
                        *[t.metrics.get(m, "") for m in metric_names], t.cost_usd, t.elapsed_s,
                        t.started_at or "", t.finished_at or "", (t.error or "").strip()])
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

    store = open_storage(args.storage or DEFAULT_STORAGE)
    store.load_study(args.study)  # clear error if absent
    if not args.yes:
        if not sys.stdin.isatty():
            raise ValidationError(f"refusing to delete study {args.study!r} without confirmation; pass --yes")
        answer = input(f"delete study {args.study!r} and all its trials from {store.url}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 1
    store.delete_study(args.study)
    _console().print(f"deleted study {args.study!r} from {store.url}")
    return 0


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    def common_options(top: bool) -> argparse.ArgumentParser:
        # argparse copies a subcommand's defaults over the main namespace, which would silently drop
        # `thrifty --storage X studies`; so only the top level has defaults, subcommands SUPPRESS.
        p = argparse.ArgumentParser(add_help=False)
        p.add_argument("--storage", default=None if top else argparse.SUPPRESS,
                       help=f"storage URL (default {DEFAULT_STORAGE})")
        p.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                       help="show tracebacks")
        return p

    common = common_options(top=False)
    parser = argparse.ArgumentParser(
        prog="thrifty", description="Hyperparameter tuning for the least money.", parents=[common_options(top=True)]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", parents=[common], help="run (or resume) a study from a config file")
    p.add_argument("config", help="YAML/JSON file with space, objective, workload, strategy, budget, ...")
    p.add_argument("--name", help="study name (overrides the config)")
    p.add_argument("--n-trials", type=int, help="trials to start in this run")
    p.add_argument("--workers", type=int, help="worker processes")
    p.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    p.add_argument("--no-progress", action="store_true", help="no live display")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("studies", parents=[common], help="list the studies in a storage")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_studies)

    p = sub.add_parser("trials", parents=[common], help="list a study's trials, a page at a time")
    p.add_argument("study")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--per-page", type=int, default=50)
    p.add_argument("--state", choices=[s for s in ("pending", "running", "completed", "stopped", "failed", "infeasible")])
    p.set_defaults(func=cmd_trials)

    p = sub.add_parser("best", parents=[common], help="the best trial (or the Pareto front)")
    p.add_argument("study")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_best)

    p = sub.add_parser("export", parents=[common], help="export a study's trials as CSV or JSON")
    p.add_argument("study")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("delete", parents=[common], help="delete a study and its trials")
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
        return 130
    except (ThriftyError, OSError) as exc:
        if args.debug:
            raise
        print(f"thrifty: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        print(f"thrifty: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
