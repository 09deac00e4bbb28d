"""The real-name verification API and ``sdk.realname`` against a live server with the wallet (issue #5 item 3,
"How it is checked"): match, no match, bad checksum, missing purpose, rate limit, unauthorised clients and
wrong scopes; presented ESSC1 codes; the audit trail without PII; no 500 on bad input."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from idp.audit.model import AuditEvent
from idp.cards.model import CardStatus
from idp.citizens.idnumber import check_character
from idp.citizens.service import create_citizen, set_citizen_status
from idp.ratelimit import RateLimiter
from sdk.realname import (
    RealnameClient,
    RealnameCodesNotSupportedError,
    RealnameForbiddenError,
    RealnameInvalidCodeError,
    RealnameInvalidIdNumberError,
    RealnameInvalidNameError,
    RealnameInvalidPurposeError,
    RealnameRateLimitedError,
    RealnameResult,
    RealnameUnauthorizedError,
)
from tests.support.live import CITIZENS
from tests.support.wallet import LiveWallet, WalletUser, running_wallet

VERIFY = "/api/v1/realname/verify"
ZHANG_NAME, ZHANG_ID = CITIZENS["zhang"]
PURPOSE = "Opening a library account"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(f"sqlite:///{tmp_path}/realname.sqlite3") as server:
        assert server.services.realname.handle_resolver is not None  # the wallet plug-in registers it
        limiter = server.services.realname.limiter
        assert (
            isinstance(limiter, RateLimiter)
            and limiter.limit == server.services.settings.rate_limit_per_minute
        )
        set_rate_limit(server, limit=1000, window=60)  # tests other than the rate limit's make many calls
        yield server


def set_rate_limit(live: LiveWallet, *, limit: int, window: float) -> None:
    live.services.realname.limiter = RateLimiter(live.services.store, "realname", limit, window)


def operator(live: LiveWallet, scope: str = "realname:verify") -> RealnameClient:
    client_id, secret = live.register_client(name="City library", kind="operator", scope=scope)
    assert secret
    return RealnameClient(live.base_url, client_id, secret, clock=live.clock)


def raw_token(live: LiveWallet, client: RealnameClient) -> str:
    return client.access_token()


def post(live: LiveWallet, token: str | None, body: Any, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(live.base_url + VERIFY, json=body, headers=headers, timeout=10, **kwargs)


def test_name_and_id_number_match_or_not(live: LiveWallet) -> None:
    client = operator(live)
    assert client.verify_name(PURPOSE, ZHANG_NAME, ZHANG_ID) == RealnameResult("match", "high")
    assert client.verify_name(PURPOSE, " 张三 ", ZHANG_ID.lower()).matched  # trimmed; x → X
    assert client.verify_name(PURPOSE, "李四", ZHANG_ID) == RealnameResult("no_match", "high")
    unknown = "11010519491231" + "003"
    unknown += check_character(unknown)
    assert client.verify_name(PURPOSE, ZHANG_NAME, unknown).result == "no_match"
    # The answer is exactly the verdict: nothing about the citizen.
    answer = post(
        live, raw_token(live, client), {"purpose": PURPOSE, "name": ZHANG_NAME, "id_number": ZHANG_ID}
    )
    assert answer.json() == {"result": "match", "assurance": "high"}
    assert answer.headers["Cache-Control"] == "no-store"


def test_names_are_compared_after_nfc_normalisation(live: LiveWallet) -> None:
    first17 = "42010619850315004"
    number = first17 + check_character(first17)
    svc = live.services
    with svc.database.session() as session:
        create_citizen(session, svc.pii_cipher(), "Zoë Müller", number, now=live.clock())
    decomposed = unicodedata.normalize("NFD", "Zoë Müller")
    assert decomposed != "Zoë Müller"
    client = operator(live)
    assert client.verify_name(PURPOSE, decomposed, number).matched
    assert not client.verify_name(PURPOSE, "Zoe Muller", number).matched


def test_a_disabled_citizen_does_not_match(live: LiveWallet) -> None:
    svc = live.services
    with svc.database.session() as session:
        set_citizen_status(session, live.citizens["zhang"], "disabled", now=live.clock())
    assert operator(live).verify_name(PURPOSE, ZHANG_NAME, ZHANG_ID).result == "no_match"


def test_bad_input_is_an_error_not_a_no_match(live: LiveWallet) -> None:
    client = operator(live)
    bad_checksum = ZHANG_ID[:17] + ("0" if ZHANG_ID[17] != "0" else "1")
    with pytest.raises(RealnameInvalidIdNumberError) as checksum:
        client.verify_name(PURPOSE, ZHANG_NAME, bad_checksum)
    assert checksum.value.http_status == 400
    with pytest.raises(RealnameInvalidIdNumberError):
        client.verify_name(PURPOSE, ZHANG_NAME, "1234")
    with pytest.raises(RealnameInvalidNameError):
        client.verify_name(PURPOSE, "张\u0000三", ZHANG_ID)
    for purpose in ("", "   ", "x" * 201, "line\nbreak"):
        with pytest.raises(RealnameInvalidPurposeError):
            client.verify_name(purpose, ZHANG_NAME, ZHANG_ID)
    token = raw_token(live, client)
    missing = post(live, token, {"name": ZHANG_NAME, "id_number": ZHANG_ID})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_purpose"
    checksum_raw = post(live, token, {"purpose": PURPOSE, "name": ZHANG_NAME, "id_number": bad_checksum})
    assert checksum_raw.status_code == 400 and checksum_raw.json()["error"] == "invalid_id_number"
    assert ZHANG_ID not in checksum_raw.text and bad_checksum not in checksum_raw.text
    shapes: list[Any] = [
        {"purpose": PURPOSE},
        {"purpose": PURPOSE, "name": ZHANG_NAME},
        {"purpose": PURPOSE, "name": 1, "id_number": ZHANG_ID},
        {"purpose": ["x"], "name": ZHANG_NAME, "id_number": ZHANG_ID},
        {"purpose": PURPOSE, "name": ZHANG_NAME, "id_number": ZHANG_ID, "extra": 1},
        [1, 2],
        "text",
        None,
    ]
    for body in shapes:
        answer = post(live, token, body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"] in ("invalid_request", "invalid_purpose")
    not_json = requests.post(
        live.base_url + VERIFY, data="purpose=x", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert not_json.status_code == 400


def test_rate_limited_per_client(live: LiveWallet) -> None:
    set_rate_limit(live, limit=3, window=60)
    client, other = operator(live), operator(live)
    for _ in range(3):
        client.verify_name(PURPOSE, ZHANG_NAME, ZHANG_ID)
    with pytest.raises(RealnameRateLimitedError) as limited:
        client.verify_name(PURPOSE, ZHANG_NAME, ZHANG_ID)
    assert 1 <= limited.value.retry_after <= 60
    raw = post(live, raw_token(live, client), {"purpose": PURPOSE, "name": ZHANG_NAME, "id_number": ZHANG_ID})
    assert raw.status_code == 429 and int(raw.headers["Retry-After"]) >= 1
    assert raw.json()["error"] == "rate_limited"
    assert other.verify_name(PURPOSE, ZHANG_NAME, ZHANG_ID).matched  # another client has its own count
    live.clock.advance(61)
    assert client.verify_name(PURPOSE, ZHANG_NAME, ZHANG_ID).matched


def test_unauthorised_clients_and_wrong_scopes(live: LiveWallet) -> None:
    body = {"purpose": PURPOSE, "name": ZHANG_NAME, "id_number": ZHANG_ID}
    assert post(live, None, body).status_code == 401
    assert post(live, "not-a-token", body).status_code == 401
    good = operator(live)
    wrong_secret = RealnameClient(live.base_url, good.client_id, "occs_wrong", clock=live.clock)
    with pytest.raises(RealnameUnauthorizedError):
        wrong_secret.verify_name(PURPOSE, ZHANG_NAME, ZHANG_ID)
    # A token with another service scope (what a client registered for it gets) is refused by the API.
    admin_id, admin_secret = live.register_client(name="Security", kind="operator", scope="admin")
    admin_token = requests.post(
        live.base_url + "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        auth=(admin_id, admin_secret or ""),
        timeout=10,
    ).json()["access_token"]
    refused = post(live, admin_token, body)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    # An unsigned token claiming the scope is no token at all.
    forged_scope = post(live, "eyJhbGciOiJub25lIn0.eyJzY29wZSI6InJlYWxuYW1lOnZlcmlmeSJ9.", body)
    assert forged_scope.status_code == 401


def test_a_client_not_registered_for_the_scope_cannot_get_it(live: LiveWallet) -> None:
    admin_id, admin_secret = live.register_client(name="Security", kind="operator", scope="admin")
    assert admin_secret
    admin = RealnameClient(live.base_url, admin_id, admin_secret, clock=live.clock)
    with pytest.raises(RealnameForbiddenError):
        admin.verify_name(PURPOSE, ZHANG_NAME, ZHANG_ID)


def test_every_verdict_is_audited_without_pii(live: LiveWallet) -> None:
    client = operator(live)
    client.verify_name(PURPOSE, ZHANG_NAME, ZHANG_ID)
    client.verify_name("Checking a tenant", "李四", ZHANG_ID)
    with live.services.database.session() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "realname.verify").order_by(AuditEvent.seq)
        ).all()
        assert [(e.actor, e.target_id, e.details) for e in events] == [
            (
                f"client:{client.client_id}",
                client.client_id,
                {"purpose": PURPOSE, "method": "id_number", "result": "match"},
            ),
            (
                f"client:{client.client_id}",
                client.client_id,
                {"purpose": "Checking a tenant", "method": "id_number", "result": "no_match"},
            ),
        ]
        for event in events:
            text = repr(event.details)
            assert ZHANG_NAME not in text and ZHANG_ID not in text and "李四" not in text


# --- presented codes ------------------------------------------------------------------------------------


def test_presented_codes(live: LiveWallet) -> None:
    live.add_card("zhang")
    citizen = WalletUser(live, "zhang")
    citizen.set_up()
    client = operator(live)
    assert client.verify_code(PURPOSE, citizen.code()["text"]) == RealnameResult("match", "substantial")
    code = citizen.code()["text"]
    assert client.verify_code(PURPOSE, code, name=ZHANG_NAME, id_number=ZHANG_ID).matched
    with pytest.raises(RealnameInvalidCodeError) as replayed:
        client.verify_code(PURPOSE, code)
    assert replayed.value.reason == "replayed"
    assert not client.verify_code(PURPOSE, citizen.code()["text"], name="李四").matched
    with pytest.raises(RealnameInvalidCodeError) as malformed:
        client.verify_code(PURPOSE, "ESSC1:NOT-A-CODE")
    assert malformed.value.reason == "malformed"
    with pytest.raises(RealnameInvalidCodeError):
        client.verify_code(PURPOSE, "https://example.com/")
    expiring = citizen.code()["text"]
    live.clock.advance(60 + 30 + 1)
    with pytest.raises(RealnameInvalidCodeError) as expired:
        client.verify_code(PURPOSE, expiring)
    assert expired.value.reason == "expired"
    fresh = citizen.code()["text"]
    live.set_card_status("zhang", CardStatus.LOST)
    assert client.verify_code(PURPOSE, fresh) == RealnameResult("no_match", "substantial")


def test_codes_need_the_wallet_hook(live: LiveWallet) -> None:
    live.add_card("zhang")
    citizen = WalletUser(live, "zhang")
    citizen.set_up()
    live.services.realname.handle_resolver = None
    with pytest.raises(RealnameCodesNotSupportedError):
        operator(live).verify_code(PURPOSE, citizen.code()["text"])
