"""Conversion of a ``ConfigSpace.ConfigurationSpace`` into a thrifty :class:`~thrifty.space.Space`.

Only what a thrifty space can express exactly is converted:

=======================================  ==============================================
ConfigSpace                              thrifty
=======================================  ==============================================
``UniformFloatHyperparameter``           :class:`~thrifty.space.Float` (``log`` kept)
``UniformIntegerHyperparameter``         :class:`~thrifty.space.Int` (``log`` kept)
``CategoricalHyperparameter``            :class:`~thrifty.space.Categorical` (uniform weights only)
``OrdinalHyperparameter``                :class:`~thrifty.space.Categorical` (in sequence order)
``Constant``                             :class:`~thrifty.space.Fixed`
``EqualsCondition``                      ``when={parent: value}``
``InCondition``                          ``when={parent: [values]}``
``AndConjunction`` of the two above      one ``when`` key per parent
=======================================  ==============================================

Everything else (normal and beta distributions, weighted categoricals, ``OrConjunction``,
``NotEqualsCondition`` and the ordering conditions, forbidden clauses, ...) raises
:class:`~thrifty.errors.SpaceError` naming the hyperparameter and what is unsupported, rather than
silently producing a different search space. Default values and ``meta`` are not carried over.

ConfigSpace is an optional dependency (``pip install ConfigSpace``); it is imported only when a
conversion is requested.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from thrifty.errors import SpaceError

#: A parameter in the space's dict form (what :func:`thrifty.space.param_from_dict` reads).
ParamSpec = dict[str, Any]

__all__ = ["params_from_configspace"]

_INSTALL_HINT = "pip install ConfigSpace (or pip install 'thrifty[configspace]')"


def _import_configspace() -> Any:
    """Import and return the ``ConfigSpace`` module, or raise :class:`SpaceError` with a hint."""
    try:
        import ConfigSpace
    except ImportError:
        raise SpaceError(
            f"Space.from_configspace needs the ConfigSpace package, which is not installed: {_INSTALL_HINT}"
        ) from None
    return ConfigSpace


def _plain(value: Any) -> Any:
    """Turn numpy scalars (which ConfigSpace may hand out) into plain Python values."""
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes)) and callable(item):
        try:
            return item()
        except (TypeError, ValueError):  # pragma: no cover - not a numpy scalar after all
            return value
    return value


def _convert_hyperparameter(CS: Any, hp: Any) -> ParamSpec:
    """Convert one ConfigSpace hyperparameter (without its condition) to a thrifty parameter's
    dict form."""
    name = hp.name
    kind = type(hp).__name__
    try:
        # Exact classes are checked first: the normal and beta variants share the Float/Integer
        # base classes but not the uniform ones, so isinstance on the uniform classes is safe.
        if isinstance(hp, CS.UniformFloatHyperparameter):
            return {"type": "float", "low": float(_plain(hp.lower)), "high": float(_plain(hp.upper)), "log": bool(hp.log)}
        if isinstance(hp, CS.UniformIntegerHyperparameter):
            return {"type": "int", "low": int(_plain(hp.lower)), "high": int(_plain(hp.upper)), "log": bool(hp.log)}
        if isinstance(hp, CS.CategoricalHyperparameter):
            weights = getattr(hp, "weights", None)
            if weights is not None:
                ws = [float(_plain(w)) for w in weights]
                if any(not math.isclose(w, ws[0]) for w in ws):
                    raise SpaceError(
                        f"hyperparameter {name!r} ({kind}): non-uniform weights {tuple(ws)!r} are not "
                        "supported (thrifty samples categorical choices uniformly); drop the weights"
                    )
            return {"type": "categorical", "choices": [_plain(c) for c in hp.choices]}
        if isinstance(hp, CS.OrdinalHyperparameter):
            return {"type": "categorical", "choices": [_plain(c) for c in hp.sequence]}
        if isinstance(hp, CS.Constant):
            return {"type": "fixed", "value": _plain(hp.value)}
    except SpaceError as exc:
        message = str(exc)
        if message.startswith(f"hyperparameter {name!r}"):
            raise
        raise SpaceError(f"hyperparameter {name!r} ({kind}): {message}") from None
    distribution = ""
    if "Normal" in kind:
        distribution = " (a normal distribution)"
    elif "Beta" in kind:
        distribution = " (a beta distribution)"
    raise SpaceError(
        f"hyperparameter {name!r}: {kind}{distribution} is not supported; thrifty converts "
        "UniformFloatHyperparameter, UniformIntegerHyperparameter, CategoricalHyperparameter, "
        "OrdinalHyperparameter and Constant"
    )


def _literal_conditions(CS: Any, condition: Any, child: str) -> list[tuple[str, list[Any]]]:
    """Flatten ``condition`` into ``(parent, allowed values)`` pairs that must all hold.

    Accepts ``EqualsCondition``, ``InCondition`` and (nested) ``AndConjunction`` of them.
    """
    if isinstance(condition, CS.EqualsCondition):
        return [(condition.parent.name, [_plain(condition.value)])]
    if isinstance(condition, CS.InCondition):
        return [(condition.parent.name, [_plain(v) for v in condition.values])]
    if isinstance(condition, CS.AndConjunction):
        out: list[tuple[str, list[Any]]] = []
        for component in condition.components:
            out.extend(_literal_conditions(CS, component, child))
        return out
    if isinstance(condition, CS.OrConjunction):
        what = "an OrConjunction (thrifty conditions can only require all parents to match)"
    else:
        what = f"a {type(condition).__name__}"
    raise SpaceError(
        f"hyperparameter {child!r}: its condition {condition} is {what}, which is not supported; "
        "thrifty converts EqualsCondition, InCondition and AndConjunction of them"
    )


def _when_from_condition(CS: Any, condition: Any, child: str) -> dict[str, Any]:
    """Build a thrifty ``when`` mapping from a ConfigSpace condition on ``child``.

    Several literals on the same parent (possible inside an ``AndConjunction``) are intersected.
    """
    allowed: dict[str, list[Any]] = {}
    for parent, values in _literal_conditions(CS, condition, child):
        if parent in allowed:
            keep = allowed[parent]
            allowed[parent] = [v for v in keep if any(_same_value(v, w) for w in values)]
            if not allowed[parent]:
                raise SpaceError(
                    f"hyperparameter {child!r}: its condition {condition} can never hold "
                    f"(no value of {parent!r} satisfies every part)"
                )
        else:
            allowed[parent] = list(values)
    return {parent: (vals[0] if len(vals) == 1 else vals) for parent, vals in allowed.items()}


def _same_value(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` and ``1`` apart, as thrifty categoricals do."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _names_in_forbidden(clause: Any) -> list[str]:
    """Names of the hyperparameters a forbidden clause mentions, in first-seen order."""
    names: list[str] = []

    def visit(c: Any) -> None:
        for attr in ("hyperparameter", "left", "right"):
            hp = getattr(c, attr, None)
            if hp is not None and getattr(hp, "name", None) not in names:
                names.append(hp.name)
        components = getattr(c, "components", None)
        if isinstance(components, Iterable):
            for sub in components:
                visit(sub)

    visit(clause)
    return names


def params_from_configspace(cs: Any) -> dict[str, ParamSpec]:
    """Convert a ``ConfigSpace.ConfigurationSpace`` into the dict form of an equivalent thrifty
    space (what :class:`~thrifty.space.Space` is built from; see ``Space.from_configspace``).

    See the module docstring for what is supported. Raises :class:`SpaceError` naming the
    hyperparameter and the unsupported feature for anything that cannot be converted exactly, and
    when ConfigSpace is not installed.
    """
    CS = _import_configspace()
    if not isinstance(cs, CS.ConfigurationSpace):
        raise SpaceError(
            f"Space.from_configspace: expected a ConfigSpace.ConfigurationSpace, got {type(cs).__name__}"
        )

    forbidden = list(cs.forbidden_clauses)
    if forbidden:
        clause = forbidden[0]
        names = _names_in_forbidden(clause)
        label = "hyperparameter" if len(names) == 1 else "hyperparameters"
        raise SpaceError(
            f"{label} {', '.join(repr(n) for n in names)}: the forbidden clause {clause} is not supported "
            f"(thrifty spaces have no forbidden combinations; {len(forbidden)} clause(s) in the space)"
        )

    params: dict[str, ParamSpec] = {hp.name: _convert_hyperparameter(CS, hp) for hp in cs.values()}

    for condition in cs.conditions:
        child = condition.child.name
        when = _when_from_condition(CS, condition, child)
        p = params[child]
        if p.get("when"):  # pragma: no cover - ConfigSpace allows one condition object per child
            raise SpaceError(f"hyperparameter {child!r}: has more than one condition")
        params[child] = {**p, "when": when}

    return params
