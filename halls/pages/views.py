"""The halls' pages and the citizen's ticket call:

- ``GET  /wallet/halls`` — the signed-in citizen's numbers of today under the wallet's look: number, place in
  line, estimated wait. ``static/refresh.js`` fetches the page again every 15 s and swaps its live region, so
  every word stays server-rendered in the page's language; without script a "refresh" link does it.
- ``POST /wallet/halls/cancel`` — give up a waiting number (form, CSRF).
- ``GET  /halls/<hall_id>/display`` — public: the hall's display of the numbers called, large text, refreshed
  the same way.
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from halls.queue.service import cancel_ticket, hall_board, tickets_of_citizen
from halls.register.service import get_hall, list_services
from idp.services import services
from idp.web import db_session, error_page
from sdk.errors import OneCardError
from wallet.web import csrf_ok, no_store, signed_in, wallet_csrf

bp = Blueprint("halls_pages", __name__)

REFRESH_SECONDS: Final = 15


@bp.get("/wallet/halls")
def tickets_page() -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return redirect(url_for("wallet_devices.signin_page"), 303)
    tickets = tickets_of_citizen(db_session(), sso.citizen_id, now=services().now())
    return no_store(
        make_response(
            render_template(
                "halls/tickets.html", tickets=tickets, csrf=wallet_csrf(), refresh_seconds=REFRESH_SECONDS
            )
        )
    )


@bp.post("/wallet/halls/cancel")
def cancel() -> BaseResponse:
    sso = signed_in()
    if sso is None:
        return redirect(url_for("wallet_devices.signin_page"), 303)
    if not csrf_ok():
        return no_store(error_page("The form has expired", "Open the page again and retry.", 400))
    try:
        cancel_ticket(
            db_session(), request.form.get("ticket_id"), citizen_id=sso.citizen_id, now=services().now()
        )
    except OneCardError as exc:
        return no_store(error_page("The number cannot be given up", exc.description, exc.status_code))
    return redirect(url_for("halls_pages.tickets_page"), 303)


@bp.get("/halls/<hall_id>/display")
def display(hall_id: str) -> BaseResponse:
    session = db_session()
    try:
        hall = get_hall(session, hall_id)
    except OneCardError as exc:
        return error_page("No such hall", exc.description, exc.status_code)
    board = hall_board(session, hall, now=services().now())
    return no_store(
        make_response(
            render_template(
                "halls/display.html", hall=hall, board=board, services=list_services(session, hall)
            )
        )
    )
