"""Admin API for service halls (``admin`` scope, client_credentials):

- ``GET    /api/v1/admin/halls``                          → ``{"halls": [...]}``
- ``POST   /api/v1/admin/halls``                          ``{name, address?, hall_id?}`` → 201 with the
  scanner's ``scanner_client_id`` and ``scanner_client_secret`` (shown once)
- ``GET    /api/v1/admin/halls/<hall_id>``; ``DELETE`` → 204 (the scanner's credentials stop working)
- ``POST   /api/v1/admin/halls/<hall_id>/services``       ``{code, name, prefix, name_en?}`` → 201
- ``DELETE /api/v1/admin/halls/<hall_id>/services/<code>`` → 204
- ``POST   /api/v1/admin/halls/<hall_id>/counters``       ``{code, name, services: [code…]}`` → 201
- ``DELETE /api/v1/admin/halls/<hall_id>/counters/<code>`` → 204
- ``POST   /api/v1/admin/halls/<hall_id>/counters/<code>/device`` ``{jwks}`` → 201 ``{device_client_id}``:
  the counter's registered device, a private_key_jwt client bound to it (409 if it has one)
- ``PUT    /api/v1/admin/halls/<hall_id>/counters/<code>/device/jwks`` ``{jwks}`` → 200: key rotation
- ``DELETE /api/v1/admin/halls/<hall_id>/counters/<code>/device`` → 204 (its credentials stop working)
- ``GET    /api/v1/admin/halls/<hall_id>/kiosks``          → ``{"kiosks": [...]}``
- ``POST   /api/v1/admin/halls/<hall_id>/kiosks``          ``{name, jwks, bridge_url?}`` → 201: a kiosk
  terminal of this hall, a private_key_jwt client of kind ``kiosk`` (409 if the hall has one of that name)
- ``PUT    /api/v1/admin/halls/<hall_id>/kiosks/<client_id>/jwks`` ``{jwks}`` → 200: key rotation
- ``DELETE /api/v1/admin/halls/<hall_id>/kiosks/<client_id>`` → 204 (its credentials stop working)

Calling and finishing numbers is the counter device's own API (``halls.queue.views``), not the admin's.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from halls.register.service import (
    add_counter,
    add_service,
    create_hall,
    describe_hall,
    describe_kiosk,
    describe_service,
    get_hall,
    list_halls,
    list_kiosks,
    register_counter_device,
    register_kiosk,
    remove_counter,
    remove_counter_device,
    remove_hall,
    remove_kiosk,
    remove_service,
    replace_counter_device_keys,
    replace_kiosk_keys,
)
from idp.oauth.resource import current_access, require_scope
from idp.scopes import ADMIN
from idp.services import services
from idp.web import db_session, json_body

bp = Blueprint("halls_admin", __name__, url_prefix="/api/v1/admin/halls")


def _actor() -> str:
    return f"client:{current_access().client_id}"


def _created(body: dict[str, object]) -> Response:
    response = jsonify(body)
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
@require_scope(ADMIN)
def index() -> Response:
    session = db_session()
    return jsonify({"halls": [describe_hall(session, h) for h in list_halls(session)]})


@bp.post("")
@require_scope(ADMIN)
def create() -> Response:
    body = json_body()
    session = db_session()
    created = create_hall(
        session,
        name=body.get("name"),
        address=body.get("address", ""),
        hall_id=body.get("hall_id"),
        actor=_actor(),
        now=services().now(),
    )
    described = describe_hall(session, created.hall)
    described["scanner_client_secret"] = created.scanner_client_secret  # shown once; only its hash is kept
    return _created(described)


@bp.get("/<hall_id>")
@require_scope(ADMIN)
def show(hall_id: str) -> Response:
    session = db_session()
    return jsonify(describe_hall(session, get_hall(session, hall_id)))


@bp.delete("/<hall_id>")
@require_scope(ADMIN)
def remove(hall_id: str) -> Response:
    remove_hall(db_session(), hall_id, actor=_actor(), now=services().now())
    return Response(status=204)


@bp.post("/<hall_id>/services")
@require_scope(ADMIN)
def create_service(hall_id: str) -> Response:
    body = json_body()
    session = db_session()
    service = add_service(
        session,
        get_hall(session, hall_id),
        code=body.get("code"),
        name=body.get("name"),
        prefix=body.get("prefix"),
        name_en=body.get("name_en", ""),
        actor=_actor(),
        now=services().now(),
    )
    return _created(describe_service(service))


@bp.delete("/<hall_id>/services/<code>")
@require_scope(ADMIN)
def delete_service(hall_id: str, code: str) -> Response:
    session = db_session()
    remove_service(session, get_hall(session, hall_id), code, actor=_actor(), now=services().now())
    return Response(status=204)


@bp.post("/<hall_id>/counters")
@require_scope(ADMIN)
def create_counter(hall_id: str) -> Response:
    body = json_body()
    session = db_session()
    hall = get_hall(session, hall_id)
    counter = add_counter(
        session,
        hall,
        code=body.get("code"),
        name=body.get("name"),
        services=body.get("services"),
        actor=_actor(),
        now=services().now(),
    )
    return _created(next(c for c in describe_hall(session, hall)["counters"] if c["code"] == counter.code))


@bp.delete("/<hall_id>/counters/<code>")
@require_scope(ADMIN)
def delete_counter(hall_id: str, code: str) -> Response:
    session = db_session()
    remove_counter(session, get_hall(session, hall_id), code, actor=_actor(), now=services().now())
    return Response(status=204)


def _device(hall_id: str, code: str, client_id: str, *, status: int) -> Response:
    response = jsonify({"hall_id": hall_id, "counter": code, "device_client_id": client_id})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<hall_id>/counters/<code>/device")
@require_scope(ADMIN)
def register_device(hall_id: str, code: str) -> Response:
    body = json_body()
    session = db_session()
    hall = get_hall(session, hall_id)
    client = register_counter_device(
        session, hall, code, jwks=body.get("jwks"), actor=_actor(), now=services().now()
    )
    return _device(hall.id, code, client.client_id, status=201)


@bp.put("/<hall_id>/counters/<code>/device/jwks")
@require_scope(ADMIN)
def replace_device_keys(hall_id: str, code: str) -> Response:
    body = json_body()
    session = db_session()
    hall = get_hall(session, hall_id)
    client = replace_counter_device_keys(
        session, hall, code, jwks=body.get("jwks"), actor=_actor(), now=services().now()
    )
    return _device(hall.id, code, client.client_id, status=200)


@bp.delete("/<hall_id>/counters/<code>/device")
@require_scope(ADMIN)
def remove_device(hall_id: str, code: str) -> Response:
    session = db_session()
    remove_counter_device(session, get_hall(session, hall_id), code, actor=_actor(), now=services().now())
    return Response(status=204)


@bp.get("/<hall_id>/kiosks")
@require_scope(ADMIN)
def kiosks(hall_id: str) -> Response:
    session = db_session()
    return jsonify({"kiosks": [describe_kiosk(k) for k in list_kiosks(session, get_hall(session, hall_id))]})


@bp.post("/<hall_id>/kiosks")
@require_scope(ADMIN)
def register_kiosk_terminal(hall_id: str) -> Response:
    body = json_body()
    session = db_session()
    svc = services()
    kiosk = register_kiosk(
        session,
        get_hall(session, hall_id),
        name=body.get("name"),
        jwks=body.get("jwks"),
        bridge_url=body.get("bridge_url"),
        issuer=svc.settings.issuer,
        actor=_actor(),
        now=svc.now(),
    )
    return _created(describe_kiosk(kiosk))


@bp.put("/<hall_id>/kiosks/<client_id>/jwks")
@require_scope(ADMIN)
def replace_kiosk_terminal_keys(hall_id: str, client_id: str) -> Response:
    body = json_body()
    session = db_session()
    kiosk = replace_kiosk_keys(
        session,
        get_hall(session, hall_id),
        client_id,
        jwks=body.get("jwks"),
        actor=_actor(),
        now=services().now(),
    )
    response = jsonify(describe_kiosk(kiosk))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/<hall_id>/kiosks/<client_id>")
@require_scope(ADMIN)
def remove_kiosk_terminal(hall_id: str, client_id: str) -> Response:
    session = db_session()
    remove_kiosk(session, get_hall(session, hall_id), client_id, actor=_actor(), now=services().now())
    return Response(status=204)
