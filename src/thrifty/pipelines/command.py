"""Command stages: a pipeline stage that runs a program in a stage folder.

A stage built with ``command=`` (``th.Stage("prep", command="python prep.py --n {n}", space=...)``,
or ``command:`` in a config's ``pipeline:``) runs its program once per trial that computes it,
with the script runner's machinery (:class:`thrifty.runners.script.Command`): its template,
metric and outcome rules are :mod:`thrifty.runners.script`'s, with these differences.

**Folders.** Stage ``i`` of trial ``N`` has the folder ``<trial folder>/stage-<i>-<name>/``
(``<name>`` with anything but letters, digits, ``.``, ``_`` and ``-`` written ``_``): its
``params.json``, ``stdout.log`` and ``stderr.log``, and ``output/``, a fresh empty folder
(emptied again before a restart after a preemption) into which the program writes its output:
``{stage_output}`` in the template, ``THRIFTY_STAGE_OUTPUT`` in its environment. Its input is
``{stage_input}`` / ``THRIFTY_STAGE_INPUT``:

- after a command stage: that stage's output folder (the cached entry's folder when it was
  cached: read it, never write into it; the trial holds it against eviction while the stage runs);
- after a function stage: the folder ``stage-<i>-<name>/input/``, holding ``input.pkl``, the
  previous stage's output pickled (``pickle.load(open(Path(os.environ["THRIFTY_STAGE_INPUT"]) /
  "input.pkl", "rb"))``);
- the first stage has none: ``THRIFTY_STAGE_INPUT`` is absent (also when inherited) and the
  template may not name ``{stage_input}`` (refused when the pipeline is built).

**Parameters.** Only the stage's own (active) parameters reach the program, in the template,
as ``THRIFTY_PARAM_<NAME>`` and in ``params.json``: its output's cache key covers them and no
other stage's. Built-ins besides the stage folders: ``{max_resource}``, ``{trial_number}``,
``{checkpoint_dir}`` (the trial's) and ``{start_step}``, as in the script runner.

**Metrics.** ``metrics`` are optional except for the last stage, whose metrics are the trial's
result: the study's objectives must be among them (checked when a config loads and when each
trial starts, before any stage runs). A stage's matching lines are reports, as a script's, and
the step metric, those with a goal and (last stage) the objectives must match (``metrics_timeout_s``).

**Stops.** The trial's ``should_stop()`` is asked after each report and every
:data:`STOP_POLL_S` seconds (a stage that prints no metric can be stopped too); when it is true
the program's process group gets SIGTERM, then SIGKILL after ``grace_s``, and the stage returns
:data:`STOPPED`: its output, partial, is never cached. A non-zero exit fails the trial with the
last 50 lines of stderr; ``timeout_s`` (seconds, the stage's own run) kills it and fails it.

**Output.** A command stage that is not the last returns its output folder (a
:class:`~pathlib.Path`; cached as a folder entry of :class:`~thrifty.pipelines.cache.DiskCache`
when the stage is cacheable, its path then the entry's); a function stage after it gets that
path. The last stage returns its metrics (the step metric left out); its output folder stays in
the trial's folder.
"""

from __future__ import annotations

import enum
import pickle
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from thrifty.errors import ValidationError
from thrifty.handle import TrialHandle
from thrifty.runners.script import BUILTIN_PLACEHOLDERS, DEFAULT_METRICS_TIMEOUT_S, Command

#: Placeholders a command stage may use besides its parameters.
STAGE_PLACEHOLDERS = (*BUILTIN_PLACEHOLDERS, "stage_input", "stage_output")

#: Seconds between two ``should_stop`` asks while a stage's program runs.
STOP_POLL_S = 1.0

#: The pickle file a command stage after a function stage finds in its input folder.
INPUT_PICKLE = "input.pkl"


class Stopped(enum.Enum):
    """The type of :data:`STOPPED`."""

    STOPPED = "stopped"


#: What a command stage returns when its trial was told to stop while it ran.
STOPPED = Stopped.STOPPED


def stage_folder_name(index: int, name: str) -> str:
    """The folder of stage ``index`` named ``name`` inside a trial's folder."""
    return f"stage-{index}-{re.sub(r'[^A-Za-z0-9._-]', '_', name)}"


class StageCommand:
    """The program of a command stage named ``stage`` whose parameters are ``space`` (their
    names); the other arguments are :class:`~thrifty.runners.script.ScriptObjective`'s (see the
    module docstring for what differs). Errors name the stage."""

    def __init__(
        self,
        stage: str,
        command: str | Sequence[str],
        space: Iterable[str],
        *,
        metrics: Mapping[str, Any] | None = None,
        step_metric: str | None = None,
        max_resource: float | None = None,
        infeasible_patterns: Sequence[str] = (),
        timeout_s: float | None = None,
        grace_s: float = 10.0,
        max_preemptions: int = 2,
        metrics_timeout_s: float | None = DEFAULT_METRICS_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.stage = stage
        try:
            self.command = Command(
                command, metrics, step_metric=step_metric, max_resource=max_resource,
                infeasible_patterns=infeasible_patterns, timeout_s=timeout_s, grace_s=grace_s,
                max_preemptions=max_preemptions, env=env, cwd=cwd, metrics_timeout_s=metrics_timeout_s,
                builtins=STAGE_PLACEHOLDERS, metrics_optional=True, poll_stop_s=STOP_POLL_S)
            self.command.check_space(dict.fromkeys(space))  # its own parameters only
        except ValidationError as exc:
            raise ValidationError(f"Stage {stage!r}: {exc}") from None

    @property
    def metrics(self) -> tuple[str, ...]:
        """The names of the metrics read from the program's output."""
        return tuple(self.command.metrics)

    @property
    def goals(self) -> dict[str, str]:
        """The metrics with a goal: name -> ``"max"`` / ``"min"``."""
        return {m: p.goal for m, p in self.command.metrics.items() if p.goal is not None}

    @property
    def uses_input(self) -> bool:
        """Whether the template names ``{stage_input}``."""
        return "stage_input" in self.command.placeholders

    def check_objectives(self, objectives: Iterable[str], computed: Iterable[str] = ()) -> None:
        """Raise a one-line :class:`ValidationError` naming the stage unless every objective is one
        of its metrics (not the step metric), ``cost_usd``, ``elapsed_s`` or one of ``computed``."""
        try:
            self.command.check_objectives(objectives, computed)
        except ValidationError as exc:
            raise ValidationError(f"Stage {self.stage!r} (the last stage, whose metrics are the trial's "
                                  f"result): {exc}") from None

    def run(self, trial: TrialHandle, index: int, params: Mapping[str, Any], data: Any, *, data_is_folder: bool,
            last: bool) -> Any:
        """Run the program as stage ``index`` of ``trial`` with the stage's ``params`` and the
        previous stage's output ``data`` (``data_is_folder``: it is a command stage's output
        folder; else it goes in ``input.pkl``; ignored for stage 0). Returns the output folder
        (``last``: the metrics), or :data:`STOPPED`."""
        folder = trial.artifact_dir / stage_folder_name(index, self.stage)
        folder.mkdir(exist_ok=True)
        output = folder / "output"
        values: dict[str, Any] = {"stage_output": str(output)}
        env: dict[str, str | None] = {"THRIFTY_STAGE_OUTPUT": str(output), "THRIFTY_STAGE_INPUT": None}
        if index > 0:
            if data_is_folder:
                given = Path(data)
            else:
                given = folder / "input"
                _fresh(given)
                with open(given / INPUT_PICKLE, "wb") as f:
                    pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
            values["stage_input"] = env["THRIFTY_STAGE_INPUT"] = str(given)
        objectives: Sequence[str] = ()
        if last:
            study = trial.study
            objectives = list(study.objectives)
            self.check_objectives(objectives, [study.utility.name] if study.utility is not None else [])
        latest = self.command.run(trial, params=params, folder=folder, required=self.command.required(objectives),
                                  values=values, env=env, prepare=lambda: _fresh(output))
        if latest is None:
            return STOPPED
        if last:
            return {k: v for k, v in latest.items() if k != self.command.step_metric}
        return output


def _fresh(folder: Path) -> None:
    """Make ``folder`` an empty folder."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
