"""The study: :class:`Study` (the facade users hold) and its settings.

The facade lives in :mod:`thrifty.study._study`; its private siblings each do one job (see that
module's docstring). The names here are the public ones.
"""

from __future__ import annotations

from thrifty.errors import StudyExhausted
from thrifty.ranking import is_feasible
from thrifty.study._settings import DIRECTIONS, SETTING_NAMES, StudySettings, normalize_settings, parse_objectives
from thrifty.study._study import Objective, Study

__all__ = ["DIRECTIONS", "SETTING_NAMES", "Objective", "Study", "StudyExhausted", "StudySettings", "is_feasible",
           "normalize_settings", "parse_objectives"]
