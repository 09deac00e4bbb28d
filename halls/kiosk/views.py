"""The kiosk pages (issue 13 item 1): a self-service terminal of a hall, the card login, a short menu.

- ``POST /kiosk/start``        the kiosk device proves its key (``client_assertion``, private_key_jwt only,
                               a client of kind ``kiosk``) and names its hall; 303 to the start page with
                               the terminal cookie
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
                               whose own PIN window or pad takes both PINs; the server never learns the
                               outcome, so nothing is audited here (docs/service-halls.md §3.3)
- ``POST /kiosk/more-time``    the "More time" button: the visit lives another idle period
- ``POST /kiosk/end``          end the visit (the page calls it on idle and on card-out too)

Every page is ``Cache-Control: no-store`` and the visit ends server-side when it lapses.
"""

from __future__ import annotations

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
from halls.register.service import get_hall, get_service, list_services
from idp.audit.service import record_event
from idp.cards.model import CardStatus
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


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _terminal() -> KioskTerminal | None:
    svc = services()
    return find_terminal(svc.store, request.cookies.get(TERMINAL_COOKIE), now=svc.now())


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
            bridge_url=settings.card_bridge_url,
            **context,
        )
    )
    return _no_store(response)


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
    hall = get_hall(session, request.form.get("hall_id"))
    ttl = svc.settings.kiosk_terminal_hours * 3600
    token, terminal = start_terminal(
        svc.store, terminal_id=client.client_id, hall_id=hall.id, ttl=ttl, now=now
    )
    record_event(
        session,
        actor=f"client:{client.client_id}",
        action="kiosk.start",
        target_type="hall",
        target_id=hall.id,
        details={"terminal_id": terminal.terminal_id},
        now=now,
    )
    response = redirect(url_for("halls_kiosk.start_page"), 303)
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
def start_page() -> Response:
    terminal = _terminal()
    if terminal is None:
        return _no_store(error_page(NOT_STARTED_TITLE, NOT_STARTED_MESSAGE, 403))
    _end_citizen(current_sso_session())
    hall = get_hall(db_session(), terminal.hall_id, live=False)
    response = _page("halls/kiosk/start.html", terminal, hall=hall)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@bp.post("/login")
def login() -> Response:
    terminal = _terminal()
    if terminal is None:
        return _no_store(error_page(NOT_STARTED_TITLE, NOT_STARTED_MESSAGE, 403))
    if not _csrf_ok(terminal):
        return _no_store(error_page(FORM_EXPIRED_TITLE, FORM_EXPIRED_MESSAGE))
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
    )
    return _no_store(redirect(url_for("cardlogin.start", tx=tx.id), 303))


@bp.get("/welcome")
def welcome() -> Response:
    terminal = _terminal()
    if terminal is None:
        return _no_store(error_page(NOT_STARTED_TITLE, NOT_STARTED_MESSAGE, 403))
    svc = services()
    sso = current_sso_session()
    if sso is None or sso.terminal_id != terminal.terminal_id:
        return _to_start()
    if not begin_visit(svc.store, sso.sid, idle=svc.settings.kiosk_idle_seconds, now=svc.now()):
        _end_citizen(sso)
        return _to_start()
    return _no_store(redirect(url_for("halls_kiosk.menu"), 303))


@bp.get("/menu")
def menu() -> Response:
    terminal = _terminal()
    if terminal is None:
        return _no_store(error_page(NOT_STARTED_TITLE, NOT_STARTED_MESSAGE, 403))
    sso = _visit(terminal)
    if sso is None:
        return _to_start()
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
def number() -> Response:
    terminal = _terminal()
    if terminal is None:
        return _no_store(error_page(NOT_STARTED_TITLE, NOT_STARTED_MESSAGE, 403))
    sso = _visit(terminal)
    if sso is None:
        return _to_start()
    if not _csrf_ok(terminal):
        return _no_store(error_page(FORM_EXPIRED_TITLE, FORM_EXPIRED_MESSAGE))
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
def lost_page() -> Response:
    terminal = _terminal()
    if terminal is None:
        return _no_store(error_page(NOT_STARTED_TITLE, NOT_STARTED_MESSAGE, 403))
    if _visit(terminal) is None:
        return _to_start()
    return _page("halls/kiosk/lost.html", terminal, visit=True)


@bp.post("/lost")
def report_lost() -> Response:
    """The card the citizen logged in with (the session records it) is lost, no other card of theirs; the
    visit then ends, since the card no longer logs in."""
    terminal = _terminal()
    if terminal is None:
        return _no_store(error_page(NOT_STARTED_TITLE, NOT_STARTED_MESSAGE, 403))
    sso = _visit(terminal)
    if sso is None:
        return _to_start()
    if not _csrf_ok(terminal):
        return _no_store(error_page(FORM_EXPIRED_TITLE, FORM_EXPIRED_MESSAGE))
    session = db_session()
    now = services().now()
    card = find_card(session, sso.card_id) if sso.card_id is not None else None
    if card is not None and card.citizen_id == sso.citizen_id and card.status == CardStatus.ACTIVE.value:
        change_status(
            session,
            card,
            CardStatus.LOST,
            actor=f"citizen:{sso.citizen_id}",
            now=now,
            details={"terminal_id": terminal.terminal_id},
        )
    _end_citizen(sso)
    response = _page("halls/kiosk/lost_done.html", terminal)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@bp.get("/pin")
def pin_page() -> Response:
    terminal = _terminal()
    if terminal is None:
        return _no_store(error_page(NOT_STARTED_TITLE, NOT_STARTED_MESSAGE, 403))
    if _visit(terminal) is None:
        return _to_start()
    return _page("halls/kiosk/pin.html", terminal, visit=True)


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
