"""``sdk.realname``: client of OneCard's real-name verification API (DESIGN.md §6).

``RealnameClient.verify_name(purpose, name, id_number)`` or ``verify_code(purpose, code)`` asks
``POST /api/v1/realname/verify`` and returns a frozen ``RealnameResult`` (match / no match, and the
assurance of the evidence), or raises one error class per wire code the server sends. The client fetches a
client_credentials access token with scope ``realname:verify`` (HTTP Basic, RFC 6749 §2.3.1 form-encoding),
keeps it until shortly before it expires, and fetches a new one once if the API refuses it.

Time is a parameter: the token's lifetime is measured with the ``clock`` given.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal
from urllib.parse import quote_plus

import requests

from sdk.clock import Clock, system_clock
from sdk.dpop import SCHEME as DPOP_SCHEME
from sdk.dpop import DpopKey, DpopSigner
from sdk.errors import OneCardError
from sdk.oidc import REALNAME_VERIFY

SCOPE: Final = REALNAME_VERIFY
VERIFY_PATH: Final = "/api/v1/realname/verify"
TOKEN_PATH: Final = "/token"
DEFAULT_TIMEOUT: Final = 5.0
TOKEN_MARGIN: Final = 30  # seconds before expiry a token is no longer used


@dataclass(frozen=True, slots=True)
class RealnameResult:
    result: Literal["match", "no_match"]
    assurance: str

    @property
    def matched(self) -> bool:
        return self.result == "match"


class RealnameError(OneCardError):
    """Base: the service gave no verdict. ``server_error`` is the wire code the server sent, if any."""

    error = "realname_error"
    description = "The real-name service could not answer."
    status_code = 502

    def __init__(
        self, detail: str = "", *, http_status: int | None = None, reason: str | None = None
    ) -> None:
        super().__init__(detail)
        self.http_status = http_status
        self.reason = reason


class RealnameServiceError(RealnameError):
    """Network failure, a 5xx, or an answer this client does not understand."""

    error = "realname_unavailable"


class RealnameUnauthorizedError(RealnameError):
    error = "unauthorized"
    description = "The client's credentials or token were refused."
    status_code = 401


class RealnameForbiddenError(RealnameError):
    error = "forbidden"
    description = "This client may not use real-name verification (scope realname:verify)."
    status_code = 403


class RealnameRateLimitedError(RealnameError):
    error = "rate_limited"
    description = "Too many verifications; wait and try again."
    status_code = 429

    def __init__(self, detail: str = "", *, retry_after: int, http_status: int | None = 429) -> None:
        super().__init__(detail, http_status=http_status)
        self.retry_after = retry_after


class RealnameInvalidRequestError(RealnameError):
    error = "invalid_request"
    description = "The request was malformed."
    status_code = 400


class RealnameInvalidPurposeError(RealnameInvalidRequestError):
    error = "invalid_purpose"
    description = "A purpose is required (at most 200 characters)."


class RealnameInvalidIdNumberError(RealnameInvalidRequestError):
    error = "invalid_id_number"
    description = "The ID number is not valid (length, characters, date of birth or check digit)."


class RealnameInvalidNameError(RealnameInvalidRequestError):
    error = "invalid_name"
    description = "The name is empty, too long or has characters a name cannot have."


class RealnameInvalidCodeError(RealnameInvalidRequestError):
    """``reason`` is the code's refusal reason (``expired``, ``replayed``, ``bad_signature``, …)."""

    error = "invalid_code"
    description = "The presented code is not valid; ask for a fresh one."


class RealnameCodesNotSupportedError(RealnameInvalidRequestError):
    error = "code_not_supported"
    description = "The server does not verify presented codes."


_BY_CODE: Final[dict[str, type[RealnameError]]] = {
    cls.error: cls
    for cls in (
        RealnameInvalidRequestError,
        RealnameInvalidPurposeError,
        RealnameInvalidIdNumberError,
        RealnameInvalidNameError,
        RealnameInvalidCodeError,
        RealnameCodesNotSupportedError,
        RealnameForbiddenError,
    )
}


class RealnameClient:
    """An operator's client of the real-name API (thread-safe; one token shared by all threads).

    With ``dpop_key`` its tokens are DPoP-bound (RFC 9449): a thief of one cannot use it without the key.
    ``require_dpop``: a ``Bearer`` token response (a downgrade) is refused with ``RealnameServiceError``.
    """

    error_classes: ClassVar[dict[str, type[RealnameError]]] = _BY_CODE

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session | None = None,
        clock: Clock = system_clock,
        timeout: float = DEFAULT_TIMEOUT,
        dpop_key: DpopKey | None = None,
        require_dpop: bool = False,
    ) -> None:
        if require_dpop and dpop_key is None:
            raise ValueError("require_dpop needs a dpop_key")
        self.require_dpop = require_dpop
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
        self._basic = "Basic " + base64.b64encode(raw).decode("ascii")
        self._owns_session = session is None
        self.session = session or requests.Session()
        self.clock = clock
        self.timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_valid_until = float("-inf")
        self._dpop = DpopSigner(dpop_key, clock=clock) if dpop_key is not None else None
        self._bound_tokens: set[str] = set()  # the DPoP-bound ones of the tokens this client got

    def __repr__(self) -> str:
        return f"RealnameClient({self.base_url!r}, {self.client_id!r})"  # never the secret

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def verify_name(self, purpose: str, name: str, id_number: str) -> RealnameResult:
        """Does ``name`` belong to ``id_number`` in the register? ``purpose`` is recorded."""
        return self._verify({"purpose": purpose, "name": name, "id_number": id_number})

    def verify_code(
        self, purpose: str, code: str, *, name: str | None = None, id_number: str | None = None
    ) -> RealnameResult:
        """Is this presented ESSC1 code a usable e-card (and, if given, of this name / ID number)?"""
        body: dict[str, str] = {"purpose": purpose, "code": code}
        if name is not None:
            body["name"] = name
        if id_number is not None:
            body["id_number"] = id_number
        return self._verify(body)

    # -- machinery

    def access_token(self) -> str:
        """A current client_credentials token (fetched when there is none or it is about to expire)."""
        with self._lock:
            now = self.clock()
            if self._token is None or now >= self._token_valid_until:
                self._token, self._token_valid_until = self._fetch_token(now)
            return self._token

    def _forget_token(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch_token(self, now: float) -> tuple[str, float]:
        url = self.base_url + TOKEN_PATH

        def send(extra: dict[str, str]) -> requests.Response:
            return self.session.post(
                url,
                data={"grant_type": "client_credentials", "scope": SCOPE},
                headers={"Authorization": self._basic, "Accept": "application/json", **extra},
                timeout=self.timeout,
            )

        try:
            response = send({}) if self._dpop is None else self._dpop.send("POST", url, send)
        except requests.RequestException as exc:
            raise RealnameServiceError(f"token endpoint unreachable: {type(exc).__name__}") from exc
        data = _json(response)
        if response.status_code in (400, 401) and data is not None:
            error = str(data.get("error", ""))
            if error == "invalid_scope":
                raise RealnameForbiddenError("scope refused", http_status=response.status_code)
            raise RealnameUnauthorizedError(f"token refused: {error}", http_status=response.status_code)
        if response.status_code != 200 or data is None or not isinstance(data.get("access_token"), str):
            raise RealnameServiceError(
                f"token endpoint HTTP {response.status_code}", http_status=response.status_code
            )
        expires_in = data.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int) and expires_in > 0 else 300.0
        token = str(data["access_token"])
        if str(data.get("token_type", "")).lower() == DPOP_SCHEME.lower():
            self._bound_tokens = {token}  # only the current one is ever presented
        elif self.require_dpop:
            raise RealnameServiceError("the token endpoint answered with a Bearer token, not a DPoP one")
        return token, now + max(1.0, lifetime - TOKEN_MARGIN)

    def _verify(self, body: dict[str, str]) -> RealnameResult:
        token = self.access_token()
        response = self._post(body, token)
        if response.status_code == 401:
            # Revoked, rotated away or expired early: one new token, one retry.
            self._forget_token(token)
            response = self._post(body, self.access_token())
        return self._parse(response)

    def _post(self, body: dict[str, str], token: str) -> requests.Response:
        url = self.base_url + VERIFY_PATH
        bound = self._dpop is not None and token in self._bound_tokens
        scheme = DPOP_SCHEME if bound else "Bearer"

        def send(extra: dict[str, str]) -> requests.Response:
            headers = {"Authorization": f"{scheme} {token}", "Accept": "application/json", **extra}
            return self.session.post(url, json=body, headers=headers, timeout=self.timeout)

        try:
            if self._dpop is None or not bound:
                return send({})
            return self._dpop.send("POST", url, send, access_token=token)
        except requests.RequestException as exc:
            raise RealnameServiceError(f"real-name API unreachable: {type(exc).__name__}") from exc

    def _parse(self, response: requests.Response) -> RealnameResult:
        status = response.status_code
        data = _json(response)
        if status == 200 and data is not None:
            result, assurance = data.get("result"), data.get("assurance")
            if result in ("match", "no_match") and isinstance(assurance, str):
                return RealnameResult(result, assurance)
            raise RealnameServiceError("malformed verdict", http_status=status)
        error = str(data.get("error", "")) if data is not None else ""
        reason = data.get("reason") if data is not None else None
        if status == 429:
            try:
                retry_after = max(1, int(response.headers.get("Retry-After", "1")))
            except ValueError:
                retry_after = 1
            raise RealnameRateLimitedError(error, retry_after=retry_after)
        if status == 401:
            raise RealnameUnauthorizedError(error, http_status=status)
        cls = self.error_classes.get(error)
        if cls is not None and status in (400, 403):
            raise cls(error, http_status=status, reason=reason if isinstance(reason, str) else None)
        if status == 403:
            raise RealnameForbiddenError(error, http_status=status)
        if status == 400:
            raise RealnameInvalidRequestError(error, http_status=status)
        raise RealnameServiceError(f"HTTP {status} {error}".strip(), http_status=status)


def _json(response: requests.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
