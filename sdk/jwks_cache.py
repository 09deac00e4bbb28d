"""A JSON document, and in particular a JWKS (RFC 7517), fetched over HTTP and cached as HTTP allows.

One copy of the caching logic for every verifier in ``sdk``: the venue gate's QR key set and suspended-handles
list (``sdk.gate``) and a portal's OIDC signing keys (``sdk.portal``).

- Freshness from ``Cache-Control: max-age`` minus ``Age`` (RFC 9111 §4.2.1, §5.1, §5.2.2); ``no-store`` and
  ``no-cache`` mean revalidate on every use. A typo'd max-age is capped at a day.
- Revalidation with ``ETag`` / ``If-None-Match`` → 304 (RFC 9110 §13.1.2).
- The last good document is kept while the server is unreachable or sends something unusable (retrying no
  more often than ``retry_interval``), optionally persisted to a cache file.
- ``JwksCache.refresh_for_unknown_kid``: a token names a key we lack, perhaps published after our last
  fetch: refetch, at most once per ``unknown_kid_interval`` so forged kids cannot turn every verification
  into a request to the server.

Time is a parameter (``now``); only the network is real.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Collection
from pathlib import Path
from typing import Any, Final, Generic, Protocol, TypeVar, runtime_checkable

import requests

from sdk.errors import OneCardError
from sdk.keys import Algorithm, InvalidKeyError, KeySet

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE: Final = 300  # when the server sends no Cache-Control
MAX_MAX_AGE: Final = 86_400  # a typo'd max-age must not freeze a verifier's keys for a year
DEFAULT_RETRY_INTERVAL: Final = 60  # between attempts while the server is unreachable
DEFAULT_UNKNOWN_KID_INTERVAL: Final = 60  # N: at most one unknown-kid refresh per N seconds
DEFAULT_HTTP_TIMEOUT: Final = 5.0


T = TypeVar("T")


def parse_max_age(cache_control: str | None, age: str | None, *, default: float) -> float:
    """Freshness lifetime from ``Cache-Control`` and ``Age`` (RFC 9111 §4.2.1, §5.1, §5.2.2)."""
    if not cache_control:
        max_age = default
    else:
        max_age = default
        for directive in cache_control.lower().split(","):
            name, _, value = directive.strip().partition("=")
            if name in ("no-store", "no-cache"):
                # Revalidate every time; the last good copy still serves while offline.
                return 0.0
            if name == "max-age":
                try:
                    max_age = max(0, int(value.strip().strip('"')))
                except ValueError:
                    max_age = default
    with contextlib.suppress(ValueError):  # a garbled Age header is ignored, as RFC 9111 §5.1 allows
        max_age -= max(0, int(age)) if age is not None else 0
    return float(min(max(max_age, 0), MAX_MAX_AGE))


class DocumentSync(ABC, Generic[T]):
    """A JSON document fetched over HTTP with caching, kept in memory and in an optional cache file.

    The last good document is never thrown away because the server is unreachable or sends something
    unusable; only a newer good document replaces it.
    """

    kind = "document"
    max_bytes = 1 << 20
    # For documents holding keys: how often a token naming an unknown key may make it refetch.
    unknown_kid_interval: float = DEFAULT_UNKNOWN_KID_INTERVAL
    _last_unknown_kid_refresh: float = float("-inf")

    def refresh_for_unknown_kid(self, kid: str, now: float) -> bool:
        """A token names a key we lack: refetch, at most once per ``unknown_kid_interval``; True if changed.

        The limit stops a stream of forged kids from turning every verification into a request to the server.
        """
        with self._lock:
            if now - self._last_unknown_kid_refresh < self.unknown_kid_interval:
                return False
            self._last_unknown_kid_refresh = now
            return self._fetch(now)

    def __init__(
        self,
        url: str,
        *,
        cache_file: str | os.PathLike[str] | None = None,
        session: requests.Session | None = None,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
        default_max_age: float = DEFAULT_MAX_AGE,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        self.url = url
        self.cache_file = Path(cache_file) if cache_file is not None else None
        self._owns_session = session is None
        self.session = session or requests.Session()
        self.timeout = timeout
        self.default_max_age = default_max_age
        self.retry_interval = retry_interval
        self._lock = threading.RLock()
        self._value: T | None = None
        self._raw: Any = None
        self._etag: str | None = None
        self._fetched_at: float | None = None
        self._fresh_until = float("-inf")
        self._last_attempt_at = float("-inf")
        self._last_failure_at = float("-inf")
        self.last_error: str | None = None
        self._load_cache_file()

    # -- what callers use

    def close(self) -> None:
        """Release the HTTP connections (only those of a session this object created)."""
        if self._owns_session:
            self.session.close()

    @property
    def value(self) -> T | None:
        """The last good document, or None if there never was one."""
        return self._value

    @property
    def fetched_at(self) -> float | None:
        """When the current document was last confirmed by the server (200 or 304)."""
        return self._fetched_at

    def is_fresh(self, now: float) -> bool:
        return now < self._fresh_until

    def refresh_if_stale(self, now: float) -> bool:
        """Fetch if the cached copy's max-age has passed; after a failure, wait ``retry_interval`` first.

        Returns True if the document changed.
        """
        with self._lock:
            if now < self._fresh_until or now - self._last_failure_at < self.retry_interval:
                return False
            return self._fetch(now)

    def refresh(self, now: float) -> bool:
        """Fetch now, conditionally; True if the document changed."""
        with self._lock:
            return self._fetch(now)

    # -- subclasses

    @abstractmethod
    def _parse(self, document: Any) -> T:
        """Turn a fetched JSON document into the synced value; raise to keep the last good one."""

    def _accept(self, new: T) -> bool:
        """Whether ``new`` may replace the current document (e.g. not older)."""
        return True

    def _request_headers(self) -> dict[str, str]:
        """Extra headers for every fetch (e.g. credentials for a protected document)."""
        return {}

    # -- machinery

    def _fetch(self, now: float) -> bool:
        self._last_attempt_at = now
        headers = {"Accept": "application/json", **self._request_headers()}
        if self._etag and self._value is not None:
            headers["If-None-Match"] = self._etag
        try:
            response = self.session.get(self.url, headers=headers, timeout=self.timeout, stream=True)
            try:
                status = response.status_code
                body = self._read_body(response) if status == 200 else b""
            finally:
                response.close()
        except (requests.RequestException, OSError) as exc:
            return self._failed(f"fetching {self.kind} failed: {type(exc).__name__}")
        max_age = parse_max_age(
            response.headers.get("Cache-Control"), response.headers.get("Age"), default=self.default_max_age
        )
        if status == 304 and self._value is not None:
            self._fresh_until = now + max_age
            self._fetched_at = now
            self._etag = response.headers.get("ETag") or self._etag
            self.last_error = None
            self._save_cache_file()
            return False
        if status != 200:
            return self._failed(f"fetching {self.kind} failed: HTTP {status}")
        try:
            raw = json.loads(body)
            value = self._parse(raw)
        except (ValueError, OneCardError) as exc:
            return self._failed(f"unusable {self.kind}: {exc}")
        if self._value is not None and not self._accept(value):
            return self._failed(f"refusing an older {self.kind}")
        changed = bool(raw != self._raw)
        self._value, self._raw = value, raw
        self._etag = response.headers.get("ETag")
        self._fetched_at = now
        self._fresh_until = now + max_age
        self.last_error = None
        self._save_cache_file()
        return changed

    def _read_body(self, response: requests.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise requests.exceptions.ContentDecodingError(
                    f"{self.kind} larger than {self.max_bytes} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _failed(self, message: str) -> bool:
        self._last_failure_at = self._last_attempt_at
        self.last_error = message
        log.warning("%s from %s; keeping the last good copy", message, self.url)
        return False

    def _load_cache_file(self) -> None:
        if self.cache_file is None or not self.cache_file.exists():
            return
        try:
            saved = json.loads(self.cache_file.read_text(encoding="utf-8"))
            if saved.get("url") != self.url:
                return
            self._value = self._parse(saved["document"])
            self._raw = saved["document"]
            etag = saved.get("etag")
            self._etag = etag if isinstance(etag, str) else None
            self._fetched_at = float(saved["fetched_at"])
            self._fresh_until = float(saved["fresh_until"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError, OneCardError) as exc:
            log.warning("ignoring unreadable %s cache %s: %s", self.kind, self.cache_file, exc)

    def _save_cache_file(self) -> None:
        if self.cache_file is None:
            return
        saved = {
            "url": self.url,
            "etag": self._etag,
            "fetched_at": self._fetched_at,
            "fresh_until": self._fresh_until,
            "document": self._raw,
        }
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            # Write-then-rename: a gate losing power mid-write keeps the previous good file.
            fd, tmp = tempfile.mkstemp(prefix=".sync-", dir=self.cache_file.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(saved, out)
            os.replace(tmp, self.cache_file)
        except OSError as exc:
            log.warning("cannot write %s cache %s: %s", self.kind, self.cache_file, exc)


@runtime_checkable
class KeySource(Protocol):
    """Where a verifier gets its keys; ``JwksCache`` is the fetched-and-cached one."""

    def key_set(self, now: float) -> KeySet: ...

    def refresh_for_unknown_kid(self, kid: str, now: float) -> bool: ...


class JwksCache(DocumentSync[KeySet]):
    """A JWKS fetched from ``url`` and cached as its headers allow, with rate-limited unknown-kid refresh.

    ``required_algs``: a document holding no key of any of these algorithms is refused as unusable (keys are
    published before they sign, DESIGN.md §7, so an empty set is a publishing accident, not a rotation) and
    the last good set stays in use.
    """

    kind = "JWKS"

    def __init__(
        self,
        url: str,
        *,
        cache_file: str | os.PathLike[str] | None = None,
        session: requests.Session | None = None,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
        default_max_age: float = DEFAULT_MAX_AGE,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        unknown_kid_interval: float = DEFAULT_UNKNOWN_KID_INTERVAL,
        required_algs: Collection[Algorithm] = (),
    ) -> None:
        self.required_algs = frozenset(required_algs)
        super().__init__(
            url,
            cache_file=cache_file,
            session=session,
            timeout=timeout,
            default_max_age=default_max_age,
            retry_interval=retry_interval,
        )
        self.unknown_kid_interval = unknown_kid_interval
        self._last_unknown_kid_refresh = float("-inf")

    def _parse(self, document: Any) -> KeySet:
        key_set = KeySet.from_jwks(document)
        if self.required_algs and not any(key.alg in self.required_algs for key in key_set):
            raise InvalidKeyError(f"the JWKS holds no {' or '.join(sorted(self.required_algs))} key")
        return key_set

    def key_set(self, now: float) -> KeySet:
        """The current key set (refreshed first if stale); an empty set if none was ever obtained."""
        self.refresh_if_stale(now)
        return self._value if self._value is not None else KeySet()
