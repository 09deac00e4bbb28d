"""Small helpers the modules of ``sdk.portal`` share."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


def frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy, for the ``claims`` and ``raw`` members of frozen results."""
    return MappingProxyType(dict(mapping))


def equal(a: str, b: str) -> bool:
    """Constant-time comparison of two strings (state, nonce, at_hash, subjects)."""
    return hmac.compare_digest(a.encode(), b.encode())
