"""Is this node well? ``/healthz``: the process answers. ``/readyz``: it can serve — the database is reachable
and migrated to head, the short-lived store answers, every published key of every core key set unwraps
under the configured key-encryption keys, and the key scheduler (where one runs here) is alive.

Each check answers a reason in plain words and never a secret; a load balancer or the container's
HEALTHCHECK takes a node out while ``/readyz`` answers 503.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from alembic.runtime.migration import MigrationContext
from flask import Blueprint, Response, jsonify

from idp.dbadmin import head_revisions
from idp.keys.service import CORE_KEY_SETS, KeyRing
from idp.services import Services, services

bp = Blueprint("health", __name__)


# The migration scripts ship with the code: their heads are read from disk once, not on every probe.
_head_revisions = cache(head_revisions)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str


def check_database(svc: Services) -> CheckResult:
    try:
        with svc.database.engine.connect() as connection:
            at = set(MigrationContext.configure(connection).get_current_heads())
    except Exception as error:  # any driver error: the database is not reachable
        return CheckResult(False, f"unreachable ({type(error).__name__})")
    heads = set(_head_revisions())
    if at != heads:
        shown = ", ".join(sorted(at)) or "nothing"
        return CheckResult(False, f"schema at {shown}, not at head; run onecard db upgrade")
    return CheckResult(True, "reachable, at head")


def check_store(svc: Services) -> CheckResult:
    try:
        svc.store.get("health", "ping", now=svc.now())
    except Exception as error:  # the store's client error (Redis down, SQL file locked, ...)
        return CheckResult(False, f"unreachable ({type(error).__name__})")
    return CheckResult(True, "reachable")


def check_keys(svc: Services) -> CheckResult:
    # A fresh key ring: the shared one caches what it unwrapped, and readiness must see the KEKs as they are.
    ring = KeyRing(svc.database, svc.keks, cache_seconds=0, hsm=svc.hsm)
    now = svc.now()
    for spec in CORE_KEY_SETS:
        try:
            if spec.symmetric:
                found = bool(ring.secrets(spec.name, now=now))
            else:
                found = bool(ring.key_set(spec.name, now=now).keys)
        except Exception as error:  # unwrap failed: a missing or wrong KEK, or a broken HSM session
            return CheckResult(False, f"{spec.name} does not unwrap ({type(error).__name__})")
        if not found:
            return CheckResult(False, f"{spec.name} has no published key")
    return CheckResult(True, f"{len(CORE_KEY_SETS)} key sets unwrap")


def check_scheduler(svc: Services) -> CheckResult:
    if svc.scheduler is None:
        return CheckResult(True, "not run here (ONECARD_KEY_TICK_INTERVAL=0, or not a serving process)")
    return CheckResult(
        svc.scheduler.running, "running" if svc.scheduler.running else "its thread has stopped"
    )


READINESS_CHECKS: dict[str, Callable[[Services], CheckResult]] = {
    "database": check_database,
    "store": check_store,
    "keys": check_keys,
    "scheduler": check_scheduler,
}


@bp.get("/healthz")
def healthz() -> Response:
    response = jsonify({"status": "ok"})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/readyz")
def readyz() -> Response:
    svc = services()
    results = {name: check(svc) for name, check in READINESS_CHECKS.items()}
    ready = all(result.ok for result in results.values())
    response = jsonify(
        {
            "status": "ready" if ready else "not_ready",
            "checks": {name: {"ok": r.ok, "reason": r.reason} for name, r in results.items()},
        }
    )
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response
