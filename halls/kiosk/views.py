"""The kiosk pages (issue 13 item 1): a self-service terminal of a hall, the card login, a short menu.

- ``POST /kiosk/start``        the kiosk device proves its key (``client_assertion``, private_key_jwt only,
                               a client of kind ``kiosk`` registered to a hall: that hall's pages); a page
                               that moves on to the start page, with the terminal cookie
- ``GET  /kiosk``              start: "insert your card"; any earlier citizen's session on it ends here
- ``POST /kiosk/login``        parks a card login (``idp.cardlogin``, the same page and bridge) for this
                               terminal; the login's session and audit event carry the terminal id
- ``GET  /kiosk/welcome``      where the finished login lands: the visit starts
- ``GET  /kiosk/menu``         services of the hall (take a number), the e-card status
- ``POST /kiosk/number``       take a number (``halls.queue.service.take_number``)
- ``GET  /kiosk/lost``         "report my card lost (挂失)?": the confirmation page
- ``POST /kiosk/lost``         the citizen's active card becomes lost (``idp.cards.service.change_status``,
                               the citizen the actor, the terminal in the audit details); the visit ends
- ``GET  /kiosk/pin``          "change my PIN": the page asks the reader bridge (``POST /v1/change-pin``),
                               whose own PIN window or pad takes both PINs; the server never sees a PIN
- ``POST /kiosk/pin/outcome``  the PIN page reports how the change ended: audited as the terminal's report
                               (``kiosk.pin_change``, ``reported_by: terminal``; docs/service-halls.md §3.3)
- ``POST /kiosk/more-time``    the "More time" button: the visit lives another idle period
- ``POST /kiosk/end``          end the visit (the page calls it on idle and on card-out too)

Every page is ``Cache-Control: no-store`` and the visit ends server-side when it lapses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from halls.kiosk.terminal import (
    TERMINAL_COOKIE,
    KioskTerminal,
    begin_visit,
    end_visit,
    find_terminal,
    start_terminal,
    touch_visit,
)
from halls.queue.errors import AlreadyQueuedError
from halls.queue.service import TicketView, take_number
from halls.register.errors import InvalidHallError
from halls.register.service import find_kiosk, get_hall, get_service, list_services
from idp.audit.service import record_event
from idp.cards.model import Card, CardStatus
from idp.cards.service import change_status, find_card
from idp.clients.errors import ClientAuthenticationError
from idp.login.service import current_sso_session, end_sso_session
from idp.login.transactions import create_transaction
from idp.scopes import ACR_HIGH
from idp.services import services
from idp.sessions.model import SsoSession
from idp.web import (
    SESSION_COOKIE,
    browser_binding,
    check_csrf,
    cookie_secure,
    csrf_token,
    db_session,
    error_page,
)
from sdk.errors import OneCardError
from wallet.ecards.service import find_current_ecard

bp = Blueprint("halls_kiosk", __name__, url_prefix="/kiosk")

KIOSK_KIND: Final = "kiosk"
NOT_STARTED_TITLE: Final = "This terminal is not ready"
NOT_STARTED_MESSAGE: Final = "Please ask the hall staff for help."
FORM_EXPIRED_TITLE: Final = "This page has expired"
FORM_EXPIRED_MESSAGE: Final = "Please start again."
NO_NUMBER_TITLE: Final = "No number could be taken"
LOST_DONE_SECONDS: Final = 60  # the "card reported lost" page returns to the start by itself (or on card-out)
# How the bridge's PIN change ended, as idp/static/card-login.js's onecard:pin-change-ended event names it.
PIN_OUTCOMES: Final = frozenset({"changed", "blocked", "card_removed", "unreachable", "cancelled", "failed"})
TerminalView = Callable[[KioskTerminal], Response]
VisitView = Callable[[KioskTerminal, SsoSession], Response]


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _terminal() -> KioskTerminal | None:
    """The started terminal this browser names, while its kiosk is still registered to that hall: removing
    the kiosk (or its hall) stops a terminal already started, not only its next start."""
    svc = services()
    terminal = find_terminal(svc.store, request.cookies.get(TERMINAL_COOKIE), now=svc.now())
    if terminal is None:
        return None
    kiosk = find_kiosk(db_session(), terminal.terminal_id)
    return terminal if kiosk is not None and kiosk.hall_id == terminal.hall_id else None


def _csrf_purpose(terminal: KioskTerminal) -> str:
    return f"kiosk:{terminal.terminal_id}"


def _csrf_ok(terminal: KioskTerminal) -> bool:
    return check_csrf(_csrf_purpose(terminal), request.form.get("csrf"))


def _to_start() -> Response:
    response = redirect(url_for("halls_kiosk.start_page"), 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return _no_store(response)


def _end_citizen(sso: SsoSession | None) -> None:
    """End the citizen's session server-side (and its visit): nothing of them survives on the terminal."""
    if sso is None:
        return
    svc = services()
    now = svc.now()
    end_visit(svc.store, sso.sid, now=now)
    end_sso_session(sso, now=now)


def _visit(terminal: KioskTerminal) -> SsoSession | None:
    """The citizen's live visit at this terminal (touched: input just happened), else None, and any
    session the browser still names is ended."""
    svc = services()
    sso = current_sso_session()
    if sso is None:
        return None
    live = sso.terminal_id == terminal.terminal_id and sso.acr == ACR_HIGH
    if live and touch_visit(svc.store, sso.sid, idle=svc.settings.kiosk_idle_seconds, now=svc.now()):
        return sso
    _end_citizen(sso)
    return None


def _page(template: str, terminal: KioskTerminal, **context: object) -> Response:
    settings = services().settings
    response = make_response(
        render_template(
            template,
            terminal=terminal,
            csrf=csrf_token(_csrf_purpose(terminal)),
            idle_seconds=settings.kiosk_idle_seconds,
            bridge_url=terminal.bridge_url or settings.card_bridge_url,
            **context,
        )
    )
    return _no_store(response)


def _prelude(*, visit: bool, csrf: bool) -> tuple[KioskTerminal, SsoSession | None] | Response:
    """What every kiosk page checks first, in this order: a started terminal (else the "not ready" page,
    403); with ``visit``, the citizen's live visit (else back to the start, their session ended); with
    ``csrf``, the form's token (else "page expired"). Returns the terminal and visit, or the answer."""
    terminal = _terminal()
    if terminal is None:
        return _no_store(error_page(NOT_STARTED_TITLE, NOT_STARTED_MESSAGE, 403))
    sso = None
    if visit:
        sso = _visit(terminal)
        if sso is None:
            return _to_start()
    if csrf and not _csrf_ok(terminal):
        return _no_store(error_page(FORM_EXPIRED_TITLE, FORM_EXPIRED_MESSAGE))
    return terminal, sso


def _at_terminal(*, csrf: bool = False) -> Callable[[TerminalView], Callable[[], Response]]:
    """A page of a started terminal, with or without a citizen's visit: the view gets the terminal."""

    def decorate(view: TerminalView) -> Callable[[], Response]:
        @functools.wraps(view)
        def wrapped() -> Response:
            checked = _prelude(visit=False, csrf=csrf)
            return checked if isinstance(checked, Response) else view(checked[0])

        return wrapped

    return decorate


def _in_visit(*, csrf: bool = False) -> Callable[[VisitView], Callable[[], Response]]:
    """A page of a citizen's live visit: the view gets the terminal and the citizen's session."""

    def decorate(view: VisitView) -> Callable[[], Response]:
        @functools.wraps(view)
        def wrapped() -> Response:
            checked = _prelude(visit=True, csrf=csrf)
            if isinstance(checked, Response):
                return checked
            terminal, sso = checked
            assert sso is not None  # _prelude(visit=True) answers itself when there is no visit
            return view(terminal, sso)

        return wrapped

    return decorate


@bp.post("/start")
def start_terminal_session() -> Response:
    svc = services()
    now = svc.now()
    server = svc.authorization_server
    try:
        client = server.authenticate_client(
            server.create_oauth2_request(request), ["private_key_jwt"], "kiosk"
        )
    except OneCardError:
        raise
    except Exception as error:  # Authlib's OAuth2Error: one answer, invalid_client
        raise ClientAuthenticationError(getattr(error, "error", "invalid_client")) from error
    if client.kind != KIOSK_KIND:
        raise ClientAuthenticationError("not a kiosk terminal")
    session = db_session()
    # The hall is the one the terminal is registered to: a kiosk's key opens one hall's pages only.
    kiosk = find_kiosk(session, client.client_id)
    if kiosk is None:
        raise ClientAuthenticationError("a kiosk not registered to a live hall")
    named = request.form.get("hall_id")
    if named is not None and named != kiosk.hall_id:
        raise InvalidHallError("hall_id", description="This kiosk is registered to another hall.")
    ttl = svc.settings.kiosk_terminal_hours * 3600
    token, terminal = start_terminal(
        svc.store,
        terminal_id=client.client_id,
        hall_id=kiosk.hall_id,
        bridge_url=kiosk.bridge_url,
        ttl=ttl,
        now=now,
    )
    record_event(
        session,
        actor=f"client:{client.client_id}",
        action="kiosk.start",
        target_type="hall",
        target_id=kiosk.hall_id,
        details={"terminal_id": terminal.terminal_id},
        now=now,
    )
    # A page, not a 303: the start is posted by the bridge's launch page (another site), and a browser
    # sends no SameSite=Strict cookie along a redirect chain begun cross-site, so /kiosk would not see the
    # terminal cookie. This page is of OneCard's own origin; the navigation it starts is same-site.
    response = make_response(render_template("halls/kiosk/started.html"))
    response.set_cookie(
        TERMINAL_COOKIE,
        token,
        max_age=ttl,
        secure=cookie_secure(),
        httponly=True,
        samesite="Strict",
        path="/",
    )
    return _no_store(response)


@bp.get("")
@_at_terminal()
def start_page(terminal: KioskTerminal) -> Response:
    _end_citizen(current_sso_session())
    hall = get_hall(db_session(), terminal.hall_id, live=False)
    response = _page("halls/kiosk/start.html", terminal, hall=hall)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@bp.post("/login")
@_at_terminal(csrf=True)
def login(terminal: KioskTerminal) -> Response:
    svc = services()
    tx = create_transaction(
        svc.store,
        params={"ui_locales": request.form.get("ui_locales", "")[:35]},
        client_id=terminal.terminal_id,
        required_acr=ACR_HIGH,
        browser=browser_binding(),
        login_hint=None,
        ttl=svc.settings.login_transaction_ttl,
        now=svc.now(),
        terminal_id=terminal.terminal_id,
        resume_to=url_for("halls_kiosk.welcome"),
        bridge_url=terminal.bridge_url,
    )
    return _no_store(redirect(url_for("cardlogin.start", tx=tx.id), 303))


@bp.get("/welcome")
@_at_terminal()
def welcome(terminal: KioskTerminal) -> Response:
    svc = services()
    sso = current_sso_session()
    if sso is None or sso.terminal_id != terminal.terminal_id:
        return _to_start()
    if not begin_visit(svc.store, sso.sid, idle=svc.settings.kiosk_idle_seconds, now=svc.now()):
        _end_citizen(sso)
        return _to_start()
    return _no_store(redirect(url_for("halls_kiosk.menu"), 303))


@bp.get("/menu")
@_in_visit()
def menu(terminal: KioskTerminal, sso: SsoSession) -> Response:
    session = db_session()
    hall = get_hall(session, terminal.hall_id, live=False)
    ecard = find_current_ecard(session, sso.citizen_id)
    return _page(
        "halls/kiosk/menu.html",
        terminal,
        visit=True,
        hall=hall,
        services=list_services(session, hall) if hall.is_live else [],
        ecard_status=ecard.status.value if ecard is not None else None,
    )


@bp.post("/number")
@_in_visit(csrf=True)
def number(terminal: KioskTerminal, sso: SsoSession) -> Response:
    session = db_session()
    held = False
    ticket: TicketView
    try:
        hall = get_hall(session, terminal.hall_id)
        service = get_service(session, hall, request.form.get("service"))
        ticket = take_number(
            session,
            citizen_id=sso.citizen_id,
            service=service,
            channel="kiosk",
            terminal_id=terminal.terminal_id,
            now=services().now(),
        )
    except AlreadyQueuedError as exc:
        ticket, held = exc.ticket, True
    except OneCardError as exc:
        return _no_store(error_page(NO_NUMBER_TITLE, exc.description, exc.status_code))
    return _page("halls/kiosk/ticket.html", terminal, visit=True, ticket=ticket, held=held)


@bp.get("/lost")
@_in_visit()
def lost_page(terminal: KioskTerminal, _sso: SsoSession) -> Response:
    return _page("halls/kiosk/lost.html", terminal, visit=True)


def _login_card(sso: SsoSession) -> Card | None:
    """The card the citizen logged in with at this visit (the session records it), if still active."""
    card = find_card(db_session(), sso.card_id) if sso.card_id is not None else None
    if card is None or card.citizen_id != sso.citizen_id or card.status != CardStatus.ACTIVE.value:
        return None
    return card


@bp.post("/lost")
@_in_visit(csrf=True)
def report_lost(terminal: KioskTerminal, sso: SsoSession) -> Response:
    """The card the citizen logged in with is lost, no other card of theirs; the visit then ends, since the
    card no longer logs in."""
    card = _login_card(sso)
    if card is not None:
        change_status(
            db_session(),
            card,
            CardStatus.LOST,
            actor=f"citizen:{sso.citizen_id}",
            now=services().now(),
            details={"terminal_id": terminal.terminal_id},
        )
    _end_citizen(sso)
    response = _page("halls/kiosk/lost_done.html", terminal, return_after=LOST_DONE_SECONDS)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@bp.get("/pin")
@_in_visit()
def pin_page(terminal: KioskTerminal, _sso: SsoSession) -> Response:
    return _page("halls/kiosk/pin.html", terminal, visit=True)


@bp.post("/pin/outcome")
@_in_visit(csrf=True)
def pin_outcome(terminal: KioskTerminal, sso: SsoSession) -> Response:
    """The PIN page reports how the bridge's PIN change ended, for the audit trail. The card changes its PIN
    itself and tells the server nothing, so the event records what the terminal reported (``reported_by``),
    with the terminal's id and the card of the visit; it changes no state."""
    outcome = request.form.get("outcome")
    if outcome not in PIN_OUTCOMES:
        return _no_store(make_response("", 400))
    card = _login_card(sso)
    record_event(
        db_session(),
        actor=f"citizen:{sso.citizen_id}",
        action="kiosk.pin_change",
        target_type="card",
        target_id=card.card_id if card is not None else (sso.card_id or ""),
        details={"terminal_id": terminal.terminal_id, "outcome": outcome, "reported_by": "terminal"},
        now=services().now(),
    )
    return _no_store(make_response("", 204))


@bp.post("/more-time")
def more_time() -> Response:
    terminal = _terminal()
    if terminal is None or not _csrf_ok(terminal):
        return _no_store(make_response("", 403))
    return _no_store(make_response("", 204 if _visit(terminal) is not None else 410))


@bp.post("/end")
def end() -> Response:
    """Idle, card pulled or "Finish": no CSRF check — ending a visit is what anyone may ask of a kiosk."""
    _end_citizen(current_sso_session())
    return _to_start()
