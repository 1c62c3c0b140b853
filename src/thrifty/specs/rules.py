"""Rules for an algorithm's arguments, shared by every spec (:mod:`thrifty.specs`).

A :class:`Rule` checks one value and returns it in the form the algorithm keeps (numbers as
``float``, whole numbers as ``int``). A value it refuses raises
:class:`~thrifty.errors.ValidationError` with one line naming the owner, the argument, the value
and what is allowed: ``ASHA(reduction_factor=1): expected a finite number > 1``.

Booleans are never numbers (``True`` is not ``1`` here), and a boolean argument takes only
``True`` or ``False`` (the string ``"false"`` is refused, not read as true).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from thrifty.errors import ValidationError


def refuse(owner: str, name: str, value: Any, expected: str) -> NoReturn:
    """Raise the one-line error of argument ``name`` of ``owner``."""
    raise ValidationError(f"{owner}({name}={value!r}): expected {expected}")


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Rule:
    """What a value must be (``expected``, in words after "expected"), the test and the
    conversion applied to an accepted value."""

    expected: str
    test: Callable[[Any], bool]
    convert: Callable[[Any], Any] = _same

    def __call__(self, owner: str, name: str, value: Any) -> Any:
        if not self.test(value):
            refuse(owner, name, value, self.expected)
        return self.convert(value)

    def or_none(self, meaning: str = "") -> Rule:
        """This rule, or ``None`` (``meaning``: what ``None`` stands for, said in the message)."""
        why = f" ({meaning})" if meaning else ""
        return Rule(f"{self.expected} or None{why}", lambda v: v is None or self.test(v),
                    lambda v: None if v is None else self.convert(v))


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(least: int | None = None, why: str = "") -> Rule:
    """A whole number (not a bool, not ``2.0``), at least ``least``; kept as ``int``."""
    text = "an integer" + (f" >= {least}" if least is not None else "") + (f" ({why})" if why else "")
    return Rule(text, lambda v: _is_int(v) and (least is None or v >= least), int)


def number(*, above: float | None = None, at_least: float | None = None, below: float | None = None,
           at_most: float | None = None, words: str = "") -> Rule:
    """A finite real number within the given bounds (open: ``above``/``below``; closed:
    ``at_least``/``at_most``); kept as ``float``. ``words`` replaces the generated description."""
    low = above if above is not None else at_least
    high = below if below is not None else at_most
    if words:
        text = words
    elif low is not None and high is not None:
        text = f"a number in {'(' if above is not None else '['}{low:g}, {high:g}{')' if below is not None else ']'}"
    elif low is not None:
        text = f"a finite number {'>' if above is not None else '>='} {low:g}"
    elif high is not None:
        text = f"a finite number {'<' if below is not None else '<='} {high:g}"
    else:
        text = "a finite number"

    def test(v: Any) -> bool:
        return (_is_number(v) and math.isfinite(v) and (above is None or v > above)
                and (at_least is None or v >= at_least) and (below is None or v < below)
                and (at_most is None or v <= at_most))

    return Rule(text, test, float)


#: A finite number above zero.
POSITIVE = number(above=0)
#: A probability.
PROBABILITY = number(at_least=0, at_most=1, words="a probability in [0, 1]")
#: ``True`` or ``False``.
BOOLEAN = Rule("True or False", lambda v: isinstance(v, bool))


def maybe_boolean(meaning: str) -> Rule:
    """``True``, ``False`` or ``None`` (``meaning``: what ``None`` does)."""
    return Rule(f"True, False or None ({meaning})", lambda v: v is None or isinstance(v, bool))


def one_of(*choices: str, why: str = "") -> Rule:
    """One of the given strings."""
    listed = " or ".join(repr(c) for c in choices) if len(choices) <= 2 else \
        ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
    return Rule(listed + (f" ({why})" if why else ""), lambda v: isinstance(v, str) and v in choices)


#: A metric's name, or ``None`` for the study's one objective.
METRIC = Rule("a metric name (a non-empty string) or None (the study's one objective)",
              lambda v: v is None or (isinstance(v, str) and bool(v.strip())))
