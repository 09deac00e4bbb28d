"""Key management over HTTP: the admin API (``/api/v1/admin/keys``, ``admin`` scope) and the published QR key
set (``/.well-known/onecard-qr-keys.json``); ``key_actor`` builds who a change is recorded as.

The admin API mirrors ``onecard keys``: every change names the calling client (``client:<id>``) and the
``reason`` from the body in its audit event. Changes run in their own unit of work, committed before this
node's key ring is invalidated, so a revoked key is gone from this node's JWKS and verification with the
very next request (other nodes: within ``KEY_RING_CACHE_SECONDS``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from idp.keys import QR_KEYS_PATH
from idp.keys.actor import KeyActor
from idp.keys.describe import describe_key, describe_policy, list_described
from idp.keys.lifecycle import KeyChange, activate, remove, retire, revoke, rotate
from idp.keys.schedule import run_tick
from idp.keys.service import QR_SIGNING, get_key, key_set_names
from idp.oauth.resource import current_access, require_scope
from idp.scopes import ADMIN
from idp.services import Services, services
from idp.web import cacheable_json, json_body
from sdk.errors import InvalidRequestError

bp = Blueprint("keys", __name__)


def key_actor(svc: Services, actor: str, reason: str = "") -> KeyActor:
    return KeyActor(
        svc.settings,
        svc.keks,
        actor,
        reason,
        hsm=svc.hsm,
        cache_seconds=svc.keyring.cache_seconds,
    )


# The published QR key set (DESIGN.md §5 "Gate keys") ---------------------------------------------------


@bp.get(QR_KEYS_PATH)
def qr_keys() -> Response:
    svc = services()
    keys = svc.keyring.key_set(QR_SIGNING.name, now=svc.now())
    return cacheable_json(keys.to_jwks(), svc.settings.jwks_max_age)


# The admin API ---------------------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    return json_body() if request.content_length else {}


def _reason(body: dict[str, Any], *, required: bool = False) -> str:
    reason = body.get("reason", "")
    if not isinstance(reason, str) or (required and not reason.strip()):
        raise InvalidRequestError("reason", description="reason must be a non-empty string")
    return reason


def _force(body: dict[str, Any]) -> bool:
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise InvalidRequestError("force", description="force must be true or false")
    return force


def _who(reason: str) -> KeyActor:
    svc = services()
    return key_actor(svc, f"client:{current_access().client_id}", reason)


def _changes(changes: list[KeyChange], status: int = 200) -> Response:
    services().keyring.invalidate()
    response = jsonify(
        {
            "changes": [
                {
                    "kid": c.kid,
                    "key_set": c.key_set,
                    "action": c.action,
                    "from": c.from_state,
                    "to": c.to_state,
                    "forced": c.forced,
                }
                for c in changes
            ]
        }
    )
    response.status_code = status
    return response


@bp.get("/api/v1/admin/keys")
@require_scope(ADMIN)
def keys_index() -> Response:
    svc = services()
    key_set = request.args.get("key_set") or None
    include_gone = request.args.get("all") in ("1", "true")
    with svc.database.session() as session:
        keys = list_described(session, _who(""), key_set, now=svc.now(), include_gone=include_gone)
    return jsonify({"keys": keys})


@bp.get("/api/v1/admin/keys/policy")
@require_scope(ADMIN)
def keys_policy() -> Response:
    svc = services()
    who = _who("")
    with svc.database.session() as session:
        names = key_set_names(session)
    return jsonify({"policies": [describe_policy(who.policy(name)) for name in names]})


@bp.get("/api/v1/admin/keys/<kid>")
@require_scope(ADMIN)
def keys_show(kid: str) -> Response:
    svc = services()
    with svc.database.session() as session:
        return jsonify(describe_key(session, _who(""), get_key(session, kid), now=svc.now()))


@bp.post("/api/v1/admin/keys/rotate")
@require_scope(ADMIN)
def keys_rotate() -> Response:
    svc = services()
    body = _body()
    key_set = body.get("key_set")
    if not isinstance(key_set, str) or not key_set:
        raise InvalidRequestError("key_set", description="key_set must name a key set")
    with svc.database.session() as session:
        change = rotate(session, _who(_reason(body)), key_set, now=svc.now())
    return _changes([change], 201)


@bp.post("/api/v1/admin/keys/<kid>/activate")
@require_scope(ADMIN)
def keys_activate(kid: str) -> Response:
    svc = services()
    body = _body()
    with svc.database.session() as session:
        changes = activate(session, _who(_reason(body)), kid, now=svc.now(), force=_force(body))
    return _changes(changes)


@bp.post("/api/v1/admin/keys/<kid>/retire")
@require_scope(ADMIN)
def keys_retire(kid: str) -> Response:
    svc = services()
    body = _body()
    with svc.database.session() as session:
        change = retire(session, _who(_reason(body)), kid, now=svc.now(), force=_force(body))
    return _changes([change])


@bp.post("/api/v1/admin/keys/<kid>/remove")
@require_scope(ADMIN)
def keys_remove(kid: str) -> Response:
    svc = services()
    body = _body()
    with svc.database.session() as session:
        change = remove(session, _who(_reason(body)), kid, now=svc.now(), force=_force(body))
    return _changes([change])


@bp.post("/api/v1/admin/keys/<kid>/revoke")
@require_scope(ADMIN)
def keys_revoke(kid: str) -> Response:
    svc = services()
    body = _body()
    with svc.database.session() as session:
        changes = revoke(session, _who(_reason(body, required=True)), kid, now=svc.now())
    return _changes(changes)


@bp.post("/api/v1/admin/keys/tick")
@require_scope(ADMIN)
def keys_tick() -> Response:
    body = _body()
    return _changes(run_tick(services(), _who(_reason(body))))
