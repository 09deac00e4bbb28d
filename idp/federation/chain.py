"""Trust chains (OpenID Federation 1.0 §4, resolved as §10 describes): from a leaf's entity configuration,
up its ``authority_hints``, to a trust anchor this deployment is configured with.

Each step checks signatures (§10.2): an entity configuration by its own keys, a subordinate statement by
its issuer's keys, and the subject's entity configuration again by the keys its superior vouches for in
that statement — so a deployment that publishes a key its superior does not list cannot take part. The
trust anchor's keys are the configured ones, never those in its own entity configuration. The chain then
holds until its earliest ``exp`` (§4.3), the ``max_path_length`` and ``allowed_entity_types`` constraints
(§6.2) hold, the metadata policies are merged and applied (``idp.federation.policy``), and the leaf's trust
marks are checked against the anchor's ``trust_mark_issuers`` (§7.3); a mark that fails is left out.

Statements are fetched through a ``Fetcher`` (a URL in, the body out, ``EntityUnreachableError`` for any
failure): ``http_fetcher`` in a server, a test client's in tests. Resolved chains are cached by
(subject, anchor) until the chain's expiry or ``cache_seconds``, whichever is first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import requests

from idp.federation import ENTITY_CONFIGURATION_PATH
from idp.federation.errors import (
    EntityUnreachableError,
    InvalidMetadataError,
    InvalidTrustChainError,
    InvalidTrustMarkError,
    MalformedStatementError,
    NoPathToAnchorError,
    PathTooLongError,
    TrustChainLoopError,
    UnknownTrustAnchorError,
)
from idp.federation.policy import resolve_metadata
from idp.federation.statements import (
    ENTITY_STATEMENT_CONTENT_TYPE,
    FEDERATION_ENTITY,
    MAX_STATEMENT_BYTES,
    EntityStatement,
    parse_entity_statement,
    verify_entity_statement,
    verify_signature,
)
from idp.federation.transport import Destinations
from idp.federation.trust_marks import TrustMark, verify_trust_mark
from sdk.keys import KeySet

Fetcher = Callable[[str], bytes]
# The trust anchors as of ``now``: configured ones are fixed, an anchor's own keys follow its key lifecycle.
AnchorSource = Callable[[float], Mapping[str, "TrustAnchor"]]
# Entities on a path below the anchor, the leaf included, the resolver follows at most, whatever the
# constraints say (so at most four intermediates): a bound on the work one resolution may cost. A
# province's districts are three entities below it.
MAX_DEPTH: Final = 5
FETCH_TIMEOUT: Final = 5.0
log = logging.getLogger(__name__)


def entity_configuration_url(entity_id: str) -> str:
    """Where an entity publishes its configuration (§9): its id with the well-known path appended."""
    return entity_id.rstrip("/") + ENTITY_CONFIGURATION_PATH


def http_fetcher(
    destinations: Destinations, *, timeout: float = FETCH_TIMEOUT, max_bytes: int = MAX_STATEMENT_BYTES
) -> Fetcher:
    """Fetch over HTTP with ``requests``: only what ``destinations`` allows (https in production; no
    address of this deployment's own network: idp.federation.transport), no redirects (a statement is at
    the URL the spec names, §9), a timeout, and at most ``max_bytes`` read."""

    def fetch(url: str) -> bytes:
        destinations.check(url)
        try:
            with (
                destinations.session() as http,
                http.get(
                    url,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                    headers={"Accept": ENTITY_STATEMENT_CONTENT_TYPE},
                ) as response,
            ):
                if response.status_code != 200:
                    raise EntityUnreachableError(f"{url}: HTTP {response.status_code}")
                body: bytes = response.raw.read(max_bytes + 1, decode_content=True)
        except requests.RequestException as exc:
            raise EntityUnreachableError(f"{url}: {type(exc).__name__}") from exc
        if len(body) > max_bytes:
            raise EntityUnreachableError(f"{url}: more than {max_bytes} bytes")
        return body

    return fetch


@dataclass(frozen=True)
class TrustAnchor:
    """A trust anchor as this deployment is configured with it: its entity id and its federation keys."""

    entity_id: str
    keys: KeySet


@dataclass(frozen=True)
class TrustChain:
    """A verified chain: ``statements`` run from the subject's entity configuration through the subordinate
    statements to the anchor's entity configuration (§4.1), as a resolve response lists them."""

    subject: str
    anchor: str
    statements: tuple[EntityStatement, ...]
    expires_at: int
    metadata: Mapping[str, Any]
    trust_marks: tuple[TrustMark, ...] = ()
    rejected_trust_marks: tuple[tuple[str, str], ...] = ()  # (type, error class name), for logs and tests

    @property
    def path(self) -> tuple[str, ...]:
        """Entity ids from the subject up to the anchor: the subject, then each statement's issuer."""
        return (self.subject, *(statement.issuer for statement in self.statements[1:-1]))

    @property
    def subject_keys(self) -> KeySet:
        """The subject's federation keys as its immediate superior vouches for them."""
        return self.statements[1].jwks if len(self.statements) > 1 else self.statements[0].jwks

    def has_trust_mark(self, trust_mark_type: str) -> bool:
        return any(mark.trust_mark_type == trust_mark_type for mark in self.trust_marks)


def fixed_anchors(*anchors: TrustAnchor) -> AnchorSource:
    by_id = {anchor.entity_id: anchor for anchor in anchors}
    return lambda _now: by_id


@dataclass
class _Cached:
    chain: TrustChain
    valid_until: float


@dataclass
class ChainResolver:
    """Resolve and cache trust chains to the configured anchors."""

    fetch: Fetcher
    anchors: AnchorSource
    cache_seconds: float = 3600.0
    max_depth: int = MAX_DEPTH
    _cache: dict[tuple[str, str], _Cached] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def clear(self) -> None:
        """Forget every resolved chain (after an anchor's keys or a subordinate changed)."""
        with self._lock:
            self._cache.clear()

    def anchor(self, entity_id: str, *, now: float) -> TrustAnchor:
        anchor = self.anchors(now).get(entity_id)
        if anchor is None:
            raise UnknownTrustAnchorError(f"{entity_id} is not a configured trust anchor")
        return anchor

    def resolve(self, subject: str, anchor_id: str, *, now: float, fresh: bool = False) -> TrustChain:
        """The verified chain from ``subject`` to ``anchor_id``; raises an ``InvalidTrustChainError`` or an
        ``InvalidMetadataError`` subclass saying why there is none. ``fresh``: resolved again even if cached
        (the region directory's periodic rebuild, so a removed region is dropped at the next one)."""
        anchor = self.anchor(anchor_id, now=now)
        key = (subject, anchor_id)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now < cached.valid_until and not fresh:
            return cached.chain
        try:
            chain = self._build(subject, anchor, now=now, with_trust_marks=True)
        except Exception:
            with self._lock:
                self._cache.pop(key, None)  # what failed now is not trusted from an older resolution
            raise
        with self._lock:
            self._cache[key] = _Cached(chain, min(chain.expires_at, now + self.cache_seconds))
        return chain

    def resolve_any(self, subject: str, *, now: float, fresh: bool = False) -> TrustChain:
        """The chain from ``subject`` to the first configured anchor that one leads to; the first anchor's
        failure if none does."""
        anchors = list(self.anchors(now))
        if not anchors:
            raise UnknownTrustAnchorError("no trust anchor is configured")
        first: Exception | None = None
        for anchor_id in anchors:
            try:
                return self.resolve(subject, anchor_id, now=now, fresh=fresh)
            except (InvalidTrustChainError, InvalidMetadataError) as exc:
                first = first or exc
        assert first is not None
        raise first

    # Building a chain ----------------------------------------------------------------------------------

    def _configuration(self, entity_id: str, *, keys: KeySet | None, now: float) -> EntityStatement:
        """An entity configuration, signed by ``keys`` (the anchor's configured keys) or by its own."""
        statement = parse_entity_statement(self.fetch(entity_configuration_url(entity_id)))
        return verify_entity_statement(
            statement,
            keys=keys if keys is not None else statement.jwks,
            now=now,
            expected_issuer=entity_id,
            expected_subject=entity_id,
        )

    def _subordinate_statement(
        self, superior: EntityStatement, subject: str, *, keys: KeySet, now: float
    ) -> EntityStatement:
        endpoint = superior.federation_endpoint("federation_fetch_endpoint")
        if endpoint is None:
            raise EntityUnreachableError(f"{superior.subject} publishes no federation_fetch_endpoint")
        separator = "&" if "?" in endpoint else "?"
        statement = parse_entity_statement(self.fetch(f"{endpoint}{separator}sub={quote(subject, safe='')}"))
        return verify_entity_statement(
            statement, keys=keys, now=now, expected_issuer=superior.subject, expected_subject=subject
        )

    def _walk(
        self, current: EntityStatement, anchor: TrustAnchor, path: tuple[str, ...], *, now: float
    ) -> list[EntityStatement]:
        """Subordinate statements from ``current`` up to the anchor, and the anchor's configuration."""
        if len(path) > self.max_depth:
            raise PathTooLongError(f"more than {self.max_depth} entities between {path[0]} and the anchor")
        failures: list[InvalidTrustChainError] = []
        for hint in current.authority_hints:
            if hint in path:
                failures.append(TrustChainLoopError(f"{hint} is already on the path {list(path)}"))
                continue
            try:
                is_anchor = hint == anchor.entity_id
                superior = self._configuration(hint, keys=anchor.keys if is_anchor else None, now=now)
                statement = self._subordinate_statement(
                    superior, current.subject, keys=anchor.keys if is_anchor else superior.jwks, now=now
                )
                # The subject's configuration must be signed by a key its superior vouches for (§10.2).
                verify_signature(current.token, kid=current.kid, keys=statement.jwks)
                if is_anchor:
                    return [statement, superior]
                return [statement, *self._walk(superior, anchor, (*path, hint), now=now)]
            except InvalidTrustChainError as exc:
                failures.append(exc)
        specific = [f for f in failures if not isinstance(f, NoPathToAnchorError)]
        if specific:
            raise specific[0]
        if failures:
            raise failures[0]
        raise NoPathToAnchorError(f"{current.subject} names no authority leading to {anchor.entity_id}")

    def _build(self, subject: str, anchor: TrustAnchor, *, now: float, with_trust_marks: bool) -> TrustChain:
        if subject == anchor.entity_id:
            statements = [self._configuration(subject, keys=anchor.keys, now=now)]
        else:
            leaf = self._configuration(subject, keys=None, now=now)
            statements = [leaf, *self._walk(leaf, anchor, (subject,), now=now)]
        subordinate_statements = statements[1:-1]
        _check_constraints(subordinate_statements)
        leaf_metadata = dict(statements[0].metadata)
        for statement in subordinate_statements:
            allowed = statement.constraints.get("allowed_entity_types")
            if isinstance(allowed, list):
                # §6.2.3: entity types a superior does not allow are dropped from the leaf's metadata.
                leaf_metadata = {
                    t: v for t, v in leaf_metadata.items() if t in allowed or t == FEDERATION_ENTITY
                }
        metadata = resolve_metadata(
            leaf_metadata,
            policies_top_down=[s.metadata_policy for s in reversed(subordinate_statements)],
            superior_metadata=subordinate_statements[0].metadata if subordinate_statements else None,
            crit=[name for s in subordinate_statements for name in s.metadata_policy_crit],
        )
        chain = TrustChain(
            subject=subject,
            anchor=anchor.entity_id,
            statements=tuple(statements),
            expires_at=min(s.expires_at for s in statements),
            metadata=metadata,
        )
        if not with_trust_marks:
            return chain
        marks, rejected = self._trust_marks(chain, anchor, now=now)
        return TrustChain(
            chain.subject,
            chain.anchor,
            chain.statements,
            chain.expires_at,
            chain.metadata,
            tuple(marks),
            tuple(rejected),
        )

    def _trust_marks(
        self, chain: TrustChain, anchor: TrustAnchor, *, now: float
    ) -> tuple[list[TrustMark], list[tuple[str, str]]]:
        anchor_configuration = chain.statements[-1]

        def issuer_keys(issuer: str) -> KeySet:
            if issuer == anchor.entity_id:
                return anchor.keys
            # Another issuer's keys count only through its own chain to the same anchor (§7.3).
            return self._build(issuer, anchor, now=now, with_trust_marks=False).subject_keys

        marks: list[TrustMark] = []
        rejected: list[tuple[str, str]] = []
        for entry in chain.statements[0].trust_marks:
            declared = entry.get("trust_mark_type")
            try:
                mark = verify_trust_mark(
                    entry.get("trust_mark"),
                    expected_subject=chain.subject,
                    trust_mark_issuers=anchor_configuration.trust_mark_issuers,
                    issuer_keys=issuer_keys,
                    now=now,
                    expected_type=declared if isinstance(declared, str) else None,
                )
            except InvalidTrustMarkError as exc:
                log.info("trust mark of %s left out: %s (%s)", chain.subject, type(exc).__name__, exc.detail)
                rejected.append((str(declared), type(exc).__name__))
                continue
            marks.append(mark)
        return marks, rejected


def _check_constraints(subordinate_statements: list[EntityStatement]) -> None:
    """``max_path_length`` (§6.2.1): a statement's issuer allows at most that many intermediates between
    itself and the chain's subject. The k-th statement (from the leaf's superior, k = 0) has k below it."""
    for below, statement in enumerate(subordinate_statements):
        limit = statement.constraints.get("max_path_length")
        if limit is None:
            continue
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise MalformedStatementError(f"{statement.issuer}: max_path_length must be a whole number")
        if below > limit:
            raise PathTooLongError(
                f"{statement.issuer} allows {limit} intermediate(s) below it; the chain has {below}"
            )
