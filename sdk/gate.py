"""The venue gate: offline and online verification of ESSC1 codes (DESIGN.md §5).

Offline, a gate holds three things it syncs while it can and keeps using while it cannot:

- the QR key set, a JWKS (RFC 7517) fetched with HTTP caching (RFC 9111 ``Cache-Control: max-age``, ``Age``)
  and conditional requests (RFC 9110 §13.1.2 ``ETag`` / ``If-None-Match`` → 304), persisted to a local file
  so a restarted gate without network still verifies (``KeySetSync``);
- the list of suspended e-card handles, same mechanics, fetched with the venue's credentials
  (``SuspendedHandlesSync``). It is only as good as its last confirmation by the server: with no list, or one
  older than ``max_list_age`` (default ``DEFAULT_MAX_LIST_AGE``), the gate cannot tell a suspended e-card
  from a valid one and refuses every code as ``revocation_list_stale`` — it fails closed;
- a bounded replay cache of the codes it has accepted (``ReplayCache``). It is local: one-time use *across*
  gates needs the online API.

``GateVerifier.verify`` runs ``sdk.qr_token.verify_qr_token`` (envelope, key, signature, issuer, validity
with the stated clock skew), then suspension, then one-time use, and returns a frozen ``VerifiedScan`` or
raises ``QrTokenError`` with a reason from the fixed set.

Across regions (docs/formats/essc1.md §6a): a gate may also hold its server's document of the other regions
the federation trusts — each region's QR key set and suspended list, as its server last synced them
(``RegionsSync``, ``GET /api/v1/gate/regions``). A code whose key the gate's own set lacks and whose region
is not the gate's own is then verified with the keys of the trusted region that is home for its ``iss``,
refused if its handle is in that region's list (``revocation_list_stale`` once that list is older than
``max_list_age``), and ``untrusted_region`` when no trusted region is home for it. The replay cache is the
same; ``VerifiedScan.issuing_region`` names the region.

Online, ``OnlineGateClient`` calls ``POST /api/v1/gate/verify`` with the venue's client credentials; the
contract (request, responses, authentication) is in docs/formats/essc1.md §7, the list in §6.

Time is a parameter everywhere (``now``); only the network is real.
"""

from __future__ import annotations

import base64
import heapq
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar, runtime_checkable
from urllib.parse import quote_plus

import requests

from sdk.errors import OneCardError
from sdk.jwks_cache import (
    DEFAULT_HTTP_TIMEOUT,
    DEFAULT_UNKNOWN_KID_INTERVAL,
    DocumentSync,
    JwksCache,
    KeySource,
)
from sdk.jwks_cache import MAX_MAX_AGE as MAX_MAX_AGE  # re-exported: gate users and tests import them here
from sdk.jwks_cache import parse_max_age as parse_max_age
from sdk.keys import Algorithm, KeySet
from sdk.qr_token import (
    DEFAULT_CLOCK_SKEW,
    Disclosures,
    QrTokenError,
    QrTokenReason,
    VerifiedQrToken,
    is_handle,
    is_region_code,
    parse_qr_kid,
    parse_qr_token,
    verify_qr_token,
)

DEFAULT_REPLAY_CAPACITY: Final = 100_000
# How old the suspended-handles list may be before an offline gate refuses every code. A card reported lost
# still passes at a gate that cannot sync for up to this long; a gate offline for longer stops admitting
# anyone. The server's list has max-age 60 s, so a connected gate is never near it.
DEFAULT_MAX_LIST_AGE: Final = 3600
_QR_ALGS: Final[tuple[Algorithm, ...]] = ("EdDSA",)
# Reasons a gate finds in its own state; the online API never sends them (a server that did is broken).
_GATE_LOCAL_REASONS: Final = frozenset({QrTokenReason.REVOCATION_LIST_STALE})


# --- results and errors ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuingRegion:
    """The region whose OneCard issued a code of another region: its federation entity id and name."""

    entity_id: str
    name: str


@dataclass(frozen=True, slots=True)
class VerifiedScan:
    """An accepted scan: the verified code and when it was scanned; ``issuing_region`` is None for a code
    of the gate's own issuer, else the trusted region that issued it."""

    token: VerifiedQrToken
    scanned_at: float
    issuing_region: IssuingRegion | None = None

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


@dataclass(frozen=True, slots=True)
class VenueCredentials:
    """A venue's client credentials, for the verify API and the suspended-handles list."""

    client_id: str
    client_secret: str = field(repr=False)  # a repr ends up in logs

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError("venue credentials need a client id and a client secret")

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header: HTTP Basic, each part form-encoded first (RFC 6749 §2.3.1)."""
        credentials = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}".encode()
        return "Basic " + base64.b64encode(credentials).decode("ascii")


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
            if self._heap and self._heap[0][0] <= now:  # the test first: nothing expires on most scans
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


class KeySetSync(JwksCache):
    """The QR key set, synced from the issuer's JWKS URL (DESIGN.md §5 "Gate keys", §7); EdDSA keys only.

    The fetching, caching and unknown-kid logic is ``sdk.jwks_cache.JwksCache``, shared with ``sdk.portal``.
    """

    def __init__(self, url: str, **options: Any) -> None:
        """``options`` are ``JwksCache``'s (cache_file, session, timeout, intervals); EdDSA is fixed."""
        super().__init__(url, required_algs=_QR_ALGS, **options)


@dataclass(frozen=True, slots=True)
class SuspendedHandles:
    """The published list of suspended e-card handles."""

    handles: frozenset[str]
    generated_at: int


@runtime_checkable
class HandleSource(Protocol):
    """Whether an e-card is suspended; raises ``QrTokenError(REVOCATION_LIST_STALE)`` when it cannot tell."""

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


def _validate_max_list_age(max_list_age: float) -> float:
    if not max_list_age >= 0:  # also refuses NaN
        raise ValueError("max_list_age must not be negative")
    return max_list_age


def _refuse_unless_fresh(age: float | None, max_list_age: float, why_missing: str | None) -> None:
    """The one staleness rule for every list a gate holds (fetched or read from a file)."""
    if age is None:
        why = why_missing or "never fetched"
        raise QrTokenError(QrTokenReason.REVOCATION_LIST_STALE, f"no suspended-handles list: {why}")
    if age > max_list_age:
        raise QrTokenError(
            QrTokenReason.REVOCATION_LIST_STALE,
            f"suspended-handles list is {age:.0f} s old, more than {max_list_age:.0f} s"
            + (f" ({why_missing})" if why_missing else ""),
        )


class _Dated(Protocol):
    @property
    def generated_at(self) -> int: ...


D = TypeVar("D", bound=_Dated)


class VenueDocumentSync(DocumentSync[D]):
    """A venue-authenticated document of the gate's server (the suspended list, the regions document): the
    venue's ``credentials`` sent with every fetch, ``max_list_age`` the age past which the gate fails
    closed, and a document older than the one held refused — a stale cache or a replayed answer must not
    un-suspend a card or bring back a removed region. Other ``options`` are ``DocumentSync``'s."""

    def __init__(
        self,
        url: str,
        *,
        credentials: VenueCredentials | None = None,
        max_list_age: float = DEFAULT_MAX_LIST_AGE,
        **options: Any,
    ) -> None:
        self.credentials = credentials
        self.max_list_age = _validate_max_list_age(max_list_age)
        super().__init__(url, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"  # never the credentials

    def _accept(self, new: D) -> bool:
        return self._value is None or new.generated_at >= self._value.generated_at

    def _request_headers(self) -> dict[str, str]:
        return {"Authorization": self.credentials.authorization} if self.credentials else {}


class SuspendedHandlesSync(VenueDocumentSync[SuspendedHandles]):
    """The suspended-handles list, synced like the key set; a list older than the one held is refused.

    ``credentials``: the venue's, sent with every fetch (the server requires them, essc1.md §6).
    ``is_suspended`` refuses as ``revocation_list_stale`` when there is no list or the server last confirmed
    it (200 or 304) more than ``max_list_age`` seconds ago. Other ``options`` are ``DocumentSync``'s.
    """

    kind = "suspended-handles list"
    max_bytes = 64 << 20

    def _parse(self, document: Any) -> SuspendedHandles:
        return parse_suspended_handles(document)

    def list_age(self, now: float) -> float | None:
        """Seconds since the server last confirmed the held list; None when there is none."""
        fetched_at = self.fetched_at
        if self._value is None or fetched_at is None:
            return None
        return max(0.0, now - fetched_at)

    def is_suspended(self, handle: str, now: float) -> bool:
        self.refresh_if_stale(now)
        value = self._value
        _refuse_unless_fresh(self.list_age(now), self.max_list_age, self.last_error)
        return value is not None and handle in value.handles


class SuspendedHandlesSnapshot:
    """A suspended-handles list handed to the gate as a document (e.g. a file synced by other means).

    Its age is measured from the server's ``generated_at``; past ``max_list_age`` every code is refused as
    ``revocation_list_stale``, as with ``SuspendedHandlesSync``.
    """

    def __init__(self, value: SuspendedHandles, *, max_list_age: float = DEFAULT_MAX_LIST_AGE) -> None:
        self.value = value
        self.max_list_age = _validate_max_list_age(max_list_age)

    def is_suspended(self, handle: str, now: float) -> bool:
        _refuse_unless_fresh(max(0.0, now - self.value.generated_at), self.max_list_age, None)
        return handle in self.value.handles


# --- other regions --------------------------------------------------------------------------------------


class _AnyRegion(Collection[str]):
    """Every region code: the code's own region was already chosen by the caller (or no policy applies)."""

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


_ANY_REGION: Final = _AnyRegion()


class _HasRegionCodes(Protocol):
    @property
    def region_codes(self) -> tuple[str, ...]: ...


R = TypeVar("R", bound=_HasRegionCodes)


def _within(code: str, own: str, digits: int) -> bool:
    """``code`` falls under ``own`` at ``digits`` precision: an own code ending in zeros beyond it is a
    whole prefecture (``4201xx`` under ``420100``) or province (``42xxxx`` under ``420000``)."""
    if digits == 6:
        return code == own
    return own[digits:] == "0" * (6 - digits) and code[:digits] == own[:digits]


def home_region_for(code: str, regions: Iterable[R]) -> R | None:
    """The region home for a card's region code: an exact code first, then the region whose code is the
    same prefecture (4 digits), then province (2 digits) — the rule of the federation's region directory
    (a city platform is home for its districts)."""
    candidates = list(regions)
    for digits in (6, 4, 2):
        for region in candidates:
            if any(_within(code, own, digits) for own in region.region_codes):
                return region
    return None


@dataclass(frozen=True, slots=True)
class _OwnRegion:
    region_codes: tuple[str, ...]


def is_own_code(code: str, own: Iterable[str], regions: Iterable[_HasRegionCodes]) -> bool:
    """Whether ``code`` is home in ``own`` by the same rule, ``own`` competing with ``regions`` (and winning a
    tie): a province's trusted region is never home for its city's districts when the city is ``own``, and a
    city's district stays the city's at the province's gate."""
    mine = _OwnRegion(tuple(own))
    return home_region_for(code, [mine, *regions]) is mine


@dataclass(frozen=True, slots=True)
class TrustedRegion:
    """Another region as the gate's server last synced it: its keys and suspended list."""

    entity_id: str
    name: str
    region_codes: tuple[str, ...]
    keys: KeySet
    suspended: frozenset[str]
    suspended_updated_at: int  # when the server last had the list confirmed by the region (POSIX s)

    @property
    def issuing_region(self) -> IssuingRegion:
        return IssuingRegion(self.entity_id, self.name)


@dataclass(frozen=True, slots=True)
class TrustedRegions:
    """``GET /api/v1/gate/regions``: every region the federation trusts, as the server last synced it."""

    regions: tuple[TrustedRegion, ...]
    generated_at: int
    # The serving deployment's own region codes: a gate configured for some of them (one district) still
    # lets no trusted region vouch for the rest of its deployment's region.
    home_region_codes: tuple[str, ...] = ()

    def home_for(self, code: str) -> TrustedRegion | None:
        return home_region_for(code, self.regions)


def _posix(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name!r} must be POSIX seconds")
    return value


def _parse_region(entry: Any) -> TrustedRegion:
    if not isinstance(entry, dict):
        raise ValueError("a region is not an object")
    entity_id, name, codes = entry.get("entity_id"), entry.get("name"), entry.get("region_codes")
    if not isinstance(entity_id, str) or not entity_id or not isinstance(name, str):
        raise ValueError("a region needs an entity_id and a name")
    if not isinstance(codes, list) or not codes or not all(is_region_code(c) for c in codes):
        raise ValueError(f"region {entity_id}: 'region_codes' must be 6-digit region codes")
    jwks = entry.get("qr_jwks")
    if not isinstance(jwks, dict):
        raise ValueError(f"region {entity_id}: 'qr_jwks' is not a JWKS")
    keys = KeySet.from_jwks(jwks)
    suspended = entry.get("suspended_handles")
    if not isinstance(suspended, dict):
        raise ValueError(f"region {entity_id}: 'suspended_handles' is not an object")
    handles = suspended.get("handles")
    if not isinstance(handles, list) or not all(is_handle(h) for h in handles):
        raise ValueError(f"region {entity_id}: 'handles' must be a list of e-card handles")
    updated_at = _posix(suspended.get("updated_at"), "updated_at")
    return TrustedRegion(entity_id, name, tuple(codes), keys, frozenset(handles), updated_at)


def parse_trusted_regions(document: Any) -> TrustedRegions:
    """The regions document (docs/formats/essc1.md §6a) → ``TrustedRegions``; strict."""
    if not isinstance(document, dict):
        raise ValueError("regions document is not an object")
    entries = document.get("regions")
    if not isinstance(entries, list):
        raise ValueError("'regions' must be a list")
    generated_at = _posix(document.get("generated_at"), "generated_at")
    home = document.get("home_region_codes", [])
    if not isinstance(home, list) or not all(is_region_code(c) for c in home):
        raise ValueError("'home_region_codes' must be a list of 6-digit region codes")
    return TrustedRegions(tuple(_parse_region(entry) for entry in entries), generated_at, tuple(home))


@runtime_checkable
class RegionSource(Protocol):
    """Where a gate gets the other regions: ``RegionsSync``, or a fixed document (``TrustedRegions``)."""

    max_list_age: float

    def trusted_regions(self, now: float) -> TrustedRegions | None: ...

    def refresh_for_unknown_kid(self, kid: str, now: float) -> bool: ...


class _StaticRegions:
    def __init__(self, value: TrustedRegions, max_list_age: float) -> None:
        self.value = value
        self.max_list_age = _validate_max_list_age(max_list_age)

    def trusted_regions(self, now: float) -> TrustedRegions | None:
        return self.value

    def refresh_for_unknown_kid(self, kid: str, now: float) -> bool:
        return False


class RegionsSync(VenueDocumentSync[TrustedRegions]):
    """``GET /api/v1/gate/regions``, synced like the suspended list: the venue's credentials, HTTP caching,
    a cache file, an older document refused, and a rate-limited refetch when a code names a key no region
    holds (a region's new key, published after the last sync).

    A region's list is as old as its ``updated_at`` says (when the server last had it confirmed by its home
    region); past ``max_list_age`` the gate refuses that region's codes as ``revocation_list_stale``.
    """

    kind = "regions document"
    max_bytes = 64 << 20

    def __init__(
        self,
        url: str,
        *,
        credentials: VenueCredentials | None = None,
        max_list_age: float = DEFAULT_MAX_LIST_AGE,
        unknown_kid_interval: float = DEFAULT_UNKNOWN_KID_INTERVAL,
        **options: Any,
    ) -> None:
        self.unknown_kid_interval = unknown_kid_interval
        super().__init__(url, credentials=credentials, max_list_age=max_list_age, **options)

    def _parse(self, document: Any) -> TrustedRegions:
        return parse_trusted_regions(document)

    def trusted_regions(self, now: float) -> TrustedRegions | None:
        self.refresh_if_stale(now)
        return self._value


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
    collection (the caller vouches for it) or a ``HandleSource`` such as ``SuspendedHandlesSync``, which
    refuses every code once its list is stale.

    ``regions``: the other regions the gate accepts codes of — a ``RegionSource`` such as ``RegionsSync``,
    or a fixed ``TrustedRegions`` (judged by each region's ``updated_at`` against ``max_list_age``); None
    (the default) accepts only codes of ``keys``, exactly as before. ``accepted_regions``: the venue's
    policy, when the gate is configured with it — a code of any other region (own or trusted) is
    ``wrong_issuer``.
    """

    def __init__(
        self,
        keys: KeySet | KeySource,
        expected_issuers: Collection[str],
        *,
        clock_skew: int = DEFAULT_CLOCK_SKEW,
        replay_cache: ReplayCache | None = None,
        revoked_handles: Collection[str] | HandleSource | None = None,
        regions: RegionSource | TrustedRegions | None = None,
        accepted_regions: Collection[str] | None = None,
        max_list_age: float = DEFAULT_MAX_LIST_AGE,
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
        self.regions: RegionSource | None = (
            _StaticRegions(regions, max_list_age) if isinstance(regions, TrustedRegions) else regions
        )
        if isinstance(accepted_regions, str):
            raise TypeError("accepted_regions must be a collection of region codes, not one string")
        self.accepted_regions: Collection[str] = (
            _ANY_REGION if accepted_regions is None else frozenset(accepted_regions)
        )

    def verify(self, text: str, now: float) -> VerifiedScan:
        """Accept a scanned code once, or raise ``QrTokenError`` with the reason to show."""
        try:
            # _verify_token inlined: this is the gate's hot path, and every call costs next to Ed25519's.
            token = verify_qr_token(
                text,
                keys=self.keys.key_set(now),
                expected_issuers=self.expected_issuers,
                now=now,
                clock_skew=self.clock_skew,
            )
        except QrTokenError as exc:
            if exc.reason is not QrTokenReason.UNKNOWN_KEY:
                raise
            foreign = self._foreign_issuer(text)
            if foreign is not None and self.regions is not None:
                return self._verify_foreign(text, foreign, self.regions, now)
            # Perhaps the key was published after our last sync: one rate-limited refresh, one retry.
            if not self.keys.refresh_for_unknown_kid(_kid_of(text), now):
                raise
            token = self._verify_token(text, self.keys.key_set(now), now)
        # _ANY_REGION holds every issuer (a str): skip its Python-level __contains__ on the hot path.
        if self.accepted_regions is not _ANY_REGION and token.issuer not in self.accepted_regions:
            raise QrTokenError(QrTokenReason.WRONG_ISSUER, f"issuer {token.issuer} not accepted here")
        if self.revoked_handles.is_suspended(token.handle, now):
            raise QrTokenError(QrTokenReason.REVOKED, "e-card handle is suspended")
        self._use_once(token, now)
        return VerifiedScan(token, now)

    def _use_once(self, token: VerifiedQrToken, now: float) -> None:
        # Last, so a code refused for any other reason never uses up its one scan.
        if not self.replay_cache.mark_used(token.cti, keep_until=token.expires_at + self.clock_skew, now=now):
            raise QrTokenError(QrTokenReason.REPLAYED, "code already used at this gate")

    def _foreign_issuer(self, text: str) -> str | None:
        """The region code of a code our keys do not know, when it is not one of ours: read from the claims
        *unverified*, only to choose whose keys to verify with (or to name the refusal)."""
        if self.regions is None:
            return None
        try:
            issuer = parse_qr_token(text).issuer
        except QrTokenError:
            return None  # malformed claims: the key lookup's unknown_key stands
        return None if issuer in self.expected_issuers else issuer

    def _verify_foreign(self, text: str, issuer: str, source: RegionSource, now: float) -> VerifiedScan:
        document = source.trusted_regions(now)
        if document is None:
            raise QrTokenError(QrTokenReason.REVOCATION_LIST_STALE, "no regions document: never fetched")
        region = self._home_region(document, issuer)
        try:
            token = self._verify_token(text, region.keys, now, expected_issuers=_ANY_REGION)
        except QrTokenError as exc:
            # Perhaps the region's new key, synced by the server after our last fetch: one refresh, one retry.
            if exc.reason is not QrTokenReason.UNKNOWN_KEY or not source.refresh_for_unknown_kid(
                _kid_of(text), now
            ):
                raise
            refreshed = source.trusted_regions(now)
            if refreshed is None:
                raise
            region = self._home_region(refreshed, issuer)
            token = self._verify_token(text, region.keys, now, expected_issuers=_ANY_REGION)
        if token.issuer not in self.accepted_regions:
            raise QrTokenError(QrTokenReason.WRONG_ISSUER, f"issuer {token.issuer} not accepted here")
        _refuse_unless_fresh(max(0.0, now - region.suspended_updated_at), source.max_list_age, None)
        if token.handle in region.suspended:
            raise QrTokenError(QrTokenReason.REVOKED, "e-card handle is suspended in its region")
        self._use_once(token, now)
        return VerifiedScan(token, now, region.issuing_region)

    def _home_region(self, document: TrustedRegions, issuer: str) -> TrustedRegion:
        if is_own_code(issuer, (*self.expected_issuers, *document.home_region_codes), document.regions):
            # Our own region's code (a district under our city or province code): no other region's key
            # may vouch for it, however the others' region codes read.
            raise QrTokenError(QrTokenReason.UNKNOWN_KEY, f"{issuer} is this gate's region; key unknown")
        region = document.home_for(issuer)
        if region is None:
            raise QrTokenError(QrTokenReason.UNTRUSTED_REGION, f"no trusted region is home for {issuer}")
        return region

    def _verify_token(
        self, text: str, keys: KeySet, now: float, *, expected_issuers: Collection[str] | None = None
    ) -> VerifiedQrToken:
        return verify_qr_token(
            text,
            keys=keys,
            expected_issuers=self.expected_issuers if expected_issuers is None else expected_issuers,
            now=now,
            clock_skew=self.clock_skew,
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
    issuing_region: IssuingRegion | None = None  # set for a code of another region the server trusts

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
        self._authorization = VenueCredentials(client_id, client_secret).authorization
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
            reason = None
        if reason is None or reason in _GATE_LOCAL_REASONS:
            raise GateServiceError(f"server sent an unknown reason {data.get('reason')!r}")
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
    region = data.get("issuing_region")
    issuing_region: IssuingRegion | None = None
    if region is not None:
        entity_id = region.get("entity_id") if isinstance(region, dict) else None
        name = region.get("name") if isinstance(region, dict) else None
        if not isinstance(entity_id, str) or not isinstance(name, str):
            raise GateServiceError("server sent a malformed issuing_region")
        issuing_region = IssuingRegion(entity_id, name)
    return OnlineVerifiedScan(
        handle, issuer, issued_at, expires_at, MappingProxyType(claims), scan_id, issuing_region
    )
