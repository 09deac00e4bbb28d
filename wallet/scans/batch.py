"""Scan records written in batches, each one durable before its verdict is given (group commit).

A verification hands its row to ``ScanBatch.record`` and waits. The first waiting thread that finds no
batch being written becomes the writer: it takes every row queued so far (up to ``max_rows``), inserts them
in one transaction and commits, then wakes the threads whose rows were in it. Rows that arrived during that
commit go together in the next one. So under load one commit carries many scans, and no verdict is ever
given for a scan that is not committed: if the commit fails, every request in that batch gets
``ScanNotRecordedError`` (503, no verdict) and no row of the batch exists. Nothing is kept in memory
beyond the requests waiting for it, so a crash loses no recorded scan — only answers not yet given.

No thread of its own: the writer is always one of the requests, so there is nothing to start or stop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from idp.db import Base
from wallet.scans.errors import ScanNotRecordedError
from wallet.scans.model import ScanRecord

MAX_ROWS: Final = 500
_TABLE: Final = Base.metadata.tables[ScanRecord.__tablename__]  # a Table to the type checker


@dataclass(eq=False)
class _Pending:
    row: dict[str, Any]
    done: bool = False
    error: BaseException | None = field(default=None, repr=False)


class ScanBatch:
    def __init__(self, engine: Engine, *, max_rows: int = MAX_ROWS) -> None:
        self._engine = engine
        self._max_rows = max_rows
        self._queue: list[_Pending] = []
        self._writing = False
        self._changed = threading.Condition()

    def record(self, row: dict[str, Any]) -> None:
        """Return once ``row`` (the ``wallet_scans`` columns) is committed; else raise
        ``ScanNotRecordedError``."""
        item = _Pending(row)
        with self._changed:
            self._queue.append(item)
        while True:
            with self._changed:
                while self._writing and not item.done:
                    self._changed.wait()
                if item.done:
                    break
                self._writing = True
                batch = self._queue[: self._max_rows]
                del self._queue[: self._max_rows]
            # Until the commit returns, the batch has failed: even an interruption answers "no verdict".
            error: BaseException | None = RuntimeError("the scan batch's writer was interrupted")
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(_TABLE), [pending.row for pending in batch])
                error = None
            except Exception as exc:  # every waiter of this batch answers "no verdict"
                error = exc
            finally:
                with self._changed:
                    for pending in batch:
                        pending.done = True
                        pending.error = error
                    self._writing = False
                    self._changed.notify_all()
        if item.error is not None:
            raise ScanNotRecordedError(f"scan batch not committed: {item.error!r}"[:300]) from item.error
