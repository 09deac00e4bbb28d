"""The FAPI 2.0 Security Profile for the clients registered with ``fapi2_security_profile`` (issue 15).

What a FAPI client gets, and where it is enforced:
- authorization requests only through PAR (``Client.requires_par``; idp.oauth.par), with ``redirect_uri``
  (FAPI 2.0 §5.3.2.2) and PKCE S256 (every client already; idp.oauth.server.S256CodeChallenge);
- ``private_key_jwt`` only (registration refuses anything else, and ``Client.check_endpoint_auth_method``
  refuses ``client_secret_*`` at every endpoint), with assertions signed PS256 or ES256 whose ``aud`` is
  the issuer itself, as a string (FAPI 2.0 §5.3.2.1, §5.4.1);
- authorization codes that live 60 seconds at most (§5.3.2.1);
- DPoP-bound tokens (``Client.requires_dpop``; idp.oauth.dpop_grants);
- ``iss`` in every authorization response (RFC 9207, for every client: idp.oauth.server.with_issuer).
Pure rules: no Flask, no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError

from idp.clients.model import Client

# FAPI 2.0 §5.4.1: PS256, ES256 or EdDSA; OneCard verifies the first two.
FAPI_SIGNING_ALGS = ["PS256", "ES256"]
MAX_FAPI_CODE_TTL = 60


def signing_algorithms(client: Client, supported: list[str]) -> list[str]:
    """The JWS algorithms this client's assertions and request objects may use."""
    if not client.fapi2_security_profile:
        return supported
    return [alg for alg in supported if alg in FAPI_SIGNING_ALGS]


def authorization_code_ttl(client: Client, configured: int) -> int:
    return min(configured, MAX_FAPI_CODE_TTL) if client.fapi2_security_profile else configured


def check_client_assertion(
    client: Client, header: Mapping[str, Any], claims: Mapping[str, Any], issuer: str
) -> None:
    """The FAPI-only rules for a ``private_key_jwt`` assertion, before Authlib checks the rest."""
    if not client.fapi2_security_profile:
        return
    if header.get("alg") not in FAPI_SIGNING_ALGS:
        raise InvalidClientError(description="A FAPI 2.0 client assertion must be signed PS256 or ES256.")
    if claims.get("aud") != issuer:
        raise InvalidClientError(description="A FAPI 2.0 client assertion's aud must be the issuer alone.")


def check_pushed_request(client: Client, params: Mapping[str, str]) -> None:
    if client.fapi2_security_profile and not params.get("redirect_uri"):
        raise InvalidRequestError("A FAPI 2.0 client must send redirect_uri in its pushed request.")
