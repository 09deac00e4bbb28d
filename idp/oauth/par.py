"""Pushed authorization requests (RFC 9126) and the one place that turns what reaches the authorization
endpoint — plain parameters, a signed request object (RFC 9101) or a pushed ``request_uri`` — into the plain
parameters Authlib and idp.oauth.authorize validate.

A pushed request is validated in full when it is pushed (idp.oauth.views.pushed_authorization_request), then
kept in the short-lived store under the hash of its ``request_uri``, bound to the client that pushed it. At
the authorization endpoint it is looked up with the front channel's ``client_id`` and consumed with the
store's atomic ``take``: one-time across nodes, and another client's ``client_id`` neither uses nor burns it.
Only the pushed parameters count; whatever else the front channel carries is ignored (RFC 9126 §4).

Pure protocol code over the store: the client, the store, the issuer and ``now`` come in.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oidc.core.errors import InvalidRequestURIError, RequestURINotSupportedError

from idp.bearer_secrets import hash_bearer_secret
from idp.clients.model import Client
from idp.oauth.fapi import check_pushed_request, signing_algorithms
from idp.oauth.request_object import REQUEST_OBJECT_SIGNING_ALGS, decode_request_object
from idp.stores.base import EphemeralStore, dump_json, load_json

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
PUSHED_REQUEST_NAMESPACE = "pushed_authz_request"
# Client authentication travels with the pushed request (RFC 9126 §2.1) but is not part of it.
CLIENT_AUTHENTICATION_PARAMS = frozenset({"client_secret", "client_assertion", "client_assertion_type"})
MAX_REFERENCE = 128


@dataclass(frozen=True)
class PushedRequest:
    request_uri: str
    expires_in: int


def _signed_parameters(
    raw: str, client: Client, *, issuer: str, now: float, jti_store: EphemeralStore | None = None
) -> dict[str, str]:
    return decode_request_object(
        raw,
        client_id=client.client_id,
        client_jwks=client.jwks,
        issuer=issuer,
        now=now,
        algorithms=signing_algorithms(client, REQUEST_OBJECT_SIGNING_ALGS),
        require_nbf=client.fapi2_security_profile,
        jti_store=jti_store,
    )


def single_valued(fields: Iterable[tuple[str, list[str]]]) -> dict[str, str]:
    """A form's fields, each sent once (RFC 6749 §3.1: no parameter more than once)."""
    values: dict[str, str] = {}
    for name, given in fields:
        if len(given) != 1:
            raise InvalidRequestError("A parameter was sent more than once.")
        values[name] = given[0]
    return values


def pushed_parameters(body: Mapping[str, str], client: Client, *, issuer: str, now: float) -> dict[str, str]:
    """The authorization parameters of a push by an authenticated ``client`` (RFC 9126 §2.1), before the
    authorization endpoint's own validation."""
    if "request_uri" in body:
        raise InvalidRequestError("request_uri must not be pushed (RFC 9126 section 2.1).")
    if body.get("client_id", client.client_id) != client.client_id:
        raise InvalidRequestError("client_id is not the authenticated client.")
    if "request" in body:
        # JAR inside PAR (RFC 9126 §3): the request object's parameters only.
        params = _signed_parameters(body["request"], client, issuer=issuer, now=now)
    elif client.require_signed_request_object:
        raise InvalidRequestError("This client must push a signed request object (RFC 9101 section 10.5).")
    else:
        params = {key: value for key, value in body.items() if key not in CLIENT_AUTHENTICATION_PARAMS}
    params["client_id"] = client.client_id
    check_pushed_request(client, params)
    return params


def push_request(
    store: EphemeralStore, client_id: str, params: Mapping[str, str], *, ttl: int, now: float
) -> PushedRequest:
    reference = secrets.token_urlsafe(32)
    record = dump_json({"client_id": client_id, "params": dict(params)})
    store.put(PUSHED_REQUEST_NAMESPACE, hash_bearer_secret(reference), record, ttl=ttl, now=now)
    return PushedRequest(REQUEST_URI_PREFIX + reference, ttl)


def redeem_request_uri(
    store: EphemeralStore, request_uri: str, client_id: str, *, now: float
) -> dict[str, str]:
    """The pushed parameters, consumed; ``invalid_request_uri`` when unknown, expired, used, or pushed by
    another client (which leaves it to its own client)."""
    if not request_uri.startswith(REQUEST_URI_PREFIX):
        # Request objects by reference to another server are not fetched (RFC 9101 §10.4: SSRF).
        raise RequestURINotSupportedError(
            description="Only request_uri values of the PAR endpoint are accepted."
        )
    reference = request_uri.removeprefix(REQUEST_URI_PREFIX)
    gone = InvalidRequestURIError(description="The request_uri is unknown, expired or already used.")
    if not reference or len(reference) > MAX_REFERENCE:
        raise gone
    key = hash_bearer_secret(reference)
    record = load_json(store.get(PUSHED_REQUEST_NAMESPACE, key, now=now))
    if record is None or record["client_id"] != client_id:
        raise gone
    if store.take(PUSHED_REQUEST_NAMESPACE, key, now=now) is None:
        raise gone  # another node redeemed it first
    params: dict[str, str] = record["params"]
    return params


def front_channel_parameters(
    front: Mapping[str, str],
    client: Client,
    *,
    store: EphemeralStore,
    issuer: str,
    now: float,
    require_par: bool,
) -> dict[str, str] | None:
    """The parameters an authorization request stands for, or None when they are the front channel's own.

    ``require_par`` is the server-wide ``ONECARD_REQUIRE_PAR``; a client may require it on its own."""
    if "request" in front and "request_uri" in front:
        raise InvalidRequestError("request and request_uri exclude each other.")
    if "request_uri" in front:
        return redeem_request_uri(store, front["request_uri"], client.client_id, now=now)
    if require_par or client.requires_par:
        raise InvalidRequestError("This client must use pushed authorization requests (RFC 9126 section 5).")
    if "request" in front:
        # The request object's client_id must be the front channel's (checked in decode_request_object).
        return _signed_parameters(front["request"], client, issuer=issuer, now=now, jti_store=store)
    if client.require_signed_request_object:
        raise InvalidRequestError("This client must send a signed request object (RFC 9101 section 10.5).")
    return None
