"""HTTP between deployments beyond fetching statements: cross-region login's token and userinfo calls, the
gates' sync of other regions' key sets and suspended lists.

``FederationHttp`` is the one door (a test passes one that reaches its deployments' test clients); the
default, ``requests_http``, allows https only in production, follows no redirect, waits ``timeout`` seconds
and reads at most ``max_bytes``. Any failure to get an answer is ``EntityUnreachableError``; an answer with
any status is returned for the caller to judge.

``Destinations`` is what every outgoing call of the federation (this module's and the statement
fetcher's, idp.federation.chain) passes first. Anyone can name an entity id (a ``client_id`` at
/authorize, a ``sub`` at /federation/resolve, an ``authority_hints`` entry in a configuration they sign
themselves), so:

- a URL must be plain: ASCII (a host in IDNA A-labels: no second reading of a Unicode name), no user
  information, no backslash, no control character or space, and the host ``urllib3`` (what ``requests``
  connects to) reads must be the host checked here;
- in production, a host that resolves to a loopback, private, link-local, shared, site-local or otherwise
  non-global address is refused — counting the IPv4 address an IPv6 one carries (IPv4-mapped, 6to4,
  Teredo, NAT64) — unless the operator names that host (``ONECARD_FEDERATION_PRIVATE_HOSTS``: the platforms
  of a government WAN on private addresses); a named host is the operator's, not the caller's, choice;
- ``requests`` is used without the environment's proxies and ``.netrc``.

The name is resolved again when connecting: a DNS answer that changes in between (rebinding) is not caught
here — a firewall rule for the server's outgoing traffic is the complete answer, as docs/federation.md
says.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from idp.federation.errors import EntityUnreachableError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
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


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_BAD_URL_CHARACTERS = frozenset("\\@ ")  # controls: str.isprintable


def _carried_ipv4(address: IpAddress) -> list[IpAddress]:
    """The IPv4 addresses an IPv6 address leads to (IPv4-mapped, 6to4, Teredo, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[IpAddress] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in network for network in _NAT64):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _is_public(address: IpAddress) -> bool:
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return False
    return all(_is_public(carried) for carried in _carried_ipv4(address))


@dataclass(frozen=True)
class Destinations:
    """Where the federation's outgoing calls may go (see the module's docstring)."""

    require_https: bool
    check_addresses: bool  # production: only public addresses, and the hosts below
    private_hosts: frozenset[str] = frozenset()  # hosts the operator lets resolve to non-public addresses

    def check(self, url: str) -> None:
        """Refuse (``EntityUnreachableError``) a URL the federation must not call."""
        if not url.isascii() or not url.isprintable() or _BAD_URL_CHARACTERS & set(url):
            raise EntityUnreachableError("the URL is not a plain https URL")
        parts = urlsplit(url)
        if parts.scheme != "https" and (self.require_https or parts.scheme != "http"):
            raise EntityUnreachableError(f"{url}: https is required")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            connected_to = parse_url(url).host
        except (ValueError, LocationParseError) as exc:
            raise EntityUnreachableError(f"{url}: not a valid URL") from exc
        host = (parts.hostname or "").lower()
        if not host or (connected_to or "").lower().strip("[]") != host:
            raise EntityUnreachableError(f"{url}: the host is ambiguous")
        if not self.check_addresses or host in self.private_hosts:
            return
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise EntityUnreachableError(f"{url}: the host does not resolve") from exc
        for *_rest, sockaddr in found:
            if not _is_public(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])):
                raise EntityUnreachableError(f"{url}: resolves to an address that is not public")

    def session(self) -> requests.Session:
        """A ``requests`` session for one call: no proxies or credentials from the environment."""
        http = requests.Session()
        http.trust_env = False
        return http


def requests_http(
    destinations: Destinations, *, timeout: float = TIMEOUT, max_bytes: int = MAX_ANSWER_BYTES
) -> FederationHttp:
    def call(
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        destinations.check(url)
        try:
            with (
                destinations.session() as http,
                http.request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    data=dict(form) if form is not None else None,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                ) as response,
            ):
                body: bytes = response.raw.read(max_bytes + 1, decode_content=True)
                answer_headers = {name.lower(): value for name, value in response.headers.items()}
                status = response.status_code
        except requests.RequestException as exc:
            raise EntityUnreachableError(f"{url}: {type(exc).__name__}") from exc
        if len(body) > max_bytes:
            raise EntityUnreachableError(f"{url}: more than {max_bytes} bytes")
        return HttpAnswer(status, body, answer_headers)

    return call
