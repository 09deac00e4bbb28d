"""``POST /api/v1/gate/verify`` and the suspended-handles list against docs/formats/essc1.md §6–§7, driven by
the real gate SDK (``OnlineGateClient``, ``KeySetSync``, ``SuspendedHandlesSync``, ``GateVerifier``);
one-time use across two server nodes on one database and store (issue 4 items 6, 7)."""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from idp.cards.model import CardStatus
from idp.db import Base
from sdk.base45 import b45decode, b45encode
from sdk.gate import (
    DEFAULT_MAX_LIST_AGE,
    GateAuthError,
    GateServiceError,
    GateVerifier,
    KeySetSync,
    OnlineGateClient,
    SuspendedHandlesSync,
)
from sdk.gate_cli import main as gate_main
from sdk.keys import KeySet, generate_key
from sdk.qr_token import PREFIX, QrTokenError, QrTokenReason, issue_qr_token, parse_qr_token
from tests.support.wallet import REGION, LiveWallet, WalletUser, running_wallet
from wallet.scans.model import ScanRecord

QR_KEYS = "/.well-known/onecard-qr-keys.json"
SUSPENDED = "/api/v1/gate/suspended-handles"
VERIFY = "/api/v1/gate/verify"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(f"sqlite:///{tmp_path}/wallet.sqlite3") as server:
        server.add_card("zhang")
        yield server


@pytest.fixture
def user(live: LiveWallet) -> WalletUser:
    citizen = WalletUser(live, "zhang")
    citizen.set_up()
    return citizen


@pytest.fixture
def museum(live: LiveWallet) -> OnlineGateClient:
    client_id, secret = live.add_venue("Provincial Museum", "museum", ("valid_resident", "age_over_60"))
    return OnlineGateClient(live.base_url, client_id, secret)


def reason_of(client: OnlineGateClient, code: str, **kwargs: Any) -> QrTokenReason:
    with pytest.raises(QrTokenError) as refused:
        client.verify(code, **kwargs)
    return refused.value.reason


def test_pass_once_then_replayed(live: LiveWallet, user: WalletUser, museum: OnlineGateClient) -> None:
    code = user.code()["text"]
    scan = museum.verify(code, gate_id="north-gate")
    parsed = parse_qr_token(code)
    assert (scan.handle, scan.issuer, scan.issued_at, scan.expires_at) == (
        parsed.handle,
        REGION,
        parsed.issued_at,
        parsed.expires_at,
    )
    # The museum's policy: valid resident and over 60 (张三 was born in 1949) — and nothing else.
    assert dict(scan.claims) == {"valid_resident": True, "age_over_60": True}
    assert reason_of(museum, code) is QrTokenReason.REPLAYED
    with live.services.database.session() as session:
        # Both scans may share a timestamp: "pass" sorts before "reject".
        scans = session.query(ScanRecord).order_by(ScanRecord.result).all()
        assert [(s.result, s.reason, s.gate_id) for s in scans] == [
            ("pass", None, "north-gate"),
            ("reject", "replayed", None),
        ]
        assert all(s.ecard_id is not None and s.category == "museum" for s in scans)
        assert scans[0].id == scan.scan_id
    # The citizen reads it in plain words (not "replayed"), in Chinese by default and in English on request.
    history = user.http.get(
        user.url("/wallet/history"), headers={"Accept": "text/html", "Accept-Language": "zh-CN"}, timeout=10
    )
    assert "Provincial Museum" in history.text and "未通过：这个二维码已经用过了" in history.text
    history = user.http.get(user.url("/wallet/history"), headers={"Accept-Language": "en"}, timeout=10)
    assert "Not accepted: this code had been used already (each code works only once)" in history.text
    assert "replayed" not in history.text


def test_library_learns_the_name_museum_does_not(
    live: LiveWallet, user: WalletUser, museum: OnlineGateClient
) -> None:
    library_id, library_secret = live.add_venue("City Library", "library", ("name", "id_number_masked"))
    library = OnlineGateClient(live.base_url, library_id, library_secret)
    scan = library.verify(user.code()["text"])
    assert dict(scan.claims) == {"name": "张三", "id_number_masked": "1101**********002X"}
    plain_id, plain_secret = live.add_venue("Riverside Park", "park")
    assert (
        dict(OnlineGateClient(live.base_url, plain_id, plain_secret).verify(user.code()["text"]).claims) == {}
    )
    museum_scan = museum.verify(user.code()["text"])
    assert "name" not in museum_scan.claims and "id_number_masked" not in museum_scan.claims


def test_expired_and_not_yet_valid(live: LiveWallet, user: WalletUser, museum: OnlineGateClient) -> None:
    code = user.code()["text"]
    live.clock.advance(60 + 30)  # exp + the stated skew of 30 s
    assert reason_of(museum, code) is QrTokenReason.EXPIRED
    future = user.code()["text"]
    live.clock.advance(-31)  # the server's clock is now 31 s before the code's iat (skew: 30 s)
    assert reason_of(museum, future) is QrTokenReason.NOT_YET_VALID
    # Neither refusal used up the code: back at the right time it passes once.
    live.clock.advance(31)
    assert museum.verify(future).handle == parse_qr_token(future).handle


def test_within_the_skew_passes(live: LiveWallet, user: WalletUser, museum: OnlineGateClient) -> None:
    code = user.code()["text"]
    live.clock.advance(60 + 29)
    assert museum.verify(code).handle


def _tampered(code: str) -> str:
    raw = bytearray(b45decode(code[len(PREFIX) :]))
    raw[-1] ^= 0x01  # the last byte of the signature
    return PREFIX + b45encode(bytes(raw))


def test_tampered_unknown_key_malformed(live: LiveWallet, user: WalletUser, museum: OnlineGateClient) -> None:
    code = user.code()["text"]
    assert reason_of(museum, _tampered(code)) is QrTokenReason.BAD_SIGNATURE
    stranger = issue_qr_token(
        key=generate_key("EdDSA"), issuer=REGION, handle=parse_qr_token(code).handle, now=live.clock()
    )
    assert reason_of(museum, stranger) is QrTokenReason.UNKNOWN_KEY
    for text in ("", "hello", "ESSC1:", "ESSC1:!!!!", PREFIX + "A" * 600, code[:-5], "https://example.com/"):
        assert reason_of(museum, text) is QrTokenReason.MALFORMED, text
    # The real code was never consumed by any of these.
    assert museum.verify(code).handle


def test_other_issuer(live: LiveWallet, user: WalletUser) -> None:
    client_id, secret = live.add_venue("Beijing Park", "park", ("valid_resident",), regions=("110100",))
    beijing = OnlineGateClient(live.base_url, client_id, secret)
    code = user.code()["text"]
    assert reason_of(beijing, code) is QrTokenReason.WRONG_ISSUER
    with live.services.database.session() as session:
        scan = session.query(ScanRecord).one()
        assert scan.reason == "wrong_issuer" and scan.ecard_id is not None  # the signature held: it is ours


def test_card_lost_revokes_online_at_once(
    live: LiveWallet, user: WalletUser, museum: OnlineGateClient
) -> None:
    code = user.code()["text"]
    live.set_card_status("zhang", CardStatus.LOST)
    assert reason_of(museum, code) is QrTokenReason.REVOKED
    live.set_card_status("zhang", CardStatus.ACTIVE)
    assert museum.verify(code).handle  # restored: the same code, still within its minute, passes


def _raw(
    live: LiveWallet, body: Any = None, *, auth: tuple[str, str] | None = None, **kwargs: Any
) -> requests.Response:
    return requests.post(live.base_url + VERIFY, json=body, auth=auth, timeout=10, **kwargs)


def test_no_verdict_statuses(live: LiveWallet, user: WalletUser) -> None:
    venue_id, secret = live.add_venue("Stadium", "sports")
    code = user.code()["text"]
    missing = _raw(live, {"code": code})
    assert missing.status_code == 401 and missing.json()["error"] == "invalid_client"
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    wrong = _raw(live, {"code": code}, auth=(venue_id, secret + "x"))
    assert wrong.status_code == 401
    garbage = requests.post(
        live.base_url + VERIFY, json={"code": code}, headers={"Authorization": "Basic %%%"}, timeout=10
    )
    assert garbage.status_code == 401
    # A portal's credentials are not a venue's.
    portal_id, portal_secret = live.register_client(
        name="Portal", redirect_uris=("http://localhost:9/cb",), scope="openid"
    )
    assert portal_secret is not None
    forbidden = _raw(live, {"code": code}, auth=(portal_id, portal_secret))
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
    not_json = requests.post(live.base_url + VERIFY, data="code=x", auth=(venue_id, secret), timeout=10)
    assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_request"
    for body in ({}, {"code": 5}, [code], {"code": code, "gate_id": "x" * 65}, {"code": code, "gate_id": 7}):
        answer = _raw(live, body, auth=(venue_id, secret))
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request", body
    # Credentials form-encoded as RFC 6749 §2.3.1 says: OnlineGateClient does it; a space would be "+".
    assert OnlineGateClient(live.base_url, venue_id, secret).verify(code).handle
    with pytest.raises(GateAuthError):
        OnlineGateClient(live.base_url, venue_id, "wrong").verify(code)


def test_removed_venue_loses_its_credentials(live: LiveWallet, user: WalletUser) -> None:
    from wallet.venues.service import remove_venue

    venue_id, secret = live.add_venue("Old Pool", "sports")
    gate = OnlineGateClient(live.base_url, venue_id, secret)
    assert gate.verify(user.code()["text"]).handle
    with live.services.database.session() as session:
        remove_venue(session, venue_id, actor="test", now=live.clock())
    with pytest.raises(GateAuthError):
        gate.verify(user.code()["text"])


def test_suspended_list_contract(live: LiveWallet, user: WalletUser) -> None:
    venue_id, secret = live.add_venue("Metro", "transit")
    assert requests.get(live.base_url + SUSPENDED, timeout=10).status_code == 401
    first = requests.get(live.base_url + SUSPENDED, auth=(venue_id, secret), timeout=10)
    assert first.status_code == 200 and first.headers["Content-Type"].startswith("application/json")
    document = first.json()
    assert document["handles"] == [] and isinstance(document["generated_at"], int)
    assert "max-age=60" in first.headers["Cache-Control"]
    again = requests.get(
        live.base_url + SUSPENDED,
        auth=(venue_id, secret),
        headers={"If-None-Match": first.headers["ETag"]},
        timeout=10,
    )
    assert again.status_code == 304
    live.set_card_status("zhang", CardStatus.SUSPENDED)
    changed = requests.get(
        live.base_url + SUSPENDED,
        auth=(venue_id, secret),
        headers={"If-None-Match": first.headers["ETag"]},
        timeout=10,
    )
    assert changed.status_code == 200 and len(changed.json()["handles"]) == 1


def test_offline_gate_syncs_keys_and_suspended_list(
    live: LiveWallet, user: WalletUser, tmp_path: Path
) -> None:
    venue_id, secret = live.add_venue("Zoo", "park")
    session = requests.Session()
    session.auth = (venue_id, secret)  # the list wants the venue's credentials
    keys = KeySetSync(live.base_url + QR_KEYS, cache_file=tmp_path / "jwks.json")
    handles = SuspendedHandlesSync(
        live.base_url + SUSPENDED, cache_file=tmp_path / "suspended.json", session=session
    )
    gate = GateVerifier(keys, [REGION], revoked_handles=handles)
    code = user.code()["text"]
    assert gate.verify(code, live.clock()).handle == parse_qr_token(code).handle
    with pytest.raises(QrTokenError) as replay:
        gate.verify(code, live.clock())
    assert replay.value.reason is QrTokenReason.REPLAYED
    # Card reported lost: the next list the gate syncs names the handle, and its codes are refused offline.
    second = user.code()["text"]
    live.set_card_status("zhang", CardStatus.LOST)
    handles.refresh(live.clock())
    with pytest.raises(QrTokenError) as revoked:
        gate.verify(second, live.clock())
    assert revoked.value.reason is QrTokenReason.REVOKED
    # The same code online is refused too (the server reads the card's status itself).
    with pytest.raises(QrTokenError) as online:
        OnlineGateClient(live.base_url, venue_id, secret).verify(second)
    assert online.value.reason is QrTokenReason.REVOKED


def test_replay_through_another_node(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.sqlite3"
    with running_wallet(url) as node_a:
        node_a.add_card("zhang")
        user = WalletUser(node_a, "zhang")
        user.set_up()
        venue_id, secret = node_a.add_venue("Museum", "museum", ("valid_resident",))
        with running_wallet(url, create_schema=False, citizens=False) as node_b:
            code = user.code()["text"]
            assert OnlineGateClient(node_a.base_url, venue_id, secret).verify(code).handle
            assert (
                reason_of(OnlineGateClient(node_b.base_url, venue_id, secret), code) is QrTokenReason.REPLAYED
            )


@pytest.mark.postgres
@pytest.mark.redis
def test_replay_through_another_node_on_postgres_and_redis(postgres_url: str, redis_url: str) -> None:
    prefix = "oc-wallet-" + secrets.token_hex(4)
    with running_wallet(postgres_url, redis_url=redis_url, redis_prefix=prefix) as node_a:
        try:
            node_a.add_card("zhang")
            user = WalletUser(node_a, "zhang")
            user.set_up()
            venue_id, secret = node_a.add_venue("Museum", "museum", ("valid_resident",))
            with running_wallet(
                postgres_url, redis_url=redis_url, redis_prefix=prefix, create_schema=False, citizens=False
            ) as node_b:
                code = user.code()["text"]
                # Passes at node B, replayed at node A: one-time use lives in the shared Redis.
                assert OnlineGateClient(node_b.base_url, venue_id, secret).verify(code).handle
                assert (
                    reason_of(OnlineGateClient(node_a.base_url, venue_id, secret), code)
                    is QrTokenReason.REPLAYED
                )
        finally:
            node_a.services.database.engine.dispose()
            Base.metadata.drop_all(node_a.services.database.engine)
            client = __import__("redis").Redis.from_url(redis_url)
            for key in client.scan_iter(f"{prefix}:*"):
                client.delete(key)


def test_service_errors_are_not_verdicts(live: LiveWallet) -> None:
    with pytest.raises(GateServiceError):
        OnlineGateClient("http://127.0.0.1:9", "x", "y", timeout=0.5).verify("ESSC1:")
    assert base64
    header = "Basic " + base64.b64encode(b"venue-museum-1:s3cret+p%40ss").decode()
    assert header.endswith("==")


# --- onecard-gate offline against the live server (the list needs the venue's credentials) --------------


def _gate_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = gate_main(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def _offline_args(base_url: str, code: str, now: float, *extra: str) -> list[str]:
    return [
        "verify",
        "--text",
        code,
        "--offline",
        "--jwks",
        base_url + QR_KEYS,
        "--issuer",
        REGION,
        "--revoked",
        base_url + SUSPENDED,
        "--now",
        str(now),
        *extra,
    ]


def test_offline_cli_refuses_a_suspended_ecard_with_each_form_of_credentials(
    live: LiveWallet, user: WalletUser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venue_id, secret = live.add_venue("Botanical garden", "park")
    codes = [user.code()["text"] for _ in range(3)]
    live.set_card_status("zhang", CardStatus.SUSPENDED)
    now = live.clock()
    # The shape `onecard demo run` writes to var/demo-venue.json.
    credentials_file = tmp_path / "venue.json"
    credentials_file.write_text(json.dumps({"venue_id": venue_id, "client_secret": secret}))
    forms: list[tuple[list[str], dict[str, str]]] = [
        (["--client-id", venue_id, "--client-secret", secret], {}),
        (["--credentials", str(credentials_file)], {}),
        ([], {"ONECARD_GATE_CLIENT_ID": venue_id, "ONECARD_GATE_CLIENT_SECRET": secret}),
    ]
    for code, (extra, environ) in zip(codes, forms, strict=True):
        with monkeypatch.context() as patch:
            for name, value in environ.items():
                patch.setenv(name, value)
            status, out, err = _gate_cli(*_offline_args(live.base_url, code, now, *extra))
        assert (status, out) == (1, "REJECT reason=revoked\n"), (extra, out, err)
        assert secret not in out + err
    # Without credentials the list cannot be fetched: an error, never a pass.
    status, out, _ = _gate_cli(*_offline_args(live.base_url, codes[0], now))
    assert status == 2 and out.startswith("ERROR --revoked URL needs the venue's credentials")
    # Wrong ones: the server refuses the list, the gate has none, so nothing passes.
    status, out, err = _gate_cli(
        *_offline_args(live.base_url, codes[0], now, "--client-id", venue_id, "--client-secret", "wrong")
    )
    assert (status, out) == (1, "REJECT reason=revocation_list_stale\n") and "HTTP 401" in err


def test_offline_cli_fails_closed_when_the_list_is_out_of_reach(tmp_path: Path) -> None:
    state = str(tmp_path / "gate-state")
    with running_wallet(f"sqlite:///{tmp_path}/wallet.sqlite3") as server:
        server.add_card("zhang")
        user = WalletUser(server, "zhang")
        user.set_up()
        venue_id, secret = server.add_venue("Aquarium", "park")
        login = ["--client-id", venue_id, "--client-secret", secret]
        synced_at = server.clock()
        first = user.code()["text"]
        assert (
            _gate_cli(*_offline_args(server.base_url, first, synced_at, *login, "--state-dir", state))[0] == 0
        )
        soon, also_soon = user.code()["text"], user.code()["text"]
        server.clock.advance(DEFAULT_MAX_LIST_AGE + 1)
        late = user.code()["text"]
        late_now = server.clock()
        base_url = server.base_url
        jwks_file = tmp_path / "qr-keys.json"
        jwks_file.write_text(requests.get(base_url + QR_KEYS, timeout=10).text)
    # The server is gone. Past the list's max-age (60 s) the gate tries to refetch, fails, and within the
    # limit verifies with the list it holds, saying so.
    status, out, err = _gate_cli(*_offline_args(base_url, soon, synced_at + 70, *login, "--state-dir", state))
    assert status == 0 and out.startswith("PASS ") and "using the list confirmed 70 s ago" in err
    # Past the stated limit (--max-list-age, or the default) nothing passes, with its own reason.
    status, out, _ = _gate_cli(
        *_offline_args(
            base_url, also_soon, synced_at + 5, *login, "--state-dir", state, "--max-list-age", "4"
        )
    )
    assert (status, out) == (1, "REJECT reason=revocation_list_stale\n")
    status, out, _ = _gate_cli(*_offline_args(base_url, late, late_now, *login, "--state-dir", state))
    assert (status, out) == (1, "REJECT reason=revocation_list_stale\n")
    # No local copy of the list at all (the key set from a file): the same refusal.
    no_copy = [
        str(jwks_file) if arg == base_url + QR_KEYS else arg
        for arg in _offline_args(base_url, late, late_now, *login)
    ]
    status, out, err = _gate_cli(*no_copy)
    assert (status, out) == (1, "REJECT reason=revocation_list_stale\n")
    assert secret not in err


# --- the URLs the documents name answer -------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _documented_paths() -> list[str]:
    essc1 = (DOCS / "formats" / "essc1.md").read_text(encoding="utf-8")
    venues = (DOCS / "venues.md").read_text(encoding="utf-8")
    keys_section = essc1.split("## 5.", 1)[1].split("## 6.", 1)[0]
    list_section = essc1.split("## 6.", 1)[1].split("## 7.", 1)[0]
    paths = re.findall(r"`https://<idp>(/[^`\s]+)`", keys_section + list_section)
    paths += re.findall(r"`GET (/[^`\s]+)`", venues.split("## 3.", 1)[1].split("## 4.", 1)[0])
    return paths


def test_the_documented_gate_urls_answer(live: LiveWallet) -> None:
    paths = _documented_paths()
    assert QR_KEYS in paths and SUSPENDED in paths, paths
    venue_id, secret = live.add_venue("Docs check", "park")
    for path in paths:
        answer = requests.get(live.base_url + path, auth=(venue_id, secret), timeout=10)
        assert answer.status_code == 200, path
    keys = KeySet.from_jwks(requests.get(live.base_url + paths[0], timeout=10).json())
    assert keys and all(key.alg == "EdDSA" for key in keys)


def test_a_stored_policy_never_releases_more_than_a_venue_may_learn(
    live: LiveWallet, user: WalletUser
) -> None:
    """Registration refuses id_number and birthdate; a row written some other way still releases neither."""
    from wallet.venues.model import Venue

    venue_id, secret = live.add_venue("Library", "library", ("name",))
    with live.services.database.session() as session:
        venue = session.get(Venue, venue_id)
        assert venue is not None
        venue.claims = ["name", "id_number", "birthdate", "id_number_masked"]
    scan = OnlineGateClient(live.base_url, venue_id, secret).verify(user.code()["text"])
    assert set(scan.claims) == {"name", "id_number_masked"}
