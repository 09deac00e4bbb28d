"""Bearer secrets: random strings handed out once, stored only as hashes (DESIGN.md §2, STYLE.md "Names").

Every kind carries a prefix naming it, so a leaked string says what it is and scanners can find it:
``occs_`` client secrets, ``ocrt_`` refresh tokens, ``ocss_`` SSO session cookies. The values are 256-bit
random, so one SHA-256 is enough at rest; a slow password hash would add nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

MAX_BEARER_LENGTH = 128


def generate_bearer_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_bearer_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def looks_like(value: object, prefix: str) -> bool:
    """Cheap shape check before any lookup: the right prefix and a sane length."""
    return isinstance(value, str) and value.startswith(prefix) and len(value) <= MAX_BEARER_LENGTH


def matches_hash(value: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_bearer_secret(value), expected_hash)
