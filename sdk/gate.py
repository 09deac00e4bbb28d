"""The venue gate: offline and online verification of ESSC1 codes (DESIGN.md §5).

Offline, a gate holds three things it syncs while it can and keeps using while it cannot:

- the QR key set, a JWKS (RFC 7517) fetched with HTTP caching (RFC 9111 ``Cache-Control: max-age``, ``Age``)
  and conditional requests (RFC 9110 §13.1.2 ``ETag`` / ``If-None-Match`` → 304), persisted to a local file
  so a restarted gate without network still verifies (``KeySetSync``);
- the list of suspended e-card handles, same mechanics (``SuspendedHandlesSync``);
- a bounded replay cache of the codes it has accepted (``ReplayCache``). It is local: one-time use *across*
  gates needs the online API.

``GateVerifier.verify`` runs ``sdk.qr_token.verify_qr_token`` (envelope, key, signature, issuer, validity
with the stated clock skew), then suspension, then one-time use, and returns a frozen ``VerifiedScan`` or
raises ``QrTokenError`` with a reason from the fixed set.

Online, ``OnlineGateClient`` calls ``POST /api/v1/gate/verify`` with the venue's client credentials; the
contract (request, responses, authentication) is in docs/formats/essc1.md, "Online verification".

Time is a parameter everywhere (``now``); only the network is real.
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import json
import logging
import os
import tempfile
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Generic, Protocol, TypeVar, runtime_checkable
from urllib.parse import quote_plus

import requests

from sdk.errors import OneCardError
from sdk.keys import InvalidKeyError, KeySet
from sdk.qr_token import (
    DEFAULT_CLOCK_SKEW,
    Disclosures,
    QrTokenError,
    QrTokenReason,
    VerifiedQrToken,
    is_handle,
    parse_qr_kid,
    verify_qr_token,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE: Final = 300  # when the server sends no Cache-Control
MAX_MAX_AGE: Final = 86_400  # a typo'd max-age must not freeze a gate's keys for a year
DEFAULT_RETRY_INTERVAL: Final = 60  # between attempts while the server is unreachable
DEFAULT_UNKNOWN_KID_INTERVAL: Final = 60  # N: at most one unknown-kid refresh per N seconds
DEFAULT_HTTP_TIMEOUT: Final = 5.0
DEFAULT_REPLAY_CAPACITY: Final = 100_000


# --- results and errors ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedScan:
    """An accepted scan: the verified code and when it was scanned."""

    token: VerifiedQrToken
    scanned_at: float

    @property
    def handle(self) -> str:
        return self.token.handle

    @property
    def issuer(self) -> str:
        return self.token.issuer

    @property
    def disclosures(self) -> Disclosures:
        return self.token.disclosures

    @property
    def expires_in(self) -> int:
        """Whole seconds until the code's ``exp`` (0 if only the clock skew still admits it)."""
        return max(0, int(self.token.expires_at - self.scanned_at))


class GateServiceError(OneCardError):
    """The online verification service could not give a verdict (network, credentials, server)."""

    error = "gate_service_error"
    description = "The verification service is not available."
    status_code = 502

    def __init__(self, detail: str = "", *, http_status: int | None = None) -> None:
        super().__init__(detail)
        self.http_status = http_status


class GateAuthError(GateServiceError):
    """The venue's client credentials were refused (HTTP 401/403)."""

    error = "gate_unauthorized"
    description = "The gate's credentials were refused."


# --- replay cache ---------------------------------------------------------------------------------------


class ReplayCache:
    """The ``cti`` values of accepted codes, each kept until its code could no longer verify anyway.

    Bounded: an entry is dropped at its code's ``exp + clock_skew`` (after which the code is ``expired``), and
    if ``capacity`` is still reached the entry closest to that point goes first — it has the shortest replay
    window left. With 60 s codes, 100 000 entries means over 1 000 accepted scans per second at one gate.
    """

    def __init__(self, capacity: int = DEFAULT_REPLAY_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._keep_until: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._keep_until)

    def __contains__(self, cti: object) -> bool:
        return cti in self._keep_until

    def mark_used(self, cti: str, *, keep_until: float, now: float) -> bool:
        """Record ``cti`` as used; False if it already was (a replay). Atomic per cache."""
        with self._lock:
            self._purge(now)
            if cti in self._keep_until:
                return False
            while len(self._keep_until) >= self.capacity:
                _, oldest = heapq.heappop(self._heap)
                self._keep_until.pop(oldest, None)
            self._keep_until[cti] = keep_until
            heapq.heappush(self._heap, (keep_until, cti))
            return True

    def purge(self, now: float) -> None:
        with self._lock:
            self._purge(now)

    def _purge(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, cti = heapq.heappop(heap)
            self._keep_until.pop(cti, None)

    def to_json(self) -> dict[str, float]:
        with self._lock:
            return dict(self._keep_until)

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], *, now: float, capacity: int = DEFAULT_REPLAY_CAPACITY
    ) -> ReplayCache:
        """Restore a saved cache (a gate restarting within a code's lifetime must still refuse replays)."""
        cache = cls(capacity)
        for cti, keep_until in sorted(data.items(), key=lambda item: item[1]):
            if isinstance(cti, str) and isinstance(keep_until, int | float) and keep_until > now:
                cache.mark_used(cti, keep_until=float(keep_until), now=now)
        return cache


# --- synced documents -----------------------------------------------------------------------------------

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


class _DocumentSync(Generic[T]):
    """A JSON document fetched over HTTP with caching, kept in memory and in an optional cache file.

    The last good document is never thrown away because the server is unreachable or sends something
    unusable; only a newer good document replaces it.
    """

    kind = "document"
    max_bytes = 1 << 20

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

    def _parse(self, document: Any) -> T:
        raise NotImplementedError

    def _accept(self, new: T) -> bool:
        """Whether ``new`` may replace the current document (e.g. not older)."""
        return True

    # -- machinery

    def _fetch(self, now: float) -> bool:
        self._last_attempt_at = now
        headers = {"Accept": "application/json"}
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
    """Where a gate gets its QR keys; ``KeySetSync`` is the synced one."""

    def key_set(self, now: float) -> KeySet: ...

    def refresh_for_unknown_kid(self, kid: str, now: float) -> bool: ...


class KeySetSync(_DocumentSync[KeySet]):
    """The QR key set, synced from the issuer's JWKS URL (DESIGN.md §5 "Gate keys", §7)."""

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
    ) -> None:
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
        # Keys are published before they sign (§7), so an empty set is a publishing accident, not a rotation.
        if not any(key.alg == "EdDSA" for key in key_set):
            raise InvalidKeyError("the JWKS holds no EdDSA key")
        return key_set

    def key_set(self, now: float) -> KeySet:
        """The current key set (refreshed first if stale); an empty set if none was ever obtained."""
        self.refresh_if_stale(now)
        return self._value if self._value is not None else KeySet()

    def refresh_for_unknown_kid(self, kid: str, now: float) -> bool:
        """A code names a key we lack: refetch, at most once per ``unknown_kid_interval``; True if changed.

        The limit stops a stream of forged kids from turning every scan into a request to the server.
        """
        with self._lock:
            if now - self._last_unknown_kid_refresh < self.unknown_kid_interval:
                return False
            self._last_unknown_kid_refresh = now
            return self._fetch(now)


@dataclass(frozen=True, slots=True)
class SuspendedHandles:
    """The published list of suspended e-card handles."""

    handles: frozenset[str]
    generated_at: int


@runtime_checkable
class HandleSource(Protocol):
    def is_suspended(self, handle: str, now: float) -> bool: ...


def parse_suspended_handles(document: Any) -> SuspendedHandles:
    """``{"handles": [...], "generated_at": <POSIX seconds>}`` → ``SuspendedHandles``; strict."""
    if not isinstance(document, dict):
        raise ValueError("suspended-handles document is not an object")
    handles = document.get("handles")
    generated_at = document.get("generated_at")
    if not isinstance(handles, list) or not all(is_handle(handle) for handle in handles):
        raise ValueError("'handles' must be a list of e-card handles")
    if type(generated_at) is not int or generated_at < 0:
        raise ValueError("'generated_at' must be POSIX seconds")
    return SuspendedHandles(frozenset(handles), generated_at)


class SuspendedHandlesSync(_DocumentSync[SuspendedHandles]):
    """The suspended-handles list, synced like the key set; a list older than the one held is refused."""

    kind = "suspended-handles list"
    max_bytes = 64 << 20

    def _parse(self, document: Any) -> SuspendedHandles:
        return parse_suspended_handles(document)

    def _accept(self, new: SuspendedHandles) -> bool:
        # A stale cache or a replayed response must not un-suspend a card.
        return self._value is None or new.generated_at >= self._value.generated_at

    def is_suspended(self, handle: str, now: float) -> bool:
        self.refresh_if_stale(now)
        value = self._value
        return value is not None and handle in value.handles


# --- offline verifier -----------------------------------------------------------------------------------


class _StaticKeys:
    def __init__(self, keys: KeySet) -> None:
        self.keys = keys

    def key_set(self, now: float) -> KeySet:
        return self.keys

    def refresh_for_unknown_kid(self, kid: str, now: float) -> bool:
        return False


class _StaticHandles:
    def __init__(self, handles: Collection[str]) -> None:
        self.handles = frozenset(handles)

    def is_suspended(self, handle: str, now: float) -> bool:
        return handle in self.handles


class GateVerifier:
    """A venue scanner's offline verifier (DESIGN.md §5 "Offline verification").

    ``keys`` is a fixed ``KeySet`` or a ``KeySource`` such as ``KeySetSync``; ``revoked_handles`` a fixed
    collection or a ``HandleSource`` such as ``SuspendedHandlesSync``.
    """

    def __init__(
        self,
        keys: KeySet | KeySource,
        expected_issuers: Collection[str],
        *,
        clock_skew: int = DEFAULT_CLOCK_SKEW,
        replay_cache: ReplayCache | None = None,
        revoked_handles: Collection[str] | HandleSource | None = None,
    ) -> None:
        if isinstance(expected_issuers, str) or not expected_issuers:
            raise ValueError("a gate must accept a collection of at least one region code")
        if clock_skew < 0:
            raise ValueError("clock_skew must not be negative")
        self.keys: KeySource = _StaticKeys(keys) if isinstance(keys, KeySet) else keys
        self.expected_issuers = frozenset(expected_issuers)
        self.clock_skew = clock_skew
        self.replay_cache = replay_cache if replay_cache is not None else ReplayCache()
        if revoked_handles is None:
            revoked_handles = ()
        self.revoked_handles: HandleSource = (
            revoked_handles if isinstance(revoked_handles, HandleSource) else _StaticHandles(revoked_handles)
        )

    def verify(self, text: str, now: float) -> VerifiedScan:
        """Accept a scanned code once, or raise ``QrTokenError`` with the reason to show."""
        try:
            token = self._verify_token(text, self.keys.key_set(now), now)
        except QrTokenError as exc:
            if exc.reason is not QrTokenReason.UNKNOWN_KEY:
                raise
            # Perhaps the key was published after our last sync: one rate-limited refresh, one retry.
            if not self.keys.refresh_for_unknown_kid(_kid_of(text), now):
                raise
            token = self._verify_token(text, self.keys.key_set(now), now)
        if self.revoked_handles.is_suspended(token.handle, now):
            raise QrTokenError(QrTokenReason.REVOKED, "e-card handle is suspended")
        # Last, so a code refused for any other reason never uses up its one scan.
        if not self.replay_cache.mark_used(token.cti, keep_until=token.expires_at + self.clock_skew, now=now):
            raise QrTokenError(QrTokenReason.REPLAYED, "code already used at this gate")
        return VerifiedScan(token, now)

    def _verify_token(self, text: str, keys: KeySet, now: float) -> VerifiedQrToken:
        return verify_qr_token(
            text, keys=keys, expected_issuers=self.expected_issuers, now=now, clock_skew=self.clock_skew
        )


def _kid_of(text: str) -> str:
    try:
        return parse_qr_kid(text)
    except QrTokenError:
        return ""


# --- online client --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnlineVerifiedScan:
    """The server's verdict on an accepted code, with the claims the venue's policy allows."""

    handle: str
    issuer: str
    issued_at: int
    expires_at: int
    claims: Mapping[str, Any]
    scan_id: str

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_at - now))


class OnlineGateClient:
    """Client of ``POST /api/v1/gate/verify`` (contract: docs/formats/essc1.md, "Online verification").

    Authenticates with HTTP Basic client credentials, form-encoded first as RFC 6749 §2.3.1 requires.
    """

    VERIFY_PATH: Final = "/api/v1/gate/verify"

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session | None = None,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
    ) -> None:
        self.url = base_url.rstrip("/") + self.VERIFY_PATH
        credentials = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
        self._authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
        self._owns_session = session is None
        self.session = session or requests.Session()
        self.timeout = timeout

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def __repr__(self) -> str:
        return f"OnlineGateClient({self.url!r})"  # never the secret

    def verify(self, text: str, *, gate_id: str | None = None) -> OnlineVerifiedScan:
        """A pass verdict, or ``QrTokenError(reason)`` on reject, or ``GateServiceError`` (no verdict)."""
        body: dict[str, str] = {"code": text}
        if gate_id is not None:
            body["gate_id"] = gate_id
        try:
            response = self.session.post(
                self.url,
                json=body,
                headers={"Authorization": self._authorization, "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise GateServiceError(f"verification service unreachable: {type(exc).__name__}") from exc
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        if status in (401, 403):
            raise GateAuthError(f"credentials refused (HTTP {status})", http_status=status)
        if status != 200 or not isinstance(data, dict):
            error = data.get("error") if isinstance(data, dict) else None
            raise GateServiceError(f"HTTP {status} {error or ''}".strip(), http_status=status)
        return _parse_online_verdict(data)


def _parse_online_verdict(data: Mapping[str, Any]) -> OnlineVerifiedScan:
    verdict = data.get("verdict")
    if verdict == "reject":
        try:
            reason = QrTokenReason(str(data.get("reason")))
        except ValueError:
            raise GateServiceError(f"server sent an unknown reason {data.get('reason')!r}") from None
        raise QrTokenError(reason, "rejected by the verification service")
    if verdict != "pass":
        raise GateServiceError(f"server sent an unknown verdict {verdict!r}")
    handle, issuer = data.get("handle"), data.get("issuer")
    issued_at, expires_at = data.get("issued_at"), data.get("expires_at")
    claims, scan_id = data.get("claims", {}), data.get("scan_id")
    if not (
        isinstance(handle, str)
        and isinstance(issuer, str)
        and type(issued_at) is int
        and type(expires_at) is int
        and isinstance(claims, dict)
        and isinstance(scan_id, str)
    ):
        raise GateServiceError("server sent a malformed pass verdict")
    return OnlineVerifiedScan(handle, issuer, issued_at, expires_at, MappingProxyType(claims), scan_id)
