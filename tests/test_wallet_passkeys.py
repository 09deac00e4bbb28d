"""Passkey ceremonies refused precisely (issue 4 item 2): wrong origin, wrong challenge, reused ceremony,
counter not going up, user not verified, unknown credential, another browser — and the e-card login method on
the IdP's login page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.orm import Session

from idp.cards.model import CardStatus
from idp.db import Database
from idp.stores.sql import EphemeralEntry, SqlStore
from tests.support.wallet import LiveWallet, SoftAuthenticator, WalletUser, running_wallet
from wallet.devices.errors import PasskeyError, PasskeyReason
from wallet.devices.service import (
    RelyingParty,
    create_authentication_options,
    create_registration_options,
    verify_authentication,
    verify_registration,
)

RP = RelyingParty.for_issuer("http://localhost:8000")
NOW = 1_767_225_600.0


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(f"sqlite:///{tmp_path}/wallet.sqlite3") as server:
        server.add_card("zhang")
        yield server


@pytest.fixture
def db(live: LiveWallet) -> Database:
    return live.services.database


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    """The ceremonies' store in a database of its own: the test holds the main one's write lock meanwhile."""
    database = Database(f"sqlite:///{tmp_path}/store.sqlite3")
    EphemeralEntry.__table__.create(database.engine)  # type: ignore[attr-defined]
    yield SqlStore(database)
    database.dispose()


def _register(session: Session, store: SqlStore, citizen_id: str, **kwargs: Any) -> SoftAuthenticator:
    authenticator = SoftAuthenticator(rp_id=RP.rp_id, origin=RP.origin)
    ceremony = create_registration_options(
        session, store, rp=RP, citizen_id=citizen_id, user_name="OneCard test", browser="b1", now=NOW
    )
    verify_registration(
        session,
        store,
        rp=RP,
        ceremony_id=ceremony.id,
        credential_json=authenticator.create(json.loads(ceremony.options_json), **kwargs),
        citizen_id=citizen_id,
        browser="b1",
        name="phone",
        now=NOW,
    )
    return authenticator


def _refusal(fn: Any) -> PasskeyReason:
    with pytest.raises(PasskeyError) as refused:
        fn()
    return refused.value.reason


def test_ceremonies_refused_precisely(live: LiveWallet, db: Database, store: SqlStore) -> None:
    citizen = live.citizens["zhang"]
    with db.session() as session:
        authenticator = _register(session, store, citizen)

        def sign_in(browser: str = "b1", ceremony_id: str | None = None, **kwargs: Any) -> Any:
            ceremony = create_authentication_options(store, rp=RP, browser="b1", now=NOW)
            credential = authenticator.get(json.loads(ceremony.options_json), **kwargs)
            return verify_authentication(
                session,
                store,
                rp=RP,
                ceremony_id=ceremony_id or ceremony.id,
                credential_json=credential,
                browser=browser,
                now=NOW,
            )

        assert sign_in().citizen_id == citizen
        assert _refusal(lambda: sign_in(origin="http://evil.example")) is PasskeyReason.WRONG_ORIGIN
        assert _refusal(lambda: sign_in(challenge="A" * 43)) is PasskeyReason.WRONG_CHALLENGE
        assert _refusal(lambda: sign_in(counter=1)) is PasskeyReason.COUNTER  # the counter is at 1 already
        assert _refusal(lambda: sign_in(uv=False)) is PasskeyReason.USER_NOT_VERIFIED
        assert _refusal(lambda: sign_in(browser="b2")) is PasskeyReason.EXPIRED
        assert _refusal(lambda: sign_in(ceremony_id="x" * 32)) is PasskeyReason.EXPIRED
        # Reasons come from the parsed structures and py_webauthn's exception types, not its messages.
        for_another_rp = create_authentication_options(store, rp=RP, browser="b1", now=NOW)
        options = {**json.loads(for_another_rp.options_json), "rpId": "evil.example"}
        other_rp = authenticator.get(options)
        kwargs_rp: dict[str, Any] = {"rp": RP, "ceremony_id": for_another_rp.id, "browser": "b1", "now": NOW}
        assert (
            _refusal(lambda: verify_authentication(session, store, credential_json=other_rp, **kwargs_rp))
            is PasskeyReason.WRONG_RP
        )
        signed = create_authentication_options(store, rp=RP, browser="b1", now=NOW)
        forged = json.loads(authenticator.get(json.loads(signed.options_json)))
        forged["response"]["signature"] = forged["response"]["signature"][:-6] + "AAAAAA"
        kwargs_sig: dict[str, Any] = {"rp": RP, "ceremony_id": signed.id, "browser": "b1", "now": NOW}
        assert (
            _refusal(
                lambda: verify_authentication(
                    session, store, credential_json=json.dumps(forged), **kwargs_sig
                )
            )
            is PasskeyReason.BAD_SIGNATURE
        )
        # A ceremony is one-time: answering it twice fails the second time.
        ceremony = create_authentication_options(store, rp=RP, browser="b1", now=NOW)
        credential = authenticator.get(json.loads(ceremony.options_json))
        kwargs: dict[str, Any] = {"rp": RP, "ceremony_id": ceremony.id, "browser": "b1", "now": NOW}
        verify_authentication(session, store, credential_json=credential, **kwargs)
        assert (
            _refusal(lambda: verify_authentication(session, store, credential_json=credential, **kwargs))
            is PasskeyReason.EXPIRED
        )
        # Expired ceremonies are gone.
        late = create_authentication_options(store, rp=RP, browser="b1", now=NOW)
        late_credential = authenticator.get(json.loads(late.options_json))
        assert (
            _refusal(
                lambda: verify_authentication(
                    session,
                    store,
                    rp=RP,
                    ceremony_id=late.id,
                    credential_json=late_credential,
                    browser="b1",
                    now=NOW + 301,
                )
            )
            is PasskeyReason.EXPIRED
        )
        stranger = SoftAuthenticator(rp_id=RP.rp_id, origin=RP.origin)
        ceremony = create_authentication_options(store, rp=RP, browser="b1", now=NOW)
        assert (
            _refusal(
                lambda: verify_authentication(
                    session,
                    store,
                    rp=RP,
                    ceremony_id=ceremony.id,
                    credential_json=stranger.get(json.loads(ceremony.options_json)),
                    browser="b1",
                    now=NOW,
                )
            )
            is PasskeyReason.UNKNOWN_CREDENTIAL
        )
        for garbage in ("", "{", "[]", '{"id": 1}', "x" * 20000):
            ceremony = create_authentication_options(store, rp=RP, browser="b1", now=NOW)
            with pytest.raises(PasskeyError) as refused:
                verify_authentication(
                    session,
                    store,
                    rp=RP,
                    ceremony_id=ceremony.id,
                    credential_json=garbage,
                    browser="b1",
                    now=NOW,
                )
            assert refused.value.reason is PasskeyReason.MALFORMED


def test_registration_refused_precisely(live: LiveWallet, db: Database, store: SqlStore) -> None:
    citizen = live.citizens["zhang"]
    with db.session() as session:
        assert (
            _refusal(lambda: _register(session, store, citizen, origin="http://localhost:9999"))
            is PasskeyReason.WRONG_ORIGIN
        )
        assert (
            _refusal(lambda: _register(session, store, citizen, challenge="B" * 43))
            is PasskeyReason.WRONG_CHALLENGE
        )
        assert (
            _refusal(lambda: _register(session, store, citizen, uv=False)) is PasskeyReason.USER_NOT_VERIFIED
        )
        # Several devices per citizen.
        _register(session, store, citizen)
        _register(session, store, citizen)


def _ecard_login(live: LiveWallet, user: WalletUser) -> requests.Response:
    """From a portal's authorization request to the e-card method's answer (the passkey is bound)."""
    client_id, _secret = live.register_client(redirect_uris=("http://localhost:9/cb",), scope="openid")
    authorize = (
        f"{live.base_url}/authorize?response_type=code&client_id={client_id}&redirect_uri=http://localhost:9/cb"
        "&scope=openid&state=s1&nonce=n1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        "&code_challenge_method=S256"
    )
    login_page = user.browser.authorize(authorize)  # stops at the login page (no citizen given)
    page = user.http.get(login_page, timeout=10)
    match = re.search(r'href="(/login/[^"]+/ecard)"', page.text)
    assert match, "the login page offers no e-card login"
    ecard_page = user.http.get(live.base_url + match.group(1), timeout=10)
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', ecard_page.text)
    assert csrf
    tx = match.group(1).split("/")[2]
    options = user.http.post(
        f"{live.base_url}/wallet/api/passkeys/authentication-options?tx={tx}",
        json={},
        headers={"X-CSRF-Token": csrf.group(1)},
        timeout=10,
    ).json()
    finish = user.http.post(
        live.base_url + match.group(1),
        data={
            "csrf": csrf.group(1),
            "ceremony": options["ceremony"],
            "credential": user.authenticator.get(options["options"]),
        },
        allow_redirects=False,
        timeout=10,
    )
    return finish


def test_ecard_login_method_on_the_login_page(live: LiveWallet) -> None:
    """A portal's login offers the e-card; the passkey completes it at loa:substantial with amr hwk."""
    user = WalletUser(live, "zhang")
    user.login_with_card()
    assert user.activate().status_code == 303
    assert user.bind_passkey().status_code == 303
    user.http.cookies.clear()
    finish = _ecard_login(live, user)
    assert finish.status_code == 303 and "/authorize/resume/" in finish.headers["Location"]
    redirect = user.browser.authorize(live.base_url + finish.headers["Location"])
    assert redirect.startswith("http://localhost:9/cb?code=")


def test_ecard_login_refused_while_the_card_is_lost(live: LiveWallet) -> None:
    """The e-card shares the card's status: a passkey alone cannot log in once the card is reported lost."""
    user = WalletUser(live, "zhang")
    user.login_with_card()
    assert user.activate().status_code == 303
    assert user.bind_passkey().status_code == 303
    user.http.cookies.clear()
    live.set_card_status("zhang", CardStatus.LOST)
    refused = _ecard_login(live, user)
    assert refused.status_code == 403 and "social security card and PIN" in refused.text
    live.set_card_status("zhang", CardStatus.ACTIVE)
    assert _ecard_login(live, user).status_code == 303
