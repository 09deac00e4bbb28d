"""Admin JSON API: clients and the citizen register. Every call needs an access token with the ``admin``
scope from the client_credentials grant; every change is an audit event naming the calling client."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from idp.audit.service import record_event
from idp.citizens.importer import import_citizens
from idp.citizens.service import count_citizens, decrypt_profile, list_citizens
from idp.clients.service import (
    CLIENT_POLICY_FLAGS,
    ClientRegistration,
    create_client,
    describe_client,
    get_client,
    list_clients,
    remove_client,
)
from idp.oauth.resource import current_access, require_scope
from idp.scopes import ADMIN
from idp.services import services
from idp.web import db_session, int_arg, json_body
from sdk.errors import InvalidRequestError

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")
__all__ = ["bp", "require_scope"]  # require_scope stays importable here for the other admin APIs
MAX_CSV_BYTES = 16 * 1024 * 1024
MAX_OFFSET = 10**12  # far past any register, and well inside a 64-bit OFFSET
MAX_PAGE_SIZE = 500


def _actor() -> str:
    return f"client:{current_access().client_id}"


def _audit(action: str, target_type: str, target_id: str, details: dict[str, Any] | None = None) -> None:
    record_event(
        db_session(),
        actor=_actor(),
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details or {},
        now=services().now(),
    )


def registration_from_json(data: dict[str, Any]) -> ClientRegistration:
    """Client metadata from JSON with strict types (RFC 7591 names where they exist)."""
    fields: dict[str, Any] = {}
    text = (
        "name",
        "kind",
        "scope",
        "token_endpoint_auth_method",
        "subject_type",
        "sector_identifier",
        "id_token_signed_response_alg",
        "backchannel_logout_uri",
        "client_id",
    )
    lists = ("redirect_uris", "post_logout_redirect_uris")
    flags = ("first_party", "id_number_allowed", *CLIENT_POLICY_FLAGS)
    for key, value in data.items():
        if key in text:
            if not isinstance(value, str) or len(value) > 2000:
                raise InvalidRequestError(key, description=f"{key} must be a string")
            fields[key] = value
        elif key in lists:
            if not isinstance(value, list) or not all(isinstance(v, str) and len(v) <= 2000 for v in value):
                raise InvalidRequestError(key, description=f"{key} must be a list of strings")
            fields[key] = tuple(value)
        elif key in flags:
            if not isinstance(value, bool):
                raise InvalidRequestError(key, description=f"{key} must be true or false")
            fields[key] = value
        elif key == "jwks":
            if not isinstance(value, dict):
                raise InvalidRequestError(key, description="jwks must be a JWK Set object")
            fields[key] = value
        else:
            raise InvalidRequestError(key, description=f"unknown field {key!r}")
    if "name" not in fields:
        raise InvalidRequestError("name", description="name is required")
    return ClientRegistration(**fields)


@bp.get("/clients")
@require_scope(ADMIN)
def clients_index() -> Response:
    return jsonify({"clients": [describe_client(c) for c in list_clients(db_session())]})


@bp.post("/clients")
@require_scope(ADMIN)
def clients_create() -> Response:
    svc = services()
    registration = registration_from_json(json_body())
    client, secret = create_client(db_session(), registration, now=svc.now())
    _audit("client.create", "client", client.client_id, {"kind": client.kind})
    body = describe_client(client)
    if secret:
        body["client_secret"] = secret  # shown once; only its hash is stored
    response = jsonify(body)
    response.status_code = 201
    return response


@bp.get("/clients/<client_id>")
@require_scope(ADMIN)
def clients_show(client_id: str) -> Response:
    return jsonify(describe_client(get_client(db_session(), client_id)))


@bp.delete("/clients/<client_id>")
@require_scope(ADMIN)
def clients_remove(client_id: str) -> Response:
    remove_client(db_session(), client_id)
    _audit("client.remove", "client", client_id)
    return Response(status=204)


@bp.get("/citizens")
@require_scope(ADMIN)
def citizens_index() -> Response:
    offset = int_arg("offset", 0, 0, MAX_OFFSET)
    limit = int_arg("limit", 100, 1, MAX_PAGE_SIZE)
    session = db_session()
    cipher = services().pii_cipher()
    citizens = []
    for citizen in list_citizens(session, offset=offset, limit=limit):
        profile = decrypt_profile(cipher, citizen)
        # Outside the owner's own view, ID numbers are always masked (DESIGN §2).
        citizens.append(
            {
                "citizen_id": citizen.id,
                "id_number": profile.masked_id_number,
                "status": citizen.status,
                "created_at": citizen.created_at.isoformat(),
            }
        )
    return jsonify({"total": count_citizens(session), "offset": offset, "citizens": citizens})


@bp.post("/citizens/import")
@require_scope(ADMIN)
def citizens_import() -> Response:
    if request.content_length is not None and request.content_length > MAX_CSV_BYTES:
        raise InvalidRequestError("too large", description="The file is too large (16 MiB at most).")
    dry_run = request.args.get("dry_run") in ("1", "true")
    report = import_citizens(
        db_session(), services().pii_cipher(), request.get_data(), now=services().now(), dry_run=dry_run
    )
    body = {
        "ok": report.ok,
        "rows": report.rows,
        "imported": report.imported,
        "summary": report.summary(),
        "problems": [{"line": p.line, "reason": p.reason.value, "detail": p.detail} for p in report.problems],
    }
    if report.ok and not dry_run:
        _audit("citizens.import", "citizen_register", "-", {"rows": report.imported})
    response = jsonify(body)
    response.status_code = 200 if report.ok else 422
    return response
