"""Tune any program: run a command per trial and read its metrics from what it prints.

A :class:`ScriptObjective` is an objective (a callable taking a trial) that starts the command
with the trial's parameters and turns every printed line that matches a metric's regular
expression into a report, so schedulers and budgets can stop the program mid-run::

    objective = ScriptObjective(
        command="python train.py --lr {lr} --batch-size {batch_size} --epochs {max_resource}",
        metrics={"val_acc": {"regex": r"val_acc=([0-9.eE+-]+)", "goal": "max"},
                 "epoch": {"regex": r"epoch=(\\d+)"}},
        step_metric="epoch", max_resource=20)

Parameters reach the program three ways: in the command template (``{name}``, plus
``{max_resource}``, ``{trial_number}``, ``{checkpoint_dir}``), as environment variables
(``THRIFTY_PARAM_<NAME>`` upper-cased, plus ``THRIFTY_TRIAL_NUMBER``, ``THRIFTY_TRIAL_ID``,
``THRIFTY_STUDY``, ``THRIFTY_CHECKPOINT_DIR``) and as a JSON file (``THRIFTY_PARAMS_FILE``).
A trial the scheduler paused and resumed, or a PBT clone, starts at ``{start_step}`` /
``THRIFTY_START_STEP`` (0 for a fresh one) and should load its checkpoint from the checkpoint
folder; ``THRIFTY_CHECKPOINT_AT`` lists the steps before whose report the program should save one.

Outcomes: exit status 0 completes the trial with the last value of each metric; a stop (by the
scheduler or the budget) sends SIGTERM to the program's process group, then SIGKILL after
``grace_s``, and the trial is STOPPED with its last report and charged up to the stop; a non-zero
exit is FAILED with the last 50 lines of stderr; output matching one of ``infeasible_patterns``
(e.g. ``CUDA out of memory``) makes it INFEASIBLE; ``timeout_s`` kills it (FAILED); a program
killed by a signal thrifty did not send (a preemption) is started again, up to
``max_preemptions`` times, within the same trial (reports whose step does not advance past the
last one are not repeated). Each trial's stdout and stderr are kept as files in its artifact
folder, beside its checkpoint folder.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from thrifty.errors import TrialFailed, TrialInfeasible, ValidationError
from thrifty.handle import TrialHandle

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


def _parse_metrics(metrics: Mapping[str, Any]) -> dict[str, MetricPattern]:
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
        if goal is not None and goal not in ("max", "min"):
            raise ValidationError(f"metric {name!r}: goal={goal!r} must be 'max' or 'min'")
        out[name] = MetricPattern(name, rx, goal)
    return out


class ScriptObjective:
    """Run a command per trial; see the module docstring."""

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
    ) -> None:
        if isinstance(command, str):
            if not command.strip():
                raise ValidationError("command: empty; give the program to run, e.g. 'python train.py --lr {lr}'")
            self.command: list[str] = shlex.split(command)
        else:
            self.command = [str(c) for c in command]
            if not self.command:
                raise ValidationError("command: empty list")
        self.metrics = _parse_metrics(metrics)
        if step_metric is not None and step_metric not in self.metrics:
            raise ValidationError(f"step_metric={step_metric!r} is not one of the metrics {sorted(self.metrics)}")
        self.step_metric = step_metric
        self.max_resource = max_resource
        try:
            self.infeasible = [re.compile(p) for p in infeasible_patterns]
        except re.error as exc:
            raise ValidationError(f"infeasible_patterns: invalid regex: {exc}") from None
        for label, v in (("timeout_s", timeout_s), ("grace_s", grace_s)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
                raise ValidationError(f"{label}={v!r}: expected a number of seconds > 0")
        self.timeout_s = timeout_s
        self.grace_s = float(grace_s)
        if isinstance(max_preemptions, bool) or not isinstance(max_preemptions, int) or max_preemptions < 0:
            raise ValidationError(f"max_preemptions={max_preemptions!r}: expected an integer >= 0")
        self.max_preemptions = max_preemptions
        self.env = dict(env or {})
        self.cwd = cwd

    # -- one trial -----------------------------------------------------------------------------
    def _argv(self, trial: TrialHandle, checkpoint_dir: Path) -> list[str]:
        values = {**trial.params, "max_resource": self.max_resource, "trial_number": trial.number,
                  "checkpoint_dir": str(checkpoint_dir), "start_step": _step_text(trial.start_step)}
        try:
            return [part.format(**values) for part in self.command]
        except KeyError as exc:
            raise ValidationError(
                f"command template names {{{exc.args[0]}}}, which is neither a parameter of this trial "
                f"({', '.join(trial.params)}) nor max_resource/trial_number/checkpoint_dir/start_step"
            ) from None

    def _environ(self, trial: TrialHandle, checkpoint_dir: Path, params_file: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        for k, v in trial.params.items():
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
        return env

    def __call__(self, trial: TrialHandle) -> dict[str, float] | None:
        folder = trial.artifact_dir
        checkpoint_dir = trial.checkpoint_dir
        params_file = folder / "params.json"
        params_file.write_text(json.dumps(dict(trial.params), indent=1))
        argv = self._argv(trial, checkpoint_dir)
        env = self._environ(trial, checkpoint_dir, params_file)
        latest: dict[str, float] = {}
        state = {"step": None}
        preemptions = 0
        with open(folder / "stdout.log", "a", encoding="utf-8") as out_log, \
                open(folder / "stderr.log", "a", encoding="utf-8") as err_log:
            while True:
                outcome = self._run_once(trial, argv, env, latest, state, out_log, err_log)
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
        missing = [m for m, p in self.metrics.items() if p.goal is not None and m not in latest]
        if missing:
            raise TrialFailed(f"the program exited normally but never printed {missing} (see {folder / 'stdout.log'})")
        return {k: v for k, v in latest.items() if k != self.step_metric} or None

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
        open_streams = 2
        sent_signal = False
        infeasible: str | None = None
        try:
            while open_streams:
                if self.timeout_s is not None and time.monotonic() - started > self.timeout_s:
                    self._terminate(proc)
                    raise TrialFailed(f"timeout: the program ran longer than {self.timeout_s:g} s and was killed")
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
                if self._parse(trial, line, latest, state) and trial.should_stop():
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


def _pump(stream: IO[str] | None, kind: str, lines: queue.Queue[tuple[str, str | None]]) -> None:
    assert stream is not None
    for line in stream:
        lines.put((kind, line))
    lines.put((kind, None))
