"""Build strategies and schedulers from names and stored specs."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, TypeVar

from thrifty.errors import ValidationError

T = TypeVar("T")


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def build(spec: Any, base: type[T], registry: Mapping[str, str], kind: str) -> T:
    """Return ``spec`` if it is already a ``base``; otherwise look its name up in ``registry``
    (or import ``module:Class``) and call the class with the spec's other keys."""
    if isinstance(spec, base):
        return spec
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        kwargs = dict(spec)
        name = kwargs.pop("name")
    else:
        raise ValidationError(
            f"{kind}={spec!r}: expected a name ({', '.join(sorted(registry))}), a dict with a 'name' key, "
            f"or a {base.__name__} instance"
        )
    if name in registry:
        cls = _load(registry[name])
    elif ":" in name:
        try:
            cls = _load(name)
        except (ImportError, AttributeError) as exc:
            raise ValidationError(f"{kind} {name!r} cannot be imported: {exc}") from None
    else:
        raise ValidationError(f"unknown {kind} {name!r}; known: {', '.join(sorted(registry))}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{kind} {name!r}: {exc}") from None
    if not isinstance(obj, base):
        raise ValidationError(f"{kind} {name!r} is a {type(obj).__name__}, not a {base.__name__}")
    return obj
