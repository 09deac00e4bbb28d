"""A Babel extraction method for the texts that reach people as *values* (``pybabel extract -F babel.cfg``).

Templates and ``gettext(...)`` calls are found by Babel's own Jinja and Python extractors. What they cannot
see is English written as data and translated where it is shown (``idp.i18n.translate``, the templates'
``|translate`` filter): an error class's ``description`` (STYLE.md "Errors": the wire text stays English,
a page shows it in the reader's language), the title and message of an error page, a login method's label,
the words a module keeps for codes. This method yields those, with the ``gettext`` calls of the same file:

- ``description = "…"`` (and ``title`` / ``label`` / ``message``) in a class body;
- ``error_page("title", "message", …)`` and ``_outcome(kind, "title", "message")``: the literal arguments;
- ``description="…"``, ``label="…"``, ``title="…"``, ``message="…"`` keyword arguments of any call;
- module constants named ``…_TITLE``, ``…_MESSAGE``, ``…_PAGE``, ``…_EXPIRED``, ``…_LABELS``,
  ``…_DESCRIPTIONS``, ``…_WORDS``: a string, the strings of a tuple, or the values of a dict.

Only literal strings count: an f-string cannot be in a catalogue, so a person-facing text must not be one.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import IO, Any

from babel.messages.extract import extract_python

_ATTRIBUTES = frozenset({"description", "title", "label", "message"})
_PAGE_CALLS = {"error_page": (0, 1), "_outcome": (1, 2)}
_CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*_(TITLE|MESSAGE|PAGE|EXPIRED|LABELS|DESCRIPTIONS|WORDS)$")

# What Babel's extraction methods yield: line, function name, message (or its plural forms), comments.
Message = tuple[int, str | None, str | tuple[str, ...], list[str]]


def _strings(node: ast.AST | None) -> Iterator[tuple[int, str]]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
        yield node.lineno, node.value
    elif isinstance(node, ast.Tuple):
        for item in node.elts:
            yield from _strings(item)
    elif isinstance(node, ast.Dict):
        for value in node.values:
            yield from _strings(value)


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _values(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name) and _CONSTANT.match(target.id):
                yield from _strings(value)
    for found in ast.walk(tree):
        if isinstance(found, ast.ClassDef):
            for statement in found.body:
                if isinstance(statement, ast.Assign | ast.AnnAssign):
                    names = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                    if any(isinstance(name, ast.Name) and name.id in _ATTRIBUTES for name in names):
                        yield from _strings(statement.value)
        elif isinstance(found, ast.Call):
            positions = _PAGE_CALLS.get(_call_name(found), ())
            for index in positions:
                if index < len(found.args):
                    yield from _strings(found.args[index])
            for keyword in found.keywords:
                if keyword.arg in _ATTRIBUTES:
                    yield from _strings(keyword.value)


def extract(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: dict[str, Any]
) -> Iterator[Message]:
    """Babel's extraction-method signature: the file's ``gettext`` calls, then its texts-as-values."""
    source = fileobj.read()
    fileobj.seek(0)
    # Babel yields (line, function, message, comments) whatever its annotation says.
    yield from extract_python(fileobj, keywords, comment_tags, options)  # type: ignore[arg-type,misc]
    tree = ast.parse(source.decode(options.get("encoding", "utf-8")))
    seen: set[str] = set()
    for lineno, text in _values(tree):
        if text not in seen:
            seen.add(text)
            yield lineno, None, text, []
