"""Reading ``ONECARD_REDIS_URL`` when it names a Redis Sentinel deployment (DESIGN.md §12: Redis with
Sentinel). Pure parsing, no Redis client: ``idp.config`` validates the setting with it at start-up, and
``idp.stores.factory`` builds the client from the result.

The format (documented for operators in docs/deploy.md, "Redis with Sentinel")::

    redis+sentinel://[[username]:password@]host1[:port1][,host2[:port2],...]/service_name[/db][?sentinel_password=...]

- the hosts are the Sentinels (port 26379 when omitted; an IPv6 address in brackets, ``[::1]:26379``), asked
  in the order given which server is the master of ``service_name`` (``sentinel monitor <service_name> ...``
  in sentinel.conf);
- ``db`` is the database number on that master, 0 when omitted;
- ``username`` and ``password`` (percent-encoded) authenticate to the Redis master and replicas — the same
  credentials a ``redis://`` URL would carry;
- ``sentinel_password`` authenticates to the Sentinels themselves, for Sentinels configured with
  ``requirepass``; without it they are asked without credentials (Sentinel's default).

TLS to the Sentinels or the master is not part of this form (``rediss://`` is, for a single server).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qs, unquote

SENTINEL_SCHEME: Final = "redis+sentinel"
DEFAULT_SENTINEL_PORT: Final = 26379
# Sentinel's master names are plain words in sentinel.conf; anything else is more likely a typo or a URL
# pasted into the wrong place than a real name.
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+")
_QUERY_KEYS: Final = frozenset({"sentinel_password"})


class RedisUrlError(ValueError):
    """A Redis URL that cannot be used; the message names the part that is wrong, never the password."""


@dataclass(frozen=True)
class SentinelUrl:
    """What a ``redis+sentinel://`` URL names: the Sentinels, the service, the database, credentials."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # a repr ends up in logs
    sentinel_password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(SENTINEL_SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Parse a ``redis+sentinel://`` URL (format in the module docstring); ``RedisUrlError`` if malformed."""
    scheme, separator, rest = url.partition("://")
    if scheme.lower() != SENTINEL_SCHEME or not separator:
        raise RedisUrlError(f"not a {SENTINEL_SCHEME}:// URL")
    rest, _, fragment = rest.partition("#")
    if fragment:
        raise RedisUrlError("a fragment (#...) has no meaning in a Redis URL")
    rest, _, query = rest.partition("?")
    # Credentials come off first, at the last "@": a password pasted without percent-encoding may hold "/",
    # ":" or "@", and cutting at the first "/" before this would put part of it into a host (and so into an
    # error message). A percent-encoded password never holds a raw "@"; the last one ends the credentials.
    userinfo, at, rest = rest.rpartition("@")
    hosts, slash, path = rest.partition("/")
    username = password = None
    if at:
        user_part, colon, password_part = userinfo.partition(":")
        if not colon or not password_part:
            # "secret@host" is ambiguous (a user name, or a password without its colon?): refuse to guess.
            raise RedisUrlError("credentials must be written :password@ or username:password@")
        username = unquote(user_part) or None
        password = unquote(password_part)
    sentinels = tuple(_parse_host(part, number) for number, part in enumerate(hosts.split(","), start=1))
    if not slash:
        raise RedisUrlError("missing /<service_name> after the Sentinel hosts")
    segments = path.split("/")
    if segments and segments[-1] == "":
        segments.pop()  # a trailing slash
    if not segments or len(segments) > 2:
        raise RedisUrlError("the path must be /<service_name> or /<service_name>/<db>")
    service_name = unquote(segments[0])
    if not _SERVICE_NAME.fullmatch(service_name):
        raise RedisUrlError(f"service name {service_name!r} is not a Sentinel master name")
    db = 0
    if len(segments) == 2:
        if not segments[1].isascii() or not segments[1].isdigit():
            raise RedisUrlError(f"database {segments[1]!r} is not a non-negative integer")
        db = int(segments[1])
    sentinel_password = None
    if query:
        try:
            params = parse_qs(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise RedisUrlError("the query is not key=value pairs") from None
        unknown = sorted(set(params) - _QUERY_KEYS)
        if unknown:
            raise RedisUrlError(f"unknown query parameter(s) {', '.join(unknown)}; only sentinel_password")
        values = params.get("sentinel_password", [])
        if len(values) > 1:
            raise RedisUrlError("sentinel_password given more than once")
        sentinel_password = values[0] if values and values[0] else None
    return SentinelUrl(sentinels, service_name, db, username, password, sentinel_password)


def _parse_host(part: str, number: int) -> tuple[str, int]:
    # Errors name the host by its place in the list, never by its text: a malformed URL may be one whose
    # credentials were not recognised as such, and the text would then be (part of) the password.
    if not part:
        raise RedisUrlError("an empty Sentinel host (two commas, or none at all)")
    if part.startswith("["):
        address, bracket, port_text = part[1:].partition("]")
        if not bracket or not _IPV6.fullmatch(address) or (port_text and not port_text.startswith(":")):
            raise RedisUrlError(f"Sentinel host #{number} is not [IPv6]:port")
        host, port_text = address, port_text[1:]
    else:
        host, _, port_text = part.partition(":")
        if not _HOST_NAME.fullmatch(host):
            raise RedisUrlError(f"Sentinel host #{number} is not host[:port]")
    if not port_text:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"the port of Sentinel host #{number} is not 1..65535")
    return host, int(port_text)
