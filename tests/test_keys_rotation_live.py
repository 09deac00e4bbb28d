"""Key rotation and revocation against a live server (issue #6, "How it is checked").

Zero downtime: two portals (``sdk.portal``: logins through a browser, code exchanges and refreshes with full
id_token validation through its JWKS cache, userinfo, re-validation of tokens kept from earlier) and a gate
(``sdk.gate``'s ``GateVerifier`` over a ``KeySetSync``-synced QR key set) run continuously in threads while
the main thread walks every rotatable key set pending → active → retired → removed through the admin API,
re-encrypts the register, and jumps the server's ShiftClock over the waiting periods. The caches are strict:
they refetch only when Cache-Control max-age has run out, never on an unknown kid, so a key used before it
was published long enough would show as a refusal.

Revocation: a relying party with the same strict cache (``CachingJwksClient``) and a gate, between steps.
Multi-node with real server processes: tests/test_keys_nodes.py.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import select

import idp.models  # noqa: F401
from idp.citizens.idnumber import check_character
from idp.citizens.model import Citizen
from idp.citizens.service import create_citizen, decrypt_profile
from idp.db import Base
from idp.keys.actor import KeyActor
from idp.keys.lifecycle import activate, revoke, rotate
from idp.keys.model import KeyRecord, KeyState
from idp.keys.reencrypt import reencrypt_pii
from idp.keys.service import KeyRing
from sdk.gate import GateVerifier, KeySetSync, parse_max_age
from sdk.jwks_cache import JwksCache
from sdk.keys import KeySet
from sdk.portal import ALLOWED_ALGS, PortalClient, PortalTokens, VerifiedIdToken
from sdk.qr_token import QrTokenError, QrTokenReason, generate_qr_handle, issue_qr_token
from tests.support.live import CITIZENS, Browser, LiveIdp, login, portal, running_idp

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


# --- zero-downtime rotation under a continuous load -------------------------------------------------------

REDIRECT = "https://portal.example.gov.cn/callback"
PORTAL_SCOPE = "openid profile offline_access"
KINDS = ("login", "refresh", "id_token", "userinfo", "scan")
PER_STEP = 3  # each kind of operation runs at least this often in every step of the walk
SETTLE_TIMEOUT = 60.0  # real seconds a step may take to reach PER_STEP of everything
MAX_ITERATIONS = 100_000  # per worker: a bound, never reached
MAX_HELD = 2_000  # tokens a portal keeps (a bound; they go when they expire)
MARGIN = 10  # a token or code is used only while it has this long left (a jump never splits an operation)
EXTRA_CITIZENS = 40  # so re-encrypting the register takes many batches while userinfo reads it


class TimeLock:
    """Clock jumps happen between operations, never inside one.

    The load's operations share the lock; a jump takes it alone. A real wait lasts minutes and an operation
    milliseconds: a jump in the middle of a login would expire its 60 s authorization code — a test artefact,
    not a refusal. Key changes (rotate, activate, tick, re-encryption) do *not* take the lock: they race the
    load, as they would in production.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._jumping = False

    @contextmanager
    def operation(self) -> Iterator[None]:
        with self._cond:
            while self._jumping:
                self._cond.wait()
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    @contextmanager
    def jump(self) -> Iterator[None]:
        with self._cond:
            self._jumping = True
            while self._running:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._jumping = False
                self._cond.notify_all()


class CountingSession(requests.Session):
    """Counts GETs per path: shows when a JWKS or the QR key set was (re)fetched."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: Counter[str] = Counter()

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        self.gets[urlsplit(str(url)).path] += 1
        return super().get(url, **kwargs)


class StrictJwksCache(JwksCache):
    """``sdk.portal``'s JWKS cache (Cache-Control, ETag) that never refetches on an unknown kid: only its
    max-age brings new keys, so a key that signed before it was published long enough shows as a refusal
    instead of being papered over by the unknown-kid refresh."""

    def refresh_for_unknown_kid(self, kid: str, now: float) -> bool:
        return False


class StrictPortal(PortalClient):
    """A ``PortalClient`` whose id_token validations go through a ``StrictJwksCache``."""

    _strict_jwks: StrictJwksCache | None = None

    @property
    def jwks(self) -> StrictJwksCache:
        if self._strict_jwks is None:
            self._strict_jwks = StrictJwksCache(
                self.metadata().jwks_uri,
                session=self.session,
                timeout=self.timeout,
                required_algs=ALLOWED_ALGS,
            )
        return self._strict_jwks


@dataclass(frozen=True)
class Held:
    """Tokens a portal keeps and uses again later (after rotations, until they expire)."""

    id_token: str
    nonce: str | None
    id_expires: int
    access_token: str
    access_expires: float
    subject: str


def describe(exc: BaseException) -> str:
    """An error with its reason (sdk errors carry one; provider errors their HTTP status and OAuth error)."""
    parts = [type(exc).__name__]
    for attribute in ("reason", "http_status", "oauth_error"):
        value = getattr(exc, attribute, None)
        if value not in (None, ""):
            parts.append(f"{attribute}={value}")
    return " ".join(parts) + f": {exc}"


class ContinuousLoad:
    """Two portals (``sdk.portal``; RS256 and ES256 id_tokens; one with a fresh browser and a consent page
    every time, one with a browser that keeps its SSO session) and a gate (``sdk.gate`` over a synced QR key
    set), each in its own thread, working without pause while the main thread changes keys and jumps the
    clock. Every refusal is recorded with the step, the operation and the reason."""

    def __init__(self, idp: LiveIdp) -> None:
        self.idp = idp
        self.time = TimeLock()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.step = "start"
        self.steps = ["start"]
        self.counts: dict[str, Counter[str]] = {"start": Counter()}
        self.failures: list[str] = []
        self.portals: list[StrictPortal] = []
        self.http_sessions: list[CountingSession] = []
        self.gate_sync = StrictKeySetSync(
            f"{idp.base_url}/.well-known/onecard-qr-keys.json", session=self._session()
        )
        self.gate = GateVerifier(self.gate_sync, {REGION})
        self.threads = [
            threading.Thread(
                target=self._guarded,
                args=("portal-rs256", self._portal_worker, self._portal("RS256"), False),
                name="portal-rs256",
            ),
            threading.Thread(
                target=self._guarded,
                args=("portal-es256", self._portal_worker, self._portal("ES256"), True),
                name="portal-es256",
            ),
            threading.Thread(target=self._guarded, args=("gate", self._gate_worker), name="gate"),
        ]

    def _session(self) -> CountingSession:
        session = CountingSession()
        self.http_sessions.append(session)
        return session

    def _portal(self, alg: str) -> StrictPortal:
        client_id, secret = self.idp.register_client(
            name=f"Portal {alg}",
            redirect_uris=(REDIRECT,),
            scope=PORTAL_SCOPE,
            id_token_signed_response_alg=alg,
        )
        portal = StrictPortal(
            self.idp.base_url, client_id, str(secret), REDIRECT, session=self._session(), clock=self.idp.clock
        )
        self.portals.append(portal)
        return portal

    # -- the main thread's side

    @contextmanager
    def running(self) -> Iterator[ContinuousLoad]:
        for thread in self.threads:
            thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            for thread in self.threads:
                thread.join(30)
            for portal in self.portals:
                portal.close()
            self.gate_sync.close()
            for session in self.http_sessions:
                session.close()
        stuck = [thread.name for thread in self.threads if thread.is_alive()]
        assert not stuck, f"load threads did not stop: {stuck}"

    def begin(self, step: str) -> None:
        """From now on, operations count towards ``step``."""
        with self._lock:
            assert step not in self.counts, step
            self.step = step
            self.steps.append(step)
            self.counts[step] = Counter()

    def settle(self) -> None:
        """Wait until every kind of operation ran ``PER_STEP`` times in the current step."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            with self._lock:
                step, counts = self.step, Counter(self.counts[self.step])
            if self.failures:  # no need to wait for the rest
                raise AssertionError(f"step {step!r}: refused: {self.failures[:10]}")
            if all(counts[kind] >= PER_STEP for kind in KINDS):
                return
            if time.monotonic() > deadline or self.stop.is_set():
                raise AssertionError(f"step {step!r}: only {dict(counts)}; failures: {self.failures[:10]}")
            time.sleep(0.01)

    def jump(self, seconds: float) -> None:
        with self.time.jump():
            self.idp.clock.advance(seconds)

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.counts.values():
            total.update(counts)
        return total

    # -- the workers' side

    def _guarded(self, name: str, worker: Callable[..., None], *args: Any) -> None:
        try:
            worker(*args)
        except BaseException as exc:  # a crashed worker is a failure, never a silently thinner load
            with self._lock:
                self.failures.append(f"{self.step}: {name} crashed: {describe(exc)}")
            self.stop.set()

    def _attempt(self, what: str, action: Callable[[float], Sequence[str]]) -> None:
        """Run one operation between clock jumps; count what it did, or record why it failed."""
        with self.time.operation():
            with self._lock:
                step = self.step
            try:
                done = action(self.idp.clock())
            except Exception as exc:
                with self._lock:
                    self.failures.append(f"{step}: {what}: {describe(exc)}")
                return
            with self._lock:
                self.counts[step].update(done)

    def _portal_worker(self, portal: StrictPortal, keeps_session: bool) -> None:
        name = portal.client_id
        held: list[Held] = []
        sessions: list[tuple[str, VerifiedIdToken]] = []  # refresh token, and the id_token it follows
        sso_browser = Browser(self.idp)

        def hold(tokens: PortalTokens, nonce: str | None) -> None:
            claims = tokens.id_token_claims
            assert claims is not None and tokens.id_token and tokens.expires_at and tokens.refresh_token
            held.append(
                Held(
                    tokens.id_token,
                    nonce,
                    claims.expires_at,
                    tokens.access_token,
                    tokens.expires_at,
                    claims.subject,
                )
            )
            # Kept until expired (the oldest still usable was likely signed by a key since retired).
            now = self.idp.clock()
            held[:] = [h for h in held[-MAX_HELD:] if now < max(h.id_expires, h.access_expires)]
            sessions.append((tokens.refresh_token, claims))
            del sessions[:-2]

        def login(now: float) -> Sequence[str]:
            # The consent page (a CSRF token under the cookie key) every time for one portal; the other
            # keeps its browser, whose SSO session cookie outlives the rotations.
            start = portal.authorization_url(PORTAL_SCOPE, prompt=None if keeps_session else "consent")
            browser = sso_browser if keeps_session else Browser(self.idp)
            final = browser.authorize(start.url, citizen="zhang")
            if not final.startswith(REDIRECT):
                raise AssertionError(f"the browser ended at {final}")
            hold(portal.exchange_code(final, start), start.nonce)  # the id_token is validated here
            return ("login", "id_token")

        def refresh(now: float) -> Sequence[str]:
            done: list[str] = []
            for refresh_token, previous in list(sessions):  # the newest session and the one before
                sessions.remove((refresh_token, previous))
                hold(portal.refresh(refresh_token, previous=previous), None)  # the new id_token is validated
                done += ["refresh", "id_token"]
            return done

        def usable(now: float, expires: Callable[[Held], float]) -> list[Held]:
            alive = [h for h in held if now < expires(h) - MARGIN]
            return alive[:1] + alive[-1:] if len(alive) > 1 else alive  # the oldest and the newest

        def userinfo(now: float) -> Sequence[str]:
            tokens = usable(now, lambda h: h.access_expires)
            for h in tokens:
                info = portal.userinfo(h.access_token, expected_subject=h.subject)
                if info.get("name") != "张三":
                    raise AssertionError(f"userinfo name {info.get('name')!r}")
            return ["userinfo"] * len(tokens)

        def revalidate(now: float) -> Sequence[str]:
            tokens = usable(now, lambda h: h.id_expires)
            for h in tokens:
                portal.verify_id_token(h.id_token, expected_nonce=h.nonce, access_token=h.access_token)
            return ["id_token"] * len(tokens)

        for _ in range(MAX_ITERATIONS):
            if self.stop.is_set():
                break
            self._attempt(f"{name} login", login)
            self._attempt(f"{name} refresh", refresh)
            self._attempt(f"{name} userinfo", userinfo)
            self._attempt(f"{name} id_token", revalidate)
        sso_browser.http.close()

    def _gate_worker(self) -> None:
        keyring = self.idp.services.keyring
        shown: list[tuple[str, int]] = []  # codes shown earlier, scanned on the next round if still valid

        def code(now: float) -> tuple[str, int]:
            key = keyring.key_set("qr", now=now).signing_key("EdDSA")  # as the wallet signs: the active key
            return issue_qr_token(key=key, issuer=REGION, handle=generate_qr_handle(), now=now), int(now) + 60

        def scan(now: float) -> Sequence[str]:
            codes = [code(now), *[(c, exp) for c, exp in shown if now < exp - MARGIN]]
            shown[:] = [code(now)]
            for text, _exp in codes:
                self.gate.verify(text, now)
            return ["scan"] * len(codes)

        for _ in range(MAX_ITERATIONS):
            if self.stop.wait(0.005):
                break
            self._attempt("gate scan", scan)


@pytest.fixture
def busy(tmp_path: Any) -> Iterator[LiveIdp]:
    """A live IdP with a register large enough that re-encrypting it takes many batches."""
    with running_idp(f"sqlite:///{tmp_path}/idp.sqlite3", jwks_max_age=MAX_AGE, sso_session_ttl=1800) as idp:
        svc = idp.services
        with svc.database.session() as session:
            for n in range(EXTRA_CITIZENS):
                first17 = f"11010519800101{n:03d}"
                create_citizen(
                    session, svc.pii_cipher(), "王五", first17 + check_character(first17), now=idp.clock()
                )
        yield idp


class AdminApi:
    """The security team's client of ``/api/v1/admin/keys`` (client_credentials, admin scope)."""

    def __init__(self, idp: LiveIdp) -> None:
        self.base_url = idp.base_url
        client_id, secret = idp.register_client(name="Security", kind="operator", scope="admin")
        self.auth = (client_id, str(secret))

    def call(self, path: str, **body: Any) -> list[dict[str, Any]]:
        # A fresh token each time: the one before may have been signed by a key rotated since (it would
        # still be accepted — that is the point — but it may also have expired across a clock jump).
        token = requests.post(
            f"{self.base_url}/token",
            auth=self.auth,
            data={"grant_type": "client_credentials", "scope": "admin"},
            timeout=10,
        )
        assert token.status_code == 200, token.text
        response = requests.post(
            f"{self.base_url}/api/v1/admin/keys{path}",
            json={"reason": "routine rotation", **body},
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )
        assert response.status_code in (200, 201), response.text
        changes: list[dict[str, Any]] = response.json()["changes"]
        return changes


def test_every_key_set_rotates_under_a_continuous_load(busy: LiveIdp) -> None:
    live, svc = busy, busy.services
    admin = AdminApi(live)
    load = ContinuousLoad(live)
    old = {name: kid for name, kid in active_kids(live).items() if name in ROTATED}
    removed: set[str] = set()
    with load.running():
        load.settle()
        new = {name: admin.call("/rotate", key_set=name)[0]["kid"] for name in ROTATED}
        load.begin("rotated: pending keys published")
        load.settle()
        load.jump(150)
        load.begin("half the pre-publication period")
        load.settle()
        early = admin.call("/tick")  # the symmetric sets wait only for the key ring
        assert {(c["key_set"], c["action"]) for c in early} == {
            ("data", "activate"),
            ("data", "retire"),
            ("cookie", "activate"),
            ("cookie", "retire"),
        }
        load.begin("data and cookie keys active")
        load.settle()
        load.jump(MAX_AGE + 5 - 150)
        load.begin("published for max-age + key ring")
        load.settle()
        by_hand = admin.call(f"/{new['oidc-rs256']}/activate")  # not forced: published long enough
        assert [(c["kid"], c["action"]) for c in by_hand] == [
            (new["oidc-rs256"], "activate"),
            (old["oidc-rs256"], "retire"),
        ]
        load.begin("new RS256 key signs")
        load.settle()
        scheduled = admin.call("/tick")
        assert {c["key_set"] for c in scheduled if c["action"] == "activate"} == {"oidc-es256", "qr"}
        assert active_kids(live).items() >= new.items()
        load.begin("every new key signs")
        load.settle()
        # The data key: re-encrypt the register in small batches while userinfo keeps reading it.
        report = reencrypt_pii(
            svc.database,
            KeyRing(svc.database, svc.keks, cache_seconds=0),
            actor(live, "yearly"),
            clock=live.clock,
            batch_size=3,
        )
        assert report.complete and report.data_key == new["data"]
        assert report.reencrypted == len(CITIZENS) + EXTRA_CITIZENS
        load.begin("register re-encrypted")
        load.settle()
        for waited in range(300, 13 * 300, 300):
            load.jump(300)
            load.begin(f"retention +{waited} s")
            load.settle()
            for change in admin.call("/tick"):
                assert change["action"] == "remove" and change["kid"] == old[change["key_set"]], change
                removed.add(change["key_set"])
            load.begin(f"retention +{waited} s, ticked")
            load.settle()
            if removed == set(ROTATED):
                break
    totals = load.totals()
    print(f"\n{len(load.steps)} steps; operations: {dict(totals)}; failures: {len(load.failures)}")
    for http in load.http_sessions:
        print(f"fetches: {dict(http.gets)}")
    assert load.failures == []
    assert states(live, set(old.values())) == dict.fromkeys(old.values(), "removed")
    assert removed == set(ROTATED)
    assert all(load.counts[step][kind] >= PER_STEP for step in load.steps for kind in KINDS)
    # The caches refreshed as their max-age ran out, and never for an unknown kid (they are strict).
    for http in load.http_sessions[1:]:
        assert http.gets["/jwks.json"] >= 5
    assert load.http_sessions[0].gets["/.well-known/onecard-qr-keys.json"] >= 5
    with svc.database.session() as session:
        cipher = svc.pii_cipher()
        names = {decrypt_profile(cipher, c).name for c in session.scalars(select(Citizen))}
        assert names == {"张三", "李四", "王五"}


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
