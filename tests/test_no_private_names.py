"""Tests exercise thrifty through its public names only, checked by parsing every file under
``tests/`` with :mod:`ast` (the rules of :mod:`test_imports` for ``src``, through the same helper,
:mod:`_private_names`).

A test file is outside every thrifty package, so each of these is a violation:

- ``import thrifty._x`` / ``from thrifty._x import y`` / ``from thrifty import _x`` (a private
  module), and ``from thrifty.x import _name`` (a private name);
- ``obj._attr`` on anything but ``self`` or ``cls``, where ``_attr`` is not defined in the same
  test file (a test's own helpers, fakes and their attributes are its business);
- the same attribute named as a string: ``getattr(obj, "_attr")``, ``setattr``, ``hasattr``,
  ``delattr``, ``monkeypatch.setattr(obj, "_attr", ...)``, ``mock.patch.object``;
- a ``"thrifty.x._y"`` string (a patch target, a ``"module:attribute"`` name).

Python source held in a string (a script a test writes out and runs) is checked like a file.
The checkers themselves (:data:`CHECKERS`) name private modules in strings as their examples:
their strings are not checked, their code is.
Dunders and the standard library's public underscore names (``os._exit``, namedtuple's
``_replace``/``_asdict``) are not private. The test helpers under ``tests/`` (``_cli``,
``_contract``, ...) are modules of the tests themselves and may be imported by any test.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from _private_names import (
    defined_private_names,
    is_private,
    private_attributes,
    private_module_reason,
    private_name_strings,
)

TESTS = Path(__file__).resolve().parent

#: The files whose strings are examples for the checkers, not names to use.
CHECKERS = {"test_imports.py", "test_no_private_names.py", "_private_names.py"}

_THRIFTY_NAME = re.compile(r"^thrifty(\.[A-Za-z_]\w*)+(:\w+)?$")


def _looks_like_a_script(text: str) -> bool:
    return "\n" in text and ("import thrifty" in text or "from thrifty" in text)


def _violations(tree: ast.AST, importer: str, strings: bool = True) -> Iterator[tuple[int, str]]:
    defined = defined_private_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("thrifty") and (why := private_module_reason(importer, alias.name)):
                    yield node.lineno, why
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("thrifty"):
            if why := private_module_reason(importer, node.module):
                yield node.lineno, why
                continue
            for alias in node.names:
                if is_private(alias.name):
                    yield node.lineno, f"imports private name (or module) {alias.name} from {node.module}"
        elif strings and isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _THRIFTY_NAME.match(node.value):
                if why := private_module_reason(importer, node.value.replace(":", ".")):
                    yield node.lineno, f"names {node.value!r}: {why}"
            elif _looks_like_a_script(node.value):
                try:
                    script = ast.parse(node.value)
                except SyntaxError:
                    continue
                for line, message in _violations(script, importer):
                    yield node.lineno + line - 1, f"in the script in this string: {message}"
    for attribute, message in private_attributes(tree, defined):
        yield attribute.lineno, message
    for call, message in private_name_strings(tree, defined):
        yield call.lineno, message


def violations_in(path: Path) -> list[str]:
    """``file:line: message`` for each use of a private name in the test file at ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    where = path.relative_to(TESTS.parent)
    found = _violations(tree, f"tests.{path.stem}", strings=path.name not in CHECKERS)
    return [f"{where}:{line}: {message}" for line, message in sorted(found)]


def _check(source: str) -> list[str]:
    return [message for _, message in _violations(ast.parse(source), "tests.example")]


def test_the_checker_sees_each_kind_of_use():
    assert _check("import thrifty._process")
    assert _check("from thrifty._history import History")
    assert _check("from thrifty import _process")
    assert _check("from thrifty.strategies.tpe import _front_ranks")
    assert _check("study._storage.get_trials()")
    assert _check("getattr(storage, '_committed')")
    assert _check("monkeypatch.setattr(storage, '_committed', None)")
    assert _check("patch('thrifty.runners.local._child_main')")
    assert _check("SCRIPT = '''\nimport thrifty\nfrom thrifty.runners import local\nlocal._child_main()\n'''")


def test_the_checker_lets_public_and_own_names_pass():
    assert not _check("import thrifty.history\nfrom thrifty.storage import SQLStorage as _S\n_S.connect()")
    assert not _check("class C:\n    def f(self, other):\n        self._x = 1\n        return other._x + cls._y")
    assert not _check("os._exit(0)\npoint._replace(x=1)._asdict()\nobj.__class__")
    assert not _check("from _cli import thrifty\nimport json as _json\n_json.dumps(1)")
    assert not _check("def _helper():\n    pass\nmodule._helper()")


def test_no_private_name_in_tests():
    bad = [v for path in sorted(TESTS.rglob("*.py")) for v in violations_in(path)]
    text = "\n".join(f"  {v}" for v in bad)
    assert not bad, f"{len(bad)} use(s) of thrifty's private names in tests (use the public API):\n{text}"
