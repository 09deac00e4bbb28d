"""``sdk.portal`` against a live OneCard (issue #5 item 2, "How it is checked"): the code flow with full
id_token validation, userinfo, refresh, logout URL and back-channel logout tokens; a key rotation with no
failed validation; and tampered, expired, wrong-audience, wrong-nonce (and other) tokens refused with the
right reason."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from idp.keys.lifecycle import KeyActor, activate, rotate, tick
from sdk.dpop import DpopKey
from sdk.gate import parse_max_age
from sdk.keys import Key, KeySet, generate_key
from sdk.portal import (
    ACR_HIGH,
    ACR_SUBSTANTIAL,
    BACKCHANNEL_LOGOUT_EVENT,
    AuthorizationDeniedError,
    AuthorizationStart,
    CallbackError,
    CallbackReason,
    InvalidIdTokenError,
    InvalidLogoutTokenError,
    PortalClient,
    PortalTokens,
    PushedRequestError,
    TokenReason,
    TokenRequestError,
    acr_satisfies,
)
from tests.support.live import BackChannelReceiver, Browser, LiveIdp, running_idp

REDIRECT = "https://portal.example.gov.cn/callback"
AFTER_LOGOUT = "https://portal.example.gov.cn/"
MAX_AGE = 300


class CountingSession(requests.Session):
    """Counts GETs per path, so tests can see when the JWKS was fetched."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: dict[str, int] = {}

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        path = urlsplit(str(url)).path
        self.gets[path] = self.gets.get(path, 0) + 1
        return super().get(url, **kwargs)


@pytest.fixture
def idp(tmp_path: Any) -> Iterator[LiveIdp]:
    with running_idp(f"sqlite:///{tmp_path}/idp.sqlite3", jwks_max_age=MAX_AGE, sso_session_ttl=3600) as live:
        yield live


def make_client(idp: LiveIdp, **registration: Any) -> PortalClient:
    registration.setdefault("redirect_uris", (REDIRECT,))
    registration.setdefault("post_logout_redirect_uris", (AFTER_LOGOUT,))
    registration.setdefault("scope", "openid profile realname offline_access")
    key: Key | None = registration.pop("key", None)
    client_id, secret = idp.register_client(**registration)
    credential: str | Key = key if key is not None else str(secret)
    return PortalClient(
        idp.base_url, client_id, credential, REDIRECT, session=CountingSession(), clock=idp.clock
    )


def login(
    idp: LiveIdp,
    client: PortalClient,
    browser: Browser | None = None,
    *,
    acr: str = ACR_HIGH,
    scope: str = "openid profile realname offline_access",
    **params: Any,
) -> tuple[PortalTokens, AuthorizationStart]:
    start = client.authorization_url(scope, **params)
    final = (browser or Browser(idp)).authorize(start.url, citizen="zhang", acr=acr)
    assert final.startswith(REDIRECT), final
    return client.exchange_code(final, start), start


def idp_key(idp: LiveIdp, name: str = "oidc-rs256") -> Key:
    return idp.services.keyring.key_set(name, now=idp.clock()).signing_key()


def forge(idp: LiveIdp, claims: dict[str, Any], *, key: Key | None = None, typ: str = "JWT") -> str:
    """A token signed with the provider's own active key (or ``key``): only its claims are wrong."""
    signer = key or idp_key(idp)
    private_key: Any = signer.private_key
    return jwt.encode(claims, private_key, algorithm=signer.alg, headers={"kid": signer.kid, "typ": typ})


def id_claims(idp: LiveIdp, client: PortalClient, **changes: Any) -> dict[str, Any]:
    now = int(idp.clock())
    claims = {
        "iss": idp.base_url,
        "sub": "subject-1",
        "aud": client.client_id,
        "azp": client.client_id,
        "iat": now,
        "exp": now + 600,
        "auth_time": now,
        "acr": ACR_HIGH,
        "nonce": "n-1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def reason_of(error: pytest.ExceptionInfo[Any]) -> TokenReason:
    reason: TokenReason = error.value.reason
    return reason


# --- the happy path -------------------------------------------------------------------------------------


def test_login_userinfo_refresh_and_logout_url(idp: LiveIdp) -> None:
    client = make_client(idp)
    tokens, start = login(idp, client, acr_values=[ACR_HIGH], max_age=600)
    verified = tokens.id_token_claims
    assert verified is not None
    assert verified.acr == ACR_HIGH and verified.amr == ("sc", "pin", "mfa")
    assert verified.nonce == start.nonce and verified.sid and verified.audience == (client.client_id,)
    assert verified.subject != idp.citizens["zhang"]  # pairwise
    assert tokens.refresh_token and tokens.refresh_token.startswith("ocrt_")
    assert "openid" in tokens.scope and tokens.expires_at is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        verified.subject = "x"  # type: ignore[misc]
    # PKCE S256, state and nonce went out in the URL.
    query = parse_qs(urlsplit(start.url).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"] == [start.state]
    assert AuthorizationStart.from_dict(json.loads(json.dumps(start.to_dict()))) == start

    info = client.userinfo(tokens.access_token, expected_subject=verified.subject)
    assert info["name"] == "张三" and info["verified_claims"]["verification"]["assurance_level"] == "high"

    refreshed = client.refresh(tokens.refresh_token, previous=verified)
    assert refreshed.refresh_token and refreshed.refresh_token != tokens.refresh_token
    assert refreshed.id_token_claims is not None
    assert refreshed.id_token_claims.subject == verified.subject and refreshed.id_token_claims.nonce is None

    url = client.logout_url(tokens.id_token, AFTER_LOGOUT, "st-1")
    assert url.startswith(f"{idp.base_url}/logout?")
    params = parse_qs(urlsplit(url).query)
    assert params["id_token_hint"] == [tokens.id_token] and params["client_id"] == [client.client_id]
    assert params["post_logout_redirect_uri"] == [AFTER_LOGOUT] and params["state"] == ["st-1"]
    # Discovery and the JWKS were fetched once each.
    session: CountingSession = client.session  # type: ignore[assignment]
    assert session.gets["/jwks.json"] == 1
    assert session.gets["/.well-known/openid-configuration"] == 1


def test_es256_clients_and_private_key_jwt(idp: LiveIdp) -> None:
    key = generate_key("ES256")
    client = make_client(
        idp,
        id_token_signed_response_alg="ES256",
        token_endpoint_auth_method="private_key_jwt",
        jwks=KeySet((key,)).to_jwks(),
        key=key,
    )
    tokens, _ = login(idp, client)
    assert tokens.id_token and jwt.get_unverified_header(tokens.id_token)["alg"] == "ES256"
    assert tokens.id_token_claims is not None and tokens.id_token_claims.acr == ACR_HIGH


def test_a_lower_level_than_asked_is_refused(idp: LiveIdp) -> None:
    client = make_client(idp)
    tokens, start = login(idp, client, acr=ACR_SUBSTANTIAL, acr_values=[ACR_SUBSTANTIAL])
    assert tokens.id_token_claims and tokens.id_token_claims.acr == ACR_SUBSTANTIAL
    assert tokens.id_token
    with pytest.raises(InvalidIdTokenError) as refused:
        client.verify_id_token(tokens.id_token, expected_nonce=start.nonce, acr_values=[ACR_HIGH])
    assert reason_of(refused) is TokenReason.INSUFFICIENT_ACR
    assert acr_satisfies(ACR_HIGH, [ACR_SUBSTANTIAL]) and not acr_satisfies(ACR_SUBSTANTIAL, [ACR_HIGH])
    assert not acr_satisfies(None, [ACR_SUBSTANTIAL]) and acr_satisfies(None, [])


def test_step_up_gives_the_higher_level(idp: LiveIdp) -> None:
    client = make_client(idp)
    browser = Browser(idp)
    first, _ = login(idp, client, browser, acr=ACR_SUBSTANTIAL)
    assert first.id_token_claims and first.id_token_claims.acr == ACR_SUBSTANTIAL
    stepped, _ = login(idp, client, browser, acr=ACR_HIGH, acr_values=[ACR_HIGH])
    assert stepped.id_token_claims and stepped.id_token_claims.acr == ACR_HIGH
    assert stepped.id_token_claims.subject == first.id_token_claims.subject


# --- refused id_tokens ----------------------------------------------------------------------------------


def test_tampered_expired_wrong_audience_and_wrong_nonce_are_refused(idp: LiveIdp) -> None:
    client = make_client(idp)
    tokens, start = login(idp, client)
    token = tokens.id_token
    assert token is not None
    header, payload, signature = token.split(".")

    def check(candidate: str, reason: TokenReason, verifier: PortalClient = client, nonce: str = "") -> None:
        with pytest.raises(InvalidIdTokenError) as refused:
            verifier.verify_id_token(candidate, expected_nonce=nonce or start.nonce)
        assert reason_of(refused) is reason

    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "someone-else"
    other_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    check(f"{header}.{other_payload}.{signature}", TokenReason.TAMPERED)
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    check(f"{header}.{payload}.{flipped}", TokenReason.TAMPERED)
    check(token, TokenReason.WRONG_NONCE, nonce="another-nonce")
    other_portal = make_client(idp)
    check(token, TokenReason.WRONG_AUDIENCE, verifier=other_portal)
    check("not.a.jwt", TokenReason.MALFORMED)
    # Through the whole flow: a callback answered for another nonce.
    again = client.authorization_url()
    final = Browser(idp).authorize(again.url, citizen="zhang")
    with pytest.raises(InvalidIdTokenError) as refused:
        client.exchange_code(final, dataclasses.replace(again, nonce="not-the-one-sent"))
    assert reason_of(refused) is TokenReason.WRONG_NONCE
    # Expired: the provider's id_token lifetime (600 s) plus the stated skew (60 s).
    client.verify_id_token(token, expected_nonce=start.nonce)
    idp.clock.advance(600 + 60 + 1)
    check(token, TokenReason.EXPIRED)


def test_forged_claims_are_refused_with_their_reason(idp: LiveIdp) -> None:
    client = make_client(idp)
    cases = {
        TokenReason.WRONG_ISSUER: id_claims(idp, client, iss="https://evil.example"),
        TokenReason.WRONG_AUDIENCE: id_claims(idp, client, aud=["someone-else"]),
        TokenReason.WRONG_AUTHORIZED_PARTY: id_claims(idp, client, azp="someone-else"),
        TokenReason.ISSUED_IN_FUTURE: id_claims(idp, client, iat=int(idp.clock()) + 600),
        TokenReason.MISSING_CLAIM: id_claims(idp, client, sub=None),
        TokenReason.WRONG_AT_HASH: id_claims(idp, client, at_hash="AAAAAAAAAAAAAAAAAAAAAA"),
        TokenReason.AUTH_TOO_OLD: id_claims(idp, client, auth_time=int(idp.clock()) - 7200),
    }
    for reason, claims in cases.items():
        with pytest.raises(InvalidIdTokenError) as refused:
            client.verify_id_token(forge(idp, claims), expected_nonce="n-1", access_token="at", max_age=3600)
        assert reason_of(refused) is reason, reason
    # Several audiences need azp naming us.
    with pytest.raises(InvalidIdTokenError) as refused:
        client.verify_id_token(
            forge(idp, id_claims(idp, client, aud=[client.client_id, "x"], azp=None)), expected_nonce="n-1"
        )
    assert reason_of(refused) is TokenReason.WRONG_AUTHORIZED_PARTY
    # alg none, HS256 with the public key as secret, a logout token as id_token.
    no_key: Any = None
    unsigned = jwt.encode(id_claims(idp, client), no_key, algorithm="none", headers={"kid": idp_key(idp).kid})
    with pytest.raises(InvalidIdTokenError) as refused:
        client.verify_id_token(unsigned, expected_nonce="n-1")
    assert reason_of(refused) is TokenReason.WRONG_ALGORITHM
    with pytest.raises(InvalidIdTokenError) as refused:
        client.verify_id_token(forge(idp, id_claims(idp, client), typ="logout+jwt"), expected_nonce="n-1")
    assert reason_of(refused) is TokenReason.WRONG_TYPE
    # The right claims pass, which shows the cases above fail only for their one change.
    client.verify_id_token(forge(idp, id_claims(idp, client)), expected_nonce="n-1", max_age=3600)


def test_an_unknown_key_refreshes_the_jwks_once_per_interval(idp: LiveIdp) -> None:
    client = make_client(idp)
    client.verify_id_token(forge(idp, id_claims(idp, client)), expected_nonce="n-1")
    session: CountingSession = client.session  # type: ignore[assignment]
    assert session.gets["/jwks.json"] == 1
    stranger = generate_key("RS256")
    for _ in range(5):
        with pytest.raises(InvalidIdTokenError) as refused:
            client.verify_id_token(forge(idp, id_claims(idp, client), key=stranger), expected_nonce="n-1")
        assert reason_of(refused) is TokenReason.UNKNOWN_KEY
    assert session.gets["/jwks.json"] == 2  # one refresh for five forged kids


# --- the callback ---------------------------------------------------------------------------------------


def test_callbacks_that_do_not_belong_are_refused(idp: LiveIdp) -> None:
    client = make_client(idp)
    start = client.authorization_url()
    final = Browser(idp).authorize(start.url, citizen="zhang")
    with pytest.raises(CallbackError) as wrong_state:
        client.exchange_code(final, dataclasses.replace(start, state="another"))
    assert wrong_state.value.reason is CallbackReason.WRONG_STATE
    with pytest.raises(CallbackError) as mixed_up:
        client.exchange_code(final.replace("iss=http", "iss=https"), start)
    assert mixed_up.value.reason is CallbackReason.WRONG_ISSUER
    with pytest.raises(CallbackError) as repeated:
        client.exchange_code(final + "&state=" + start.state, start)
    assert repeated.value.reason is CallbackReason.WRONG_STATE
    newcomer = make_client(idp)  # consent is remembered per client: a new one asks again
    denied_start = newcomer.authorization_url()
    denied = Browser(idp).authorize(denied_start.url, citizen="zhang", consent="deny")
    with pytest.raises(AuthorizationDeniedError) as refused:
        newcomer.exchange_code(denied, denied_start)
    assert refused.value.oauth_error == "access_denied"


# --- back-channel logout --------------------------------------------------------------------------------


def test_back_channel_logout_tokens(idp: LiveIdp) -> None:
    with BackChannelReceiver() as receiver:
        client = make_client(idp, backchannel_logout_uri=receiver.url)
        browser = Browser(idp)
        tokens, _ = login(idp, client, browser)
        assert tokens.id_token and tokens.id_token_claims
        done = browser.http.get(client.logout_url(tokens.id_token, AFTER_LOGOUT), allow_redirects=False)
        assert done.status_code == 303 and done.headers["Location"].startswith(AFTER_LOGOUT)
        for _ in range(50):
            if receiver.tokens:
                break
            time.sleep(0.05)
        assert len(receiver.tokens) == 1
    logout = client.verify_logout_token(receiver.tokens[0])
    assert logout.sid == tokens.id_token_claims.sid and logout.subject == tokens.id_token_claims.subject
    with pytest.raises(InvalidLogoutTokenError) as replayed:
        client.validate_logout_token(receiver.tokens[0])
    assert reason_of(replayed) is TokenReason.REPLAYED
    with pytest.raises(InvalidLogoutTokenError) as id_token:
        client.verify_logout_token(tokens.id_token)
    assert reason_of(id_token) is TokenReason.WRONG_TYPE
    with pytest.raises(InvalidIdTokenError) as as_id_token:
        client.verify_id_token(receiver.tokens[0], expected_nonce=None)
    assert reason_of(as_id_token) is TokenReason.WRONG_TYPE

    now = int(idp.clock())
    base = {
        "iss": idp.base_url,
        "aud": client.client_id,
        "iat": now,
        "exp": now + 120,
        "sid": "s-1",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    cases = {
        TokenReason.NONCE_PRESENT: {**base, "nonce": "n"},
        TokenReason.MISSING_EVENT: {**base, "events": {"http://example.com/other": {}}},
        TokenReason.MISSING_CLAIM: {k: v for k, v in base.items() if k != "sid"},
        TokenReason.STALE: {**base, "iat": now - 1000, "exp": now + 120},
        TokenReason.EXPIRED: {**base, "exp": now - 120},
        TokenReason.WRONG_AUDIENCE: {**base, "aud": "another"},
    }
    for index, (reason, claims) in enumerate(cases.items()):
        token = forge(idp, {**claims, "jti": f"j-{index}"}, typ="logout+jwt")
        with pytest.raises(InvalidLogoutTokenError) as refused:
            client.verify_logout_token(token)
        assert reason_of(refused) is reason, reason
    with pytest.raises(InvalidLogoutTokenError) as untyped:
        client.verify_logout_token(forge(idp, {**base, "jti": "j-typ"}))
    assert reason_of(untyped) is TokenReason.WRONG_TYPE
    by_subject = {k: v for k, v in base.items() if k != "sid"} | {"sub": "x", "jti": "j-sub"}
    only_sub = client.verify_logout_token(forge(idp, by_subject, typ="logout+jwt"))
    assert only_sub.subject == "x" and only_sub.sid is None


# --- key rotation ---------------------------------------------------------------------------------------


def key_actor(idp: LiveIdp, reason: str) -> KeyActor:
    svc = idp.services
    return KeyActor(svc.settings, svc.keks, "cli:test", reason)


def test_a_key_rotation_refuses_nothing(idp: LiveIdp) -> None:
    """New keys pre-published, then active: every id_token verifies, and never through an unknown kid."""
    client = make_client(idp)
    session: CountingSession = client.session  # type: ignore[assignment]
    svc = idp.services
    sessions: list[PortalTokens] = []
    failures: list[str] = []

    def round_(label: str) -> None:
        try:
            tokens, _ = login(idp, client)
            sessions.append(tokens)
        except Exception as exc:
            failures.append(f"{label}: login {exc!r}")
        for index, tokens in enumerate(sessions[-3:]):
            try:
                assert tokens.refresh_token
                refreshed = client.refresh(tokens.refresh_token, previous=tokens.id_token_claims)
                sessions[len(sessions) - len(sessions[-3:]) + index] = refreshed
            except Exception as exc:
                failures.append(f"{label}: refresh {exc!r}")

    round_("start")
    old_kid = idp_key(idp).kid
    with svc.database.session() as db:
        new = {
            name: rotate(db, key_actor(idp, "routine"), name, now=idp.clock()).kid
            for name in ("oidc-rs256", "oidc-es256")
        }
    svc.keyring.invalidate()
    round_("pending")
    # Our cached JWKS ages out during the pre-publication period; its next fetch holds the pending keys.
    idp.clock.advance(MAX_AGE + 5)
    round_("published")
    fetches = session.gets["/jwks.json"]
    with svc.database.session() as db:
        changes = tick(db, key_actor(idp, "tick"), now=idp.clock())
    svc.keyring.invalidate()
    assert {c.kid for c in changes if c.action == "activate"} == set(new.values())
    round_("active")
    assert idp_key(idp).kid == new["oidc-rs256"] != old_kid
    assert (
        sessions[-1].id_token and jwt.get_unverified_header(sessions[-1].id_token)["kid"] == new["oidc-rs256"]
    )
    assert session.gets["/jwks.json"] == fetches  # the new key was known before it signed
    idp.clock.advance(MAX_AGE)
    round_("later")
    assert failures == []
    assert parse_max_age(f"public, max-age={MAX_AGE}", None, default=0) == MAX_AGE


def test_a_key_activated_without_pre_publication_is_fetched_on_its_unknown_kid(idp: LiveIdp) -> None:
    client = make_client(idp)
    login(idp, client)
    svc = idp.services
    with svc.database.session() as db:
        kid = rotate(db, key_actor(idp, "drill"), "oidc-rs256", now=idp.clock()).kid
        activate(db, key_actor(idp, "drill"), kid, now=idp.clock(), force=True)
    svc.keyring.invalidate()
    tokens, _ = login(idp, client)  # the cached JWKS lacks the kid: one refresh finds it
    assert tokens.id_token and jwt.get_unverified_header(tokens.id_token)["kid"] == kid


def test_the_core_helpers_load_no_flask() -> None:
    import subprocess
    import sys

    code = "import sys, sdk.portal, sdk.realname, sdk.gate; assert 'flask' not in sys.modules, 'flask loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def fapi_portal(idp: LiveIdp, **options: Any) -> PortalClient:
    key = generate_key("ES256")
    client_id, _ = idp.register_client(
        redirect_uris=(REDIRECT,),
        scope="openid profile realname",
        token_endpoint_auth_method="private_key_jwt",
        jwks=KeySet((key,)).to_jwks(),
        fapi2_security_profile=True,
    )
    return PortalClient(idp.base_url, client_id, key, REDIRECT, clock=idp.clock, **options)


def test_a_fapi_portal_pushes_its_request_and_gets_dpop_bound_tokens(idp: LiveIdp) -> None:
    """The FAPI 2.0 profile through sdk.portal alone (review 15, finding 6): PAR with private_key_jwt and a
    DPoP proof, the front channel carrying only client_id and request_uri, a DPoP-bound token."""
    client = fapi_portal(
        idp, dpop_key=DpopKey.generate(), pushed_authorization_requests=True, require_dpop=True
    )
    start = client.authorization_url("openid profile realname")
    front = parse_qs(urlsplit(start.url).query)
    assert set(front) == {"client_id", "request_uri"}
    assert front["request_uri"][0].startswith("urn:ietf:params:oauth:request_uri:")
    final = Browser(idp).authorize(start.url, citizen="zhang", acr=ACR_HIGH)
    tokens = client.exchange_code(final, start)
    assert tokens.token_type == "DPoP" and tokens.id_token_claims is not None
    assert jwt.get_unverified_header(str(tokens.id_token))["alg"] == "ES256"
    assert client.userinfo(tokens.access_token, token_type=tokens.token_type)["sub"]
    # Without PAR the same client is refused at the authorization endpoint, as the profile requires.
    plain = fapi_portal(idp, dpop_key=DpopKey.generate())
    refused = requests.get(plain.authorization_url().url, allow_redirects=False, timeout=10)
    assert refused.status_code in (302, 303, 400)


def test_a_refused_push_raises_with_the_providers_error(idp: LiveIdp) -> None:
    registered = fapi_portal(idp, pushed_authorization_requests=True)
    client = PortalClient(
        idp.base_url,
        registered.client_id,
        registered._credential,
        "https://elsewhere.example/cb",  # not registered
        clock=idp.clock,
        pushed_authorization_requests=True,
        dpop_key=DpopKey.generate(),
    )
    with pytest.raises(PushedRequestError) as refused:
        client.authorization_url("openid")
    assert refused.value.oauth_error == "invalid_request" and refused.value.http_status == 400


def test_a_client_that_requires_dpop_refuses_a_bearer_token(idp: LiveIdp) -> None:
    """A downgrade to Bearer (a provider or a man in the middle that drops the binding) is refused."""
    with pytest.raises(ValueError):
        make_client(idp).__class__(idp.base_url, "oc_x", "secret", REDIRECT, require_dpop=True)
    client = make_client(idp)
    bound = PortalClient(
        idp.base_url,
        client.client_id,
        client._credential,
        REDIRECT,
        clock=idp.clock,
        dpop_key=DpopKey.generate(),
        require_dpop=True,
    )
    with pytest.raises(TokenRequestError) as refused:
        bound._tokens(
            {"access_token": "t", "token_type": "Bearer"},
            expected_nonce=None,
            acr_values=(),
            max_age=None,
            id_token_required=False,
        )
    assert "token_type" in str(refused.value)
    accepted = bound._tokens(
        {"access_token": "t", "token_type": "DPoP"},
        expected_nonce=None,
        acr_values=(),
        max_age=None,
        id_token_required=False,
    )
    assert accepted.token_type == "DPoP"
