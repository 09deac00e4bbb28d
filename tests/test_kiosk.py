"""Kiosk terminals and pages (issue 13 item 1), on SQLite and PostgreSQL + Redis (``live_stack``).

The terminal proves its key with a private_key_jwt client assertion (a wrong key, a rotated-out key and a
shared secret are refused); the card login at a kiosk is the ordinary card login (the bridge's real card
operations over the in-process virtual card), and its SSO session and audit event carry the terminal id;
the menu takes numbers and reports the card lost; the idle limit ends the visit server-side.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text

from halls.register.service import add_service, create_hall, get_hall, register_kiosk, remove_kiosk
from idp import dbadmin
from idp.audit.model import AuditEvent
from idp.cards.model import Card
from idp.cli import cli
from idp.clients.errors import InvalidClientMetadataError
from idp.clients.service import replace_client_jwks
from idp.scopes import ACR_HIGH
from idp.sessions.model import SsoSession
from reader_bridge.cli import ORIGINS_ENV, build_parser, serve_origins
from sdk.keys import generate_key
from tests.support.cardlogin import CardBrowser, Flow, issue_test_card
from tests.support.fapi import KeyedClient
from tests.support.kiosk import register_test_kiosk
from tests.support.live import REDIRECT, LiveIdp
from wallet.ecards.model import EcardStatus
from wallet.ecards.service import activate_ecard, find_current_ecard

HALL = "kiosk-hall"


@dataclass
class Kiosk:
    idp: LiveIdp
    device: KeyedClient
    http: requests.Session
    unregistered_client_id: str = ""

    def url(self, path: str) -> str:
        return f"{self.idp.base_url}{path}"

    def start(
        self, *, hall_id: str | None = None, assertion: dict[str, str] | None = None
    ) -> requests.Response:
        """``POST /kiosk/start`` as the bridge's launch page sends it: the assertion alone (the terminal's
        hall is the registered one), or with a ``hall_id`` field as older terminals sent it."""
        form = {**(assertion or self.device.assertion(wall_clock=True))}
        if hall_id is not None:
            form["hall_id"] = hall_id
        return self.http.post(self.url("/kiosk/start"), data=form, allow_redirects=False, timeout=10)

    def csrf(self, page: str) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match, page[:500]
        return match.group(1)


@pytest.fixture
def kiosk(live_stack: LiveIdp) -> Kiosk:
    idp = live_stack
    svc = idp.services
    with svc.database.session() as session:
        created = create_hall(session, name="江岸区政务服务中心", hall_id=HALL, actor="test", now=idp.clock())
        add_service(
            session,
            created.hall,
            code="pension",
            name="养老保险",
            name_en="Pensions",
            prefix="A",
            actor="test",
            now=idp.clock(),
        )
    # A kiosk client of its own, never registered to a hall: the device's key is registered for the hall's
    # kiosk below, and this client stays as the terminal /kiosk/start must refuse.
    device = KeyedClient(idp, kind="kiosk", name="Kiosk without a hall")
    unregistered = device.client_id
    register_test_kiosk(idp, device, HALL)
    return Kiosk(idp, device, CardBrowser(idp).http, unregistered)


def _login_at(kiosk: Kiosk) -> requests.Response:
    """Start the terminal, log in with the card and PIN; the menu page."""
    assert kiosk.start().status_code == 200
    start = kiosk.http.get(kiosk.url("/kiosk"), timeout=10)
    assert start.status_code == 200 and start.headers["Cache-Control"] == "no-store"
    parked = kiosk.http.post(
        kiosk.url("/kiosk/login"), data={"csrf": kiosk.csrf(start.text)}, allow_redirects=False, timeout=10
    )
    assert parked.status_code == 303, parked.text[:300]
    tx = parked.headers["Location"].rstrip("/").split("/")[-2]
    card = issue_test_card(kiosk.idp)
    browser = CardBrowser(kiosk.idp)
    browser.http = browser.browser.http = kiosk.http
    page = browser.open_card_page(tx)
    challenge = browser.challenge(page)
    verified = browser.verify(page, challenge, card.sign(browser.origin, challenge))
    assert verified.status_code == 200, verified.text
    assert verified.json()["redirect_to"].endswith("/kiosk/welcome")
    menu = kiosk.http.get(kiosk.url(verified.json()["redirect_to"]), timeout=10)
    assert menu.status_code == 200 and menu.url.endswith("/kiosk/menu"), menu.url
    return menu


def _sessions(idp: LiveIdp) -> list[SsoSession]:
    with idp.services.database.session() as session:
        return list(session.scalars(select(SsoSession)))


def test_card_login_at_a_kiosk_carries_the_terminal(kiosk: Kiosk) -> None:
    menu = _login_at(kiosk)
    assert "Pensions" in menu.text and "养老保险" not in menu.text  # the English reader's page
    [sso] = _sessions(kiosk.idp)
    assert sso.terminal_id == kiosk.device.client_id and sso.acr == ACR_HIGH
    with kiosk.idp.services.database.session() as session:
        login = session.scalars(select(AuditEvent).where(AuditEvent.action == "card.login")).one()
        started = session.scalars(select(AuditEvent).where(AuditEvent.action == "kiosk.start")).one()
    assert login.details["terminal_id"] == kiosk.device.client_id
    assert started.details["terminal_id"] == kiosk.device.client_id


def test_kiosk_takes_a_number_and_shows_the_held_one(kiosk: Kiosk) -> None:
    menu = _login_at(kiosk)
    form = {"csrf": kiosk.csrf(menu.text), "service": "pension"}
    first = kiosk.http.post(kiosk.url("/kiosk/number"), data=form, timeout=10)
    assert first.status_code == 200 and 'id="ticket-number">A' in first.text
    number = re.search(r'id="ticket-number">(\w+)<', first.text)
    again = kiosk.http.post(kiosk.url("/kiosk/number"), data=form, timeout=10)
    assert "You already hold a number" in again.text
    assert number is not None and f'id="ticket-number">{number.group(1)}<' in again.text
    unknown = kiosk.http.post(kiosk.url("/kiosk/number"), data={**form, "service": "nope"}, timeout=10)
    assert unknown.status_code == 404
    stale = kiosk.http.post(kiosk.url("/kiosk/number"), data={**form, "csrf": "x" * 64}, timeout=10)
    assert stale.status_code == 400


def test_idle_limit_ends_the_visit_server_side(kiosk: Kiosk) -> None:
    menu = _login_at(kiosk)
    idle = kiosk.idp.services.settings.kiosk_idle_seconds
    kiosk.idp.clock.advance(idle - 5)
    more = kiosk.http.post(kiosk.url("/kiosk/more-time"), data={"csrf": kiosk.csrf(menu.text)}, timeout=10)
    assert more.status_code == 204  # "More time": another idle period from now
    kiosk.idp.clock.advance(idle - 5)
    assert kiosk.http.get(kiosk.url("/kiosk/menu"), timeout=10).url.endswith("/kiosk/menu")
    kiosk.idp.clock.advance(idle + 1)
    back = kiosk.http.get(kiosk.url("/kiosk/menu"), timeout=10)
    assert back.url.endswith("/kiosk") and "Insert your social security card" in back.text
    [sso] = _sessions(kiosk.idp)
    assert sso.ended_at is not None


def test_finish_ends_the_visit(kiosk: Kiosk) -> None:
    _login_at(kiosk)
    back = kiosk.http.post(kiosk.url("/kiosk/end"), timeout=10)
    assert back.url.endswith("/kiosk")
    [sso] = _sessions(kiosk.idp)
    assert sso.ended_at is not None
    assert kiosk.http.get(kiosk.url("/kiosk/menu"), timeout=10).url.endswith("/kiosk")
    # The welcome of an ended visit does not bring it back.
    assert kiosk.http.get(kiosk.url("/kiosk/welcome"), timeout=10).url.endswith("/kiosk")


def test_report_lost_at_the_kiosk(kiosk: Kiosk) -> None:
    menu = _login_at(kiosk)
    assert 'id="report-lost"' in menu.text
    [sso] = _sessions(kiosk.idp)
    with kiosk.idp.services.database.session() as session:
        [card] = session.scalars(select(Card).where(Card.citizen_id == sso.citizen_id))
        # The register holds one live card per citizen; the session names the card used, the one lost below.
        assert sso.card_id == card.card_id
        activate_ecard(session, citizen_id=sso.citizen_id, card_id=card.card_id, now=kiosk.idp.clock())
    confirm = kiosk.http.get(kiosk.url("/kiosk/lost"), timeout=10)
    assert confirm.status_code == 200 and 'id="confirm-lost"' in confirm.text
    assert confirm.headers["Cache-Control"] == "no-store"
    # A stale CSRF token changes nothing, and the visit goes on.
    stale = kiosk.http.post(kiosk.url("/kiosk/lost"), data={"csrf": "x" * 64}, timeout=10)
    assert stale.status_code == 400
    with kiosk.idp.services.database.session() as session:
        assert session.get(Card, card.card_id).status == "active"  # type: ignore[union-attr]
        assert not list(session.scalars(select(AuditEvent).where(AuditEvent.action == "card.lost")))
    done = kiosk.http.post(kiosk.url("/kiosk/lost"), data={"csrf": kiosk.csrf(confirm.text)}, timeout=10)
    assert done.status_code == 200 and 'id="lost-done"' in done.text
    with kiosk.idp.services.database.session() as session:
        assert session.get(Card, card.card_id).status == "lost"  # type: ignore[union-attr]
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "card.lost"))
        view = find_current_ecard(session, sso.citizen_id)
    assert event.actor == f"citizen:{sso.citizen_id}" and event.target_id == card.card_id
    assert event.details["terminal_id"] == kiosk.device.client_id
    assert view is not None and view.status is EcardStatus.SUSPENDED  # the e-card is unusable now
    # The visit has ended: the menu and the lost page go back to the start.
    [ended] = _sessions(kiosk.idp)
    assert ended.ended_at is not None
    assert kiosk.http.get(kiosk.url("/kiosk/menu"), timeout=10).url.endswith("/kiosk")
    again = kiosk.http.post(kiosk.url("/kiosk/lost"), data={"csrf": kiosk.csrf(confirm.text)}, timeout=10)
    assert again.url.endswith("/kiosk")


def _refused(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert "ockiosk" not in response.cookies
    body: dict[str, Any] = response.json()
    return body


def test_terminal_authentication_refuses_wrong_and_rotated_keys(kiosk: Kiosk) -> None:
    other = KeyedClient(kiosk.idp, name="Another key")  # its key signs for the kiosk's client id: wrong
    claims = kiosk.device.assertion_claims(wall_clock=True)
    forged = {**kiosk.device.assertion(wall_clock=True), "client_assertion": other.sign(claims)}
    assert _refused(kiosk.start(assertion=forged))["error"] == "invalid_client"
    old_assertion = kiosk.device.assertion(wall_clock=True)
    replacement = KeyedClient(kiosk.idp, name="New key")
    with kiosk.idp.services.database.session() as session:
        replace_client_jwks(session, kiosk.device.client_id, {"keys": [replacement.jwk]})
    _refused(kiosk.start(assertion=old_assertion))  # the rotated-out key
    claims = kiosk.device.assertion_claims(wall_clock=True)
    rotated = {**kiosk.device.assertion(wall_clock=True), "client_assertion": replacement.sign(claims)}
    assert kiosk.start(assertion=rotated).status_code == 200


def test_terminal_authentication_refuses_secrets_other_kinds_and_bad_input(kiosk: Kiosk) -> None:
    with pytest.raises(InvalidClientMetadataError):
        kiosk.idp.register_client(kind="kiosk", redirect_uris=(REDIRECT,), scope="openid")  # a shared secret
    client_id, secret = kiosk.idp.register_client(redirect_uris=(REDIRECT,), scope="openid")
    assert secret is not None
    basic = kiosk.http.post(
        kiosk.url("/kiosk/start"), data={"hall_id": HALL}, auth=(client_id, secret), timeout=10
    )
    _refused(basic)
    portal = KeyedClient(kiosk.idp, name="A keyed portal")  # private_key_jwt, but not a kiosk
    assert _refused(kiosk.start(assertion=portal.assertion(wall_clock=True)))["error"] == "invalid_client"
    _refused(kiosk.http.post(kiosk.url("/kiosk/start"), data={"hall_id": HALL}, timeout=10))
    replay = kiosk.device.assertion(wall_clock=True)
    assert kiosk.start(assertion=replay).status_code == 200
    _refused(kiosk.start(assertion=replay))  # an assertion is one-time


def test_kiosk_start_opens_the_registered_hall_only(kiosk: Kiosk) -> None:
    idp = kiosk.idp
    # Unregistered: a kiosk client with a good key but no hall is refused like a wrong key.
    unregistered = KeyedClient(idp, kind="kiosk", name="Kiosk without a hall")
    assert unregistered.client_id != kiosk.unregistered_client_id
    assert (
        _refused(kiosk.start(assertion=unregistered.assertion(wall_clock=True)))["error"] == "invalid_client"
    )
    # A hall_id field naming another hall is refused, without a cookie; naming its own is fine.
    with idp.services.database.session() as session:
        create_hall(session, name="另一个大厅", hall_id="other-hall", actor="test", now=idp.clock())
    other = kiosk.start(hall_id="other-hall")
    assert other.status_code == 400 and other.json()["error"] == "invalid_hall"
    assert "ockiosk" not in other.cookies
    assert kiosk.start(hall_id="no-such-hall").status_code == 400
    started = kiosk.start(hall_id=HALL)
    assert started.status_code == 200 and "ockiosk" in started.cookies
    # A same-origin page moving on to /kiosk, not a redirect: the SameSite=Strict cookie survives a start
    # posted from the bridge's launch page (another site).
    assert 'http-equiv="refresh"' in started.text and 'url=/kiosk"' in started.text
    assert "samesite=strict" in started.headers["Set-Cookie"].lower()
    page = kiosk.http.get(kiosk.url("/kiosk"), timeout=10)
    assert page.status_code == 200 and "江岸区政务服务中心" in page.text
    assert f'data-bridge-url="{idp.services.settings.card_bridge_url}"' in page.text


def test_kiosk_pages_and_its_card_login_use_the_terminal_bridge(kiosk: Kiosk) -> None:
    idp = kiosk.idp
    own_bridge = "http://127.0.0.1:47999"
    with idp.services.database.session() as session:
        registered = register_kiosk(
            session,
            get_hall(session, HALL),
            name="自助机2",
            jwks={"keys": [kiosk.device.jwk]},
            bridge_url=own_bridge,
            issuer=idp.base_url,
            actor="test",
            now=idp.clock(),
        )
    kiosk.device.client_id = registered.client_id
    assert kiosk.start().status_code == 200
    start = kiosk.http.get(kiosk.url("/kiosk"), timeout=10)
    assert f'data-bridge-url="{own_bridge}"' in start.text
    card_page = kiosk.http.post(kiosk.url("/kiosk/login"), data={"csrf": kiosk.csrf(start.text)}, timeout=10)
    assert card_page.status_code == 200 and own_bridge in card_page.text
    assert idp.services.settings.card_bridge_url not in card_page.text


def test_removing_a_kiosk_or_its_hall_stops_its_start(kiosk: Kiosk) -> None:
    from halls.register.service import remove_hall, remove_kiosk

    idp = kiosk.idp
    assert kiosk.start().status_code == 200
    with idp.services.database.session() as session:
        remove_kiosk(session, get_hall(session, HALL), kiosk.device.client_id, actor="test", now=idp.clock())
    _refused(kiosk.start())
    second = KeyedClient(idp, kind="kiosk", name="unused")
    with idp.services.database.session() as session:
        again = register_kiosk(
            session,
            get_hall(session, HALL),
            name="自助机1",
            jwks={"keys": [second.jwk]},
            issuer=idp.base_url,
            actor="test",
            now=idp.clock(),
        )
    second.client_id = again.client_id
    assert kiosk.start(assertion=second.assertion(wall_clock=True)).status_code == 200
    with idp.services.database.session() as session:
        remove_hall(session, HALL, actor="test", now=idp.clock())
    _refused(kiosk.start(assertion=second.assertion(wall_clock=True)))


def test_pages_without_a_terminal_and_in_both_languages(kiosk: Kiosk) -> None:
    fresh = requests.Session()
    assert fresh.get(kiosk.url("/kiosk"), timeout=10).status_code == 403
    assert fresh.post(kiosk.url("/kiosk/login"), timeout=10).status_code == 403
    assert fresh.get(kiosk.url("/kiosk/menu"), timeout=10).status_code == 403
    assert kiosk.start().status_code == 200
    english = kiosk.http.get(kiosk.url("/kiosk"), timeout=10)
    assert "Insert your social security card" in english.text
    chinese = kiosk.http.get(kiosk.url("/kiosk"), headers={"Accept-Language": "zh-CN"}, timeout=10)
    assert "请插入社会保障卡" in chinese.text and 'lang="zh' in chinese.text
    stale = kiosk.http.post(
        kiosk.url("/kiosk/login"), data={"csrf": "nope"}, allow_redirects=False, timeout=10
    )
    assert stale.status_code == 400
    # Without a visit, the menu and numbers lead back to the start.
    assert kiosk.http.get(kiosk.url("/kiosk/menu"), timeout=10).url.endswith("/kiosk")


@pytest.mark.parametrize(
    ("argv", "environ", "allowed"),
    [
        (["serve", "--kiosk", "https://login.example"], {}, {"https://login.example"}),
        (["serve", "--kiosk", "https://login.example", "--origin", "https://evil.example"], {}, None),
        (["serve", "--kiosk", "https://login.example"], {ORIGINS_ENV: "https://evil.example"}, None),
        (["serve", "--kiosk", "https://a.example,https://b.example"], {}, None),
        (["serve", "--kiosk", "not an origin"], {}, None),
    ],
)
def test_bridge_kiosk_profile_allows_exactly_one_origin(
    argv: list[str], environ: dict[str, str], allowed: set[str] | None
) -> None:
    args = build_parser().parse_args(argv)
    if allowed is None:
        with pytest.raises(ValueError):
            serve_origins(args, environ)
    else:
        assert serve_origins(args, environ) == allowed


def test_kiosk_registration_and_key_rotation_by_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("ONECARD_") and not key.startswith("ONECARD_TEST_"):
            monkeypatch.delenv(key)
    url = f"sqlite:///{tmp_path / 'kiosk.sqlite3'}"
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    monkeypatch.setenv("ONECARD_ENV", "test")
    dbadmin.upgrade(url)
    old, new = (generate_key("ES256").public_jwk() for _ in range(2))
    files = []
    for name, jwk in (("old", old), ("new", new)):
        path = tmp_path / f"{name}.jwks.json"
        path.write_text(json.dumps({"keys": [jwk]}))
        files.append(str(path))
    runner = CliRunner()
    base = ["clients", "add", "--name", "Kiosk 1", "--kind", "kiosk", "--redirect-uri", REDIRECT]
    refused = runner.invoke(cli, [*base, "--scope", "openid"])
    assert refused.exit_code != 0 and "private_key_jwt" in refused.output  # no shared secret for a kiosk
    added = runner.invoke(
        cli, [*base, "--scope", "openid", "--auth-method", "private_key_jwt", "--jwks", files[0], "--json"]
    )
    assert added.exit_code == 0, added.output
    client_id = json.loads(added.output)["client_id"]
    replaced = runner.invoke(cli, ["clients", "replace-keys", client_id, "--jwks", files[1]])
    assert replaced.exit_code == 0, replaced.output
    engine = create_engine(url)
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT jwks FROM oauth_clients WHERE client_id = :c"), {"c": client_id}
        ).scalar_one()
        events = connection.execute(text("SELECT action FROM audit_events")).scalars().all()
    engine.dispose()
    assert (json.loads(stored) if isinstance(stored, str) else stored) == {"keys": [new]}
    assert "client.replace_keys" in events
    bad = runner.invoke(cli, ["clients", "replace-keys", client_id, "--jwks", str(tmp_path / "none.json")])
    assert bad.exit_code != 0


def test_card_login_at_a_kiosk_offers_no_other_way_in(kiosk: Kiosk) -> None:
    assert kiosk.start().status_code == 200
    start = kiosk.http.get(kiosk.url("/kiosk"), timeout=10)
    parked = kiosk.http.post(kiosk.url("/kiosk/login"), data={"csrf": kiosk.csrf(start.text)}, timeout=10)
    assert parked.status_code == 200 and "/card" in parked.url
    # The card is the only way in at a terminal: no "another way", no desktop PIN help; back to the start.
    for absent in ('id="other-way"', 'id="choose-other"', "onecard-bridge serve"):
        assert absent not in parked.text
    assert 'href="/kiosk/welcome" id="kiosk-back"' in parked.text
    assert "ask the hall staff" in parked.text
    # An ordinary login's card page still offers them.
    flow = Flow(kiosk.idp)
    page = flow.browser.http.get(flow.page.url, timeout=10)
    assert 'id="choose-other"' in page.text and 'id="kiosk-back"' not in page.text


def _pin_events(kiosk: Kiosk) -> list[AuditEvent]:
    with kiosk.idp.services.database.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "kiosk.pin_change")))


def test_pin_change_outcome_is_audited_as_the_terminal_reported_it(kiosk: Kiosk) -> None:
    _login_at(kiosk)
    page = kiosk.http.get(kiosk.url("/kiosk/pin"), timeout=10)
    assert page.status_code == 200 and 'data-outcome-url="/kiosk/pin/outcome"' in page.text
    [csrf] = re.findall(r'data-csrf="([^"]+)"', page.text)
    url = kiosk.url("/kiosk/pin/outcome")
    # Refused, and nothing recorded: an unknown outcome, a stale token, no visit.
    assert kiosk.http.post(url, data={"csrf": csrf, "outcome": "<script>"}, timeout=10).status_code == 400
    assert kiosk.http.post(url, data={"csrf": "x" * 64, "outcome": "changed"}, timeout=10).status_code == 400
    assert requests.post(url, data={"csrf": csrf, "outcome": "changed"}, timeout=10).status_code == 403
    assert _pin_events(kiosk) == []
    answer = kiosk.http.post(url, data={"csrf": csrf, "outcome": "changed"}, timeout=10)
    assert answer.status_code == 204
    [sso] = _sessions(kiosk.idp)
    [event] = _pin_events(kiosk)
    assert event.actor == f"citizen:{sso.citizen_id}" and event.target_id == sso.card_id
    assert event.details == {
        "terminal_id": kiosk.device.client_id,
        "outcome": "changed",
        "reported_by": "terminal",
    }
    kiosk.http.post(kiosk.url("/kiosk/end"), timeout=10)
    after = kiosk.http.post(url, data={"csrf": csrf, "outcome": "failed"}, allow_redirects=False, timeout=10)
    assert after.status_code == 303 and len(_pin_events(kiosk)) == 1  # the visit is over


def test_the_lost_done_page_returns_to_the_start_by_itself(kiosk: Kiosk) -> None:
    _login_at(kiosk)
    confirm = kiosk.http.get(kiosk.url("/kiosk/lost"), timeout=10)
    done = kiosk.http.post(kiosk.url("/kiosk/lost"), data={"csrf": kiosk.csrf(confirm.text)}, timeout=10)
    assert 'data-return-after="60"' in done.text and 'id="return-note"' in done.text
    assert 'data-visit="no"' in done.text  # no visit controls: the citizen is gone


def test_removing_a_kiosk_stops_its_started_terminal_and_visit(kiosk: Kiosk) -> None:
    _login_at(kiosk)
    with kiosk.idp.services.database.session() as session:
        remove_kiosk(
            session, get_hall(session, HALL), kiosk.device.client_id, actor="test", now=kiosk.idp.clock()
        )
    # Not only the next start: the terminal already started and the visit on it stop at once.
    assert kiosk.http.get(kiosk.url("/kiosk/menu"), timeout=10).status_code == 403
    assert kiosk.http.get(kiosk.url("/kiosk"), timeout=10).status_code == 403
