"""Key rotation and revocation against a live server (issue #6, "How it is checked").

A load of logins (test login plugin, Authlib's client), token refreshes, userinfo calls, id_token
validations by a relying party that caches the JWKS exactly as long as Cache-Control allows (and never
refetches early, so a key used before it was published would show), and gate verifications with
``sdk.gate``'s ``KeySetSync`` (strict too), runs between every step while each key set goes
pending → active → retired → removed. The server's ShiftClock jumps over the waiting periods.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import select

import idp.models  # noqa: F401
from idp.citizens.model import Citizen
from idp.citizens.service import decrypt_profile
from idp.db import Base
from idp.keys.lifecycle import KeyActor, activate, reencrypt_pii, revoke, rotate, tick
from idp.keys.model import KeyRecord, KeyState
from idp.keys.service import KeyRing
from sdk.gate import GateVerifier, KeySetSync, parse_max_age
from sdk.keys import KeySet
from sdk.qr_token import QrTokenError, QrTokenReason, generate_qr_handle, issue_qr_token
from tests.support.live import Browser, LiveIdp, running_idp
from tests.test_oidc_flows import login, portal

REGION = "420100"
MAX_AGE = 300  # jwks_max_age for these tests: pre-publication 305 s, OIDC retention 905 s
ROTATED = ("oidc-rs256", "oidc-es256", "qr", "data", "cookie")


class CachingJwksClient:
    """A relying party's JWKS cache: refetches only when Cache-Control max-age has run out (or when told),
    never on an unknown kid — the strictest client a key rotation must still satisfy."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.keys = KeySet()
        self.fresh_until = float("-inf")
        self.fetches = 0

    def refresh(self, now: float) -> None:
        response = requests.get(self.url, timeout=5)
        response.raise_for_status()
        self.keys = KeySet.from_jwks(response.json())
        self.fresh_until = now + parse_max_age(response.headers.get("Cache-Control"), None, default=0)
        self.fetches += 1

    def validate(self, token: str, *, audience: str, issuer: str, now: float) -> dict[str, Any]:
        if now >= self.fresh_until:
            self.refresh(now)
        header = jwt.get_unverified_header(token)
        key = self.keys.find(header["kid"])
        if key is None:
            raise jwt.InvalidTokenError(f"unknown kid {header['kid']}")
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,  # type: ignore[arg-type]
            algorithms=[key.alg],
            audience=audience,
            issuer=issuer,
            options={"verify_exp": False, "verify_iat": False},
        )
        if now >= claims["exp"]:
            raise jwt.ExpiredSignatureError("expired")
        return claims


class StrictKeySetSync(KeySetSync):
    """A gate that never refetches on an unknown kid: only its max-age schedule brings new keys."""

    def refresh_for_unknown_kid(self, kid: str, now: float) -> bool:
        return False


@dataclass
class Load:
    """Logins, refreshes, validations and gate scans, all checked; ``failures`` must stay empty."""

    idp: LiveIdp
    client: OAuth2Session
    rp: CachingJwksClient
    gate: GateVerifier
    sessions: list[dict[str, Any]] = field(default_factory=list)
    unscanned: list[tuple[str, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("logins", "refreshes", "id_tokens", "userinfo", "scans"), 0)
    )

    def now(self) -> float:
        return self.idp.clock()

    def qr_code(self) -> tuple[str, int]:
        svc = self.idp.services
        key = svc.keyring.key_set("qr", now=self.now()).signing_key("EdDSA")
        code = issue_qr_token(key=key, issuer=REGION, handle=generate_qr_handle(), now=self.now())
        return code, int(self.now()) + 60

    def round(self, label: str) -> None:
        now = self.now()
        try:
            token, _nonce = login(self.idp, self.client, Browser(self.idp))
            self.sessions.append(token)
            self.counts["logins"] += 1
        except Exception as exc:
            self.failures.append(f"{label}: login: {exc!r}")
        for token in self.sessions:
            expires = jwt.decode(token["access_token"], options={"verify_signature": False})["exp"]
            if now < expires:
                self._check_token(label, token)
        for token in self.sessions[-2:]:  # refresh the newest sessions: new tokens under the current keys
            try:
                refreshed = requests.post(
                    f"{self.idp.base_url}/token",
                    auth=(self.client.client_id, self.client.client_secret),
                    data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
                    timeout=10,
                )
                if refreshed.status_code != 200:
                    raise AssertionError(f"{refreshed.status_code} {refreshed.text[:200]}")
                token.update(refreshed.json())
                self.counts["refreshes"] += 1
                self._check_token(label, token)
            except Exception as exc:
                self.failures.append(f"{label}: refresh: {exc!r}")
        # A code shown now is scanned now; another one is scanned in the next round, if still valid.
        codes = [self.qr_code(), *[(c, exp) for c, exp in self.unscanned if now < exp + 30]]
        self.unscanned = [self.qr_code()]
        for code, _exp in codes:
            try:
                self.gate.verify(code, now)
                self.counts["scans"] += 1
            except QrTokenError as exc:
                self.failures.append(f"{label}: gate: {exc.reason}")

    def _check_token(self, label: str, token: dict[str, Any]) -> None:
        now = self.now()
        try:
            self.rp.validate(
                token["id_token"], audience=self.client.client_id, issuer=self.idp.base_url, now=now
            )
            self.counts["id_tokens"] += 1
        except Exception as exc:
            self.failures.append(f"{label}: id_token: {exc!r}")
        response = requests.get(
            f"{self.idp.base_url}/userinfo",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=10,
        )
        if response.status_code != 200 or response.json().get("name") not in ("张三", "李四"):
            self.failures.append(f"{label}: userinfo {response.status_code}")
        else:
            self.counts["userinfo"] += 1


@pytest.fixture
def live(tmp_path: Any) -> Iterator[LiveIdp]:
    with running_idp(f"sqlite:///{tmp_path}/idp.sqlite3", jwks_max_age=MAX_AGE, sso_session_ttl=1800) as idp:
        yield idp


def make_load(idp: LiveIdp) -> Load:
    client = portal(idp, scope="openid profile offline_access")
    rp = CachingJwksClient(f"{idp.base_url}/jwks.json")
    sync = StrictKeySetSync(f"{idp.base_url}/.well-known/onecard-qr-keys.json")
    return Load(idp, client, rp, GateVerifier(sync, {REGION}))


def actor(idp: LiveIdp, reason: str) -> KeyActor:
    svc = idp.services
    return KeyActor(svc.settings, svc.keks, "cli:test", reason)


def states(idp: LiveIdp, kids: set[str]) -> dict[str, str]:
    with idp.services.database.session() as session:
        return {r.kid: r.state for r in session.scalars(select(KeyRecord).where(KeyRecord.kid.in_(kids)))}


def active_kids(idp: LiveIdp) -> dict[str, str]:
    with idp.services.database.session() as session:
        records = session.scalars(select(KeyRecord).where(KeyRecord.state == KeyState.ACTIVE.value))
        return {r.key_set: r.kid for r in records}


def test_every_key_set_rotates_without_refusing_anything(live: LiveIdp) -> None:
    load = make_load(live)
    svc = live.services
    load.round("start")
    old = {name: kid for name, kid in active_kids(live).items() if name in ROTATED}
    with svc.database.session() as session:
        new = {name: rotate(session, actor(live, "routine"), name, now=live.clock()).kid for name in ROTATED}
    svc.keyring.invalidate()
    load.round("rotated")
    # Not yet: the published sets wait out the JWKS max-age (the symmetric ones only the key ring's 5 s).
    live.clock.advance(150)
    load.round("half-way")
    with svc.database.session() as session:
        early = tick(session, actor(live, "tick"), now=live.clock())
    svc.keyring.invalidate()
    assert {c.key_set for c in early if c.action == "activate"} == {"data", "cookie"}
    live.clock.advance(MAX_AGE + 5 - 150)
    load.round("published long enough")  # the RP's and the gate's caches now hold the pending keys
    with svc.database.session() as session:
        changes = tick(session, actor(live, "tick"), now=live.clock())
    svc.keyring.invalidate()
    assert {c.key_set for c in changes if c.action == "activate"} == {"oidc-rs256", "oidc-es256", "qr"}
    assert active_kids(live).items() >= new.items()
    fetches = load.rp.fetches
    load.round("new keys sign")  # tokens signed by the new keys verify from the cached JWKS
    assert load.rp.fetches == fetches
    # Data key: re-encrypt the register while serving; every citizen still decrypts.
    report = reencrypt_pii(
        svc.database,
        KeyRing(svc.database, svc.keks, cache_seconds=0),
        actor(live, "yearly"),
        clock=live.clock,
        batch_size=1,
    )
    assert report.complete and report.data_key == new["data"]
    load.round("re-encrypted")
    removed_at: dict[str, float] = {}
    for step in range(12):
        live.clock.advance(300)
        load.round(f"retention {step}")
        with svc.database.session() as session:
            for change in tick(session, actor(live, "tick"), now=live.clock()):
                assert change.action == "remove" and change.kid in old.values(), change
                removed_at[change.key_set] = live.clock()
        svc.keyring.invalidate()
        load.round(f"after tick {step}")
        if len(removed_at) == len(ROTATED):
            break
    assert states(live, set(old.values())) == dict.fromkeys(old.values(), "removed")
    assert load.failures == []
    assert load.counts["logins"] >= 10 and load.counts["id_tokens"] > 50 and load.counts["scans"] > 20
    with svc.database.session() as session:
        cipher = svc.pii_cipher()
        assert {decrypt_profile(cipher, c).name for c in session.scalars(select(Citizen))} == {"张三", "李四"}


def test_revoked_keys_are_refused_everywhere(live: LiveIdp) -> None:
    load = make_load(live)
    svc = live.services
    load.round("before")
    token = load.sessions[-1]
    code, _exp = load.qr_code()
    old = active_kids(live)
    with svc.database.session() as session:
        for name in ("oidc-rs256", "oidc-es256", "qr"):
            revoke(session, actor(live, "INC-42 key leaked"), old[name], now=live.clock())
    svc.keyring.invalidate()
    # The IdP refuses at once: userinfo and introspection (access tokens are ES256-signed).
    userinfo = requests.get(
        f"{live.base_url}/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=5
    )
    assert userinfo.status_code == 401
    introspection = requests.post(
        f"{live.base_url}/introspect",
        auth=(load.client.client_id, load.client.client_secret),
        data={"token": token["access_token"]},
        timeout=5,
    )
    assert introspection.json() == {"active": False}
    jwks = requests.get(f"{live.base_url}/jwks.json", timeout=5).json()
    assert not {old["oidc-rs256"], old["oidc-es256"]} & {k["kid"] for k in jwks["keys"]}
    # The relying party: still accepted from its cached JWKS, refused after its next refresh.
    rp_args = {"audience": load.client.client_id, "issuer": live.base_url}
    load.rp.validate(token["id_token"], now=live.clock(), **rp_args)
    live.clock.advance(MAX_AGE)
    with pytest.raises(jwt.InvalidTokenError, match="unknown kid"):
        load.rp.validate(token["id_token"], now=live.clock(), **rp_args)
    # The gate: refused after its next sync.
    assert isinstance(load.gate.keys, KeySetSync)
    load.gate.keys.refresh(live.clock())
    with pytest.raises(QrTokenError) as refused:
        load.gate.verify(code, live.clock())
    assert refused.value.reason is QrTokenReason.UNKNOWN_KEY
    # Successors took over: everything new works (their kids appeared in the documents at once), and the
    # citizen's session survives: its refresh token (opaque, not signed) gets tokens under the new keys.
    refreshed = requests.post(
        f"{live.base_url}/token",
        auth=(load.client.client_id, load.client.client_secret),
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        timeout=5,
    )
    assert refreshed.status_code == 200
    load.sessions, load.unscanned = [refreshed.json()], []
    load.round("after revocation")
    assert load.failures == []


def test_admin_api_manages_keys(live: LiveIdp) -> None:
    client_id, secret = live.register_client(name="Security", kind="operator", scope="admin")
    admin = OAuth2Session(client_id, secret, scope="admin")
    admin.fetch_token(f"{live.base_url}/token", grant_type="client_credentials")
    base = f"{live.base_url}/api/v1/admin/keys"
    created = admin.post(f"{base}/rotate", json={"key_set": "qr", "reason": "quarterly"})
    assert created.status_code == 201
    kid = created.json()["changes"][0]["kid"]
    early = admin.post(f"{base}/{kid}/activate", json={"reason": "too soon"})
    assert early.status_code == 409 and early.json()["error"] == "key_not_published_long_enough"
    qr_keys = requests.get(f"{live.base_url}/.well-known/onecard-qr-keys.json", timeout=5)
    assert kid in {k["kid"] for k in qr_keys.json()["keys"]}
    assert qr_keys.headers["Cache-Control"] == f"public, max-age={MAX_AGE}" and qr_keys.headers["ETag"]
    again = requests.get(
        f"{live.base_url}/.well-known/onecard-qr-keys.json",
        headers={"If-None-Match": qr_keys.headers["ETag"]},
        timeout=5,
    )
    assert again.status_code == 304
    forced = admin.post(f"{base}/{kid}/activate", json={"force": True, "reason": "drill"})
    assert [c["action"] for c in forced.json()["changes"]] == ["activate", "retire"]
    shown = admin.get(f"{base}/{kid}").json()
    assert shown["state"] == "active" and shown["public_jwk"]["kid"] == kid
    assert admin.post(f"{base}/{kid}/revoke", json={}).status_code == 400  # a reason is required
    policy = admin.get(f"{base}/policy").json()["policies"]
    assert {p["key_set"]: p["prepublication_seconds"] for p in policy}["oidc-rs256"] == MAX_AGE + 5
    assert requests.get(base, headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401
    from idp.audit.model import AuditEvent

    with live.services.database.session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.target_id == kid)).all()
        assert [(e.action, e.actor) for e in events] == [
            ("key.create", f"client:{client_id}"),
            ("key.activate", f"client:{client_id}"),
        ]


@pytest.mark.postgres
def test_two_nodes_share_key_states(postgres_url: str, redis_url: str) -> None:
    from idp.app import create_app

    prefix = "oc-keys-" + secrets.token_hex(4)
    with running_idp(postgres_url, redis_url=redis_url, redis_prefix=prefix, jwks_max_age=MAX_AGE) as node_a:
        node_b_app = create_app(
            env="test",
            issuer=node_a.base_url,
            database_url=postgres_url,
            redis_url=redis_url,
            redis_prefix=prefix,
            clock=node_a.clock,
            plugins=[],
        )
        node_b = node_b_app.extensions["onecard"]
        try:
            a, b = node_a.services, node_b
            assert a.keyring is not b.keyring
            now = node_a.clock()
            first = a.keyring.key_set("oidc-rs256", now=now).signing_key().kid
            assert b.keyring.key_set("oidc-rs256", now=now).signing_key().kid == first
            with a.database.session() as session:
                kid = rotate(session, actor(node_a, "multi-node"), "oidc-rs256", now=now).kid
            node_a.clock.advance(MAX_AGE + 5)
            assert b.keyring.key_set("oidc-rs256", now=node_a.clock()).find(kid) is not None  # published
            with a.database.session() as session:
                activate(session, actor(node_a, "multi-node"), kid, now=node_a.clock())
            a.keyring.invalidate()
            now = node_a.clock()
            assert a.keyring.key_set("oidc-rs256", now=now).signing_key().kid == kid
            # Node B still signs with its cached view for at most cache_seconds, then switches.
            assert b.keyring.key_set("oidc-rs256", now=now).signing_key().kid == first
            node_a.clock.advance(b.keyring.cache_seconds)
            assert b.keyring.key_set("oidc-rs256", now=node_a.clock()).signing_key().kid == kid
            # Revoked on B: gone from A's JWKS within cache_seconds, with nobody invalidating A.
            with b.database.session() as session:
                revoke(
                    session, KeyActor(b.settings, b.keks, "cli:test", "multi-node"), kid, now=node_a.clock()
                )
            node_a.clock.advance(a.keyring.cache_seconds)
            jwks = requests.get(f"{node_a.base_url}/jwks.json", timeout=5).json()
            assert kid not in {k["kid"] for k in jwks["keys"]}
            assert first in {k["kid"] for k in jwks["keys"]}  # retired, still published
        finally:
            node_b.database.dispose()
            Base.metadata.drop_all(node_a.services.database.engine)
