"""The import rules of ``src/thrifty``, checked by parsing every module with :mod:`ast`.

**No import cycle** among ``src/thrifty`` modules. An import counts wherever it is written: at
module level and inside functions alike (a lazy import inside a function runs as soon as the
function does, so it cannot hide a cycle), except under ``if TYPE_CHECKING:`` (never executed).
Imports by name count too, as imports by the module that holds the string: a ``"module:attribute"``
literal naming a thrifty module anywhere (the registries of strategies and schedulers,
``"thrifty.strategies.tpe:TPE"``), and, in a module that calls ``importlib.import_module``, any
literal that is exactly a thrifty module's name (the lazy table of ``thrifty/__init__.py``). A
package named only to read its data files (``importlib.resources``) is not an import of code.

Packages: ``import a.b.c`` or ``from a.b import c`` (``c`` a module) is an import of ``a.b.c``
alone; ``from a.b import name`` (``name`` not a module) is an import of ``a.b``, i.e. of
``a/b/__init__.py``. A package's ``__init__`` is a module like any other: its re-exports are its
own imports. Python also runs the ``__init__`` of each enclosing package before a submodule, but
that is not counted as an import *by the submodule*: otherwise every package that re-exports its
submodules would be a cycle by construction. So ``thrifty/study/_ask.py`` importing
``thrifty.handle`` and ``thrifty/handle.py`` importing ``thrifty.study`` (the package, whose
``__init__`` imports ``_ask`` through the facade) *is* a cycle.

**No private name used outside its module.** A name with one leading underscore (``_x``, not
``__x__``) may be used only in the module that defines it, or imported from a private module
(``_something.py``) by a module of the package that holds that private module (its subpackages
included). Hence each of these is a violation:

- ``from x import _name`` where ``x`` is not such a private module;
- ``import a._mod`` / ``from a._mod import y`` / ``from a import _mod`` by a module outside
  package ``a``;
- ``obj._attr`` on anything but ``self`` or ``cls`` where ``_attr`` is not defined in the same
  module (a def, class, assignment, parameter, import, or ``self._attr =``); writing
  ``obj._attr = ...`` does not count as defining it.

What counts as private, defined and allowed is decided by :mod:`_private_names`, shared with
:mod:`test_no_private_names` (the same rules for ``tests/``). Every violation is printed with ``file:line``. Those in files that other engineers are changing
right now are in :data:`ALLOWED` (the lead empties it once their branches are merged); an entry
that no longer matches anything fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _private_names import (
    defined_private_names,
    is_private,
    private_attributes,
    private_module_reason,
)

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "thrifty"

#: Accepted exceptions, each with its reason: (file relative to src/thrifty, what). "what" is the
#: private name used (``"_choice_key"``) or, for an import that closes a cycle, ``"-> module"``.
ALLOWED: set[tuple[str, str]] = {
    # Composite strategies build their inner strategy from a name or a stored spec through the
    # registry (``BOHB(inner="gp")``, ``auto`` choosing ``bohb+tpe``), and the registry names every
    # strategy, these two included: a cycle only through the registry's by-name table, resolved at
    # call time. Kept deliberately (a composite accepts any registered strategy as its inner one).
    ("strategies/auto.py", "-> thrifty.strategies"),
    ("strategies/bohb.py", "-> thrifty.strategies"),
}

_THRIFTY_STRING = re.compile(r"^thrifty(\.[A-Za-z_]\w*)+(:\w+)?$")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def package(self) -> str:
        """The package this module belongs to (itself, for a package's ``__init__``)."""
        return self.name if self.is_package else self.name.rpartition(".")[0]

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(SRC.parent)}:{getattr(node, 'lineno', 0)}"

    @property
    def short(self) -> str:
        return str(self.path.relative_to(ROOT))


@dataclass(frozen=True)
class Violation:
    where: str
    file: str  #: relative to src/thrifty, the key of ALLOWED
    what: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _modules() -> dict[str, Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        out[_module_name(path)] = Module(_module_name(path), path, ast.parse(path.read_text(), str(path)))
    return out


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``node`` except the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield child
        yield from _runtime_nodes(child)


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _existing(name: str) -> str | None:
    """The thrifty module ``name`` loads: itself, or the nearest enclosing one that exists."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


@dataclass(frozen=True)
class Edge:
    source: Module
    target: str
    node: ast.AST


def _imports(module: Module) -> Iterator[Edge]:
    nodes = list(_runtime_nodes(module.tree))
    dynamic = any(isinstance(n, ast.Attribute) and n.attr == "import_module" for n in nodes)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _existing(alias.name)
                if target is not None:
                    yield Edge(module, target, node)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            for alias in node.names:
                target = _existing(f"{base}.{alias.name}") if f"{base}.{alias.name}" in MODULES else _existing(base)
                if target is not None:
                    yield Edge(module, target, node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _THRIFTY_STRING.match(node.value):
            target, colon, _ = node.value.partition(":")
            if target in MODULES and (colon or dynamic):  # a module imported by its name
                yield Edge(module, target, node)


def _cycles() -> list[list[Edge]]:
    """The imports inside each strongly connected component of more than one module (Tarjan):
    each such import lies on a cycle. Allowed imports are left out."""
    graph: dict[str, dict[str, Edge]] = {name: {} for name in MODULES}
    for module in MODULES.values():
        for edge in _imports(module):
            if edge.target != module.name and (module.short, f"-> {edge.target}") not in ALLOWED:
                graph[module.name].setdefault(edge.target, edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    # Every import between two modules of one component is part of some cycle: list them all.
    return [[edge for source in sorted(c) for target, edge in sorted(graph[source].items()) if target in c]
            for c in map(set, components)]


def _private_name_violations(module: Module) -> Iterator[Violation]:
    def flag(node: ast.AST, what: str, message: str) -> Violation:
        return Violation(module.where(node), module.short, what, message)

    defined = defined_private_names(module.tree)
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("thrifty") and (why := private_module_reason(module.name, alias.name)):
                    yield flag(node, alias.name.rpartition(".")[2], why)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            if not base.startswith("thrifty"):
                continue
            if why := private_module_reason(module.name, base):
                yield flag(node, base.rpartition(".")[2], why)
                continue
            for alias in node.names:
                if not is_private(alias.name):
                    continue
                full = f"{base}.{alias.name}"
                if full in MODULES:
                    if why := private_module_reason(module.name, full):
                        yield flag(node, alias.name, why)
                    continue
                home = base.rpartition(".")
                if not (is_private(home[2]) and (module.name + ".").startswith(home[0] + ".")):
                    yield flag(node, alias.name, f"imports private name {alias.name} from {base}")
    for attribute, message in private_attributes(module.tree, defined):
        yield flag(attribute, attribute.attr, message)


def _private_violations() -> list[Violation]:
    return [v for module in MODULES.values() for v in _private_name_violations(module)]


def _cycle_violations() -> list[list[Violation]]:
    out = []
    for cycle in _cycles():
        out.append([Violation(e.source.where(e.node), e.source.short, f"-> {e.target}",
                              f"{e.source.name} imports {e.target}") for e in cycle])
    return out


def test_the_parser_sees_every_module_and_its_imports():
    assert "thrifty.study" in MODULES and "thrifty.storage.sql" in MODULES
    edges = {e.target for e in _imports(MODULES["thrifty.study"])}
    assert "thrifty.study._settings" in edges or any(t.startswith("thrifty.study.") for t in edges)


def test_no_import_cycle():
    cycles = _cycle_violations()
    text = "\n\n".join("modules that import each other, through these imports:\n" + "\n".join(f"  {v}" for v in c)
                       for c in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s) among src/thrifty modules:\n{text}"


def test_no_private_name_of_another_module():
    bad = [v for v in _private_violations() if (v.file, v.what) not in ALLOWED]
    text = "\n".join(f"  {v}" for v in bad)
    assert not bad, f"{len(bad)} use(s) of another module's private names:\n{text}"


def test_every_allowed_entry_still_matches_something():
    found = {(v.file, v.what) for v in _private_violations()}
    edges = {(m.short, f"-> {e.target}") for m in MODULES.values() for e in _imports(m)}
    stale = sorted(ALLOWED - found - edges)
    assert not stale, f"remove these entries from ALLOWED in {__file__}, they match nothing now: {stale}"
