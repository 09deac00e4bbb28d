"""DPoP, OAuth 2.0 Demonstrating Proof of Possession (RFC 9449), for clients and for the provider.

The wire pieces both sides share: the proof's ``typ`` (§4.2), the access-token hash ``ath`` (§4.2), the JWK
thumbprint that becomes ``cnf.jkt`` (RFC 7638, RFC 9449 §6), the ``htu`` comparison form (§4.3) and the
algorithms the provider accepts. The client side: ``DpopKey`` (the key a portal holds, never sent anywhere
but as its public JWK) makes proofs; ``DpopSigner`` adds them to requests, keeps the nonce each server last
gave (§8, §9) and retries once when a server answers ``use_dpop_nonce``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from sdk.clock import Clock, system_clock
from sdk.keys import b64url, public_jwk_members

PROOF_TYPE: Final = "dpop+jwt"
SCHEME: Final = "DPoP"  # the Authorization scheme and the token_type (§7.1, §5)
PROOF_HEADER: Final = "DPoP"
NONCE_HEADER: Final = "DPoP-Nonce"
USE_DPOP_NONCE: Final = "use_dpop_nonce"
INVALID_DPOP_PROOF: Final = "invalid_dpop_proof"

DpopAlgorithm = Literal["ES256", "EdDSA", "PS256", "RS256"]
# Asymmetric only (§4.2: no "none", no MAC): the provider's dpop_signing_alg_values_supported.
DPOP_ALGORITHMS: Final[tuple[DpopAlgorithm, ...]] = ("ES256", "EdDSA", "PS256", "RS256")
MIN_RSA_BITS: Final = 2048
MAX_RSA_BITS: Final = 8192  # a verifier's bound on the work one proof may cost it
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url of the SHA-256 of the access token's ASCII (§4.2)."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def jwk_thumbprint(public_key: PublicKeyTypes) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public key, base64url: ``cnf.jkt`` (§6.1). Built from the key's
    required members, so two JWKs of one key (other member order, extra members) give one thumbprint."""
    canonical = json.dumps(public_jwk_members(public_key), separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def normalize_htu(url: str) -> str:
    """The form ``htu`` is compared in (§4.3 item 9, RFC 3986 §6.2.2–6.2.3): scheme and host in lower case,
    no default port, an empty path as ``/``, no query, no fragment. ``ValueError`` for a non-http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
        raise ValueError("not an absolute http(s) URL")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # ValueError for a port that is not a number
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def algorithms_for(public_key: PublicKeyTypes) -> tuple[DpopAlgorithm, ...]:
    """The DPoP algorithms a public key may sign with (none for keys too weak or of other kinds)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return ("PS256", "RS256") if MIN_RSA_BITS <= public_key.key_size <= MAX_RSA_BITS else ()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ("ES256",) if isinstance(public_key.curve, ec.SECP256R1) else ()
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return ("EdDSA",)
    return ()


@dataclass(frozen=True)
class DpopKey:
    """A DPoP key pair held by a client; its public JWK travels in every proof's header."""

    private_key: PrivateKeyTypes
    alg: DpopAlgorithm

    def __post_init__(self) -> None:
        if self.alg not in algorithms_for(self.public_key):
            raise ValueError(f"{self.alg} does not fit this key")

    def __repr__(self) -> str:
        return f"DpopKey({self.alg}, jkt={self.thumbprint})"  # never the private part

    @classmethod
    def generate(cls, alg: DpopAlgorithm = "ES256") -> DpopKey:
        private_key: PrivateKeyTypes
        if alg == "ES256":
            private_key = ec.generate_private_key(ec.SECP256R1())
        elif alg == "EdDSA":
            private_key = ed25519.Ed25519PrivateKey.generate()
        elif alg in ("PS256", "RS256"):
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
        else:
            raise ValueError(f"unsupported DPoP algorithm {alg!r}")
        return cls(private_key, alg)

    @property
    def public_key(self) -> PublicKeyTypes:
        return self.private_key.public_key()

    @property
    def public_jwk(self) -> dict[str, str]:
        return public_jwk_members(self.public_key)

    @property
    def thumbprint(self) -> str:
        return jwk_thumbprint(self.public_key)

    def create_proof(
        self, method: str, url: str, *, now: float, nonce: str | None = None, access_token: str | None = None
    ) -> str:
        """A proof for one request (§4.2): ``htu`` without query and fragment, a fresh ``jti``; ``ath`` when
        presenting ``access_token`` to a resource, ``nonce`` when the server gave one."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(18),
            "htm": method.upper(),
            "htu": normalize_htu(url),
            "iat": int(now),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        headers = {"typ": PROOF_TYPE, "jwk": self.public_jwk}
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers=headers)  # type: ignore[arg-type]


def _origin(url: str) -> str:
    parts = urlsplit(normalize_htu(url))
    return f"{parts.scheme}://{parts.netloc}"


def asks_for_nonce(response: requests.Response) -> bool:
    """The server refused the proof for want of its nonce (§8: 400 JSON at the token endpoint; §9: 401 with
    ``WWW-Authenticate: DPoP error="use_dpop_nonce"`` at a resource) and sent one."""
    if NONCE_HEADER not in response.headers or response.status_code not in (400, 401):
        return False
    if f'error="{USE_DPOP_NONCE}"' in response.headers.get("WWW-Authenticate", ""):
        return True
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") == USE_DPOP_NONCE


@dataclass
class DpopSigner:
    """Proofs with one key for one client, and the latest nonce of each server origin it talks to."""

    key: DpopKey
    clock: Clock = system_clock
    _nonces: dict[str, str] = field(default_factory=dict, repr=False)

    def proof_header(self, method: str, url: str, *, access_token: str | None = None) -> dict[str, str]:
        nonce = self._nonces.get(_origin(url))
        proof = self.key.create_proof(method, url, now=self.clock(), nonce=nonce, access_token=access_token)
        return {PROOF_HEADER: proof}

    def remember_nonce(self, url: str, headers: Mapping[str, str]) -> None:
        nonce = headers.get(NONCE_HEADER)
        if nonce:
            self._nonces[_origin(url)] = nonce

    def send(
        self,
        method: str,
        url: str,
        send: Callable[[dict[str, str]], requests.Response],
        *,
        access_token: str | None = None,
    ) -> requests.Response:
        """``send(headers)`` with a fresh proof in ``headers``; once more with a new proof if the server
        asks for its nonce. Every answer's ``DPoP-Nonce`` is kept for the next request."""
        response = send(self.proof_header(method, url, access_token=access_token))
        retry = asks_for_nonce(response)
        self.remember_nonce(url, response.headers)
        if retry:
            response = send(self.proof_header(method, url, access_token=access_token))
            self.remember_nonce(url, response.headers)
        return response
