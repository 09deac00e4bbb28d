"""QR scan-to-login (issue 5 item 1, DESIGN.md §6): the pure state machine, the service on every store,
the pages and APIs on a live server (a desktop browser and a phone over HTTP, the phone's passkey a software
authenticator), and two server processes on PostgreSQL + Redis where the result is delivered by the node
that did not create the channel. The same flows in Chromium are in test_qrlogin_browser.py."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from idp.scopes import ACR_HIGH, ACR_SUBSTANTIAL
from idp.stores.base import EphemeralStore
from tests.support.live import Browser, query_of
from tests.support.qrlogin import CHALLENGE, VERIFIER, bind_soft_passkey, seed_citizen_with_ecard
from tests.support.wallet import LiveWallet, SoftAuthenticator, WalletUser, running_wallet
from wallet.qrlogin import channel as ch
from wallet.qrlogin import service
from wallet.qrlogin.errors import (
    CeremonyMismatchError,
    ChannelClosedError,
    ChannelDeniedError,
    ChannelExpiredError,
    ChannelNotApprovedError,
    ChannelNotFoundError,
    ChannelTakenError,
    ForeignBrowserError,
    MatchRequiredError,
    WrongMatchCodeError,
)

REDIRECT = "http://localhost:9/cb"
REQUESTER = ch.Requester(
    "portal", "Provincial Tax Portal", ("openid", "profile"), "127.0.0.1", "Chrome/1 Linux"
)
T0 = 1_750_000_000.0


# --- the state machine (pure) ------------------------------------------------------------------------------


def _open(now: float = T0) -> tuple[ch.Channel, str]:
    return ch.open_channel(transaction_id="tx-1", browser="desk", requester=REQUESTER, now=now)


def test_open_channel_has_a_two_digit_code_among_three_distinct_choices() -> None:
    for _ in range(300):
        channel, secret = _open()
        assert re.fullmatch(r"\d\d", channel.match_code)
        assert len(set(channel.choices)) == ch.CHOICES and channel.match_code in channel.choices
        assert channel.secret_hash == ch.hash_secret(secret) and secret not in channel.to_json().decode()
        assert channel.expires_at - channel.created_at == 120
    assert ch.Channel.from_json(channel.to_json()) == channel


def test_happy_path_waiting_scanned_approved_collected() -> None:
    channel, secret = _open()
    assert ch.state_of(channel, None, now=T0) is ch.ChannelState.WAITING
    channel = ch.scan(channel, None, phone="phone", now=T0 + 1)
    assert ch.state_of(channel, None, now=T0 + 1) is ch.ChannelState.SCANNED
    with pytest.raises(MatchRequiredError):
        ch.begin_approval(channel, None, phone="phone", ceremony_id="c1", now=T0 + 2)
    matched = ch.choose_code(channel, None, phone="phone", code=channel.match_code, now=T0 + 2)
    assert isinstance(matched, ch.Channel) and matched.matched
    started = ch.begin_approval(matched, None, phone="phone", ceremony_id="c1", now=T0 + 3)
    with pytest.raises(CeremonyMismatchError):
        ch.check_approval(started, None, phone="phone", ceremony_id="c2", now=T0 + 4)
    ch.check_approval(started, None, phone="phone", ceremony_id="c1", now=T0 + 4)
    decision = ch.approve(citizen_id="cit", device_id="dev", now=T0 + 4)
    assert ch.state_of(started, decision, now=T0 + 4) is ch.ChannelState.APPROVED
    ch.check_collector(started, secret=secret, expected_browser="desk", expected_transaction_id="tx-1")
    assert ch.check_collectable(started, decision, now=T0 + 5).citizen_id == "cit"
    assert ch.Decision.from_json(decision.to_json()) == decision


def test_wrong_code_burns_the_channel() -> None:
    channel = ch.scan(_open()[0], None, phone="phone", now=T0)
    wrong = next(code for code in ("00", "01", "02") if code != channel.match_code)
    refusal: ch.Decision | None = None
    for bad in (wrong, "", "1", "100", None):
        outcome = ch.choose_code(channel, None, phone="phone", code=bad, now=T0 + 1)  # type: ignore[arg-type]
        assert isinstance(outcome, ch.Decision)
        assert outcome.state is ch.ChannelState.DENIED and outcome.reason is ch.DenyReason.WRONG_CODE
        refusal = outcome
    with pytest.raises(ChannelClosedError):
        ch.choose_code(channel, refusal, phone="phone", code=channel.match_code, now=T0 + 2)
    with pytest.raises(ChannelDeniedError):
        ch.check_collectable(channel, refusal, now=T0 + 2)


def test_only_the_scanning_phone_may_act() -> None:
    channel = ch.scan(_open()[0], None, phone="phone", now=T0)
    assert ch.scan(channel, None, phone="phone", now=T0 + 1) == channel  # a reload
    with pytest.raises(ChannelTakenError):
        ch.scan(channel, None, phone="other", now=T0 + 1)
    with pytest.raises(ChannelTakenError):
        ch.choose_code(channel, None, phone="other", code=channel.match_code, now=T0 + 1)
    with pytest.raises(ChannelTakenError):
        ch.deny(channel, None, phone="other", now=T0 + 1)
    refusal = ch.deny(channel, None, phone="phone", now=T0 + 1)
    assert refusal.reason is ch.DenyReason.DECLINED
    with pytest.raises(ChannelClosedError):
        ch.scan(channel, refusal, phone="phone", now=T0 + 2)


def test_expiry_is_derived_from_now() -> None:
    channel, _ = _open()
    assert ch.state_of(channel, None, now=T0 + 119.9) is ch.ChannelState.WAITING
    assert ch.state_of(channel, None, now=T0 + 120) is ch.ChannelState.EXPIRED
    with pytest.raises(ChannelExpiredError):
        ch.scan(channel, None, phone="phone", now=T0 + 120)
    with pytest.raises(ChannelExpiredError):
        ch.check_collectable(channel, None, now=T0 + 121)
    # An approval given in time can be collected a little later, not much later.
    scanned = ch.scan(channel, None, phone="phone", now=T0)
    approval = ch.approve(citizen_id="c", device_id="d", now=T0 + 119)
    assert ch.check_collectable(scanned, approval, now=T0 + 125) == approval
    with pytest.raises(ChannelExpiredError):
        ch.check_collectable(scanned, approval, now=T0 + 120 + ch.COLLECT_GRACE)


def test_collector_must_hold_the_secret_and_the_transaction() -> None:
    channel, secret = _open()
    for kwargs in (
        {"secret": None, "expected_browser": "desk", "expected_transaction_id": "tx-1"},
        {"secret": secret + "x", "expected_browser": "desk", "expected_transaction_id": "tx-1"},
        {"secret": secret, "expected_browser": "other", "expected_transaction_id": "tx-1"},
        {"secret": secret, "expected_browser": "desk", "expected_transaction_id": "tx-2"},
    ):
        with pytest.raises(ForeignBrowserError):
            ch.check_collector(channel, **kwargs)
    with pytest.raises(ChannelNotApprovedError):
        ch.check_collectable(channel, None, now=T0)


def test_describe_the_asking_browser() -> None:
    assert service.describe_network("127.0.0.1").startswith("This same computer")
    assert service.describe_network("10.1.2.3").startswith("A private network")
    assert service.describe_network("1.1.1.1").startswith("The internet")
    assert service.describe_network("not an ip") == "Unknown"
    assert service.describe_network("1.1.1.1", lambda ip: "Wuhan, Hubei") == "Wuhan, Hubei"
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126"
    assert service.describe_browser(ua) == "Chrome on Windows"
    assert service.describe_browser("") == "A web browser"


# --- the service on every store (one-time steps are atomic) -----------------------------------------------


def test_service_one_decision_one_collection(store: EphemeralStore) -> None:
    channel, secret = service.create_channel(
        store, transaction_id="tx-1", browser="desk", requester=REQUESTER, now=T0
    )
    first = service.scan_channel(store, channel.id, phone="phone-a", now=T0 + 1)
    assert first.state is ch.ChannelState.SCANNED
    with pytest.raises(ChannelTakenError):
        service.scan_channel(store, channel.id, phone="phone-b", now=T0 + 1)
    service.match_code(store, channel.id, phone="phone-a", code=first.channel.match_code, now=T0 + 2)
    # Approval recorded directly (the passkey part is tested over HTTP); then a deny loses the race.
    service._decide(store, first.channel, ch.approve(citizen_id="c", device_id="d", now=T0 + 3), now=T0 + 3)
    with pytest.raises(ChannelClosedError):
        service.deny_channel(store, channel.id, phone="phone-a", now=T0 + 3)
    kwargs = {"expected_browser": "desk", "expected_transaction_id": "tx-1", "now": T0 + 4}
    with pytest.raises(ForeignBrowserError):
        service.collect_channel(store, channel.id, secret="nope", **kwargs)  # type: ignore[arg-type]
    assert service.collect_channel(store, channel.id, secret=secret, **kwargs).citizen_id == "c"  # type: ignore[arg-type]
    with pytest.raises(ChannelNotFoundError):
        service.collect_channel(store, channel.id, secret=secret, **kwargs)  # type: ignore[arg-type]


def test_service_wrong_code_denies(store: EphemeralStore) -> None:
    channel, _ = service.create_channel(
        store, transaction_id="tx-1", browser="desk", requester=REQUESTER, now=T0
    )
    service.scan_channel(store, channel.id, phone="phone", now=T0)
    wrong = next(code for code in channel.choices if code != channel.match_code)
    with pytest.raises(WrongMatchCodeError):
        service.match_code(store, channel.id, phone="phone", code=wrong, now=T0 + 1)
    assert service.view_channel(store, channel.id, now=T0 + 1).state is ch.ChannelState.DENIED
    with pytest.raises(ChannelClosedError):
        service.match_code(store, channel.id, phone="phone", code=channel.match_code, now=T0 + 1)


def test_service_watch_returns_on_change_or_timeout(store: EphemeralStore) -> None:
    channel, secret = service.create_channel(
        store, transaction_id="tx-1", browser="desk", requester=REQUESTER, now=T0
    )
    ticks = iter(range(1000))
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            service.scan_channel(store, channel.id, phone="phone", now=T0 + 1)

    def watch(known: str, now: float) -> service.ChannelView:
        return service.watch_channel(
            store,
            channel.id,
            secret=secret,
            expected_browser="desk",
            expected_transaction_id="tx-1",
            known=known,
            clock=lambda: now,
            monotonic=lambda: float(next(ticks)),
            sleep=sleep,
            timeout=20,
        )

    assert watch("waiting", T0 + 1).state is ch.ChannelState.SCANNED and len(sleeps) == 3
    sleeps.clear()
    assert watch("scanned", T0 + 1).state is ch.ChannelState.SCANNED and len(sleeps) >= 19  # timed out
    assert watch("scanned", T0 + 130).state is ch.ChannelState.EXPIRED


def test_service_refuses_malformed_ids(store: EphemeralStore) -> None:
    for bad in ("", "x" * 32 + "y", "../../etc", "\x00" * 32, "é" * 32):
        with pytest.raises(ChannelNotFoundError):
            service.view_channel(store, bad, now=T0)


# --- the live server: a desktop and a phone over HTTP ------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(f"sqlite:///{tmp_path}/qr.sqlite3", host="localhost") as server:
        server.services.settings = server.services.settings.replace(qr_login_poll_seconds=2)
        server.add_card("zhang")
        yield server


@pytest.fixture
def phone(live: LiveWallet) -> WalletUser:
    """Zhang's phone: card login, e-card activated, passkey bound; then a fresh browser session on it
    (approving needs no wallet sign-in: the passkey says who approves)."""
    user = WalletUser(live, "zhang")
    user.login_with_card()
    assert user.activate().status_code == 303
    assert user.bind_passkey().status_code == 303
    user.http.cookies.clear()
    return user


_DATA = re.compile(r'data-([a-z-]+)="([^"]*)"')


@dataclasses.dataclass
class QrPage:
    tx: str
    channel_url: str
    match_code: str
    status_url: str
    collect_url: str
    csrf: str

    @property
    def channel_id(self) -> str:
        return self.channel_url.rstrip("/").rsplit("/", 1)[1]


class Desktop:
    """The computer's browser over HTTP: a portal's authorization request to the QR login page."""

    def __init__(self, base_url: str, client_id: str, *, acr: str | None = None) -> None:
        self.base_url = base_url
        self.client_id = client_id
        self.http = requests.Session()
        self.http.headers["Accept-Language"] = "en"  # the tests read the pages' English text
        self.acr = acr

    def authorize_url(self) -> str:
        url = (
            f"{self.base_url}/authorize?response_type=code&client_id={self.client_id}&redirect_uri={REDIRECT}"
            f"&scope=openid%20profile&state=s1&nonce=n1&code_challenge={CHALLENGE}&code_challenge_method=S256"
        )
        return url + (f"&acr_values={self.acr}" if self.acr else "")

    def login_page(self) -> requests.Response:
        response = self.http.get(self.authorize_url(), allow_redirects=False, timeout=10)
        assert response.status_code in (302, 303), response.text[:300]
        page = self.http.get(urljoin(self.base_url, response.headers["Location"]), timeout=10)
        assert page.status_code == 200
        return page

    def open_qr(self) -> QrPage:
        page = self.login_page()
        link = re.search(r'href="(/login/[^"]+/qr)"', page.text)
        assert link, "the login page offers no QR login"
        return self.qr_page(link.group(1))

    def qr_page(self, path: str) -> QrPage:
        page = self.http.get(self.base_url + path, timeout=10)
        assert page.status_code == 200, page.text[:300]
        data = dict(_DATA.findall(page.text))
        code = re.search(r'id="match-code"[^>]*>(\d\d)<', page.text)
        assert code
        return QrPage(
            tx=path.split("/")[2],
            channel_url=data["channel-url"],
            match_code=code.group(1),
            status_url=urljoin(self.base_url, data["status-url"]),
            collect_url=urljoin(self.base_url, data["collect-url"]),
            csrf=data["csrf"],
        )

    def status(self, qr: QrPage, known: str = "", *, base: str | None = None) -> requests.Response:
        url = _rebase(qr.status_url, base) if base else qr.status_url
        return self.http.get(url, params={"known": known}, timeout=30)

    def collect(self, qr: QrPage, *, base: str | None = None) -> requests.Response:
        url = _rebase(qr.collect_url, base) if base else qr.collect_url
        return self.http.post(url, json={}, headers={"X-CSRF-Token": qr.csrf}, timeout=10)


def _rebase(url: str, base: str) -> str:
    parts = urlsplit(url)
    return base + parts.path + (f"?{parts.query}" if parts.query else "")


class Phone:
    """The wallet's QR-login pages on the phone, with its software passkey."""

    def __init__(self, http: requests.Session, authenticator: SoftAuthenticator) -> None:
        self.http = http
        self.http.headers["Accept-Language"] = "en"  # the tests read the pages' English text
        self.authenticator = authenticator

    def open(self, url: str) -> requests.Response:
        return self.http.get(url, timeout=10)

    def pick(self, url: str, code: str, page: requests.Response) -> requests.Response:
        return self.http.post(
            url + "/match", data={"csrf": _csrf(page.text), "code": code}, allow_redirects=False, timeout=10
        )

    def approve(self, url: str, **kwargs: Any) -> requests.Response:
        page = self.open(url)
        csrf = _csrf(page.text)
        options = self.http.post(url + "/options", json={}, headers={"X-CSRF-Token": csrf}, timeout=10)
        assert options.status_code == 200, options.text
        data = options.json()
        credential = self.authenticator.get(data["options"], **kwargs)
        return self.http.post(
            url + "/approve",
            data={"csrf": csrf, "ceremony": data["ceremony"], "credential": credential},
            timeout=10,
        )

    def deny(self, url: str) -> requests.Response:
        page = self.open(url)
        return self.http.post(url + "/deny", data={"csrf": _csrf(page.text)}, timeout=10)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def outcome_of(response: requests.Response) -> str:
    match = re.search(r'data-outcome="([a-z_]+)"', response.text)
    assert match, response.text[:300]
    return match.group(1)


def _client(live: LiveWallet) -> str:
    client_id, _ = live.register_client(
        name="Provincial Tax Portal", redirect_uris=(REDIRECT,), scope="openid profile"
    )
    return client_id


def _id_token_claims(live: LiveWallet, client_id: str, secret: str | None, redirect: str) -> dict[str, Any]:
    code = query_of(redirect)["code"]
    token = requests.post(
        f"{live.base_url}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER,
        },
        auth=(client_id, secret or ""),
        timeout=10,
    )
    assert token.status_code == 200, token.text
    payload = token.json()["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def test_scan_to_login_end_to_end(live: LiveWallet, phone: WalletUser) -> None:
    client_id, secret = live.register_client(
        name="Provincial Tax Portal", redirect_uris=(REDIRECT,), scope="openid profile"
    )
    desktop = Desktop(live.base_url, client_id)
    qr = desktop.open_qr()
    assert qr.channel_url.startswith(f"{live.base_url}/wallet/qr-login/")
    first = desktop.status(qr)
    assert first.json()["state"] == "waiting" and 100 < first.json()["expires_in"] <= 120
    assert first.headers["Cache-Control"] == "no-store"

    # The long-poll answers as soon as the phone opens the channel.
    polled: dict[str, Any] = {}
    poller = threading.Thread(target=lambda: polled.update(desktop.status(qr, "waiting").json()))
    poller.start()
    poller.join(0.5)
    # Held, not answered: an immediate answer would have come back already (and said "waiting").
    assert poller.is_alive() and not polled
    handset = Phone(phone.http, phone.authenticator)
    opened_at = time.monotonic()
    page = handset.open(qr.channel_url)
    poller.join(5)
    assert (
        not poller.is_alive() and time.monotonic() - opened_at < 3
    )  # answered on the change, not at timeout
    assert polled["state"] == "scanned"
    assert "Provincial Tax Portal" in page.text
    assert "Your name, gender and date of birth" in page.text  # the requested claims in plain words
    assert "This same computer" in page.text and "127.0.0.1" in page.text
    choices = re.findall(r'name="code" value="(\d\d)"', page.text)
    assert len(choices) == 3 and qr.match_code in choices

    assert desktop.collect(qr).json()["error"] == "channel_not_approved"  # not yet: nothing consumed
    picked = handset.pick(qr.channel_url, qr.match_code, page)
    assert picked.status_code == 303
    approved = handset.approve(qr.channel_url)
    assert outcome_of(approved) == "approved", approved.text[:500]
    assert desktop.status(qr, "scanned").json()["state"] == "approved"

    collected = desktop.collect(qr)
    assert collected.status_code == 200, collected.text
    assert "ocss" in desktop.http.cookies  # the SSO session cookie came with the JSON answer
    # Single use: a replay finds nothing; the phone cannot act on it either.
    replay = desktop.collect(qr)
    assert replay.status_code == 404 and replay.json()["error"] == "channel_not_found"
    assert outcome_of(Phone(phone.http, phone.authenticator).open(qr.channel_url)) == "channel_not_found"
    redirect = Browser(live)
    redirect.http = desktop.http
    final = redirect.authorize(urljoin(live.base_url, collected.json()["redirect_to"]))
    assert final.startswith(REDIRECT + "?code=")
    claims = _id_token_claims(live, client_id, secret, final)
    assert claims["acr"] == ACR_SUBSTANTIAL and claims["amr"] == ["hwk", "mfa"]
    # Once the login went on, the transaction itself is gone too.
    assert desktop.collect(qr).json()["error"] == "login_expired"


def test_wrong_match_code_is_refused_and_burns_the_channel(live: LiveWallet, phone: WalletUser) -> None:
    desktop = Desktop(live.base_url, _client(live))
    qr = desktop.open_qr()
    handset = Phone(phone.http, phone.authenticator)
    page = handset.open(qr.channel_url)
    wrong = next(c for c in re.findall(r'name="code" value="(\d\d)"', page.text) if c != qr.match_code)
    refused = handset.pick(qr.channel_url, wrong, page)
    assert refused.status_code == 403 and outcome_of(refused) == "wrong_match_code"
    assert desktop.status(qr, "scanned").json()["state"] == "denied"
    again = handset.pick(qr.channel_url, qr.match_code, page)
    assert outcome_of(again) == "channel_closed"
    options = phone.http.post(
        qr.channel_url + "/options", json={}, headers={"X-CSRF-Token": _csrf(page.text)}, timeout=10
    )
    assert options.status_code == 409 and options.json()["error"] == "channel_closed"
    assert desktop.collect(qr).json()["error"] == "channel_denied"


def test_denied_request(live: LiveWallet, phone: WalletUser) -> None:
    desktop = Desktop(live.base_url, _client(live))
    qr = desktop.open_qr()
    handset = Phone(phone.http, phone.authenticator)
    assert outcome_of(handset.deny(qr.channel_url)) == "denied"
    assert desktop.status(qr, "waiting").json()["state"] == "denied"
    refused = desktop.collect(qr)
    assert refused.status_code == 403 and refused.json()["error"] == "channel_denied"
    assert "ocss" not in desktop.http.cookies


def test_expired_channel(live: LiveWallet, phone: WalletUser) -> None:
    desktop = Desktop(live.base_url, _client(live))
    qr = desktop.open_qr()
    handset = Phone(phone.http, phone.authenticator)
    page = handset.open(qr.channel_url)
    assert handset.pick(qr.channel_url, qr.match_code, page).status_code == 303
    live.clock.advance(121)
    assert desktop.status(qr, "scanned").json()["state"] == "expired"
    late = handset.open(qr.channel_url)
    assert outcome_of(late) == "channel_expired"
    options = phone.http.post(
        qr.channel_url + "/options", json={}, headers={"X-CSRF-Token": _csrf(page.text)}, timeout=10
    )
    assert options.json()["error"] == "channel_expired"
    assert desktop.collect(qr).json()["error"] == "channel_expired"
    # Long after, the store has forgotten it.
    live.clock.advance(60)
    assert desktop.collect(qr).json()["error"] == "channel_not_found"


def test_approval_given_then_expired_before_collection(live: LiveWallet, phone: WalletUser) -> None:
    desktop = Desktop(live.base_url, _client(live))
    qr = desktop.open_qr()
    handset = Phone(phone.http, phone.authenticator)
    handset.pick(qr.channel_url, qr.match_code, handset.open(qr.channel_url))
    assert outcome_of(handset.approve(qr.channel_url)) == "approved"
    live.clock.advance(120 + 31)
    assert desktop.collect(qr).json()["error"] in ("channel_expired", "channel_not_found")


def test_collect_from_another_browser_is_refused(live: LiveWallet, phone: WalletUser) -> None:
    desktop = Desktop(live.base_url, _client(live))
    qr = desktop.open_qr()
    handset = Phone(phone.http, phone.authenticator)
    handset.pick(qr.channel_url, qr.match_code, handset.open(qr.channel_url))
    assert outcome_of(handset.approve(qr.channel_url)) == "approved"

    # A stranger (say, whoever relayed the QR code) cannot collect: the transaction is not theirs.
    stranger = Desktop(live.base_url, desktop.client_id)
    stolen = stranger.collect(qr)
    assert stolen.status_code == 400 and stolen.json()["error"] == "login_expired"
    assert stranger.status(qr).json()["error"] == "login_expired"
    # Even with the browser cookie copied, the channel's HttpOnly secret is missing.
    stranger.http.cookies.clear()
    stranger.http.cookies.set("ocbr", desktop.http.cookies["ocbr"])
    stolen = stranger.collect(qr)
    assert stolen.status_code == 403 and stolen.json()["error"] == "channel_foreign_browser"
    assert stranger.status(qr).json()["error"] == "channel_foreign_browser"
    # Nothing was consumed: the browser that showed the code still logs in, once.
    assert desktop.collect(qr).status_code == 200
    assert desktop.collect(qr).json()["error"] == "channel_not_found"


def test_a_second_phone_cannot_take_over(live: LiveWallet, phone: WalletUser) -> None:
    desktop = Desktop(live.base_url, _client(live))
    qr = desktop.open_qr()
    Phone(phone.http, phone.authenticator).open(qr.channel_url)
    other = requests.Session()
    taken = other.get(qr.channel_url, timeout=10)
    assert taken.status_code == 403 and outcome_of(taken) == "channel_taken"


def test_loa_high_portal_gets_no_qr_login(live: LiveWallet) -> None:
    desktop = Desktop(live.base_url, _client(live), acr=ACR_HIGH)
    page = desktop.login_page()
    assert "/qr" not in page.text and "/ecard" not in page.text and 'id="start-card"' in page.text
    tx = re.search(r'href="/login/([^/"]+)/', page.text)
    assert tx
    direct = desktop.http.get(f"{live.base_url}/login/{tx.group(1)}/qr", timeout=10)
    assert direct.status_code == 403 and "data-channel-url" not in direct.text


def test_passkey_problems_refuse_without_approving(live: LiveWallet, phone: WalletUser) -> None:
    desktop = Desktop(live.base_url, _client(live))
    qr = desktop.open_qr()
    handset = Phone(phone.http, phone.authenticator)
    page = handset.open(qr.channel_url)
    csrf = _csrf(page.text)
    # Before the number is picked, no passkey ceremony starts and no approval is accepted.
    early = phone.http.post(qr.channel_url + "/options", json={}, headers={"X-CSRF-Token": csrf}, timeout=10)
    assert early.status_code == 409 and early.json()["error"] == "match_required"
    handset.pick(qr.channel_url, qr.match_code, page)
    for data in (
        {"csrf": csrf, "ceremony": "", "credential": ""},
        {"csrf": csrf, "ceremony": "x" * 32, "credential": "{not json"},
        {"csrf": "0" * 64, "ceremony": "", "credential": ""},
    ):
        refused = phone.http.post(qr.channel_url + "/approve", data=data, timeout=10)
        assert 400 <= refused.status_code < 500 and outcome_of(refused) in (
            "ceremony_mismatch",
            "csrf_failed",
        )
    # A ceremony started elsewhere (the wallet's own sign-in) cannot approve this channel.
    ceremony, options, _ = phone.authentication_options()
    foreign = phone.http.post(
        qr.channel_url + "/approve",
        data={"csrf": csrf, "ceremony": ceremony, "credential": phone.authenticator.get(options)},
        timeout=10,
    )
    assert outcome_of(foreign) == "ceremony_mismatch"
    # Without user verification the passkey is refused; the channel stays open for another try.
    assert outcome_of(handset.approve(qr.channel_url, uv=False)) == "passkey_refused"
    assert desktop.status(qr).json()["state"] == "scanned"
    assert outcome_of(handset.approve(qr.channel_url)) == "approved"


def test_suspended_ecard_cannot_approve(live: LiveWallet, phone: WalletUser) -> None:
    from idp.cards.model import CardStatus

    live.set_card_status("zhang", CardStatus.LOST)
    desktop = Desktop(live.base_url, _client(live))
    qr = desktop.open_qr()
    handset = Phone(phone.http, phone.authenticator)
    handset.pick(qr.channel_url, qr.match_code, handset.open(qr.channel_url))
    refused = handset.approve(qr.channel_url)
    assert refused.status_code == 403 and outcome_of(refused) == "ecard_not_usable"


def test_bad_input_gets_clear_errors(live: LiveWallet) -> None:
    desktop = Desktop(live.base_url, _client(live))
    qr = desktop.open_qr()
    base = live.base_url
    http = requests.Session()
    for path in ("/wallet/qr-login/short", "/wallet/qr-login/" + "a" * 500):
        answer = http.get(base + path, timeout=10)
        assert answer.status_code == 404 and outcome_of(answer) == "channel_not_found"
    # NUL can be no channel id: refused at the request boundary (issue #9) before any lookup.
    answer = http.get(base + "/wallet/qr-login/" + "%00" * 32, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    for path in ("/match", "/deny", "/approve"):
        answer = http.post(qr.channel_url + path, data={"code": "12"}, timeout=10)
        assert answer.status_code == 403 and outcome_of(answer) == "csrf_failed"
    answer = desktop.status(qr, "nonsense")
    assert answer.status_code == 200 and answer.json()["state"] == "waiting"
    answer = desktop.http.get(f"{base}/login/{qr.tx}/qr/{'b' * 32}/status", timeout=10)
    assert answer.status_code == 404 and answer.json()["error"] == "channel_not_found"
    answer = desktop.http.post(qr.collect_url, json={}, timeout=10)
    assert answer.status_code == 403 and answer.json()["error"] == "csrf_failed"
    answer = desktop.http.get(f"{base}/login/{'t' * 32}/qr", timeout=10)
    assert answer.status_code == 400 and "expired" in answer.text
    assert desktop.collect(qr).json()["error"] == "channel_not_approved"


def test_reloading_the_qr_page_opens_a_new_channel(live: LiveWallet) -> None:
    desktop = Desktop(live.base_url, _client(live))
    first = desktop.open_qr()
    second = desktop.qr_page(f"/login/{first.tx}/qr")
    assert first.channel_id != second.channel_id
    # Each channel's secret lives in its own cookie; both still watchable by this browser.
    assert desktop.status(first).json()["state"] == "waiting"
    assert desktop.status(second).json()["state"] == "waiting"


# --- two server processes on PostgreSQL + Redis ------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
def test_result_delivered_through_another_node(postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    """Node A creates the channel and shows the QR; the phone opens, matches and approves at node B; the
    desktop's long-poll and collection go through node B too; the login carries on at node A; a replayed
    collection at node A is refused."""
    from idp.clients.service import ClientRegistration, create_client
    from tests.support.nodes import migrated_deployment, running_nodes
    from wallet.plugin import init_app as install_wallet

    with migrated_deployment(postgres_url, redis_url, label="oc-qr-nodes", plugins=[install_wallet]) as (
        svc,
        prefix,
    ):
        citizen_id = seed_citizen_with_ecard(svc)
        with svc.database.session() as session:
            client, _secret = create_client(
                session,
                ClientRegistration(name="Node portal", redirect_uris=(REDIRECT,), scope="openid profile"),
                now=svc.now(),
            )
            client_id = client.client_id
        with running_nodes(postgres_url, redis_url, prefix, log_dir=tmp_path) as nodes:
            node_a, node_b = nodes
            assert node_a.process.pid != node_b.process.pid
            authenticator = SoftAuthenticator(rp_id="127.0.0.1", origin=node_a.url)
            bind_soft_passkey(svc, citizen_id, authenticator, node_a.url)  # the issuer is node A's URL

            desktop = Desktop(node_a.url, client_id)
            qr = desktop.open_qr()
            assert qr.channel_url.startswith(node_a.url + "/wallet/qr-login/")
            handset = Phone(requests.Session(), authenticator)
            at_b = _rebase(qr.channel_url, node_b.url)
            page = handset.open(at_b)
            assert "Node portal" in page.text
            assert desktop.status(qr, "waiting", base=node_a.url).json()["state"] == "scanned"
            assert handset.pick(at_b, qr.match_code, page).status_code == 303
            assert outcome_of(handset.approve(at_b)) == "approved"
            assert desktop.status(qr, "scanned", base=node_b.url).json()["state"] == "approved"
            collected = desktop.collect(qr, base=node_b.url)
            assert collected.status_code == 200, collected.text
            resumed = desktop.http.get(
                urljoin(node_a.url, collected.json()["redirect_to"]), allow_redirects=False, timeout=10
            )
            assert resumed.status_code in (302, 303)
            replay = desktop.collect(qr, base=node_a.url)
            assert replay.status_code == 404 and replay.json()["error"] == "channel_not_found"
