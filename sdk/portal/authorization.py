"""The front channel of the code flow: what a portal keeps while the browser is at the provider, and the
checks on the redirect back (RFC 6749 §4.1, PKCE RFC 7636 §4.2, RFC 9207 ``iss``). Pure: no HTTP."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sdk.portal._util import equal
from sdk.portal.errors import AuthorizationDeniedError, CallbackError, CallbackReason


@dataclass(frozen=True, slots=True)
class AuthorizationStart:
    """What the portal keeps (in its session) between sending the browser away and the callback.

    ``to_dict``/``from_dict`` give a JSON-safe form. The ``code_verifier`` is a secret: keep it server-side
    or in a session cookie only the portal can read.
    """

    url: str
    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    acr_values: tuple[str, ...] = ()
    max_age: int | None = None
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "redirect_uri": self.redirect_uri,
            "acr_values": list(self.acr_values),
            "max_age": self.max_age,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthorizationStart:
        try:
            acr_values = data.get("acr_values") or []
            max_age = data.get("max_age")
            start = cls(
                url=str(data["url"]),
                state=str(data["state"]),
                nonce=str(data["nonce"]),
                code_verifier=str(data["code_verifier"]),
                redirect_uri=str(data["redirect_uri"]),
                acr_values=tuple(str(value) for value in acr_values),
                max_age=int(max_age) if max_age is not None else None,
                created_at=float(data.get("created_at", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CallbackError(CallbackReason.WRONG_STATE, f"unusable saved start: {exc}") from exc
        return start


def pkce_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` of a ``code_verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_callback(callback: str | Mapping[str, str]) -> dict[str, str]:
    """The parameters of the redirect back: a URL, a query string, or a mapping (a web framework's args)."""
    if isinstance(callback, str):
        query = urlsplit(callback).query if "?" in callback or "://" in callback else callback
        pairs = parse_qsl(query, keep_blank_values=True)
        params: dict[str, str] = {}
        for name, value in pairs:
            if name in params:
                # RFC 6749 §3.1: parameters must not repeat; a second state or code is an attack.
                raise CallbackError(CallbackReason.WRONG_STATE, f"repeated parameter {name!r}")
            params[name] = value
        return params
    return {str(name): str(value) for name, value in callback.items()}


def validate_callback(params: Mapping[str, str], *, expected_state: str, expected_issuer: str) -> None:
    """The redirect answers the request this browser started, from this issuer, and carries a code.

    ``CallbackError`` with the reason, or ``AuthorizationDeniedError`` when the provider answered with an
    error (RFC 6749 §4.1.2.1) — checked only once ``state`` and ``iss`` showed the answer is ours.
    """
    received_state = params.get("state", "")
    if not received_state or not equal(received_state, expected_state):
        raise CallbackError(CallbackReason.WRONG_STATE)
    iss = params.get("iss")
    if iss is not None and iss != expected_issuer:
        raise CallbackError(CallbackReason.WRONG_ISSUER)
    if "error" in params:
        raise AuthorizationDeniedError(params["error"][:100], params.get("error_description", "")[:300])
    if not params.get("code"):
        raise CallbackError(CallbackReason.MISSING_CODE)
