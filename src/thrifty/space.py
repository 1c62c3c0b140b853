"""Search spaces: parameters, conditions, validation and the unit-cube encoding.

A :class:`Space` maps parameter names to parameter definitions (:class:`Float`, :class:`Int`,
:class:`Categorical`, :class:`Fixed`). A parameter may be *conditional*: ``when={"opt": "sgd"}``
makes it active only when the parent ``opt`` takes the value ``"sgd"`` (several values may be
given as a list; several parents must all match). Inactive parameters are absent from a trial's
params.

Model-based strategies never see raw values: :meth:`Space.encode` maps a parameter set to a vector
in the unit cube (one dimension per non-fixed parameter, ``nan`` where the parameter is inactive)
and :meth:`Space.decode` maps any vector of the cube back to a valid parameter set. The encoding of
ints and categoricals uses the centre of each value's cell, so ``decode(encode(p)) == p`` exactly
for them; floats round-trip to within floating-point error (and are clipped into their bounds).

Fields are strictly typed, in Python and in YAML/JSON alike: ``log`` must be a boolean (the
text ``"false"`` or the number ``0`` is an error, never read as true), ``low``/``high`` must be
numbers (integers for :class:`Int`, as is ``step``), never text such as ``"1e-3"`` (thrifty's
YAML reader takes an unquoted ``1e-3`` as the number, :mod:`thrifty._yaml`). Each error is one
line saying what to write instead.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from thrifty.errors import SpaceError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


Scalar = Union[str, int, float, bool, None]
ParamValue = Union[str, int, float, bool, None]


def _normalize_when(when: Mapping[str, Any] | None) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if when is None:
        return ()
    if not isinstance(when, Mapping) or not when:
        raise SpaceError(
            f"when={when!r}: expected a non-empty mapping of parent name to value(s), "
            'e.g. when={"optimizer": "sgd"}'
        )
    out = []
    for parent, values in when.items():
        if not isinstance(parent, str) or not parent:
            raise SpaceError(f"when={dict(when)!r}: parent names must be non-empty strings")
        if isinstance(values, (list, tuple, set, frozenset)):
            vals = tuple(values)
            if not vals:
                raise SpaceError(f"when={{{parent!r}: []}}: give at least one parent value")
        else:
            vals = (values,)
        out.append((parent, vals))
    return tuple(out)


_TRUE_WORDS = frozenset({"true", "yes", "on", "y", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "n", "0"})


def _wrong_type(label: str, value: Any, expected: str, integer: bool = False) -> SpaceError:
    """The one-line error for a field given the wrong type, saying what to write instead.

    ``label`` is ``"<Class> <field>"``. Text that reads as a number or a boolean gets the
    unquoted spelling to write.
    """
    field_name = label.rsplit(" ", 1)[-1]
    msg = f"{label}={value!r}: expected {expected}, not {type(value).__name__}"
    if expected == "a boolean":
        word = str(value).strip().lower() if isinstance(value, (str, int)) else ""
        if word in _TRUE_WORDS or word in _FALSE_WORDS:
            yes = word in _TRUE_WORDS
            msg += f"; write {field_name}: {'true' if yes else 'false'} unquoted in YAML ({field_name}={yes} in Python)"
        return SpaceError(msg)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return SpaceError(msg)
        if math.isfinite(number) and (not integer or number.is_integer()):
            shown = int(number) if integer else number
            msg += f"; write {field_name}: {shown!r} unquoted"
    return SpaceError(msg)


def _check_bool(label: str, value: Any) -> bool:
    """``value`` if it is a bool; anything else (``"false"``, ``0``) is a :class:`SpaceError`."""
    if not isinstance(value, bool):
        raise _wrong_type(label, value, "a boolean")
    return value


def _check_finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _wrong_type(name, value, "a number")
    if not math.isfinite(value):
        raise SpaceError(f"{name}={value!r}: must be finite")
    return value


@dataclass(frozen=True)
class Param:
    """Base class of parameter definitions. ``when`` holds the activation condition."""

    when: tuple[tuple[str, tuple[Any, ...]], ...] = field(default=(), kw_only=True)

    #: Number of unit-cube dimensions this parameter occupies (0 for :class:`Fixed`).
    n_dims = 1

    def contains(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def normalize(self, name: str, value: Any) -> ParamValue:
        """Return ``value`` in canonical form, or raise :class:`SpaceError` saying why not."""
        raise NotImplementedError  # pragma: no cover

    def to_unit(self, value: Any) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_unit(self, u: float) -> ParamValue:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _when_dict(self) -> dict[str, Any]:
        if not self.when:
            return {}
        return {"when": {p: (list(v) if len(v) > 1 else v[0]) for p, v in self.when}}


class Float(Param):
    """A real number in ``[low, high]``; ``log=True`` samples and models it on a log scale.

    ``low`` and ``high`` are numbers and ``log`` a bool (see the module docstring)."""

    low: float
    high: float
    log: bool

    def __init__(
        self, low: float, high: float, log: bool = False, *, when: Mapping[str, Any] | None = None
    ) -> None:
        low = _check_finite_number("Float low", low)
        high = _check_finite_number("Float high", high)
        log = _check_bool("Float log", log)
        if low >= high:
            raise SpaceError(
                f"Float(low={low}, high={high}): low must be below high "
                "(use Fixed(value) for a constant)"
            )
        if log and low <= 0:
            raise SpaceError(
                f"Float(low={low}, high={high}, log=True): a log-scaled range needs low > 0"
            )
        if not log and not math.isfinite(float(high) - float(low)):
            raise SpaceError(
                f"Float(low={low}, high={high}): the range is too wide to represent (high - low overflows)"
            )
        object.__setattr__(self, "low", float(low))
        object.__setattr__(self, "high", float(high))
        object.__setattr__(self, "log", log)
        object.__setattr__(self, "when", _normalize_when(when))

    def __repr__(self) -> str:
        return f"Float({self.low!r}, {self.high!r}, log={self.log!r}{_when_repr(self.when)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Float) and _canonical(self) == _canonical(other)

    def __hash__(self) -> int:
        return hash(_canonical(self))

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and self.low <= value <= self.high
        )

    def normalize(self, name: str, value: Any) -> float:
        if not self.contains(value):
            raise SpaceError(f"parameter {name!r}={value!r} is outside {self.describe()}")
        return float(value)

    def to_unit(self, value: Any) -> float:
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return (math.log(value) - lo) / (hi - lo)
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        # The ends are exact (exp(log(x)) and low + (high - low) may be off by an ulp).
        if u == 0.0:
            return self.low
        if u == 1.0:
            return self.high
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            v = math.exp(lo + u * (hi - lo))
        else:
            v = self.low + u * (self.high - self.low)
        return min(max(v, self.low), self.high)

    def describe(self) -> str:
        return f"[{self.low}, {self.high}]" + (" (log)" if self.log else "")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "float", "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        return d | self._when_dict()


class Int(Param):
    """An integer in ``[low, high]`` on a grid of ``step``; ``log=True`` for a log scale.

    ``low``, ``high`` and ``step`` are integers (a float with no fraction is accepted) and
    ``log`` a bool (see the module docstring)."""

    low: int
    high: int
    log: bool
    step: int

    def __init__(
        self,
        low: int,
        high: int,
        log: bool = False,
        step: int = 1,
        *,
        when: Mapping[str, Any] | None = None,
    ) -> None:
        for label, v in (("low", low), ("high", high), ("step", step)):
            if isinstance(v, bool) or not isinstance(v, int):
                if isinstance(v, float) and v.is_integer():
                    continue
                raise _wrong_type(f"Int {label}", v, "an integer", integer=True)
        log = _check_bool("Int log", log)
        low, high, step = int(low), int(high), int(step)
        if low >= high:
            raise SpaceError(
                f"Int(low={low}, high={high}): low must be below high "
                "(use Fixed(value) for a constant)"
            )
        if step < 1:
            raise SpaceError(f"Int(step={step}): step must be a positive integer")
        if log and low <= 0:
            raise SpaceError(f"Int(low={low}, high={high}, log=True): a log-scaled range needs low > 0")
        if log and step != 1:
            raise SpaceError(f"Int(step={step}, log=True): a log-scaled Int must have step=1")
        if (high - low) % step:
            raise SpaceError(
                f"Int(low={low}, high={high}, step={step}): high - low must be a multiple of step "
                f"(e.g. high={low + (high - low) // step * step})"
            )
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "log", log)
        object.__setattr__(self, "step", step)
        object.__setattr__(self, "when", _normalize_when(when))

    def __repr__(self) -> str:
        extra = f", step={self.step}" if self.step != 1 else ""
        return f"Int({self.low}, {self.high}, log={self.log!r}{extra}{_when_repr(self.when)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Int) and _canonical(self) == _canonical(other)

    def __hash__(self) -> int:
        return hash(_canonical(self))

    @property
    def n_values(self) -> int:
        """How many distinct values the parameter can take."""
        return (self.high - self.low) // self.step + 1

    def values(self) -> list[int]:
        """Every value of the parameter, ascending."""
        return list(range(self.low, self.high + 1, self.step))

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if isinstance(value, float):
            if not value.is_integer():
                return False
            value = int(value)
        if not isinstance(value, int):
            return False
        return self.low <= value <= self.high and (value - self.low) % self.step == 0

    def normalize(self, name: str, value: Any) -> int:
        if not self.contains(value):
            grid = f" with step {self.step}" if self.step != 1 else ""
            raise SpaceError(
                f"parameter {name!r}={value!r} is not an integer in [{self.low}, {self.high}]{grid}"
            )
        return int(value)

    def log_bounds(self) -> tuple[float, float]:
        """The natural logs of the ends of a log-scaled Int's range in the unit cube: value ``v``
        owns the cell from ``log(v - 0.5)`` to ``log(v + 0.5)``, and the cube runs from
        ``log(low - 0.5)`` (``log(low / 2)`` when ``low`` is at most 0.5) to ``log(high + 0.5)``."""
        return math.log(self.low - 0.5 if self.low > 0.5 else self.low / 2), math.log(self.high + 0.5)

    def to_unit(self, value: Any) -> float:
        value = int(value)
        if self.log:
            lo, hi = self.log_bounds()
            return (math.log(value) - lo) / (hi - lo)
        return ((value - self.low) // self.step + 0.5) / self.n_values

    def from_unit(self, u: float) -> int:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            lo, hi = self.log_bounds()
            v = int(round(math.exp(lo + u * (hi - lo))))
            return min(max(v, self.low), self.high)
        i = min(int(u * self.n_values), self.n_values - 1)
        return self.low + i * self.step

    def describe(self) -> str:
        s = f"integers in [{self.low}, {self.high}]"
        if self.step != 1:
            s += f" step {self.step}"
        return s + (" (log)" if self.log else "")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "int", "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step != 1:
            d["step"] = self.step
        return d | self._when_dict()


class Categorical(Param):
    """One of a list of distinct choices (strings, numbers, booleans or None)."""

    choices: tuple[Scalar, ...]

    def __init__(self, choices: Iterable[Scalar], *, when: Mapping[str, Any] | None = None) -> None:
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
            raise SpaceError(f"Categorical({choices!r}): choices must be a list of values")
        items = tuple(choices)
        if not items:
            raise SpaceError("Categorical([]): give at least one choice")
        for c in items:
            if c is not None and not isinstance(c, (str, int, float, bool)):
                raise SpaceError(
                    f"Categorical choice {c!r} has type {type(c).__name__}: choices must be "
                    "str, int, float, bool or None (they are stored as JSON)"
                )
            if isinstance(c, float) and not math.isfinite(c):
                raise SpaceError(f"Categorical choice {c!r}: must be finite")
        keys = [_choice_key(c) for c in items]
        if len(set(keys)) != len(keys):
            dupes = sorted({repr(c) for c, k in zip(items, keys) if keys.count(k) > 1})
            raise SpaceError(f"Categorical({list(items)!r}): duplicate choices {', '.join(dupes)}")
        object.__setattr__(self, "choices", items)
        object.__setattr__(self, "when", _normalize_when(when))

    def __repr__(self) -> str:
        return f"Categorical({list(self.choices)!r}{_when_repr(self.when)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Categorical) and _canonical(self) == _canonical(other)

    def __hash__(self) -> int:
        return hash(_canonical(self))

    def index(self, value: Any) -> int:
        """Position of ``value`` among the choices; raises :class:`SpaceError` (a ``ValueError``) if absent."""
        key = _choice_key(value)
        for i, c in enumerate(self.choices):
            if _choice_key(c) == key:
                return i
        raise SpaceError(f"{value!r} is not one of the choices {list(self.choices)!r}")

    def contains(self, value: Any) -> bool:
        try:
            self.index(value)
        except ValueError:
            return False
        return True

    def normalize(self, name: str, value: Any) -> Scalar:
        try:
            return self.choices[self.index(value)]
        except ValueError:
            raise SpaceError(
                f"parameter {name!r}={value!r} is not one of {list(self.choices)!r}"
            ) from None

    def to_unit(self, value: Any) -> float:
        return (self.index(value) + 0.5) / len(self.choices)

    def from_unit(self, u: float) -> Scalar:
        u = min(max(float(u), 0.0), 1.0)
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def describe(self) -> str:
        return f"one of {list(self.choices)!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices)} | self._when_dict()


class Fixed(Param):
    """A constant: always present (when active) with the given value; no search dimension."""

    value: Scalar
    n_dims = 0

    def __init__(self, value: Scalar, *, when: Mapping[str, Any] | None = None) -> None:
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise SpaceError(
                f"Fixed({value!r}): the value must be str, int, float, bool or None (stored as JSON)"
            )
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "when", _normalize_when(when))

    def __repr__(self) -> str:
        return f"Fixed({self.value!r}{_when_repr(self.when)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fixed) and _canonical(self) == _canonical(other)

    def __hash__(self) -> int:
        return hash(_canonical(self))

    def contains(self, value: Any) -> bool:
        return _choice_key(value) == _choice_key(self.value)

    def normalize(self, name: str, value: Any) -> Scalar:
        if not self.contains(value):
            raise SpaceError(f"parameter {name!r}={value!r} must equal its fixed value {self.value!r}")
        return self.value

    def to_unit(self, value: Any) -> float:
        return 0.5

    def from_unit(self, u: float) -> Scalar:
        return self.value

    def describe(self) -> str:
        return f"fixed at {self.value!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "fixed", "value": self.value} | self._when_dict()


def _canonical(obj: Param | Space) -> str:
    """The JSON text of ``obj.to_dict()`` with sorted keys: the basis of ``==`` and ``hash``.

    Comparing JSON text rather than dicts keeps ``True`` apart from ``1`` and ``1`` from ``1.0``
    (which decode to different values), and keeps ``==`` consistent with ``hash``.
    """
    return json.dumps(obj.to_dict(), sort_keys=True, default=str)


def _choice_key(value: Any) -> tuple[str, Any]:
    """A key under which ``True`` and ``1`` (and ``1`` and ``1.0``) are different choices."""
    if isinstance(value, bool) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, (int, float)):
        return ("num", float(value))
    return (type(value).__name__, value)


def _when_repr(when: tuple[tuple[str, tuple[Any, ...]], ...]) -> str:
    if not when:
        return ""
    d = {p: (list(v) if len(v) > 1 else v[0]) for p, v in when}
    return f", when={d!r}"


_PARAM_TYPES: dict[str, type[Param]] = {
    "float": Float,
    "int": Int,
    "categorical": Categorical,
    "fixed": Fixed,
}


def param_from_dict(name: str, spec: Any) -> Param:
    """Build a parameter from its dict form (``{"type": "float", "low": 0, "high": 1}``).

    Shorthands: a list is a :class:`Categorical`; a scalar is a :class:`Fixed`. Unknown and
    missing keys are errors that name the keys the type takes.
    """
    if isinstance(spec, Param):
        return spec
    if isinstance(spec, list):
        return Categorical(spec)
    if spec is None or isinstance(spec, (str, int, float, bool)):
        return Fixed(spec)
    if not isinstance(spec, Mapping):
        raise SpaceError(f"parameter {name!r}: cannot read {spec!r} as a parameter definition")
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind is None:
        raise SpaceError(
            f"parameter {name!r}: missing 'type' (one of {', '.join(_PARAM_TYPES)})"
        )
    cls = _PARAM_TYPES.get(str(kind).lower())
    if cls is None:
        raise SpaceError(
            f"parameter {name!r}: unknown type {kind!r} (expected one of {', '.join(_PARAM_TYPES)})"
        )
    fields = inspect.signature(cls).parameters
    unknown = sorted(set(spec) - set(fields))
    missing = [f for f, p in fields.items() if p.default is inspect.Parameter.empty and f not in spec]
    if unknown or missing:
        what = (f"unknown key(s) {', '.join(map(repr, unknown))}" if unknown
                else f"missing {', '.join(map(repr, missing))}")
        raise SpaceError(f"parameter {name!r} ({kind}): {what}; the keys are type, {', '.join(fields)}")
    try:
        return cls(**spec)
    except SpaceError as exc:
        raise SpaceError(f"parameter {name!r}: {exc}") from None


class Space(Mapping[str, Param]):
    """An immutable, validated search space.

    Iteration order is a topological order (every parent before its children, otherwise the
    declaration order), which is the order in which parameters are sampled and encoded.
    """

    def __init__(self, params: Mapping[str, Param | Any]) -> None:
        if isinstance(params, Space):
            params = dict(params.items())
        if not isinstance(params, Mapping):
            raise SpaceError(f"Space({params!r}): expected a mapping of name to parameter")
        if not params:
            raise SpaceError("Space({}): a search space needs at least one parameter")
        parsed: dict[str, Param] = {}
        for name, spec in params.items():
            if not isinstance(name, str) or not name:
                raise SpaceError(f"parameter name {name!r}: names must be non-empty strings")
            parsed[name] = param_from_dict(name, spec)
        self._params = self._validated_order(parsed)
        self._dim_names = tuple(n for n, p in self._params.items() if p.n_dims)
        self._dim_index = {n: i for i, n in enumerate(self._dim_names)}

    # -- Mapping protocol -------------------------------------------------------------------
    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"Space({self._params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and _canonical(self) == _canonical(other)

    def __hash__(self) -> int:
        return hash(_canonical(self))

    # -- validation -------------------------------------------------------------------------
    @staticmethod
    def _validated_order(params: dict[str, Param]) -> dict[str, Param]:
        for name, p in params.items():
            for parent, values in p.when:
                if parent == name:
                    raise SpaceError(f"parameter {name!r} cannot be conditional on itself")
                if parent not in params:
                    raise SpaceError(
                        f"parameter {name!r}: when refers to unknown parent {parent!r} "
                        f"(known: {', '.join(sorted(params))})"
                    )
                pp = params[parent]
                if isinstance(pp, Float):
                    raise SpaceError(
                        f"parameter {name!r}: parent {parent!r} is a Float; conditions need a "
                        "Categorical, Int or Fixed parent"
                    )
                for v in values:
                    if not pp.contains(v):
                        raise SpaceError(
                            f"parameter {name!r}: when {{{parent!r}: {v!r}}} can never hold, "
                            f"{parent!r} is {pp.describe()}"
                        )
        # Kahn's algorithm, stable in declaration order; leftover nodes form a cycle.
        order: list[str] = []
        remaining = dict(params)
        while remaining:
            ready = [
                n for n, p in remaining.items() if all(par not in remaining for par, _ in p.when)
            ]
            if not ready:
                cycle = " -> ".join(_find_cycle({n: [par for par, _ in p.when] for n, p in remaining.items()}))
                raise SpaceError(f"conditions form a cycle: {cycle}")
            for n in ready:
                order.append(n)
                del remaining[n]
        return {n: params[n] for n in order}

    # -- activity and parameter sets --------------------------------------------------------
    def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        """Whether ``name`` is active given the (already decided) values of its parents."""
        for parent, values in self._params[name].when:
            if parent not in params:
                return False
            key = _choice_key(params[parent])
            if not any(_choice_key(v) == key for v in values):
                return False
        return True

    def validate(self, params: Mapping[str, Any]) -> dict[str, ParamValue]:
        """Check a full parameter set and return it normalized, in space order.

        Fixed parameters may be omitted (they are filled in). Every active parameter must be
        present; unknown and inactive parameters are errors.
        """
        if not isinstance(params, Mapping):
            raise SpaceError(f"params must be a mapping of name to value, got {type(params).__name__}")
        unknown = sorted(set(params) - set(self._params))
        if unknown:
            raise SpaceError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))}; the space has "
                f"{', '.join(map(repr, self._params))}"
            )
        out: dict[str, ParamValue] = {}
        for name, p in self._params.items():
            active = self.is_active(name, out)
            if not active:
                if name in params:
                    cond = ", ".join(f"{par}={list(v)!r}" for par, v in p.when)
                    raise SpaceError(
                        f"parameter {name!r} is inactive here (active only when {cond}); remove it"
                    )
                continue
            if name not in params:
                if isinstance(p, Fixed):
                    out[name] = p.value
                    continue
                raise SpaceError(f"parameter {name!r} is missing ({p.describe()})")
            out[name] = p.normalize(name, params[name])
        return out

    def contains(self, params: Mapping[str, Any]) -> bool:
        try:
            self.validate(params)
        except SpaceError:
            return False
        return True

    # -- unit-cube encoding -----------------------------------------------------------------
    @property
    def dim_names(self) -> tuple[str, ...]:
        """Names of the parameters that occupy a unit-cube dimension, in encoding order."""
        return self._dim_names

    @property
    def n_dims(self) -> int:
        return len(self._dim_names)

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Map a parameter set to the unit cube; inactive dimensions are ``nan``.

        The one-row form of :meth:`Encoder.encode <thrifty.encoding.Encoder.encode>` (same values,
        bit for bit; one row at a time is faster here than through arrays)."""
        import numpy as np

        x = np.full(len(self._dim_names), np.nan)
        for name, i in self._dim_index.items():
            if name in params:
                x[i] = self._params[name].to_unit(params[name])
        return x

    def decode(self, x: Sequence[float] | np.ndarray) -> dict[str, ParamValue]:
        """Map a point of the unit cube to a valid parameter set (conditions applied).

        The one-row form of :meth:`Encoder.decode <thrifty.encoding.Encoder.decode>` (same
        parameter sets)."""
        if len(x) != len(self._dim_names):
            raise SpaceError(f"decode: expected a vector of length {len(self._dim_names)}, got {len(x)}")
        out: dict[str, ParamValue] = {}
        for name, p in self._params.items():
            if not self.is_active(name, out):
                continue
            if isinstance(p, Fixed):
                out[name] = p.value
                continue
            u = float(x[self._dim_index[name]])
            if math.isnan(u):
                u = 0.5
            out[name] = p.from_unit(u)
        return out

    # -- serialization ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: p.to_dict() for name, p in self._params.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Space:
        return cls(data)

    @classmethod
    def from_json(cls, text: str) -> Space:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpaceError(f"space JSON is invalid: {exc}") from None
        return cls(data)

    @classmethod
    def from_yaml(cls, text: str) -> Space:
        from thrifty import _yaml as yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpaceError(f"space YAML is invalid: {exc}") from None
        return cls(data)

    @classmethod
    def from_file(cls, path: str) -> Space:
        """Load a space from a ``.json``, ``.yaml`` or ``.yml`` file."""
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if path.endswith(".json"):
            return cls.from_json(text)
        return cls.from_yaml(text)

    @classmethod
    def from_configspace(cls, cs: Any) -> Space:
        """Convert a ``ConfigSpace.ConfigurationSpace`` (needs the ConfigSpace package).

        Supported: uniform floats and integers (log or not), categoricals, ordinals (as
        categoricals), constants, and ``EqualsCondition`` / ``InCondition`` conditions.
        """
        from thrifty._configspace import params_from_configspace

        return cls(params_from_configspace(cs))


def _find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """Return one cycle (as a path that ends where it starts) of a graph that has one."""
    for start in graph:
        path = [start]
        seen = {start}
        node = start
        while True:
            nxt = next((p for p in graph.get(node, []) if p in graph), None)
            if nxt is None:
                break
            path.append(nxt)
            if nxt in seen:
                return path[path.index(nxt):]
            seen.add(nxt)
            node = nxt
    return list(graph)  # pragma: no cover - only called when a cycle exists
