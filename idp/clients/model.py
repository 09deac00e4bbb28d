"""The client register and the Authlib client interface (RFC 6749 §2, OIDC Registration §2).

Secrets are stored only as hashes (idp.bearer_secrets).
Redirect URIs match exactly, character for character (RFC 9700 §4.1.3): no prefix or pattern matching.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.util import scope_to_list
from sqlalchemy import JSON, Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.bearer_secrets import matches_hash
from idp.db import Base


class Client(Base, ClientMixin):  # type: ignore[misc]
    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="portal")  # portal | operator | venue | device
    client_secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32), default="client_secret_basic")
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(String(1000), default="openid")
    subject_type: Mapped[str] = mapped_column(String(16), default="pairwise")
    sector_identifier: Mapped[str | None] = mapped_column(String(255), nullable=True)
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(8), default="RS256")
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    # Only clients registered for it learn the full ID number; everyone else sees it masked (DESIGN §3).
    id_number_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # FAPI 2.0 Security Profile for this client (idp.oauth.fapi): PAR, PKCE S256, private_key_jwt only,
    # DPoP-bound tokens, a short code lifetime. The three flags below may also be set on their own.
    fapi2_security_profile: Mapped[bool] = mapped_column(Boolean, default=False)
    require_pushed_authorization_requests: Mapped[bool] = mapped_column(Boolean, default=False)  # RFC 9126 §6
    require_signed_request_object: Mapped[bool] = mapped_column(Boolean, default=False)  # RFC 9101 §10.5
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(Boolean, default=False)  # RFC 9449 §5.2
    created_at: Mapped[datetime]
    # Kind "federation" (automatic registration, idp.federation.registration): when the trust chain it was
    # registered by expires and must be resolved again. None for every client staff registered.
    federation_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)

    # Authlib's ClientMixin ---------------------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # With several registered URIs the request must name one (OIDC Core §3.1.2.1 requires it anyway).
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(scope_to_list(self.scope))
        return " ".join(s for s in scope_to_list(scope) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.client_secret_hash or not isinstance(client_secret, str):
            return False
        return matches_hash(client_secret, self.client_secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # A FAPI 2.0 client is registered for private_key_jwt only; checked again so that no row edited
        # by hand lets a shared secret in (FAPI 2.0 §5.3.2.1).
        if self.fapi2_security_profile and method != "private_key_jwt":
            return False
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    # ---------------------------------------------------------------------------------------------------

    @property
    def sector(self) -> str:
        """The pairwise sector: the registered sector identifier, else the host of the redirect URIs."""
        if self.sector_identifier:
            return self.sector_identifier
        hosts = sorted({urlsplit(uri).hostname or "" for uri in self.redirect_uris})
        return hosts[0] if hosts else self.client_id

    @property
    def allowed_scopes(self) -> set[str]:
        return set(scope_to_list(self.scope))

    @property
    def requires_par(self) -> bool:
        """This client's authorization requests must come through the PAR endpoint (RFC 9126 §6); the
        server-wide setting (``ONECARD_REQUIRE_PAR``) is checked beside it, in idp.oauth.par."""
        return self.fapi2_security_profile or self.require_pushed_authorization_requests

    @property
    def requires_dpop(self) -> bool:
        """Every access and refresh token of this client is DPoP-bound (RFC 9449 §5.2, FAPI 2.0 §5.3.2.2)."""
        return self.fapi2_security_profile or self.dpop_bound_access_tokens
