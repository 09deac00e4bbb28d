"""Running the key lifecycle's ``tick``: once (``onecard keys tick``, from cron) or from a built-in scheduler.

Cron, on one machine (every 5 minutes is plenty: the shortest waiting period is the key ring's 5 s, the
usual ones are an hour and more)::

    */5 * * * *  onecard keys tick --quiet

The built-in scheduler (``ONECARD_KEY_TICK_INTERVAL=300``) is a daemon thread in every node; before each
tick a node takes a lock in the shared short-lived store (``add``, atomic across nodes) that lives for
most of the interval, so one node ticks per interval, whichever gets there first. ``tick`` itself also
serialises on the key store (``lock_key_store``), so cron and the scheduler running at once is safe too.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from idp.keys.actor import KeyActor
from idp.keys.lifecycle import KeyChange, tick
from idp.services import Services

log = logging.getLogger(__name__)

SCHEDULER_ACTOR = "scheduler"
TICK_LOCK_NAMESPACE = "key_tick"
TICK_LOCK_KEY = "lock"


def run_tick(svc: Services, who: KeyActor) -> list[KeyChange]:
    """One tick in its own unit of work; this node's key ring sees the result at once."""
    with svc.database.session() as session:
        changes = tick(session, who, now=svc.now())
    if changes:
        svc.keyring.invalidate()
    return changes


class KeyScheduler:
    """Ticks every ``interval`` seconds on whichever node takes the store lock first."""

    def __init__(self, svc: Services, who: KeyActor, *, interval: float) -> None:
        if interval <= 0:
            raise ValueError("the tick interval must be positive")
        self._svc = svc
        self._who = who
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.node = f"{socket.gethostname()}:{os.getpid()}"

    def run_once(self) -> list[KeyChange] | None:
        """Tick if this node wins the lock for this interval; None if another node has it."""
        now = self._svc.now()
        # Held for most of the interval and never released early: one tick per interval across nodes.
        if not self._svc.store.add(
            TICK_LOCK_NAMESPACE, TICK_LOCK_KEY, self.node.encode(), ttl=self.interval * 0.9, now=now
        ):
            return None
        return run_tick(self._svc, self._who)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="onecard-key-scheduler", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Started and its thread still alive (/readyz)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                changes = self.run_once()
            except Exception:  # a failed tick must not end the scheduler; the next one retries
                log.exception("key tick failed")
                continue
            for change in changes or ():
                log.info("key tick: %s", change.describe())
