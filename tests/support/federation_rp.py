"""A small relying party of cross-region login (docs/notes protocol, steps 1, 2 and 4) for testing the
provider side (automatic registration, idp.federation.registration) on its own: region A's entity
configuration carries the ``openid_relying_party`` metadata the protocol names, with an ES256 key the test
holds, and the test drives region B's real endpoints through B's test client — a signed request object at
``/authorize``, B's login and consent pages (the test login method), and ``private_key_jwt`` at ``/token``.

It stands in for region A's own relying-party code, so the provider side is tested whatever that code does.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import jwt
import pytest
from werkzeug.test import TestResponse

import idp.federation.views
from idp.citizens.service import create_citizen
from idp.federation.config import FederationConfig
from idp.scopes import ACR_HIGH
from sdk.keys import Key, generate_key
from tests.support.federation import Region

REQUEST_OBJECT_TYPE = "oauth-authz-req+jwt"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Valid GB 11643 number (check digit computed), a citizen of region B.
CITIZEN = ("王五", "11010519491231002X")


def relying_party_metadata(entity_id: str, key: Key) -> dict[str, Any]:
    """The protocol's ``openid_relying_party`` metadata of region ``entity_id``, with ``key``'s public JWK."""
    return {
        "client_registration_types": ["automatic"],
        "client_name": "Region A OneCard",
        "redirect_uris": [entity_id + "/federation/login/callback"],
        "jwks": {"keys": [key.public_jwk()]},
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": "ES256",
        "request_object_signing_alg": "ES256",
        "id_token_signed_response_alg": "ES256",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "scope": "openid profile realname",
        "subject_type": "pairwise",
        "backchannel_logout_uri": entity_id + "/federation/backchannel-logout",
        "backchannel_logout_session_required": True,
        "post_logout_redirect_uris": [entity_id + "/federation/logout/done"],
    }


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class AuthorizationAttempt:
    """One authorization request's secrets, kept by the relying party for the callback."""

    params: dict[str, str]
    verifier: str

    @property
    def state(self) -> str:
        return self.params["state"]

    @property
    def nonce(self) -> str:
        return self.params["nonce"]

    @property
    def redirect_uri(self) -> str:
        return self.params["redirect_uri"]


@dataclass
class TestRelyingParty:
    """Region ``rp`` as a relying party of region ``op``; ``metadata`` is what ``rp``'s entity configuration
    publishes as ``openid_relying_party`` (None: nothing), changed by the test as it likes."""

    __test__ = False  # not a test class, whatever pytest makes of its name

    rp: Region
    op: Region
    key: Key = field(default_factory=lambda: generate_key("ES256"))
    metadata: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.metadata is None:
            self.metadata = relying_party_metadata(self.rp.entity_id, self.key)

    @property
    def client_id(self) -> str:
        return self.rp.entity_id

    @property
    def redirect_uri(self) -> str:
        return self.rp.entity_id + "/federation/login/callback"

    def publish(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make ``rp``'s entity configuration carry ``self.metadata`` (read at each request, so a test may
        change it later); every other deployment publishes none."""

        def metadata_of(config: FederationConfig, *, now: float, **_: Any) -> dict[str, Any] | None:
            return self.metadata if config.entity_id == self.rp.entity_id else None

        monkeypatch.setattr(idp.federation.views, "relying_party_metadata", metadata_of)

    # Step 2: the authorization request -------------------------------------------------------------------

    def attempt(self, **overrides: str) -> AuthorizationAttempt:
        verifier = secrets.token_urlsafe(48)
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid profile realname",
            "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
            "acr_values": ACR_HIGH,
            "ui_locales": "zh-CN",
            **overrides,
        }
        return AuthorizationAttempt(params, verifier)

    def request_object(
        self,
        params: Mapping[str, str],
        *,
        key: Key | None = None,
        kid: str | None = None,
        change: Callable[[dict[str, Any]], None] | None = None,
    ) -> str:
        """RFC 9101 request object for ``params``, signed by ``key`` (the published one by default) under
        ``kid`` (the signing key's by default), its claims changed by ``change``."""
        signer = key or self.key
        now = int(self.op.services.now())
        claims: dict[str, Any] = {
            "iss": self.client_id,
            "aud": self.op.entity_id,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(16),
            **params,
        }
        if change is not None:
            change(claims)
        headers = {"typ": REQUEST_OBJECT_TYPE, "kid": kid or signer.kid}
        return jwt.encode(claims, signer.private_key, algorithm="ES256", headers=headers)  # type: ignore[arg-type]

    def authorization_url(self, attempt: AuthorizationAttempt, **request_object: Any) -> str:
        """The URL A sends the browser to: client_id, response_type, scope and the request object."""
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "scope": attempt.params["scope"],
            "request": self.request_object(attempt.params, **request_object),
        }
        return "/authorize?" + urlencode(query)

    # Step 4: the token request ---------------------------------------------------------------------------

    def client_assertion(
        self, *, key: Key | None = None, audience: str | None = None, issued_at: int | None = None
    ) -> dict[str, str]:
        """A client assertion by ``key`` (A's published one by default), issued at ``issued_at`` (B's clock
        now by default) and valid 60 seconds."""
        signer = key or self.key
        now = int(self.op.services.now()) if issued_at is None else issued_at
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience or self.op.entity_id + "/token",
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        }
        assertion = jwt.encode(claims, signer.private_key, algorithm="ES256", headers={"kid": signer.kid})  # type: ignore[arg-type]
        return {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}

    def exchange(self, code: str, attempt: AuthorizationAttempt, **auth: str) -> TestResponse:
        """POST the code to B's token endpoint, authenticated by a client assertion unless ``auth`` says
        otherwise."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": attempt.redirect_uri,
            "code_verifier": attempt.verifier,
            **(auth or self.client_assertion()),
        }
        return self.op.client.post("/token", data=form)

    def verify_id_token(self, token: str, attempt: AuthorizationAttempt) -> dict[str, Any]:
        """B's id_token, checked as A would: B's keys, issuer, audience, nonce."""
        jwks = self.op.client.get("/jwks.json").get_json()
        header = jwt.get_unverified_header(token)
        (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
        claims: dict[str, Any] = jwt.decode(
            token,
            jwt.PyJWK(jwk).key,
            algorithms=[header["alg"]],
            audience=self.client_id,
            issuer=self.op.entity_id,
            options={"verify_iat": False, "verify_exp": False},  # the federation's clock is fixed
        )
        assert claims["nonce"] == attempt.nonce
        assert claims["exp"] > self.op.services.now()
        return claims


def create_home_citizen(region: Region) -> str:
    """A citizen of ``region``'s register; returns the citizen id."""
    svc = region.services
    with svc.database.session() as session:
        return create_citizen(session, svc.pii_cipher(), *CITIZEN, now=svc.now()).id


def follow_login(region: Region, url: str, *, citizen_id: str | None, consent: str = "allow") -> TestResponse:
    """Follow ``url`` through ``region``'s pages as a browser would, logging in with the test login method
    as ``citizen_id`` and answering the consent page; returns the first answer that is not a redirect
    within ``region`` (or is a page it cannot answer: an error page, the login page without a citizen)."""
    client = region.client
    response = client.get(url)
    for _ in range(12):
        if response.status_code in (301, 302, 303):
            location = urljoin(region.entity_id + "/", response.headers["Location"])
            if not location.startswith(region.entity_id + "/"):
                return response
            response = client.get(location.removeprefix(region.entity_id))
            continue
        if response.status_code != 200:
            return response
        path = urlsplit(response.request.url).path
        page = response.get_data(as_text=True)
        if path.startswith("/login/"):
            match = re.search(r'href="(/test-login/[^"]+)"', page)
            if citizen_id is None or match is None:
                return response
            response = client.get(match.group(1), query_string={"citizen": citizen_id, "acr": ACR_HIGH})
        elif path.startswith("/consent/"):
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
            assert csrf, "the consent page has no form"
            response = client.post(path, data={"csrf": csrf.group(1), "decision": consent})
        else:
            return response
    raise AssertionError("too many redirects")
