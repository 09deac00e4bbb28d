"""What text a OneCard field can hold, for the request hooks (idp.web) and the protocol code that reads
parameters from elsewhere (a signed request object), which must not import Flask."""

from __future__ import annotations

import re

# C0 controls but tab, line feed and carriage return (PostgreSQL refuses NUL, and none belongs in a name, an
# id or a URL), and lone surrogates (JSON's "\ud800" decodes to one; it has no UTF-8 form, so the database
# driver would fail on it).
_UNACCEPTABLE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def is_storable_text(value: str) -> bool:
    """Whether ``value`` holds only characters every field (and both databases) can hold."""
    return _UNACCEPTABLE_TEXT.search(value) is None
