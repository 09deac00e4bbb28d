"""``POST /api/v1/realname/verify`` (DESIGN.md §6): client_credentials token with ``realname:verify``,
rate-limited per client, every verdict audited (client, purpose, method, result; never the name, number or
code). The contract is in docs/portal-guide.md, "Real-name verification".
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint, Flask, Response, jsonify

from idp.audit.service import record_event
from idp.oauth.resource import current_access, require_scope
from idp.ratelimit import RateLimiter
from idp.realname.service import HandleResolver, parse_realname_request, verify_realname
from idp.scopes import REALNAME_VERIFY
from idp.services import Services, services
from idp.web import db_session, json_body

bp = Blueprint("realname", __name__, url_prefix="/api/v1/realname")

LIMITER: Final = "realname.limiter"
HANDLE_RESOLVER: Final = "realname.handle_resolver"
WINDOW: Final = 60.0


def install_realname(app: Flask) -> None:
    """Register the API and its per-client rate limit: ``rate_limit_per_minute`` verifications per client
    per minute (the count lives in the shared store, so the limit holds across all nodes)."""
    app.register_blueprint(bp)
    svc: Services = app.extensions["onecard"]
    set_rate_limit(app, limit=svc.settings.rate_limit_per_minute, window=WINDOW)


def set_rate_limit(app: Flask, *, limit: int, window: float) -> None:
    svc: Services = app.extensions["onecard"]
    svc.extras[LIMITER] = RateLimiter(svc.store, "realname", limit, window)


def register_handle_resolver(app: Flask, resolver: HandleResolver) -> None:
    """The wallet's hook: an ESSC1 handle → the citizen of a usable e-card (idp never imports the wallet)."""
    app.extensions["onecard"].extras[HANDLE_RESOLVER] = resolver


@bp.post("/verify")
@require_scope(REALNAME_VERIFY)
def verify() -> Response:
    svc = services()
    now = svc.now()
    context = current_access()
    limiter: RateLimiter = svc.extras[LIMITER]  # type: ignore[assignment]
    limiter.hit(context.client_id, now)
    # Every field has its own check and error code (invalid_name, invalid_purpose, ...): docs/portal-guide.md.
    query = parse_realname_request(json_body(check_text=False))
    session = db_session()
    verdict = verify_realname(
        session,
        query,
        cipher_factory=svc.pii_cipher,
        keyring=svc.keyring,
        store=svc.store,
        handle_resolver=svc.extras.get(HANDLE_RESOLVER),  # type: ignore[arg-type]
        now=now,
    )
    record_event(
        session,
        actor=f"client:{context.client_id}",
        action="realname.verify",
        target_type="client",
        target_id=context.client_id,
        details={"purpose": query.purpose, "method": verdict.method, "result": verdict.result},
        now=now,
    )
    response = jsonify(verdict.to_json())
    response.headers["Cache-Control"] = "no-store"
    return response
