"""E-card activation, its shared status with the physical card, passkey binding and sign-in, and QR issuance
through the wallet's HTTP API (issue 4 items 1–4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from idp.cards.model import CardStatus
from idp.scopes import ACR_SUBSTANTIAL
from idp.sessions.model import SsoSession
from sdk.gate import GateVerifier
from sdk.keys import KeySet
from sdk.qr_token import QrTokenError, QrTokenReason, parse_qr_token
from tests.support.wallet import REGION, LiveWallet, WalletUser, csrf_of, running_wallet
from wallet.devices.errors import PasskeyReason
from wallet.devices.model import WalletDevice
from wallet.ecards.model import ECard


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(f"sqlite:///{tmp_path}/wallet.sqlite3") as server:
        server.add_card("zhang")
        yield server


def gate_for(live: LiveWallet) -> GateVerifier:
    keys = KeySet.from_jwks(live.app.test_client().get("/.well-known/onecard-qr-keys.json").get_json())
    return GateVerifier(keys, [REGION])


def test_activation_needs_a_card_login(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    # Straight to the wallet without a session: the sign-in page.
    answer = user.http.get(user.url("/wallet/"), allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/wallet/signin")
    user.login_with_card()
    assert user.activate().status_code == 303
    # One e-card per card.
    again = user.activate()
    assert again.status_code == 409
    with live.services.database.session() as session:
        ecards = session.query(ECard).all()
        assert len(ecards) == 1 and ecards[0].card_id == live.cards["zhang"]
        assert 8 <= len(ecards[0].handle) <= 16


def test_activation_at_substantial_is_refused(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    user.login_with_card()
    assert user.bind_passkey().status_code == 303
    assert user.sign_in_with_passkey().status_code == 303  # now at loa:substantial
    home = user.http.get(user.url("/wallet/"), timeout=10)
    assert "To activate it, log in with your social security card and PIN." in home.text
    refused = user.http.post(
        user.url("/wallet/activate"),
        data={"csrf": csrf_of(home.text), "card_id": live.cards["zhang"]},
        allow_redirects=False,
        timeout=10,
    )
    assert refused.status_code == 403
    with live.services.database.session() as session:
        assert session.query(ECard).count() == 0


def test_passkey_sign_in_gives_substantial_with_hwk(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    user.set_up()
    with live.services.database.session() as session:
        sessions = session.query(SsoSession).filter(SsoSession.acr == ACR_SUBSTANTIAL).all()
        assert len(sessions) == 1
        assert sessions[0].acr == ACR_SUBSTANTIAL and sessions[0].amr == ["hwk", "mfa"]
        device = session.query(WalletDevice).one()
        assert device.sign_count == 1
    # No second device binding without card + PIN.
    page = user.http.get(user.url("/wallet/devices"), timeout=10)
    answer = user.http.post(
        user.url("/wallet/api/passkeys/registration-options"),
        json={},
        headers={"X-CSRF-Token": csrf_of(page.text)},
        timeout=10,
    )
    assert answer.status_code == 403 and answer.json()["error"] == "step_up_required"


def test_code_from_the_wallet_verifies_offline(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    user.set_up()
    code = user.code()
    assert code["expires_at"] - code["issued_at"] == 60 and code["refresh_at"] - code["issued_at"] == 30
    assert code["image"].startswith("data:image/svg+xml;base64,")
    parsed = parse_qr_token(code["text"])
    assert parsed.issuer == REGION and not parsed.disclosures
    # No PII in the code: neither the name nor any part of the ID number.
    assert "张三" not in code["text"] and "1949" not in code["text"]
    gate = gate_for(live)
    scan = gate.verify(code["text"], live.clock())
    assert scan.handle == parsed.handle
    with pytest.raises(QrTokenError) as replay:
        gate.verify(code["text"], live.clock())
    assert replay.value.reason is QrTokenReason.REPLAYED
    # Every code is new: a fresh cti each time.
    assert parse_qr_token(user.code()["text"]).cti != parsed.cti


def test_disclosures_are_computed_and_chosen(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")  # born 1949-12-31
    user.set_up()
    page = user.http.get(user.url("/wallet/code"), timeout=10)
    assert page.status_code == 200 and 'id="qr"' in page.text
    answer = user.http.post(
        user.url("/wallet/disclosures"),
        data={"csrf": csrf_of(page.text), "show": ["age_over_60", "resident"]},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303
    parsed = parse_qr_token(user.code()["text"])
    assert dict(parsed.disclosures) == {"age_over_60": True, "resident": True}
    refused = user.http.post(
        user.url("/wallet/disclosures"),
        data={"csrf": csrf_of(page.text), "show": ["name"]},
        allow_redirects=False,
        timeout=10,
    )
    assert refused.status_code == 400


def test_card_reported_lost_suspends_the_ecard_and_restoring_restores_it(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    user.set_up()
    gate = gate_for(live)
    earlier = user.code()["text"]
    live.set_card_status("zhang", CardStatus.LOST)
    answer = user.http.get(user.url("/wallet/api/code"), timeout=10)
    assert answer.status_code == 403 and answer.json()["error"] == "ecard_not_usable"
    home = user.http.get(user.url("/wallet/"), timeout=10)
    assert "Suspended" in home.text and "reported lost" in home.text
    # The suspended list names the handle, and a gate syncing it refuses the code issued before.
    handle = parse_qr_token(earlier).handle
    venue_id, secret = live.add_venue("City Museum", "museum", ("valid_resident",))
    listed = user.http.get(user.url("/api/v1/gate/suspended-handles"), auth=(venue_id, secret), timeout=10)
    assert listed.status_code == 200 and handle in listed.json()["handles"]
    gate.revoked_handles = type(gate.revoked_handles)(listed.json()["handles"])  # type: ignore[call-arg]
    with pytest.raises(QrTokenError) as refused:
        gate.verify(earlier, live.clock())
    assert refused.value.reason is QrTokenReason.REVOKED
    live.set_card_status("zhang", CardStatus.ACTIVE)
    assert user.http.get(user.url("/wallet/api/code"), timeout=10).status_code == 200
    listed = user.http.get(user.url("/api/v1/gate/suspended-handles"), auth=(venue_id, secret), timeout=10)
    assert handle not in listed.json()["handles"]


def test_cancelled_card_cancels_the_ecard(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    user.set_up()
    live.set_card_status("zhang", CardStatus.CANCELLED)
    answer = user.http.get(user.url("/wallet/api/code"), timeout=10)
    # The only e-card is cancelled: the citizen has no live e-card any more.
    assert answer.status_code == 404 and answer.json()["error"] == "ecard_not_found"


def test_citizen_suspends_and_only_card_login_resumes(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    user.set_up()
    home = user.http.get(user.url("/wallet/"), timeout=10)
    csrf = csrf_of(home.text)
    assert (
        user.http.post(user.url("/wallet/suspend"), data={"csrf": csrf}, allow_redirects=False).status_code
        == 303
    )
    assert user.http.get(user.url("/wallet/api/code"), timeout=10).status_code == 403
    # The passkey session (substantial) cannot lift it…
    refused = user.http.post(user.url("/wallet/resume"), data={"csrf": csrf}, allow_redirects=False)
    assert refused.status_code == 403
    # …card + PIN can.
    user.login_with_card()
    home = user.http.get(user.url("/wallet/"), timeout=10)
    resumed = user.http.post(
        user.url("/wallet/resume"), data={"csrf": csrf_of(home.text)}, allow_redirects=False
    )
    assert resumed.status_code == 303
    assert user.http.get(user.url("/wallet/api/code"), timeout=10).status_code == 200


def test_forms_without_csrf_change_nothing(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    user.set_up()
    answer = user.http.post(user.url("/wallet/suspend"), data={"csrf": "0" * 64}, allow_redirects=False)
    assert answer.status_code == 400
    assert user.http.get(user.url("/wallet/api/code"), timeout=10).status_code == 200


def test_sessions_are_listed_and_ended(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    user.set_up()
    page = user.http.get(user.url("/wallet/sessions"), timeout=10)
    assert page.status_code == 200 and "(this one)" in page.text
    with live.services.database.session() as session:
        sid = session.query(SsoSession).filter(SsoSession.acr == ACR_SUBSTANTIAL).one().sid
    answer = user.http.post(
        user.url("/wallet/sessions/end"), data={"csrf": csrf_of(page.text), "sid": sid}, allow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/wallet/signin")
    assert user.http.get(user.url("/wallet/api/code"), timeout=10).status_code == 401


def test_devices_are_listed_and_removed(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    user.set_up()
    with live.services.database.session() as session:
        device_id = session.query(WalletDevice).one().id
    page = user.http.get(user.url("/wallet/devices"), timeout=10)
    assert "Test phone" in page.text
    answer = user.http.post(
        user.url(f"/wallet/devices/{device_id}/remove"),
        data={"csrf": csrf_of(page.text)},
        allow_redirects=False,
    )
    assert answer.status_code == 303
    # The removed passkey no longer signs in.
    refused = user.sign_in_with_passkey()
    assert refused.status_code == 400


def test_code_api_refuses_without_session(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    answer = user.http.get(user.url("/wallet/api/code"), timeout=10)
    assert answer.status_code == 401 and json.loads(answer.text)["error"] == "login_required"
    assert PasskeyReason.COUNTER.value == "counter"
