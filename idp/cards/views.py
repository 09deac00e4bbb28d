"""Admin API of the card register, for card-service staff tools (``admin`` scope, client_credentials).

- ``GET  /api/v1/admin/cards?citizen_id=&status=&offset=&limit=``  a page of cards
- ``GET  /api/v1/admin/cards/<card>``                               one card (by card id or card number)
- ``POST /api/v1/admin/cards/<card>/lost|suspend|restore|cancel``   a status change (audited)

Issuing cards stays with ``onecard cards issue``: it writes a card file holding a private key and a PIN,
which has no business travelling over an API.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from idp.admin.views import require_scope
from idp.cards.model import CardStatus
from idp.cards.service import (
    MAX_PAGE_SIZE,
    change_status,
    describe_card,
    get_card_by_reference,
    list_cards,
    parse_status,
)
from idp.scopes import ADMIN
from idp.services import services
from idp.web import db_session, int_arg
from sdk.errors import InvalidRequestError

bp = Blueprint("cards_admin", __name__, url_prefix="/api/v1/admin/cards")

MAX_OFFSET = 10**9
MAX_CITIZEN_ID = 36  # a citizen id is a UUID
ACTIONS = {
    "lost": CardStatus.LOST,
    "suspend": CardStatus.SUSPENDED,
    "restore": CardStatus.ACTIVE,
    "cancel": CardStatus.CANCELLED,
}


@bp.get("")
@require_scope(ADMIN)
def index() -> Response:
    status_text = request.args.get("status")
    status = parse_status(status_text) if status_text else None
    citizen_id = request.args.get("citizen_id") or None
    if citizen_id is not None and len(citizen_id) > MAX_CITIZEN_ID:
        raise InvalidRequestError("citizen_id", description="citizen_id is a citizen's id")
    offset = int_arg("offset", 0, 0, MAX_OFFSET)
    limit = int_arg("limit", 100, 1, MAX_PAGE_SIZE)
    total, cards = list_cards(db_session(), citizen_id=citizen_id, status=status, offset=offset, limit=limit)
    return jsonify({"total": total, "offset": offset, "cards": [describe_card(card) for card in cards]})


@bp.get("/<reference>")
@require_scope(ADMIN)
def show(reference: str) -> Response:
    return jsonify(describe_card(get_card_by_reference(db_session(), reference)))


@bp.post("/<reference>/<action>")
@require_scope(ADMIN)
def change(reference: str, action: str) -> Response:
    target = ACTIONS.get(action)
    if target is None:
        raise InvalidRequestError(action, description="The action is one of lost, suspend, restore, cancel.")
    session = db_session()
    card = get_card_by_reference(session, reference)
    change_status(session, card, target, actor=f"client:{g.access.client_id}", now=services().now())
    return jsonify(describe_card(card))
