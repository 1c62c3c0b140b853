"""YAML as thrifty reads it: PyYAML's safe loader, with numbers as YAML 1.2 writes them.

PyYAML follows YAML 1.1, where a float needs a ``.``: ``1e-3`` is read as the text ``"1e-3"``
and a strictly typed field would then refuse it. thrifty's configs, spaces and price catalogues
read ``1e-3``, ``5E+2`` and ``-2e4`` as the numbers they look like; everything else is unchanged.
"""

from __future__ import annotations

import re
from typing import IO, Any

import yaml

#: A number in exponent notation without a ``.`` (YAML 1.2 reads it as a float; YAML 1.1 as text).
_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """The safe loader plus :data:`_EXPONENT_FLOAT` as a float."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))

YAMLError = yaml.YAMLError


def safe_load(stream: str | IO[str]) -> Any:
    """``yaml.safe_load``, reading ``1e-3`` as a number."""
    return yaml.load(stream, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
