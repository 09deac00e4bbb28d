"""Database statement latency from SQLAlchemy's cursor events (the "Profiling" recipe of SQLAlchemy's FAQ),
labelled only by the statement's kind: its text and parameters hold names, numbers and ids."""

from __future__ import annotations

import time
from typing import Any, Final

from sqlalchemy import Engine, event

from idp.observability.metrics import OTHER, observe_database_statement

_STARTED: Final = "onecard_statement_started"
_KINDS: Final = frozenset({"select", "insert", "update", "delete"})


def statement_kind(statement: str) -> str:
    """select, insert, update, delete or other (a PRAGMA, a savepoint, a WITH ... query)."""
    first = statement.lstrip()[:7].split(None, 1)
    word = first[0].lower() if first else ""
    return word if word in _KINDS else OTHER


def _before(conn: Any, _cursor: Any, _statement: str, _parameters: Any, _context: Any, _many: bool) -> None:
    # A stack: a statement may run while another one's events are open (an ORM flush inside a query).
    conn.info.setdefault(_STARTED, []).append(time.perf_counter())


def _after(conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, _many: bool) -> None:
    started = conn.info.get(_STARTED)
    if started:
        observe_database_statement(
            operation=statement_kind(statement), seconds=time.perf_counter() - started.pop()
        )


def _failed(context: Any) -> None:
    # A statement that raised never reaches after_cursor_execute: drop its start, or the stack would grow.
    connection = context.connection
    started = connection.info.get(_STARTED) if connection is not None else None
    if started:
        started.pop()


def instrument_engine(engine: Engine) -> None:
    """Time every statement ``engine`` runs (``onecard_db_statement_duration_seconds``)."""
    event.listen(engine, "before_cursor_execute", _before)
    event.listen(engine, "after_cursor_execute", _after)
    event.listen(engine, "handle_error", _failed)
