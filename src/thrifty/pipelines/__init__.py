"""Multi-stage pipelines and the memo cache of their stage outputs.

- :mod:`thrifty.pipelines.stage`: :class:`Stage`, :class:`Pipeline`, the stored
  :class:`PipelineShape` and the content address of a stage prefix's output.
- :mod:`thrifty.pipelines.command`: command stages (``th.Stage(name, command=...)``), a program
  run by the script runner's machinery in a stage folder, its output a folder.
- :mod:`thrifty.pipelines.cache`: :class:`DiskCache`, the on-disk store (pickled files and
  folders; atomic writes, shared locks while reading, LRU eviction that skips what is being read),
  and :class:`CachedPrefix`, what a strategy learns of it.
- :mod:`thrifty.pipelines.run`: :class:`PipelineObjective`, a trial's pass through the pipeline,
  charged stage by stage.
"""

from __future__ import annotations

from thrifty.pipelines.cache import CachedPrefix, DiskCache, cached_prefixes
from thrifty.pipelines.run import PipelineObjective
from thrifty.pipelines.stage import Pipeline, PipelineShape, Stage, StageShape

__all__ = ["CachedPrefix", "DiskCache", "Pipeline", "PipelineObjective", "PipelineShape", "Stage", "StageShape",
           "cached_prefixes"]
