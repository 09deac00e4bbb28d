"""The discovery document and the JWKS as prepared bytes (OIDC Discovery 1.0 §4, RFC 8414 §3, RFC 7517 §5).

The bytes, their ETag and their Cache-Control are those ``idp.web.cacheable_json`` makes for the Flask
views (compact, sorted JSON; the ETag a hash of the body), built once instead of per request:

- discovery depends on settings alone, so it is built on first use;
- the JWKS is what the key ring publishes. The key ring reloads its key sets from the database every
  ``KEY_RING_CACHE_SECONDS`` on every node and a rotation on this node invalidates it at once; a reload
  yields new ``KeySet`` objects, so the bytes are rebuilt whenever the objects the key ring hands out are not
  the ones they were built from. A key published or withdrawn anywhere is thus in the bytes as soon as the
  full path would show it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

from idp.keys.service import OIDC_ES256, OIDC_RS256, KeyRing
from sdk.keys import KeySet


@dataclass(frozen=True)
class Document:
    body: bytes
    etag: str  # quoted, as it goes in the ETag header
    cache_control: str


def prepare_document(document: Any, max_age: int) -> Document:
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return Document(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"', f"public, max-age={max_age}")


class PublishedJwks:
    """The JWKS bytes for the key ring's current view of the two OIDC signing key sets."""

    def __init__(self, keyring: KeyRing, max_age: int) -> None:
        self._keyring = keyring
        self._max_age = max_age
        self._lock = threading.Lock()
        self._built: tuple[KeySet, KeySet, Document] | None = None

    def current(self, *, now: float) -> Document:
        rs = self._keyring.key_set(OIDC_RS256.name, now=now)
        es = self._keyring.key_set(OIDC_ES256.name, now=now)
        built = self._built
        if built is not None and built[0] is rs and built[1] is es:
            return built[2]
        # The order and content of idp.oauth.bearer.oidc_keys, which the Flask view publishes.
        document = prepare_document(KeySet(rs.keys + es.keys).to_jwks(), self._max_age)
        with self._lock:
            self._built = (rs, es, document)
        return document
