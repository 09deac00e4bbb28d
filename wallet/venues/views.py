"""Admin API for venues (``admin`` scope, client_credentials): ``/api/v1/admin/venues``.

- ``GET    /api/v1/admin/venues``               → ``{"venues": [...]}`` (``?include_removed=1``)
- ``POST   /api/v1/admin/venues``               ``{name, category, claims?, regions?, venue_id?}`` → 201 with
  ``client_id`` and ``client_secret`` (shown once)
- ``GET    /api/v1/admin/venues/<venue_id>``
- ``PATCH  /api/v1/admin/venues/<venue_id>``     ``{verify_per_minute}`` → the venue: its gates' limit of
  online verifications per minute
- ``DELETE /api/v1/admin/venues/<venue_id>``     → 204; the venue's gate credentials stop working at once
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from idp.oauth.resource import current_access, require_scope
from idp.scopes import ADMIN
from idp.services import services
from idp.web import db_session, json_body
from wallet.venues.errors import InvalidVenueError
from wallet.venues.service import (
    VENUE_CATEGORIES,
    VENUE_CLAIMS,
    create_venue,
    describe_venue,
    get_venue,
    list_venues,
    registration_from_json,
    remove_venue,
    set_verify_per_minute,
)

bp = Blueprint("wallet_venues", __name__, url_prefix="/api/v1/admin/venues")


def _actor() -> str:
    return f"client:{current_access().client_id}"


@bp.get("")
@require_scope(ADMIN)
def index() -> Response:
    include_removed = request.args.get("include_removed") in ("1", "true")
    venues = list_venues(db_session(), include_removed=include_removed)
    return jsonify(
        {
            "venues": [describe_venue(v) for v in venues],
            "categories": list(VENUE_CATEGORIES),
            "claims": VENUE_CLAIMS,
        }
    )


@bp.post("")
@require_scope(ADMIN)
def create() -> Response:
    created = create_venue(
        db_session(), registration_from_json(json_body()), actor=_actor(), now=services().now()
    )
    body = describe_venue(created.venue)
    body["client_secret"] = created.client_secret  # shown once; only its hash is stored
    response = jsonify(body)
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<venue_id>")
@require_scope(ADMIN)
def show(venue_id: str) -> Response:
    return jsonify(describe_venue(get_venue(db_session(), venue_id)))


@bp.patch("/<venue_id>")
@require_scope(ADMIN)
def update(venue_id: str) -> Response:
    body = json_body()
    unknown = sorted(set(body) - {"verify_per_minute"})
    if unknown or "verify_per_minute" not in body:
        raise InvalidVenueError("fields", description="only verify_per_minute can be changed")
    venue = set_verify_per_minute(
        db_session(), venue_id, body["verify_per_minute"], actor=_actor(), now=services().now()
    )
    return jsonify(describe_venue(venue))


@bp.delete("/<venue_id>")
@require_scope(ADMIN)
def remove(venue_id: str) -> Response:
    remove_venue(db_session(), venue_id, actor=_actor(), now=services().now())
    return Response(status=204)
