"""Card + PIN login (DESIGN.md §4 steps 1 and 5) against a live IdP, with real card-auth tokens signed by
the in-process virtual card through the bridge's own card protocol and operations (no pcscd here)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from sqlalchemy import func, select

from idp.audit.model import AuditEvent
from idp.audit.service import verify_chain
from idp.cardlogin.challenge import CHALLENGE_TTL, CardLoginPolicy, origin_of
from idp.cards.issuance import active_issuer_ca, create_card_certificate
from idp.cards.model import CardStatus
from idp.cards.service import change_status, get_card
from idp.citizens.idnumber import check_character
from idp.citizens.service import create_citizen, set_citizen_status
from idp.keys.service import WRAP_PURPOSE_PREFIX
from idp.scopes import ACR_HIGH, ACR_SUBSTANTIAL
from idp.sessions.model import SsoSession
from sdk.card_auth import create_card_auth_token, signed_data
from sdk.card_file import generate_card_id
from sdk.keys import Key, b64url_decode
from tests.bridge.pki import make_ca, make_card
from tests.support.cardlogin import (
    PIN,
    CardBrowser,
    Flow,
    VirtualCard,
    issue_test_card,
    refused,
    use_policy,
)
from tests.support.live import LiveIdp


@pytest.fixture
def card(idp: LiveIdp) -> VirtualCard:
    return issue_test_card(idp)


def sessions_count(idp: LiveIdp) -> int:
    with idp.services.database.session() as session:
        return int(session.scalar(select(func.count()).select_from(SsoSession)) or 0)


def audit_actions(idp: LiveIdp) -> list[str]:
    with idp.services.database.session() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


# --- the happy path ----------------------------------------------------------------------------------------


def test_card_login_gives_loa_high_with_sc_pin_mfa(idp: LiveIdp, card: VirtualCard) -> None:
    flow = Flow(idp)
    assert flow.page.csrf and "card" in flow.page.url
    final = flow.browser.login(flow.page, card)
    claims = flow.id_token_claims(final)
    assert claims["acr"] == ACR_HIGH
    assert claims["amr"] == ["sc", "pin", "mfa"]
    with idp.services.database.session() as session:
        record = session.scalars(select(SsoSession)).one()
        assert record.citizen_id == idp.citizens["zhang"]  # from the register, not from the card
        assert verify_chain(session).ok
    assert audit_actions(idp)[-1] == "card.login"


def test_card_method_is_offered_for_both_assurance_levels(idp: LiveIdp) -> None:
    for acr in (ACR_HIGH, ACR_SUBSTANTIAL):
        flow = Flow(idp, acr_values=acr)
        # The login page a citizen chooses on lists the card (it meets both levels) ...
        chooser = flow.browser.http.get(f"{idp.base_url}/login/{flow.page.tx}", timeout=5)
        assert chooser.status_code == 200, acr
        assert f'href="/login/{flow.page.tx}/card"' in chooser.text, acr
        # ... and its card page is the one the flow reached.
        assert flow.page.url.endswith(f"/login/{flow.page.tx}/card"), acr


def test_the_page_is_accessible_and_loads_its_script(idp: LiveIdp) -> None:
    flow = Flow(idp)
    page = flow.browser.http.get(flow.page.url, timeout=5)
    text = page.text
    assert 'role="status"' in text and 'aria-live="polite"' in text and 'role="alert"' in text
    assert "<script>" not in text and "card-login.js" in text  # CSP script-src 'self': no inline script
    assert "onecard-bridge serve" in text  # how to start the bridge
    assert "http://127.0.0.1:47400" in text
    assert page.headers["Cache-Control"] == "no-store"
    script = requests.get(f"{idp.base_url}/static/card-login.js", timeout=5)
    assert script.status_code == 200 and "/v1/authenticate" in script.text
    pin_help = requests.get(f"{idp.base_url}/card/pin", timeout=5)
    assert pin_help.status_code == 200 and "card service counter" in pin_help.text


# --- the challenge -----------------------------------------------------------------------------------------


def test_challenge_is_one_time(idp: LiveIdp, card: VirtualCard) -> None:
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    token = card.sign(flow.browser.origin, challenge)
    first = flow.browser.verify(flow.page, challenge, token)
    assert first.status_code == 200
    refused(flow.browser.verify(flow.page, challenge, token), 400, "challenge_invalid")


def test_challenge_expires_after_five_minutes(idp: LiveIdp, card: VirtualCard) -> None:
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    token = card.sign(flow.browser.origin, challenge)
    idp.clock.advance(CHALLENGE_TTL + 1)
    refused(flow.browser.verify(flow.page, challenge, token), 400, "challenge_invalid")
    assert sessions_count(idp) == 0


def test_challenge_is_bound_to_its_transaction(idp: LiveIdp, card: VirtualCard) -> None:
    flow = Flow(idp)
    other_tx = flow.browser.open(flow.url)  # a second login in the same browser
    assert other_tx.tx != flow.page.tx
    challenge = flow.browser.challenge(flow.page)
    token = card.sign(flow.browser.origin, challenge)
    refused(flow.browser.verify(other_tx, challenge, token), 400, "challenge_invalid")
    # Another browser cannot use this transaction at all.
    stranger = CardBrowser(idp)
    response = stranger.http.post(
        flow.page.verify_url,
        json={"challenge": challenge, "token": token},
        headers={"X-CSRF-Token": flow.page.csrf},
        timeout=5,
    )
    refused(response, 400, "login_expired")


def test_challenge_and_verify_need_the_csrf_token(idp: LiveIdp, card: VirtualCard) -> None:
    flow = Flow(idp)
    response = flow.browser.http.post(flow.page.challenge_url, json={}, timeout=5)
    refused(response, 403, "csrf_failed")
    challenge = flow.browser.challenge(flow.page)
    token = card.sign(flow.browser.origin, challenge)
    refused(flow.browser.verify(flow.page, challenge, token, csrf="0" * 64), 403, "csrf_failed")
    # The challenge was not touched: the right request still works.
    assert flow.browser.verify(flow.page, challenge, token).status_code == 200


# --- the token ---------------------------------------------------------------------------------------------


def test_token_signed_for_another_origin_is_refused(idp: LiveIdp, card: VirtualCard) -> None:
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    token = card.sign("https://evil.example", challenge)
    refused(flow.browser.verify(flow.page, challenge, token), 400, "invalid_card_auth")
    assert sessions_count(idp) == 0


def test_origin_comes_from_the_issuer_setting() -> None:
    assert origin_of("https://Login.Example.gov.cn/") == "https://login.example.gov.cn"
    assert origin_of("https://login.example.gov.cn:443/idp") == "https://login.example.gov.cn"
    assert origin_of("http://127.0.0.1:8000") == "http://127.0.0.1:8000"


def test_card_from_a_foreign_ca_is_refused(idp: LiveIdp) -> None:
    foreign = VirtualCard(make_card(make_ca("Some Other Issuer CA")))
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    refused(
        flow.browser.verify(flow.page, challenge, foreign.sign(flow.browser.origin, challenge)),
        403,
        "card_not_trusted",
    )


def test_expired_card_certificate_is_refused(idp: LiveIdp) -> None:
    eleven_years_ago = idp.clock() - 11 * 366 * 86400
    old = issue_test_card(idp, "li", region="440300", now=eleven_years_ago)
    assert old.card_file.certificate.not_valid_after_utc < dt.datetime.now(dt.UTC)
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    refused(
        flow.browser.verify(flow.page, challenge, old.sign(flow.browser.origin, challenge)),
        403,
        "card_expired",
    )


def test_certificate_not_the_registered_one_is_refused(idp: LiveIdp, card: VirtualCard) -> None:
    # A second card for the same citizen replaces (cancels) the first: its certificate is no longer good.
    issue_test_card(idp, replace=True)
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    refused(
        flow.browser.verify(flow.page, challenge, card.sign(flow.browser.origin, challenge)),
        403,
        "card_cancelled",
    )


@pytest.mark.parametrize(
    "token",
    [
        {},
        {"format": "onecard-card-auth/1"},
        {"format": "x", "card_certificate": "", "algorithm": "ES256", "signature": "", "card_id": ""},
        {
            "format": "onecard-card-auth/1",
            "card_certificate": "!!",
            "algorithm": "ES256",
            "signature": "A" * 86,
            "card_id": "0" * 32,
        },
        {
            "format": "onecard-card-auth/1",
            "card_certificate": "AAAA",
            "algorithm": "RS256",
            "signature": "A" * 86,
            "card_id": "0" * 32,
        },
    ],
)
def test_malformed_tokens_are_400_and_keep_the_challenge(
    idp: LiveIdp, card: VirtualCard, token: dict[str, Any]
) -> None:
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    refused(flow.browser.verify(flow.page, challenge, token), 400, "invalid_card_auth")
    final = flow.browser.finish(
        flow.browser.verify(flow.page, challenge, card.sign(flow.browser.origin, challenge))
    )
    assert "code=" in final


def test_malformed_requests_are_400(idp: LiveIdp, card: VirtualCard) -> None:
    flow = Flow(idp)
    headers = {"X-CSRF-Token": flow.page.csrf}
    http = flow.browser.http
    refused(http.post(flow.page.verify_url, data="x", headers=headers, timeout=5), 400, "invalid_request")
    refused(http.post(flow.page.verify_url, json=[1], headers=headers, timeout=5), 400, "invalid_request")
    refused(
        http.post(flow.page.verify_url, json={"challenge": 1, "token": {}}, headers=headers, timeout=5),
        400,
        "invalid_request",
    )
    refused(
        http.post(flow.page.verify_url, json={"challenge": "x", "token": "y"}, headers=headers, timeout=5),
        400,
        "invalid_request",
    )
    token = card.sign(flow.browser.origin, flow.browser.challenge(flow.page))
    refused(flow.browser.verify(flow.page, "not-a-challenge", token), 400, "challenge_invalid")
    refused(flow.browser.verify(flow.page, "A" * 43, token), 400, "challenge_invalid")
    assert http.get(f"{idp.base_url}/login/nonexistent-transaction-id/card", timeout=5).status_code == 400
    assert sessions_count(idp) == 0


# --- the register ------------------------------------------------------------------------------------------


def _set_status(idp: LiveIdp, card: VirtualCard, status: CardStatus) -> None:
    with idp.services.database.session() as session:
        change_status(session, get_card(session, card.card_id), status, actor="test", now=idp.clock())


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (CardStatus.LOST, "card_lost"),
        (CardStatus.SUSPENDED, "card_suspended"),
        (CardStatus.CANCELLED, "card_cancelled"),
    ],
)
def test_card_not_active_is_refused_and_nothing_changes(
    idp: LiveIdp, card: VirtualCard, status: CardStatus, error: str
) -> None:
    _set_status(idp, card, status)
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    refused(flow.browser.verify(flow.page, challenge, card.sign(flow.browser.origin, challenge)), 403, error)
    assert sessions_count(idp) == 0
    with idp.services.database.session() as session:
        assert get_card(session, card.card_id).status == status.value
    assert audit_actions(idp)[-1] == "card.login_refused"


def test_restored_card_logs_in_again(idp: LiveIdp, card: VirtualCard) -> None:
    _set_status(idp, card, CardStatus.LOST)
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    refused(
        flow.browser.verify(flow.page, challenge, card.sign(flow.browser.origin, challenge)), 403, "card_lost"
    )
    _set_status(idp, card, CardStatus.ACTIVE)
    claims = flow.id_token_claims(flow.browser.login(flow.page, card))
    assert claims["acr"] == ACR_HIGH
    assert audit_actions(idp)[-4:] == ["card.lost", "card.login_refused", "card.restored", "card.login"]


def test_disabled_citizen_is_refused(idp: LiveIdp, card: VirtualCard) -> None:
    with idp.services.database.session() as session:
        set_citizen_status(session, idp.citizens["zhang"], "disabled", now=idp.clock())
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    refused(
        flow.browser.verify(flow.page, challenge, card.sign(flow.browser.origin, challenge)),
        403,
        "account_disabled",
    )


def _unregistered_certificate(idp: LiveIdp, card: VirtualCard) -> tuple[bytes, x509.Certificate]:
    """A certificate from our own CA, for ``card``'s key, naming a card id the register does not know (what
    a leaked CA key could make): (the card id, the certificate)."""
    svc = idp.services
    with svc.database.session() as session:
        record = active_issuer_ca(session, "420100")
        assert record is not None and record.certificate_pem
        ca_key = Key.from_private_pem(
            svc.keks.unwrap(WRAP_PURPOSE_PREFIX + record.kid, record.wrapped_secret)
        )
        ca_cert = x509.load_pem_x509_certificate(record.certificate_pem.encode())
    ca_private = ca_key.private_key
    assert isinstance(ca_private, ec.EllipticCurvePrivateKey)
    unknown_id = generate_card_id("420100")
    certificate = create_card_certificate(
        ca_certificate=ca_cert,
        ca_key=ca_private,
        card_key=card.card_file.private_key().public_key(),
        card_id=unknown_id,
        card_number="Z00000001",
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
        not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=100),
    )
    return unknown_id, certificate


def test_card_not_in_the_register_is_refused(idp: LiveIdp, card: VirtualCard) -> None:
    unknown_id, certificate = _unregistered_certificate(idp, card)
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    real = card.sign(flow.browser.origin, challenge)
    card_key = card.card_file.private_key()
    der = card_key.sign(signed_data(flow.browser.origin, b64url_decode(challenge)), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    forged = create_card_auth_token(
        card_certificate_der=certificate.public_bytes(serialization.Encoding.DER),
        signature=r.to_bytes(32, "big") + s.to_bytes(32, "big"),
        card_id=unknown_id,
    )
    assert forged != real
    refused(flow.browser.verify(flow.page, challenge, forged), 403, "card_not_registered")


# --- the pre-check before the PIN ------------------------------------------------------------------------


def _b64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


def test_precheck_says_usable_and_leaves_the_challenge_for_the_login(idp: LiveIdp, card: VirtualCard) -> None:
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    response = flow.browser.precheck(flow.page, challenge, card.certificate_b64)
    assert response.status_code == 200 and response.json() == {"usable": True}
    assert response.headers["Cache-Control"] == "no-store"
    assert "ocss" not in response.cookies  # a pre-check logs nobody in
    final = flow.browser.finish(
        flow.browser.verify(flow.page, challenge, card.sign(flow.browser.origin, challenge))
    )
    assert flow.id_token_claims(final)["acr"] == ACR_HIGH


def _not_usable_cases(idp: LiveIdp, card: VirtualCard) -> dict[str, str]:
    """A certificate (base64 DER) for every way a card cannot log in here, by the error the login gives."""
    cases = {
        "card_not_trusted": VirtualCard(make_card(make_ca("Some Other Issuer CA"))).certificate_b64,
        "card_not_registered": _b64(_unregistered_certificate(idp, card)[1]),
        "not_a_certificate": base64.b64encode(b"0\x03\x02\x01\x00").decode(),
        "not_base64": "!!!",
    }
    eleven_years_ago = idp.clock() - 11 * 366 * 86400
    cases["card_expired"] = issue_test_card(idp, "li", region="440300", now=eleven_years_ago).certificate_b64
    replaced = issue_test_card(idp, "li", replace=True)
    cases["card_cancelled"] = replaced.certificate_b64
    issue_test_card(idp, "li", replace=True)  # replaces the one above: it is cancelled now
    return cases


def test_precheck_answers_one_thing_for_every_unusable_card(
    idp: LiveIdp, card: VirtualCard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="idp.cardlogin.challenge")
    use_policy(idp, CardLoginPolicy(failures_per_ip=100, failures_per_card=100))
    cases = _not_usable_cases(idp, card)
    for number, (status, error) in enumerate(
        ((CardStatus.LOST, "card_lost"), (CardStatus.SUSPENDED, "card_suspended"))
    ):
        label = f"holder-{number}"  # a citizen of their own: a replacement card would cancel this one
        first17 = f"4403051985020300{number}"
        with idp.services.database.session() as session:
            idp.citizens[label] = create_citizen(
                session,
                idp.services.pii_cipher(),
                "王五",
                first17 + check_character(first17),
                now=idp.clock(),
            ).id
        other = issue_test_card(idp, label)
        _set_status(idp, other, status)
        cases[error] = other.certificate_b64
    with idp.services.database.session() as session:
        set_citizen_status(session, idp.citizens["zhang"], "disabled", now=idp.clock())
    cases["account_disabled"] = card.certificate_b64
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    answers = set()
    for case, certificate in cases.items():
        response = flow.browser.precheck(flow.page, challenge, certificate)
        assert response.status_code == 403, (case, response.text)
        answers.add(response.text)
    # Byte for byte the same answer: nothing says whether the card exists, its status or whose it is.
    (answer,) = answers
    body = json.loads(answer)
    assert body["error"] == "card_not_usable" and set(body) == {"error", "error_description"}
    assert "another way" in body["error_description"]
    # Lost, suspended, cancelled and a disabled holder are in the trail for card-service staff.
    assert audit_actions(idp).count("card.login_refused") == 4
    # Inward, the reason is precise: what the login would have said, in the log.
    logged = {
        record.args[1]
        for record in caplog.records
        if record.name == "idp.cardlogin.challenge"
        and isinstance(record.args, tuple)
        and record.args[0] == "precheck"
    }
    assert logged == {
        "card_not_trusted",
        "card_not_registered",
        "invalid_card_auth",
        "card_expired",
        "card_cancelled",
        "card_lost",
        "card_suspended",
        "account_disabled",
    }


def test_precheck_is_bound_to_a_live_challenge_of_this_transaction(idp: LiveIdp, card: VirtualCard) -> None:
    flow = Flow(idp)
    other_tx = flow.browser.open(flow.url)
    challenge = flow.browser.challenge(flow.page)
    refused(flow.browser.precheck(other_tx, challenge, card.certificate_b64), 400, "challenge_invalid")
    refused(flow.browser.precheck(flow.page, "A" * 43, card.certificate_b64), 400, "challenge_invalid")
    refused(
        flow.browser.precheck(flow.page, challenge, card.certificate_b64, csrf="0" * 64), 403, "csrf_failed"
    )
    response = flow.browser._post(flow.page, flow.page.precheck_url, {"challenge": challenge})
    refused(response, 400, "invalid_request")
    token = card.sign(flow.browser.origin, challenge)
    assert flow.browser.verify(flow.page, challenge, token).status_code == 200
    used_up = flow.browser.precheck(flow.page, challenge, card.certificate_b64)
    refused(used_up, 400, "challenge_invalid")
    stranger = CardBrowser(idp)
    response = stranger.http.post(
        flow.page.precheck_url,
        json={"challenge": flow.browser.challenge(flow.page), "card_certificate": card.certificate_b64},
        headers={"X-CSRF-Token": flow.page.csrf},
        timeout=5,
    )
    refused(response, 400, "login_expired")


def test_prechecks_are_limited_per_client_ip(idp: LiveIdp, card: VirtualCard) -> None:
    use_policy(idp, CardLoginPolicy(prechecks_per_ip=2))
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    for _ in range(2):
        assert flow.browser.precheck(flow.page, challenge, card.certificate_b64).status_code == 200
    response = flow.browser.precheck(flow.page, challenge, card.certificate_b64)
    refused(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0


def test_unusable_prechecks_count_as_failed_logins(idp: LiveIdp, card: VirtualCard) -> None:
    use_policy(idp, CardLoginPolicy(failures_per_ip=2, failures_per_card=100))
    foreign = VirtualCard(make_card(make_ca("Some Other Issuer CA")))
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    for _ in range(2):
        refused(flow.browser.precheck(flow.page, challenge, foreign.certificate_b64), 403, "card_not_usable")
    # The address is blocked for pre-checks and logins alike, even with a good card.
    refused(flow.browser.precheck(flow.page, challenge, card.certificate_b64), 429, "rate_limited")
    token = card.sign(flow.browser.origin, challenge)
    refused(flow.browser.verify(flow.page, challenge, token), 429, "rate_limited")


# --- rate limits -------------------------------------------------------------------------------------------


def test_failures_are_limited_per_card(idp: LiveIdp, card: VirtualCard) -> None:
    use_policy(idp, CardLoginPolicy(failures_per_card=3, failures_per_ip=100))
    flow = Flow(idp)
    for _ in range(3):
        challenge = flow.browser.challenge(flow.page)
        refused(
            flow.browser.verify(flow.page, challenge, card.sign("https://evil.example", challenge)),
            400,
            "invalid_card_auth",
        )
    challenge = flow.browser.challenge(flow.page)
    response = flow.browser.verify(flow.page, challenge, card.sign(flow.browser.origin, challenge))
    refused(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    # Another card from the same address is still fine.
    other = issue_test_card(idp, "li")
    assert "code=" in flow.browser.login(flow.page, other)


def test_failures_are_limited_per_client_ip(idp: LiveIdp, card: VirtualCard) -> None:
    use_policy(idp, CardLoginPolicy(failures_per_card=100, failures_per_ip=2))
    flow = Flow(idp)
    for _ in range(2):
        challenge = flow.browser.challenge(flow.page)
        refused(flow.browser.verify(flow.page, challenge, {"format": "junk"}), 400, "invalid_card_auth")
    challenge = flow.browser.challenge(flow.page)
    refused(
        flow.browser.verify(flow.page, challenge, card.sign(flow.browser.origin, challenge)),
        429,
        "rate_limited",
    )
    idp.clock.advance(CardLoginPolicy().window + 1)
    assert sessions_count(idp) == 0


def test_success_forgets_the_card_failures(idp: LiveIdp, card: VirtualCard) -> None:
    use_policy(idp, CardLoginPolicy(failures_per_card=2, failures_per_ip=100))
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    refused(
        flow.browser.verify(flow.page, challenge, card.sign("https://evil.example", challenge)),
        400,
        "invalid_card_auth",
    )
    assert "code=" in flow.browser.login(flow.page, card)
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    refused(
        flow.browser.verify(flow.page, challenge, card.sign("https://evil.example", challenge)),
        400,
        "invalid_card_auth",
    )
    assert "code=" in flow.browser.login(flow.page, card)


def test_challenges_per_transaction_are_limited(idp: LiveIdp) -> None:
    use_policy(idp, CardLoginPolicy(challenges_per_transaction=2))
    flow = Flow(idp)
    flow.browser.challenge(flow.page)
    flow.browser.challenge(flow.page)
    response = flow.browser._post(flow.page, flow.page.challenge_url, {})
    refused(response, 429, "rate_limited")


# --- PIN change --------------------------------------------------------------------------------------------


def test_changed_pin_works_for_login(idp: LiveIdp, card: VirtualCard) -> None:
    assert card.change_pin(PIN, "654321") == {"changed": True}
    assert card.card_file.pin == "654321"
    flow = Flow(idp)
    from reader_bridge.errors import WrongPinError

    challenge = flow.browser.challenge(flow.page)
    with pytest.raises(IndexError):  # the old PIN is wrong, and the cardholder has no other to offer
        card.sign(flow.browser.origin, challenge, PIN)
    assert card.card_file.tries_left == 2
    claims = flow.id_token_claims(flow.browser.login(flow.page, card, "654321"))
    assert claims["amr"] == ["sc", "pin", "mfa"]
    assert card.card_file.tries_left == 3
    assert WrongPinError.error == "pin_wrong"
