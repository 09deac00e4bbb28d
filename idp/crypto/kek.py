"""Key-encryption keys: wrapping secrets at rest (DESIGN.md §7 "Private keys are encrypted at rest").

Private signing keys, data keys and other secrets are stored wrapped under a key-encryption key (KEK) that
comes from the environment or a file (``ONECARD_KEK``, ``ONECARD_KEK_FILE``), never from the database.
KEKs form an ordered set like every other key set (STYLE.md "Keys are ordered sets"): the first wraps,
all unwrap, so a KEK rotates by putting the new one first and re-wrapping (``needs_rewrap``/``rewrap``)
before the old one is dropped from the list.

Wrapped format, self-describing so that a blob names the KEK that can open it::

    version (1 byte, 0x01) | KEK id (8 bytes, SHA-256(KEK)[:8]) | nonce (12 bytes) | AES-256-GCM ct+tag

The associated data is the 9-byte header followed by the purpose string (STYLE.md "Bind a purpose into
everything sealed"): a blob wrapped for one purpose — say one key id's private key — never unwraps as
another. Callers pass explicit purpose constants marked DO NOT CHANGE (``idp.keys.service`` binds
``onecard/key/v1/<kid>``); changing a purpose makes every blob wrapped under it unreadable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from idp.crypto.errors import DecryptionFailure, InvalidKeyMaterialError, UnwrapError

KEK_LENGTH = 32
KEK_ID_LENGTH = 8
NONCE_LENGTH = 12
TAG_LENGTH = 16
# DO NOT CHANGE: stored blobs start with it; a new format gets a new number and both are read.
FORMAT_V1 = 0x01
_HEADER_LENGTH = 1 + KEK_ID_LENGTH
_MIN_BLOB_LENGTH = _HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH


def kek_id(key: bytes) -> bytes:
    """The 8-byte id of a KEK. A hash of a 256-bit random key reveals nothing usable about it."""
    return hashlib.sha256(key).digest()[:KEK_ID_LENGTH]


def decode_key_string(text: str, *, what: str = "key") -> bytes:
    """Strict base64url (padding optional) to bytes; the message never repeats the key material."""
    cleaned = text.strip()
    try:
        return base64.b64decode(
            cleaned.translate(str.maketrans("-_", "+/")) + "=" * (-len(cleaned) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        raise InvalidKeyMaterialError(f"{what} is not base64url") from None


def _purpose_bytes(purpose: str) -> bytes:
    if not purpose or not purpose.isascii() or not purpose.isprintable():
        # A typo'd or empty purpose would still "work" symmetrically and then never match again.
        raise ValueError("a wrap purpose is a non-empty printable ASCII constant")
    return purpose.encode("ascii")


def kek_id_of_blob(blob: bytes) -> bytes:
    """The id of the KEK a wrapped blob names in its header (``UnwrapError`` if it is no wrapped blob)."""
    return KeyEncryptionKeys._parse_header(blob)


class KeyEncryptionKeys:
    """An ordered set of 256-bit KEKs: the first wraps, every one unwraps."""

    __slots__ = ("_by_id", "_current_id")

    def __init__(self, keys: Iterable[bytes]) -> None:
        ordered = list(keys)
        if not ordered:
            raise InvalidKeyMaterialError("no key-encryption key configured")
        by_id: dict[bytes, AESGCM] = {}
        for position, key in enumerate(ordered, start=1):
            if len(key) != KEK_LENGTH:
                raise InvalidKeyMaterialError(
                    f"key-encryption key #{position} has {len(key)} bytes, not {KEK_LENGTH}"
                )
            ident = kek_id(key)
            if ident in by_id:
                raise InvalidKeyMaterialError(f"key-encryption key #{position} is listed twice")
            by_id[ident] = AESGCM(key)
        self._by_id = by_id
        self._current_id = kek_id(ordered[0])

    @classmethod
    def from_strings(cls, texts: Iterable[str]) -> KeyEncryptionKeys:
        """From base64url strings as in ``Settings.key_encryption_keys()``."""
        return cls(
            decode_key_string(text, what=f"key-encryption key #{position}")
            for position, text in enumerate(texts, start=1)
        )

    @property
    def current_id(self) -> bytes:
        return self._current_id

    @property
    def key_ids(self) -> list[bytes]:
        """Ids of the configured KEKs, the wrapping one first; safe to show operators."""
        return list(self._by_id)

    def __repr__(self) -> str:
        # Never the key bytes: a repr ends up in logs and tracebacks.
        return f"KeyEncryptionKeys(ids={[ident.hex() for ident in self._by_id]})"

    def wrap(self, purpose: str, plaintext: bytes) -> bytes:
        header = bytes([FORMAT_V1]) + self._current_id
        # Random 96-bit nonces: a KEK wraps a few thousand secrets in its life, far from GCM's 2**32 bound.
        nonce = os.urandom(NONCE_LENGTH)
        sealed = self._by_id[self._current_id].encrypt(nonce, plaintext, header + _purpose_bytes(purpose))
        return header + nonce + sealed

    def unwrap(self, purpose: str, blob: bytes) -> bytes:
        aad = _purpose_bytes(purpose)
        ident = self._parse_header(blob)
        aead = self._by_id.get(ident)
        if aead is None:
            raise UnwrapError(DecryptionFailure.UNKNOWN_KEY, f"wrapped under KEK {ident.hex()}")
        nonce = blob[_HEADER_LENGTH : _HEADER_LENGTH + NONCE_LENGTH]
        try:
            return aead.decrypt(nonce, blob[_HEADER_LENGTH + NONCE_LENGTH :], blob[:_HEADER_LENGTH] + aad)
        except InvalidTag:
            raise UnwrapError(
                DecryptionFailure.AUTHENTICATION_FAILED, f"KEK {ident.hex()}, wrong purpose or tampered"
            ) from None

    def needs_rewrap(self, blob: bytes) -> bool:
        """True when the blob is not wrapped under the current KEK in the current format."""
        return self._parse_header(blob) != self._current_id

    def rewrap(self, purpose: str, blob: bytes) -> bytes:
        """The same secret wrapped under the current KEK (a fresh nonce even if it already was)."""
        return self.wrap(purpose, self.unwrap(purpose, blob))

    @staticmethod
    def _parse_header(blob: bytes) -> bytes:
        if len(blob) < _MIN_BLOB_LENGTH:
            raise UnwrapError(DecryptionFailure.MALFORMED, f"{len(blob)} bytes is too short")
        if blob[0] != FORMAT_V1:
            raise UnwrapError(DecryptionFailure.MALFORMED, f"unknown format version {blob[0]}")
        return bytes(blob[1:_HEADER_LENGTH])
