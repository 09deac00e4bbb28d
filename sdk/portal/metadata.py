"""Provider metadata: the parts of the discovery document ``sdk.portal`` uses (OIDC Discovery 1.0 §3), read
from the document strictly. Pure: fetching and caching it is ``sdk.portal.client``'s job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdk.portal._util import frozen


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of the discovery document this client uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    raw: Mapping[str, Any]
    pushed_authorization_request_endpoint: str | None = None


def parse_provider_metadata(document: Any, *, expected_issuer: str) -> ProviderMetadata:
    """The discovery document of ``expected_issuer``; ``ValueError`` if it is unusable."""
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    if document.get("issuer") != expected_issuer:
        # OIDC Discovery §4.3: a document naming another issuer must not be used.
        raise ValueError("the document names another issuer")

    def url(name: str, required: bool = True) -> str | None:
        value = document.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise ValueError(f"{name} is missing or not a URL")
        return value

    return ProviderMetadata(
        issuer=expected_issuer,
        authorization_endpoint=str(url("authorization_endpoint")),
        token_endpoint=str(url("token_endpoint")),
        jwks_uri=str(url("jwks_uri")),
        userinfo_endpoint=url("userinfo_endpoint", False),
        end_session_endpoint=url("end_session_endpoint", False),
        raw=frozen(document),
        pushed_authorization_request_endpoint=url("pushed_authorization_request_endpoint", False),
    )
