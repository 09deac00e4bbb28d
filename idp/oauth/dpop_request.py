"""The DPoP proof of the current Flask request, checked by ``idp.oauth.dpop`` (RFC 9449 §4.3).

The URL a proof must name is the issuer plus the request's path: the public name of the provider, the same
at every node behind the load balancer, never whatever the ``Host`` header claims.
"""

from __future__ import annotations

import logging

from flask import request
from werkzeug.wrappers import Response

from idp.oauth.dpop import DpopFailure, InvalidDpopProofError, VerifiedDpopProof, verify_dpop_proof
from idp.oauth.dpop_nonce import DpopNonces
from idp.services import services
from sdk.dpop import NONCE_HEADER, PROOF_HEADER, SCHEME

log = logging.getLogger(__name__)


def request_url() -> str:
    """What ``htu`` must be for this request (§4.3 item 9: without query and fragment)."""
    return services().settings.issuer + request.path


def dpop_nonces() -> DpopNonces | None:
    """The nonce source, when proofs must carry a nonce (``ONECARD_DPOP_REQUIRE_NONCE``)."""
    svc = services()
    if not svc.settings.dpop_require_nonce:
        return None
    return DpopNonces(svc.store, lifetime=svc.settings.dpop_nonce_lifetime)


def current_nonce() -> str | None:
    """The nonce to announce in a ``DPoP-Nonce`` header, if nonces are in use."""
    nonces = dpop_nonces()
    return None if nonces is None else nonces.current(now=services().now())


def presented_proof() -> str | None:
    """The request's one ``DPoP`` header (§4.3 item 1: not two), or None."""
    values = request.headers.getlist(PROOF_HEADER)
    if not values:
        return None
    if len(values) > 1 or "," in values[0]:
        raise InvalidDpopProofError(DpopFailure.MULTIPLE)
    return values[0].strip()


def uses_dpop_scheme() -> bool:
    """The request presents its access token as ``Authorization: DPoP …`` (§7.1)."""
    scheme = request.headers.get("Authorization", "").split(" ", 1)[0]
    return scheme.lower() == SCHEME.lower()


def verify_request_proof(
    *, access_token: str | None = None, expected_jkt: str | None = None
) -> VerifiedDpopProof | None:
    """The request's proof, verified for this method and URL; None when it has none."""
    proof = presented_proof()
    if proof is None:
        return None
    svc = services()
    try:
        return verify_dpop_proof(
            proof,
            expected_method=request.method,
            expected_url=request_url(),
            now=svc.now(),
            store=svc.store,
            nonces=dpop_nonces(),
            expected_access_token=access_token,
            expected_jkt=expected_jkt,
        )
    except InvalidDpopProofError as refused:
        log.info("DPoP proof refused at %s: %s", request.path, refused.reason)  # the caller learns no reason
        raise


def announce_dpop_nonce(response: Response) -> None:
    """A DPoP request's answer names the current nonce (§8.2), so the client's next proof carries it
    without being refused first; a ``use_dpop_nonce`` refusal names it already."""
    if PROOF_HEADER not in request.headers or NONCE_HEADER in response.headers:
        return
    nonce = current_nonce()
    if nonce is not None:
        response.headers[NONCE_HEADER] = nonce


def bind_to_proof_key(params: dict[str, str]) -> dict[str, str]:
    """A pushed request that carries a DPoP proof binds its code to the proof's key (§10.1), as ``dpop_jkt``
    would; a ``dpop_jkt`` beside the proof must name that same key."""
    proof = verify_request_proof()
    if proof is None:
        return params
    named = params.get("dpop_jkt")
    if named and named != proof.jkt:
        raise InvalidDpopProofError(DpopFailure.WRONG_KEY)
    return {**params, "dpop_jkt": proof.jkt}
