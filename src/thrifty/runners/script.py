"""Tune any program: run a command per trial and read its metrics from what it prints.

A :class:`ScriptObjective` is an objective (a callable taking a trial) that starts the command
with the trial's parameters and turns every printed line that matches a metric's regular
expression into a report, so schedulers and budgets can stop the program mid-run::

    objective = ScriptObjective(
        command="python train.py --lr {lr} --batch-size {batch_size} --epochs {max_resource}",
        metrics={"val_acc": {"regex": r"val_acc=([0-9.eE+-]+)", "goal": "max"},
                 "epoch": {"regex": r"epoch=(\\d+)"}},
        step_metric="epoch", max_resource=20)

:class:`Command` is the machinery under it (the template, the metrics, the process and its
outcomes), one run of one program for a trial; a :class:`ScriptObjective` is a command run once per
trial with every parameter of the trial, and a pipeline's command stage
(:mod:`thrifty.pipelines.command`) one run per stage with that stage's parameters and folders.
The rules below are both's.

Parameters reach the program three ways: in the command template (``{name}``, plus
``{max_resource}``, ``{trial_number}``, ``{checkpoint_dir}``), as environment variables
(``THRIFTY_PARAM_<NAME>`` upper-cased, plus ``THRIFTY_TRIAL_NUMBER``, ``THRIFTY_TRIAL_ID``,
``THRIFTY_STUDY``, ``THRIFTY_CHECKPOINT_DIR``) and as a JSON file (``THRIFTY_PARAMS_FILE``).
A trial the scheduler paused and resumed, or a PBT clone, starts at ``{start_step}`` /
``THRIFTY_START_STEP`` (0 for a fresh one) and should load its checkpoint from the checkpoint
folder; ``THRIFTY_CHECKPOINT_AT`` lists the steps before whose report the program should save one.

Outcomes: exit status 0 completes the trial with the last value of each metric (if the required
ones appeared: see the metric rules); a stop (by the scheduler or the budget) sends SIGTERM to
the program's process group, then SIGKILL after ``grace_s``, and the trial is STOPPED with its
last report and charged up to the stop; a non-zero exit is FAILED with the last 50 lines of
stderr; output matching one of ``infeasible_patterns`` (e.g. ``CUDA out of memory``) makes it
INFEASIBLE; ``timeout_s`` kills it (FAILED); a program killed by a signal thrifty did not send
(a preemption) is started again, up to ``max_preemptions`` times, within the same trial (reports
whose step does not advance past the last one are not repeated). Each trial's stdout and stderr
are kept as files in its artifact folder, beside its checkpoint folder. The program and the
processes it starts count in the trial's resource use (``Trial.usage``: CPU, resident memory,
GPU), read every second while it runs, with the worker process that runs it.

Template rules. The command is a list of tokens (a string command is split like a shell does).
A placeholder ``{name}`` (or ``{name:FORMAT}``, a Python format spec) must name a parameter of
the space exactly or one of the built-ins ``max_resource``, ``trial_number``, ``checkpoint_dir``,
``start_step`` (``{max_resource}`` needs ``max_resource`` set); ``{{`` and ``}}`` are literal
braces. This is checked when the objective is built with ``space=`` (``thrifty run`` does, before
any study is created), otherwise when each trial starts, before its program runs: an unknown
name is a :class:`ValidationError` listing the known ones. A token that names a parameter
inactive in the trial (a conditional one whose condition does not hold) is left out of the
command whole, so write a flag and its value as one token: ``--momentum={momentum}`` disappears
when ``momentum`` is inactive (``--momentum {momentum}`` would leave a bare ``--momentum``). Only
active parameters have a ``THRIFTY_PARAM_<NAME>`` variable (one inherited from thrifty's own
environment is removed) and an entry in the params file.

Metric rules. Each of the study's objectives must be a metric (or ``cost_usd``/``elapsed_s``),
checked before the program runs (``thrifty run``: when the config loads). The metrics that must
appear are the step metric, every metric with a goal and every objective. Each must match its
regex (with a number in its group) at least once within ``metrics_timeout_s`` seconds (default
600) of the program's start; otherwise the program is stopped there and the trial FAILED
("metric 'val_acc' never matched ... in the first 600 s"), charged for those seconds only.
``metrics_timeout_s=None`` waits for the program's end; a program that exits normally without
printing one of them is FAILED the same way. A goal is one of the words
:func:`~thrifty.study.parse_objectives` takes (max, min, maximize, minimise, ...).
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import shlex
import signal
import string
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from thrifty.errors import TrialFailed, TrialInfeasible, ValidationError
from thrifty.handle import TrialHandle
from thrifty.objectives import DIRECTIONS
from thrifty.space import Space

#: Placeholders a command may use besides the space's parameters.
BUILTIN_PLACEHOLDERS = ("max_resource", "trial_number", "checkpoint_dir", "start_step")

#: Seconds within which every required metric must have matched once (``metrics_timeout_s``).
DEFAULT_METRICS_TIMEOUT_S = 600.0

#: One piece of a parsed token: literal text, then a placeholder (name, format spec, conversion) or None.
Piece = tuple[str, str | None, str, str | None]


def _parse_token(token: str) -> list[Piece]:
    """Split a command token into literal text and placeholders; malformed ones are errors."""
    try:
        pieces: list[Piece] = [(lit, name, spec or "", conv) for lit, name, spec, conv in
                               string.Formatter().parse(token)]
    except ValueError as exc:
        raise ValidationError(f"command: cannot read {token!r} as a template ({exc}); "
                              "write {{ and }} for literal braces") from None
    for _, name, spec, conv in pieces:
        if name is None:
            continue
        if not name or name.isdigit():
            raise ValidationError(f"command: {token!r} has a placeholder without a name; name a parameter, e.g. {{lr}}")
        if "{" in spec or conv not in (None, "r", "s", "a"):
            raise ValidationError(f"command: {token!r}: only {{name}} and {{name:FORMAT}} placeholders are supported")
    return pieces


def _step_text(step: float) -> str:
    return str(int(step)) if float(step).is_integer() else str(step)


#: Lines of stderr kept in a failed trial's error.
STDERR_TAIL_LINES = 50


@dataclass(frozen=True)
class MetricPattern:
    """A metric read from output: the first group of ``regex`` must parse as a number."""

    name: str
    regex: re.Pattern[str]
    goal: str | None = None


def _parse_metrics(metrics: Mapping[str, Any] | None, optional: bool = False) -> dict[str, MetricPattern]:
    """The metric patterns of ``metrics``; none at all is an error unless ``optional``."""
    if optional and (metrics is None or (isinstance(metrics, Mapping) and not metrics)):
        return {}
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValidationError("metrics: give at least one metric, e.g. {'val_acc': {'regex': 'val_acc=([0-9.]+)'}}")
    out = {}
    for name, spec in metrics.items():
        if isinstance(spec, str):
            spec = {"regex": spec}
        if not isinstance(spec, Mapping) or "regex" not in spec:
            raise ValidationError(f"metric {name!r}: expected {{'regex': PATTERN, 'goal': 'max'|'min'}}")
        unknown = sorted(set(spec) - {"regex", "goal"})
        if unknown:
            raise ValidationError(f"metric {name!r}: unknown key(s) {', '.join(unknown)} (known: regex, goal)")
        try:
            rx = re.compile(spec["regex"])
        except re.error as exc:
            raise ValidationError(f"metric {name!r}: invalid regex {spec['regex']!r}: {exc}") from None
        if rx.groups < 1:
            raise ValidationError(f"metric {name!r}: the regex {spec['regex']!r} needs a (group) around the number")
        goal = spec.get("goal")
        if goal is not None:
            if not isinstance(goal, str) or goal.strip().lower() not in DIRECTIONS:
                raise ValidationError(f"metric {name!r}: goal={goal!r} must be one of {', '.join(DIRECTIONS)}")
            goal = DIRECTIONS[goal.strip().lower()]
        out[name] = MetricPattern(name, rx, goal)
    return out


class Command:
    """A program run for a trial, with the template, metric and outcome rules of the module
    docstring: the reusable piece under :class:`ScriptObjective` (one run per trial) and a
    pipeline's command stage (one run per stage, :mod:`thrifty.pipelines.command`).

    Its arguments are :class:`ScriptObjective`'s, plus: ``builtins``, the placeholders it takes
    besides the space's parameters (default :data:`BUILTIN_PLACEHOLDERS`); ``metrics_optional``,
    whether it may read no metric at all (a stage that only writes files); ``poll_stop_s``, seconds
    between two ``trial.should_stop()`` asks while the program runs whether or not it reports
    (``None``, :class:`ScriptObjective`'s way: asked after each report only).
    """

    def __init__(
        self,
        command: str | Sequence[str],
        metrics: Mapping[str, Any] | None,
        *,
        step_metric: str | None = None,
        max_resource: float | None = None,
        infeasible_patterns: Sequence[str] = (),
        timeout_s: float | None = None,
        grace_s: float = 10.0,
        max_preemptions: int = 2,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        space: Space | Mapping[str, Any] | None = None,
        metrics_timeout_s: float | None = DEFAULT_METRICS_TIMEOUT_S,
        builtins: Sequence[str] = BUILTIN_PLACEHOLDERS,
        metrics_optional: bool = False,
        poll_stop_s: float | None = None,
    ) -> None:
        if isinstance(command, str):
            if not command.strip():
                raise ValidationError("command: empty; give the program to run, e.g. 'python train.py --lr {lr}'")
            self.command: list[str] = shlex.split(command)
        else:
            if isinstance(command, (bytes, Mapping)) or not isinstance(command, Sequence):
                raise ValidationError(f"command={command!r}: expected a string or a list of strings")
            self.command = [str(c) for c in command]
            if not self.command:
                raise ValidationError("command: empty list")
        self.builtins: tuple[str, ...] = tuple(builtins)
        self.metrics = _parse_metrics(metrics, optional=metrics_optional)
        if step_metric is not None and step_metric not in self.metrics:
            raise ValidationError(f"step_metric={step_metric!r} is not one of the metrics {sorted(self.metrics)}")
        self.step_metric = step_metric
        self.max_resource = max_resource
        self._template = [_parse_token(part) for part in self.command]
        #: The names of the command's placeholders, in order of first use.
        self.placeholders: tuple[str, ...] = tuple(dict.fromkeys(
            name for pieces in self._template for _, name, _, _ in pieces if name is not None))
        if "max_resource" in self.placeholders and max_resource is None:
            raise ValidationError("command uses {max_resource} but max_resource is not set")
        if isinstance(infeasible_patterns, str):
            infeasible_patterns = [infeasible_patterns]
        try:
            self.infeasible = [re.compile(p) for p in infeasible_patterns]
        except (re.error, TypeError) as exc:
            raise ValidationError(f"infeasible_patterns: invalid regex: {exc}") from None
        seconds = "a number of seconds > 0"
        for label, v, what in (("max_resource", max_resource, "a number > 0 (the step a full trial reaches)"),
                               ("timeout_s", timeout_s, seconds), ("grace_s", grace_s, seconds),
                               ("metrics_timeout_s", metrics_timeout_s, f"{seconds} (or None: wait for the end)"),
                               ("poll_stop_s", poll_stop_s, seconds)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
                raise ValidationError(f"{label}={v!r}: expected {what}")
        self.timeout_s = timeout_s
        self.grace_s = float(grace_s)
        self.metrics_timeout_s = metrics_timeout_s
        self.poll_stop_s = poll_stop_s
        if isinstance(max_preemptions, bool) or not isinstance(max_preemptions, int) or max_preemptions < 0:
            raise ValidationError(f"max_preemptions={max_preemptions!r}: expected an integer >= 0")
        self.max_preemptions = max_preemptions
        if env is not None and (not isinstance(env, Mapping)
                                or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
            raise ValidationError(f"env={env!r}: expected a mapping of variable name to string")
        self.env = dict(env or {})
        self.cwd = cwd
        if space is not None:
            self.check_space(space if isinstance(space, Space) else Space(space))

    def check_space(self, space: Space | Mapping[str, Any]) -> None:
        """Raise :class:`ValidationError` unless every placeholder of the command is a parameter
        of ``space`` or a built-in (and no parameter takes a built-in's name)."""
        import difflib

        known = [*space, *self.builtins]
        for name in self.placeholders:
            if name in space and name in self.builtins:
                raise ValidationError(f"command: {{{name}}} is both a parameter and a built-in placeholder; "
                                      "rename the parameter")
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {{{close[0]}}}?)" if close else ""
                raise ValidationError(
                    f"command: unknown placeholder {{{name}}}{hint}; the parameters are {', '.join(space) or 'none'} "
                    f"and the built-ins {', '.join(self.builtins)}"
                )

    def check_objectives(self, objectives: Iterable[str], computed: Iterable[str] = ()) -> None:
        """Raise :class:`ValidationError` unless every objective is one of the metrics (not the
        step metric), ``cost_usd``, ``elapsed_s`` or one of ``computed`` (e.g. a utility's name)."""
        known = [m for m in self.metrics if m != self.step_metric]
        for name in objectives:
            if name not in (*known, "cost_usd", "elapsed_s", *computed):
                example = f", e.g. objective: {{{known[0]!r}: max}}" if known else ""
                raise ValidationError(
                    f"objective {name!r} is not one of the metrics read from the program's output "
                    f"({', '.join(known) or 'none but the step metric'}); name one{example}"
                )

    def required(self, objectives: Iterable[str] = ()) -> list[str]:
        """The metrics that must match at least once: the step metric, those with a goal, and
        those of ``objectives``."""
        wanted = set(objectives)
        return [m for m, p in self.metrics.items() if m == self.step_metric or p.goal is not None or m in wanted]

    # -- one run -------------------------------------------------------------------------------
    def _argv(self, values: Mapping[str, Any]) -> list[str]:
        """The command with ``values``; tokens naming a placeholder without a value (an inactive
        parameter) are left out."""
        fmt = string.Formatter()
        argv = []
        for pieces in self._template:
            if any(name is not None and name not in values for _, name, _, _ in pieces):
                continue
            text = []
            for literal, name, spec, conv in pieces:
                text.append(literal)
                if name is None:
                    continue
                try:
                    text.append(fmt.format_field(fmt.convert_field(values[name], conv), spec))
                except (ValueError, TypeError) as exc:
                    raise ValidationError(f"command: cannot write {name}={values[name]!r} as "
                                          f"{{{name}:{spec}}}: {exc}") from None
            argv.append("".join(text))
        if not argv:
            raise ValidationError("command: every token names an inactive parameter; nothing to run")
        return argv

    def _never_matched(self, missing: Sequence[str], when: str, folder: Path) -> TrialFailed:
        what = "; ".join(f"metric {m!r} never matched its regex {self.metrics[m].regex.pattern!r}" for m in missing)
        return TrialFailed(f"{what} {when} (the output is in {folder / 'stdout.log'})")

    def _environ(self, trial: TrialHandle, params: Mapping[str, Any], checkpoint_dir: Path, params_file: Path,
                 extra: Mapping[str, str | None]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("THRIFTY_PARAM_")}
        env.update(self.env)
        for k, v in params.items():
            env["THRIFTY_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", k).upper()] = str(v)
        env.update({
            "THRIFTY_TRIAL_NUMBER": str(trial.number), "THRIFTY_TRIAL_ID": str(trial.id),
            "THRIFTY_STUDY": trial.study.name, "THRIFTY_CHECKPOINT_DIR": str(checkpoint_dir),
            "THRIFTY_PARAMS_FILE": str(params_file), "PYTHONUNBUFFERED": "1",
        })
        env["THRIFTY_START_STEP"] = _step_text(trial.start_step)
        if self.max_resource is not None:
            env["THRIFTY_MAX_RESOURCE"] = str(self.max_resource)
            # The steps before whose report the program should save a checkpoint (the scheduler may
            # pause or clone the trial there), comma-separated; empty when none.
            steps = range(int(trial.start_step) + 1, int(self.max_resource) + 1)
            env["THRIFTY_CHECKPOINT_AT"] = ",".join(str(x) for x in steps if trial.should_checkpoint(x))
        for k, value in extra.items():  # None: the variable is absent (also when inherited)
            if value is None:
                env.pop(k, None)
            else:
                env[k] = value
        return env

    def run(
        self, trial: TrialHandle, *, params: Mapping[str, Any], folder: Path, required: Sequence[str],
        values: Mapping[str, Any] | None = None, env: Mapping[str, str | None] | None = None,
        prepare: Callable[[], None] | None = None,
    ) -> dict[str, float] | None:
        """Run the program for ``trial`` with ``params`` (in the template, the environment and
        ``folder/params.json``), its output kept in ``folder/stdout.log`` and ``stderr.log``.
        ``required``: the metrics that must match (see the module docstring); ``values``: more
        placeholders' values; ``env``: more environment variables (``None``: removed);
        ``prepare``: called before each start of the program (a restart after a preemption too).

        Returns the last value of every metric read (the step metric included), or ``None`` when
        the trial was told to stop (the program was terminated). Raises :class:`TrialFailed` /
        :class:`TrialInfeasible` for the other outcomes of the module docstring."""
        checkpoint_dir = trial.checkpoint_dir
        params_file = folder / "params.json"
        params_file.write_text(json.dumps(dict(params), indent=1))
        state: dict[str, Any] = {"step": None, "required": list(required), "folder": folder}
        argv = self._argv({**params, "max_resource": self.max_resource, "trial_number": trial.number,
                           "checkpoint_dir": str(checkpoint_dir), "start_step": _step_text(trial.start_step),
                           **(values or {})})
        environ = self._environ(trial, params, checkpoint_dir, params_file, env or {})
        latest: dict[str, float] = {}
        preemptions = 0
        with open(folder / "stdout.log", "a", encoding="utf-8") as out_log, \
                open(folder / "stderr.log", "a", encoding="utf-8") as err_log:
            while True:
                if prepare is not None:
                    prepare()
                outcome = self._run_once(trial, argv, environ, latest, state, out_log, err_log)
                if outcome == "preempted" and preemptions < self.max_preemptions:
                    preemptions += 1
                    err_log.write(f"[thrifty] the program was killed by a signal thrifty did not send; "
                                  f"restart {preemptions} of {self.max_preemptions}\n")
                    continue
                if outcome == "preempted":
                    raise TrialFailed(f"the program was preempted (killed by a signal) {preemptions + 1} times; "
                                      f"giving up after {self.max_preemptions} restarts")
                if outcome == "stopped":
                    return None
                break
        missing = [m for m in state["required"] if m not in latest]
        if missing:
            raise self._never_matched(missing, "although the program exited normally", folder)
        return latest

    def _run_once(
        self, trial: TrialHandle, argv: list[str], env: dict[str, str], latest: dict[str, float],
        state: dict[str, Any], out_log: IO[str], err_log: IO[str],
    ) -> str:
        """Run the program once. Returns "done", "stopped" or "preempted"; raises TrialFailed /
        TrialInfeasible for the other outcomes."""
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                    cwd=self.cwd, start_new_session=True, bufsize=1)
        except OSError as exc:
            raise TrialFailed(f"cannot start {argv[0]!r}: {exc}") from None
        lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        readers = [threading.Thread(target=_pump, args=(proc.stdout, "out", lines), daemon=True),
                   threading.Thread(target=_pump, args=(proc.stderr, "err", lines), daemon=True)]
        for r in readers:
            r.start()
        stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        started = time.monotonic()
        asked = started  # when should_stop was last asked (poll_stop_s)
        open_streams = 2
        sent_signal = False
        infeasible: str | None = None
        metrics_deadline = None if self.metrics_timeout_s is None else started + self.metrics_timeout_s
        try:
            while open_streams:
                now = time.monotonic()
                if self.timeout_s is not None and now - started > self.timeout_s:
                    self._terminate(proc)
                    raise TrialFailed(f"timeout: the program ran longer than {self.timeout_s:g} s and was killed")
                if metrics_deadline is not None and now > metrics_deadline:
                    metrics_deadline = None
                    missing = [m for m in state["required"] if m not in latest]
                    if missing:
                        self._terminate(proc)
                        raise self._never_matched(
                            missing, f"in the first {self.metrics_timeout_s:g} s of output, so the program was "
                            "stopped (metrics_timeout_s: fix the regex, or raise it for a slow first report)",
                            state["folder"])
                if self.poll_stop_s is not None and now - asked >= self.poll_stop_s:
                    asked = now
                    if trial.should_stop():
                        self._terminate(proc)
                        sent_signal = True
                        return "stopped"
                try:
                    kind, line = lines.get(timeout=0.2)
                except queue.Empty:
                    continue
                if line is None:
                    open_streams -= 1
                    continue
                (out_log if kind == "out" else err_log).write(line)
                if kind == "err":
                    stderr_tail.append(line.rstrip("\n"))
                for rx in self.infeasible:
                    if rx.search(line):
                        infeasible = line.strip()
                if infeasible is not None:
                    self._terminate(proc)
                    sent_signal = True
                    break
                if self._parse(trial, line, latest, state):
                    asked = time.monotonic()
                    if trial.should_stop():
                        self._terminate(proc)
                        sent_signal = True
                        return "stopped"
        except BaseException:
            if proc.poll() is None:
                self._terminate(proc)
            raise
        finally:
            out_log.flush()
            err_log.flush()
        code = proc.wait()
        if infeasible is not None:
            raise TrialInfeasible(f"the program printed a line matching an infeasibility pattern: {infeasible}")
        if code == 0:
            return "done"
        if code < 0 and not sent_signal:
            return "preempted"
        tail = "\n".join(stderr_tail)
        raise TrialFailed(f"the program exited with status {code}; last lines of stderr:\n{tail}")

    def _parse(self, trial: TrialHandle, line: str, latest: dict[str, float], state: dict[str, Any]) -> bool:
        """Read metrics from a line; report them. Returns whether a report was made."""
        found: dict[str, float] = {}
        for name, pattern in self.metrics.items():
            m = pattern.regex.search(line)
            if m is None:
                continue
            try:
                found[name] = float(m.group(1))
            except ValueError:
                continue
        if not found:
            return False
        latest.update(found)
        if self.step_metric is not None and self.step_metric in found:
            state["step"] = found.pop(self.step_metric)
        if not found:
            return False
        step = state["step"]
        if step is not None and trial.last_step is not None and step <= trial.last_step:
            return False  # a restarted program repeating steps already reported
        trial.report(found, step=step)
        return True

    def _terminate(self, proc: subprocess.Popen[str]) -> None:
        """SIGTERM to the program's process group, SIGKILL after the grace period."""
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


class ScriptObjective(Command):
    """Run a command per trial; see the module docstring (its template and metric rules are this
    class's contract). ``space``: the search space, to check the command's placeholders now."""

    def __init__(
        self,
        command: str | Sequence[str],
        metrics: Mapping[str, Any],
        *,
        step_metric: str | None = None,
        max_resource: float | None = None,
        infeasible_patterns: Sequence[str] = (),
        timeout_s: float | None = None,
        grace_s: float = 10.0,
        max_preemptions: int = 2,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        space: Space | Mapping[str, Any] | None = None,
        metrics_timeout_s: float | None = DEFAULT_METRICS_TIMEOUT_S,
    ) -> None:
        super().__init__(command, metrics, step_metric=step_metric, max_resource=max_resource,
                         infeasible_patterns=infeasible_patterns, timeout_s=timeout_s, grace_s=grace_s,
                         max_preemptions=max_preemptions, env=env, cwd=cwd, space=space,
                         metrics_timeout_s=metrics_timeout_s)

    def _required(self, trial: TrialHandle) -> list[str]:
        """The metrics that must match at least once: the step metric, those with a goal and the
        study's objectives (which must all be metrics: checked here, before the program runs)."""
        study = trial.study
        objectives = study.objectives
        self.check_objectives(objectives, [study.utility.name] if study.utility is not None else [])
        return self.required(objectives)

    def __call__(self, trial: TrialHandle) -> dict[str, float] | None:
        folder = trial.artifact_dir
        self.check_space(trial.study.space)
        latest = self.run(trial, params=trial.params, folder=folder, required=self._required(trial))
        if latest is None:
            return None
        return {k: v for k, v in latest.items() if k != self.step_metric} or None


def _pump(stream: IO[str] | None, kind: str, lines: queue.Queue[tuple[str, str | None]]) -> None:
    assert stream is not None
    for line in stream:
        lines.put((kind, line))
    lines.put((kind, None))
