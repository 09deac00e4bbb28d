"""HTTP between deployments beyond fetching statements: cross-region login's token and userinfo calls, the
gates' sync of other regions' key sets and suspended lists.

``FederationHttp`` is the one door (a test passes one that reaches its deployments' test clients); the
default, ``requests_http``, allows https only in production, follows no redirect, waits ``timeout`` seconds
and reads at most ``max_bytes``. Any failure to get an answer is ``EntityUnreachableError``; an answer with
any status is returned for the caller to judge.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import requests

from idp.federation.errors import EntityUnreachableError

TIMEOUT: Final = 5.0
MAX_ANSWER_BYTES: Final = 1024 * 1024  # a suspended list of many handles fits; a runaway answer does not


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case

    def json(self) -> Any:
        """The body as JSON; ``EntityUnreachableError`` if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise EntityUnreachableError("the answer is not JSON") from exc


class FederationHttp(Protocol):
    def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> HttpAnswer: ...


def requests_http(
    *, require_https: bool, timeout: float = TIMEOUT, max_bytes: int = MAX_ANSWER_BYTES
) -> FederationHttp:
    def call(
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        scheme = urlsplit(url).scheme
        if scheme != "https" and (require_https or scheme != "http"):
            raise EntityUnreachableError(f"{url}: https is required")
        try:
            with requests.request(
                method,
                url,
                headers=dict(headers or {}),
                data=dict(form) if form is not None else None,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                body: bytes = response.raw.read(max_bytes + 1, decode_content=True)
                answer_headers = {name.lower(): value for name, value in response.headers.items()}
                status = response.status_code
        except requests.RequestException as exc:
            raise EntityUnreachableError(f"{url}: {type(exc).__name__}") from exc
        if len(body) > max_bytes:
            raise EntityUnreachableError(f"{url}: more than {max_bytes} bytes")
        return HttpAnswer(status, body, answer_headers)

    return call
