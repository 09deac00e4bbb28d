"""Provider metadata (OIDC Discovery 1.0 §3, RFC 8414), built from the constants the endpoints enforce."""

from __future__ import annotations

from typing import Any

from idp.clients.service import ID_TOKEN_ALGS, SUBJECT_TYPES
from idp.keys import QR_KEYS_PATH
from idp.oauth.authorize import PROMPT_VALUES, RESPONSE_MODES
from idp.oauth.request_object import REQUEST_OBJECT_SIGNING_ALGS
from idp.oauth.server import (
    CLIENT_ASSERTION_SIGNING_ALGS,
    CODE_CHALLENGE_METHODS,
    TOKEN_ENDPOINT_AUTH_METHODS,
    AuthorizationCodeGrant,
)
from idp.scopes import ACR_LEVELS, ALL_SCOPES, MASKED_ID_CLAIM, SCOPE_CLAIMS
from sdk.dpop import DPOP_ALGORITHMS
from sdk.oidc import DOCUMENT_SOCIAL_SECURITY_CARD, EVIDENCE_DOCUMENT, TRUST_FRAMEWORK, VERIFIED_CLAIM_NAMES

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


def provider_metadata(issuer: str, *, require_par: bool = False) -> dict[str, Any]:
    """``require_par``: the server-wide ``ONECARD_REQUIRE_PAR``."""
    claims = [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "sid",
        "azp",
        "at_hash",
        MASKED_ID_CLAIM,
    ]
    claims += [name for names in SCOPE_CLAIMS.values() for name in names]
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks.json",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        # Per client too (idp.oauth.par): FAPI 2.0 clients and those registered with the flag.
        "require_pushed_authorization_requests": require_par,
        "end_session_endpoint": f"{issuer}/logout",
        "scopes_supported": list(ALL_SCOPES),
        # OneCard's own: where gates fetch the QR key set (docs/formats/essc1.md §5).
        "onecard_qr_keys_uri": f"{issuer}{QR_KEYS_PATH}",
        "response_types_supported": sorted(AuthorizationCodeGrant.RESPONSE_TYPES),
        "response_modes_supported": list(RESPONSE_MODES),
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": list(SUBJECT_TYPES),
        "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGS),
        "token_endpoint_auth_methods_supported": TOKEN_ENDPOINT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_SIGNING_ALGS,
        "introspection_endpoint_auth_methods_supported": TOKEN_ENDPOINT_AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_SIGNING_ALGS,
        "revocation_endpoint_auth_methods_supported": TOKEN_ENDPOINT_AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_SIGNING_ALGS,
        "code_challenge_methods_supported": CODE_CHALLENGE_METHODS,
        # What a DPoP proof may be signed with (RFC 9449 §5.1; idp.oauth.dpop refuses every other alg).
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
        "acr_values_supported": list(ACR_LEVELS),
        "claims_supported": sorted(set(claims)),
        "claims_parameter_supported": True,
        # Signed request objects by value, at /authorize or in a pushed request (idp.oauth.request_object);
        # request_uri only as the PAR endpoint hands it out: other servers' URIs are never fetched.
        "request_parameter_supported": True,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "require_signed_request_object": False,
        "request_object_signing_alg_values_supported": REQUEST_OBJECT_SIGNING_ALGS,
        "prompt_values_supported": list(PROMPT_VALUES),
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        "claim_types_supported": ["normal"],
        "ui_locales_supported": ["zh-CN", "en"],
        "verified_claims_supported": True,
        "trust_frameworks_supported": [TRUST_FRAMEWORK],
        "evidence_supported": [EVIDENCE_DOCUMENT],
        "documents_supported": [DOCUMENT_SOCIAL_SECURITY_CARD],
        "claims_in_verified_claims_supported": list(VERIFIED_CLAIM_NAMES),
    }
