"""Pipelines of stages, and the content address of a stage prefix's output.

A :class:`Pipeline` is an ordered list of :class:`Stage` objects. Each stage has a name, a function
or a command, its own search space and a ``version``. A trial runs the stages in order: stage
``i``'s function is called with its own parameters and stage ``i - 1``'s output (``None`` for the
first stage), and returns its output; a command stage runs its program in a stage folder, its input
the previous stage's output and its output a folder (:mod:`thrifty.pipelines.command`). The last
stage returns the trial's metrics (a function: a number or a mapping, as any objective does; a
command: the metrics read from its output). The study's space is the union of the stages' spaces:
a parameter name belongs to one stage only.

The output of stages ``0..i`` (a *prefix*) depends only on the prefix's parameters and on the
stages' code; :meth:`Pipeline.key` is its content address: a SHA-256 of the canonical JSON of the
prefix's stage names and versions and every parameter of stages ``0..i``. A later stage's
parameters never change an earlier prefix's key; bump a stage's ``version`` when its code changes
(a command stage: its program or its command line), and every key from that stage on changes.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from thrifty.errors import ValidationError
from thrifty.pipelines.command import StageCommand
from thrifty.runners.script import DEFAULT_METRICS_TIMEOUT_S
from thrifty.space import Param, Space, param_from_dict

if TYPE_CHECKING:  # pragma: no cover
    from thrifty.handle import TrialHandle

#: Where the memo cache lives, under the study's artifact root, when the pipeline names no folder.
DEFAULT_CACHE_FOLDER = "cache"

#: The :class:`Stage` keywords that apply to command stages only.
COMMAND_OPTIONS = ("metrics", "step_metric", "max_resource", "infeasible_patterns", "timeout_s", "grace_s",
                   "max_preemptions", "metrics_timeout_s", "env", "cwd")


def _check_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ValidationError(f"{what}={name!r}: expected a non-empty string of at most 255 characters")
    return name


@dataclass(frozen=True)
class Stage:
    """One step of a :class:`Pipeline`: a function or a command (exactly one).

    ``name``: unique in its pipeline. ``function``: called as ``function(params, data)`` with this
    stage's parameters (a dict; inactive conditional ones absent) and the previous stage's output
    (``None`` for the first stage; after a command stage, the :class:`~pathlib.Path` of its output
    folder, to read during the call and never write into); if it has a parameter named ``trial``,
    the running :class:`~thrifty.handle.TrialHandle` is passed too (``trial=``), to report steps and
    ask ``should_stop`` like any objective. It returns its output (the last stage: the metrics).
    ``space``: this stage's parameters (name -> ``th.Float``/``th.Int``/... or a dict spec).
    ``version``: bump it when the stage's code changes (cached outputs of the old code are then
    never read). ``cache``: store this stage's output in the memo cache (ignored for the last
    stage, whose output is the trial's metrics and is never cached).

    ``command`` (keyword; instead of ``function``): a program run with the script runner's
    machinery in a stage folder (:mod:`thrifty.pipelines.command`), e.g.
    ``th.Stage("prep", command="python prep.py --n {n} --out {stage_output}", space={"n": th.Int(8, 64)})``;
    it reads its input from ``{stage_input}`` and writes its output into ``{stage_output}``, and
    that folder is its output. The keywords ``metrics``, ``step_metric``, ``max_resource``,
    ``infeasible_patterns``, ``timeout_s`` (seconds, this stage's run), ``grace_s`` (seconds
    between SIGTERM and SIGKILL), ``max_preemptions``, ``metrics_timeout_s`` (seconds), ``env``
    and ``cwd`` are :class:`~thrifty.runners.script.ScriptObjective`'s and apply to command stages
    only; ``metrics`` is required for the last stage. :attr:`runner` is the built
    :class:`~thrifty.pipelines.command.StageCommand` (``None`` for a function stage).
    """

    name: str
    function: Callable[..., Any] | None = None
    space: Mapping[str, Param | Any] = field(default_factory=dict)
    version: str | int = 1
    cache: bool = True
    command: str | Sequence[str] | None = field(default=None, kw_only=True)
    metrics: Mapping[str, Any] | None = field(default=None, kw_only=True)
    step_metric: str | None = field(default=None, kw_only=True)
    max_resource: float | None = field(default=None, kw_only=True)
    infeasible_patterns: Sequence[str] = field(default=(), kw_only=True)
    timeout_s: float | None = field(default=None, kw_only=True)
    grace_s: float = field(default=10.0, kw_only=True)
    max_preemptions: int = field(default=2, kw_only=True)
    metrics_timeout_s: float | None = field(default=DEFAULT_METRICS_TIMEOUT_S, kw_only=True)
    env: Mapping[str, str] | None = field(default=None, kw_only=True)
    cwd: str | None = field(default=None, kw_only=True)
    runner: StageCommand | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name("Stage name", self.name)
        options = {f.name: getattr(self, f.name) for f in fields(self) if f.name in COMMAND_OPTIONS}
        if self.command is None:
            if self.function is None:
                raise ValidationError(f"Stage {self.name!r}: give function= (a Python function) or command= "
                                      "(a program to run)")
            if not callable(self.function):
                raise ValidationError(f"Stage {self.name!r}: function={self.function!r} is not callable")
            given = [f.name for f in fields(self) if f.name in COMMAND_OPTIONS and options[f.name] != f.default]
            if given:
                raise ValidationError(f"Stage {self.name!r}: {', '.join(given)} only apply to a command stage")
        elif self.function is not None:
            raise ValidationError(f"Stage {self.name!r}: give function= or command=, not both")
        if not isinstance(self.space, Mapping):
            raise ValidationError(f"Stage {self.name!r}: space={self.space!r}: expected a mapping of name to parameter")
        params = {}
        for pname, spec in self.space.items():
            if not isinstance(pname, str) or not pname:
                raise ValidationError(f"Stage {self.name!r}: parameter name {pname!r}: expected a non-empty string")
            params[pname] = param_from_dict(pname, spec)
        object.__setattr__(self, "space", MappingProxyType(params))
        if isinstance(self.version, bool) or not isinstance(self.version, (str, int)) or str(self.version) == "":
            raise ValidationError(f"Stage {self.name!r}: version={self.version!r}: expected a non-empty string or an int")
        if not isinstance(self.cache, bool):
            raise ValidationError(f"Stage {self.name!r}: cache={self.cache!r}: expected true or false")
        if self.command is not None:
            object.__setattr__(self, "runner", StageCommand(self.name, self.command, tuple(self.space), **options))

    @property
    def wants_trial(self) -> bool:
        """Whether :attr:`function` takes the running trial (a parameter named ``trial``)."""
        if self.function is None:
            return False
        try:
            return "trial" in inspect.signature(self.function).parameters
        except (TypeError, ValueError):  # a builtin without a signature
            return False

    def call(self, params: Mapping[str, Any], data: Any, trial: TrialHandle) -> Any:
        """Run a function stage: ``function(params, data)`` (plus ``trial=`` when it takes one).
        (A command stage runs through :attr:`runner`, which needs its place in the pipeline.)"""
        if self.function is None:
            raise ValidationError(f"Stage {self.name!r} runs a command: run it with stage.runner.run(...)")
        if self.wants_trial:
            return self.function(dict(params), data, trial=trial)
        return self.function(dict(params), data)


@dataclass(frozen=True)
class StageShape:
    """What a study stores about one stage (no code): its name, version, parameter names and
    whether its output is cached."""

    name: str
    version: str
    params: tuple[str, ...]
    cache: bool = True


@dataclass(frozen=True)
class PipelineShape:
    """What a study stores about its pipeline (the ``pipeline`` key of its settings): the stages'
    shapes, the cache folder (``None``: ``<artifact_root>/cache``) and the cache's size limit in
    bytes (``None``: no limit). Enough for any process to compute keys, read the cache's index and
    tell a strategy the stage boundaries; running a trial needs the :class:`Pipeline` itself."""

    stages: tuple[StageShape, ...]
    cache_dir: str | None = None
    cache_max_bytes: int | None = None

    @property
    def stage_params(self) -> tuple[tuple[str, ...], ...]:
        """The parameter names of each stage, in stage order."""
        return tuple(s.params for s in self.stages)

    def key(self, stage: int, params: Mapping[str, Any]) -> str:
        """The content address of the output of stages ``0..stage`` for the trial ``params``: a
        SHA-256 (hex) of the canonical JSON (sorted keys, no spaces) of those stages' names and
        versions and their parameters' values (absent inactive ones left out). Any parameter of a
        later stage is ignored."""
        if not 0 <= stage < len(self.stages):
            raise ValidationError(f"key(stage={stage}): the pipeline has stages 0..{len(self.stages) - 1}")
        prefix = self.stages[:stage + 1]
        values = {name: params[name] for s in prefix for name in s.params if name in params}
        doc = {"stages": [[s.name, s.version] for s in prefix], "params": values}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def prefix_params(self, stage: int, params: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter of stages ``0..stage`` that ``params`` holds."""
        return {name: params[name] for s in self.stages[:stage + 1] for name in s.params if name in params}

    def cache_root(self, artifact_root: str) -> str:
        """The cache's folder: :attr:`cache_dir`, else ``<artifact_root>/cache``."""
        import os

        return self.cache_dir if self.cache_dir is not None else os.path.join(artifact_root, DEFAULT_CACHE_FOLDER)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (what the study stores)."""
        return {"stages": [{"name": s.name, "version": s.version, "params": list(s.params), "cache": s.cache}
                           for s in self.stages],
                "cache_dir": self.cache_dir, "cache_max_bytes": self.cache_max_bytes}

    @classmethod
    def from_dict(cls, data: Any) -> PipelineShape:
        """Read :meth:`to_dict`'s data back (a stored study's ``pipeline`` setting)."""
        if isinstance(data, PipelineShape):
            return data
        if not isinstance(data, Mapping) or not isinstance(data.get("stages"), Sequence) or not data["stages"]:
            raise ValidationError(f"pipeline={data!r}: expected {{'stages': [{{'name': ..., 'params': [...]}}, ...]}}")
        stages = []
        for s in data["stages"]:
            if not isinstance(s, Mapping):
                raise ValidationError(f"pipeline stage {s!r}: expected a mapping with 'name' and 'params'")
            stages.append(StageShape(_check_name("stage name", s.get("name")), str(s.get("version", 1)),
                                     tuple(str(p) for p in s.get("params", ())), bool(s.get("cache", True))))
        shape = cls(tuple(stages), data.get("cache_dir"), check_max_bytes(data.get("cache_max_bytes")))
        check_distinct(shape)
        return shape


def check_max_bytes(value: Any) -> int | None:
    """``None`` (no limit) or a whole number of bytes >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1 \
            or int(value) != value:
        raise ValidationError(f"cache_max_bytes={value!r}: expected a whole number of bytes >= 1, or None (no limit)")
    return int(value)


def check_distinct(shape: PipelineShape) -> None:
    """Stage names and parameter names must each be distinct across the pipeline's stages."""
    seen_stage: set[str] = set()
    owner: dict[str, str] = {}
    for s in shape.stages:
        if s.name in seen_stage:
            raise ValidationError(f"Pipeline: two stages are named {s.name!r}; give each stage its own name")
        seen_stage.add(s.name)
        for p in s.params:
            if p in owner:
                raise ValidationError(f"Pipeline: parameter {p!r} is in stages {owner[p]!r} and {s.name!r}; "
                                      "parameter names must be distinct across stages (rename one)")
            owner[p] = s.name


class Pipeline:
    """Stages run in order for each trial, their outputs memoised on disk (see the module
    docstring and :mod:`thrifty.pipelines.cache`).

    ``stages``: at least one :class:`Stage`; stage names and parameter names distinct across
    stages. ``cache_dir``: the memo cache's folder (default: ``<the study's artifact_root>/cache``,
    i.e. ``./thrifty_artifacts/cache``); ``cache_max_bytes``: the cache's size limit (``None``: no
    limit), enforced after each write by evicting the least recently used entries that no trial is
    reading. Pass it as ``Study.create(pipeline=...)``; the study's objective is then the pipeline.
    A command stage that is first may not read ``{stage_input}`` (it has no input); a command stage
    that is last needs ``metrics`` (the trial's result is read from its output).
    """

    def __init__(self, stages: Sequence[Stage], *, cache_dir: str | None = None,
                 cache_max_bytes: int | None = None) -> None:
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
            raise ValidationError(f"Pipeline(stages={stages!r}): expected a non-empty list of th.Stage")
        for s in stages:
            if not isinstance(s, Stage):
                raise ValidationError(f"Pipeline: {s!r} is not a th.Stage; wrap it: th.Stage('name', function, space={{...}})")
        if cache_dir is not None and (not isinstance(cache_dir, str) or not cache_dir):
            raise ValidationError(f"Pipeline(cache_dir={cache_dir!r}): expected a folder path or None")
        first, last = stages[0], stages[-1]
        if first.runner is not None and first.runner.uses_input:
            raise ValidationError(f"Stage {first.name!r} is the first stage: it has no input, so its command "
                                  "cannot use {stage_input}")
        if last.runner is not None and not last.runner.metrics:
            raise ValidationError(f"Stage {last.name!r} is the last stage and runs a command: give it metrics "
                                  "(the trial's result is read from its output), e.g. "
                                  "metrics={'f1': {'regex': 'f1=([0-9.]+)', 'goal': 'max'}}")
        self.stages: tuple[Stage, ...] = tuple(stages)
        self.shape = PipelineShape(
            tuple(StageShape(s.name, str(s.version), tuple(s.space), s.cache) for s in self.stages),
            cache_dir, check_max_bytes(cache_max_bytes))
        check_distinct(self.shape)
        self.space = Space({name: p for s in self.stages for name, p in s.space.items()})

    @property
    def stage_params(self) -> tuple[tuple[str, ...], ...]:
        """The parameter names of each stage, in stage order."""
        return self.shape.stage_params

    def key(self, stage: int, params: Mapping[str, Any]) -> str:
        """The content address of stages ``0..stage``'s output (:meth:`PipelineShape.key`)."""
        return self.shape.key(stage, params)

    def __len__(self) -> int:
        return len(self.stages)

    def __repr__(self) -> str:
        return f"Pipeline([{', '.join(s.name for s in self.stages)}])"
