"""DPoP at the token endpoint (RFC 9449 §5): every grant checks the request's proof before it consumes
anything, and the tokens it issues are bound to the proof's key.

- A valid proof: the access token carries ``cnf.jkt`` and ``token_type`` is ``DPoP``.
- No proof: a Bearer token, unless the client is registered for DPoP-bound tokens (``Client.requires_dpop``,
  FAPI 2.0 clients included), which is refused with ``invalid_dpop_proof`` (§5.2).
- A code requested with ``dpop_jkt`` (§10) is redeemed only with a proof of that key.
- A grant whose first tokens were DPoP-bound stays so (``Grant.dpop_jkt`` records the key): a refresh without
  a proof is refused with ``invalid_dpop_proof``, never downgraded to Bearer. OneCard's clients are all
  confidential, so the proof may be of another key (§5: client authentication constrains the refresh token);
  the new access token is bound to the key proved.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import InvalidGrantError, grants

from idp.clients.model import Client
from idp.oauth.dpop import DpopFailure, InvalidDpopProofError
from idp.oauth.dpop_request import verify_request_proof


class DpopBoundGrant(grants.BaseGrant):  # type: ignore[misc]
    """Mixed into every token grant. ``dpop_jkt`` is the proof's key once the request is checked."""

    dpop_jkt: str | None = None

    def __init__(self, request: Any, server: Any) -> None:
        super().__init__(request, server)
        # After the client, the code or refresh token and PKCE are checked, before anything is consumed.
        self.register_hook("before_create_token_response", DpopBoundGrant.check_proof)

    def check_proof(self) -> None:
        client: Client = self.request.client
        proof = verify_request_proof()
        if proof is None and (client.requires_dpop or self.issued_dpop_bound()):
            raise InvalidDpopProofError(DpopFailure.MISSING)
        bound = self.bound_jkt()
        if bound is not None and (proof is None or proof.jkt != bound):
            # The code is bound to a key this request does not prove (§10).
            raise InvalidGrantError("The grant is bound to another DPoP key.")
        self.dpop_jkt = proof.jkt if proof is not None else None

    def bound_jkt(self) -> str | None:
        """The key the presented credential is bound to, if any (a code requested with ``dpop_jkt``)."""
        return None

    def issued_dpop_bound(self) -> bool:
        """The presented credential's grant was issued DPoP-bound, so what it gives must be too."""
        return False

    def generate_token(
        self,
        user: Any = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        return self.server.generate_token(  # type: ignore[no-any-return]
            client=self.request.client,
            grant_type=grant_type or self.GRANT_TYPE,
            user=user,
            scope=scope,
            expires_in=expires_in,
            include_refresh_token=include_refresh_token,
            dpop_jkt=self.dpop_jkt,
        )
