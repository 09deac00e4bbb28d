"""``POST /api/v1/realname/verify`` (DESIGN.md §6): client_credentials token with ``realname:verify``,
rate-limited per client, every verdict audited (client, purpose, method, result; never the name, number or
code). The contract is in docs/portal-guide.md, "Real-name verification".
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from idp.audit.service import record_event
from idp.oauth.resource import current_access, require_scope
from idp.observability.metrics import realname_attempt
from idp.openapi.validation import validate_current_request
from idp.realname.service import parse_realname_request, verify_realname
from idp.scopes import REALNAME_VERIFY
from idp.services import services
from idp.web import db_session, json_body

bp = Blueprint("realname", __name__, url_prefix="/api/v1/realname")


@bp.post("/verify")
@require_scope(REALNAME_VERIFY, validate_request=False)  # the attempt counts before the contract is checked
def verify() -> Response:
    svc = services()
    now = svc.now()
    context = current_access()
    with realname_attempt() as attempt:
        svc.realname.limiter.hit(context.client_id, now)
        validate_current_request()
        # Every field has its own check and error code (invalid_name, invalid_purpose, ...): the portal guide.
        query = parse_realname_request(json_body(check_text=False))
        session = db_session()
        verdict = verify_realname(
            session,
            query,
            cipher_factory=svc.pii_cipher,
            keyring=svc.keyring,
            store=svc.store,
            handle_resolver=svc.realname.handle_resolver,
            now=now,
        )
        attempt.result = verdict.result
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
