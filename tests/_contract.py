"""What the strategy and scheduler contract suites share: parametrising the bad-argument cases (with
strict xfail marks for known gaps) and the checks on construction and on ``to_spec()``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from thrifty.errors import ValidationError


def known_gap(known: bool, reason: str) -> list[pytest.MarkDecorator]:
    """A strict xfail mark where a case is a known gap (it fails the run once the gap is closed, so
    the mark is removed with it)."""
    return [pytest.mark.xfail(strict=True, reason=reason)] if known else []


def bad_argument_cases(bad: Mapping[str, Sequence[Mapping[str, Any]]], gap: Callable[[str, str], bool],
                       reason: str) -> list[Any]:
    """One ``(name, kwargs)`` case per bad argument value of each name, strictly xfail where ``gap(name, arg)``."""
    return [pytest.param(name, dict(kwargs), id=f"{name}-{arg}={value!r}", marks=known_gap(gap(name, arg), reason))
            for name, cases in bad.items() for kwargs in cases for arg, value in kwargs.items()]


def assert_refused_naming_the_argument(make: Callable[[Any], Any], spec: Mapping[str, Any], argument: str) -> None:
    """``make(spec)`` raises a one-line ``ValidationError`` that names ``argument``."""
    with pytest.raises(ValidationError) as info:
        make(dict(spec))
    message = str(info.value)
    assert argument in message, f"{message!r} does not name {argument!r}"
    assert "\n" not in message, f"{message!r} is not one line"


def assert_constructor_refuses(make: Callable[[Any], Any], name: str, kwargs: Mapping[str, Any]) -> None:
    """The class registered as ``name`` raises ``ValidationError`` when called with ``kwargs``."""
    cls = type(make(name))
    with pytest.raises(ValidationError):
        cls(**kwargs)


def json_round_trip(make: Callable[[Any], Any], original: Any, name: str) -> Any:
    """Rebuild ``original`` from its ``to_spec()`` sent through JSON (as storage keeps it); check the
    rebuilt object is of the same class with the same spec, and return it."""
    spec = original.to_spec()
    assert spec["name"] == name
    rebuilt = make(json.loads(json.dumps(spec)))
    assert type(rebuilt) is type(original) and rebuilt.to_spec() == spec
    return rebuilt
