"""What counts as using a private name, for the checkers of ``src`` and of ``tests``.

A *private* name has one leading underscore (``_x``; a dunder ``__x__`` is not private). Both
:mod:`test_imports` (the rules of ``src/thrifty``) and :mod:`test_no_private_names` (the rules of
``tests/``) decide with these functions, so the two checks cannot drift apart:

- :func:`private_module_reason`: a dotted module name with a private component used from outside
  the package that holds it;
- :func:`defined_private_names`: the private names a module defines itself (and may therefore use);
- :func:`private_attributes`: ``obj._attr`` on anything but ``self``/``cls``, where ``_attr`` is
  neither defined in the module nor one of the standard library's public underscore names
  (:data:`STDLIB_PUBLIC`);
- :func:`private_name_strings`: the same private attribute named as a string, to ``getattr``,
  ``setattr``, ``hasattr``, ``delattr`` or ``monkeypatch.setattr``/``mock.patch.object``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

#: Names with a leading underscore that are documented public API of the standard library.
STDLIB_PUBLIC = frozenset({"_exit", "_replace", "_asdict", "_fields", "_make", "_field_defaults"})

#: Calls whose second argument names an attribute of their first.
_ATTRIBUTE_CALLS = frozenset({"getattr", "setattr", "hasattr", "delattr", "object"})


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_module_reason(importer: str, dotted: str) -> str | None:
    """Why module ``importer`` may not use module ``dotted`` (a private component outside the
    package that holds it), else ``None``. ``importer`` is a dotted module name; a test module's
    is its file name, which no thrifty package holds."""
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if is_private(part):
            package = ".".join(parts[:i])
            if importer != dotted and not (importer + ".").startswith(package + "."):
                return f"uses private module {dotted} from outside package {package}"
    return None


def defined_private_names(tree: ast.AST) -> set[str]:
    """The private names ``tree`` defines: a def, class, assignment, parameter, import, or
    ``self._attr =`` (writing ``obj._attr = ...`` does not define it)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
              and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            names.add(node.attr)
    return {n for n in names if is_private(n)}


def _allowed(attr: str, owner: ast.expr, defined: set[str]) -> bool:
    return ((isinstance(owner, ast.Name) and owner.id in ("self", "cls"))
            or attr in defined or attr in STDLIB_PUBLIC)


def private_attributes(tree: ast.AST, defined: set[str]) -> Iterator[tuple[ast.Attribute, str]]:
    """Each ``obj._attr`` in ``tree`` that is not allowed, with a message."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr) and not _allowed(node.attr, node.value, defined):
            yield node, f"uses {ast.unparse(node.value)}.{node.attr}, a private name defined in another module"


def private_name_strings(tree: ast.AST, defined: set[str]) -> Iterator[tuple[ast.Call, str]]:
    """Each ``getattr(obj, "_attr")`` (and setattr, hasattr, delattr, ``monkeypatch.setattr``,
    ``mock.patch.object``) in ``tree`` that is not allowed, with a message."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and len(node.args) >= 2):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        target = node.args[1]
        if (name in _ATTRIBUTE_CALLS and isinstance(target, ast.Constant) and isinstance(target.value, str)
                and is_private(target.value) and not _allowed(target.value, node.args[0], defined)):
            yield node, (f"uses {ast.unparse(node.args[0])}.{target.value} by name in {ast.unparse(func)}(), "
                         "a private name defined in another module")
