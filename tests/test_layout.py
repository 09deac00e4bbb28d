"""The test tree's layout: a ``test_*.py`` module holds tests, and what several modules share (fixtures,
live servers, helper classes and functions, constants) lives in ``tests/support/`` or ``tests/fixtures/``.
So no module under ``tests/`` imports a test module, and each test module can be run, moved or deleted on
its own. Imports are read with ``ast``, at any depth (an import inside a function counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent

# (importing file, imported test module) pairs allowed for now: none. Keep it empty.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def is_test_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "tests" and parts[-1].startswith("test_")


def imported_modules(source: str, module: str) -> set[str]:
    """Every module that ``source``, the text of the module named ``module``, imports: relative imports
    resolved, and for ``from a import b`` both ``a`` and ``a.b`` (``b`` may be a module)."""
    package = module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _test_module_imports() -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for path in TESTS.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        imported = imported_modules(path.read_text(encoding="utf-8"), module)
        pairs.update((path.relative_to(ROOT).as_posix(), name) for name in imported if is_test_module(name))
    return pairs


def test_no_module_imports_a_test_module() -> None:
    unexpected = sorted(_test_module_imports() - KNOWN_EXCEPTIONS)
    assert not unexpected, (
        "move what these take into tests/support/ (a shared fixture's module goes into tests/conftest.py's "
        f"pytest_plugins): {unexpected}"
    )


def test_known_exceptions_are_still_needed() -> None:
    stale = sorted(KNOWN_EXCEPTIONS - _test_module_imports())
    assert not stale, f"these imports are gone; delete them from KNOWN_EXCEPTIONS: {stale}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import tests.test_cards", "tests.test_cards"),
        ("import tests.test_cards as cards", "tests.test_cards"),
        ("from tests.test_cards import CITIZEN", "tests.test_cards"),
        ("from tests import test_cards", "tests.test_cards"),
        ("from . import test_pcsc", "tests.bridge.test_pcsc"),
        ("from .test_pcsc import emulator", "tests.bridge.test_pcsc"),
        ("from ..test_cards import CITIZEN", "tests.test_cards"),
        ("def helper():\n    from tests.test_cards import CITIZEN", "tests.test_cards"),
    ],
)
def test_every_form_of_the_import_is_seen(source: str, expected: str) -> None:
    imported = imported_modules(source, "tests.bridge.test_sample")
    assert expected in imported and is_test_module(expected)


def test_support_modules_are_not_test_modules() -> None:
    imported = imported_modules("from tests.support import wallet\nimport tests.fixtures.services", "tests.x")
    assert not any(is_test_module(name) for name in imported)
