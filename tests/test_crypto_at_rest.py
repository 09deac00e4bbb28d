"""Encryption at rest: KEK wrapping (DESIGN.md §7) and PII field encryption with blind indexes (§2)."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from idp.config import DEVELOPMENT_KEK
from idp.crypto.errors import DecryptionError, DecryptionFailure, InvalidKeyMaterialError, UnwrapError
from idp.crypto.kek import FORMAT_V1, KeyEncryptionKeys, kek_id
from idp.crypto.pii import PiiCipher, PiiField

PURPOSE = "onecard/key/v1/test-kid"
OTHER_PURPOSE = "onecard/key/v1/other-kid"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# KEK ----------------------------------------------------------------------------------------------------


def test_wrap_unwrap_and_format() -> None:
    key = os.urandom(32)
    keks = KeyEncryptionKeys([key])
    blob = keks.wrap(PURPOSE, b"private key bytes")
    assert blob[0] == FORMAT_V1
    assert blob[1:9] == hashlib.sha256(key).digest()[:8] == kek_id(key)
    assert len(blob) == 1 + 8 + 12 + len(b"private key bytes") + 16
    assert keks.unwrap(PURPOSE, blob) == b"private key bytes"
    assert keks.wrap(PURPOSE, b"private key bytes") != blob  # fresh nonce every time


def test_purpose_is_bound() -> None:
    keks = KeyEncryptionKeys([os.urandom(32)])
    blob = keks.wrap(PURPOSE, b"secret")
    with pytest.raises(UnwrapError) as caught:
        keks.unwrap(OTHER_PURPOSE, blob)
    assert caught.value.reason is DecryptionFailure.AUTHENTICATION_FAILED
    with pytest.raises(ValueError):
        keks.wrap("", b"secret")


def test_every_flipped_byte_is_detected() -> None:
    keks = KeyEncryptionKeys([os.urandom(32)])
    blob = keks.wrap(PURPOSE, b"0123456789abcdef")
    for position in range(len(blob)):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(UnwrapError):
            keks.unwrap(PURPOSE, bytes(tampered))


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x01" + b"\x00" * 20, b"\x02" + b"\x00" * 60],
)
def test_malformed_blobs(blob: bytes) -> None:
    keks = KeyEncryptionKeys([os.urandom(32)])
    with pytest.raises(UnwrapError) as caught:
        keks.unwrap(PURPOSE, blob)
    assert caught.value.reason is DecryptionFailure.MALFORMED
    with pytest.raises(UnwrapError):
        keks.needs_rewrap(blob)


def test_kek_rotation() -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = KeyEncryptionKeys([old])
    blob = before.wrap(PURPOSE, b"signing key")
    assert not before.needs_rewrap(blob)

    during = KeyEncryptionKeys([new, old])  # the new KEK first: it wraps, both unwrap
    assert during.current_id == kek_id(new)
    assert during.key_ids == [kek_id(new), kek_id(old)]
    assert during.unwrap(PURPOSE, blob) == b"signing key"
    assert during.needs_rewrap(blob)
    rewrapped = during.rewrap(PURPOSE, blob)
    assert not during.needs_rewrap(rewrapped)
    assert rewrapped[1:9] == kek_id(new)

    after = KeyEncryptionKeys([new])
    assert after.unwrap(PURPOSE, rewrapped) == b"signing key"
    with pytest.raises(UnwrapError) as caught:
        after.unwrap(PURPOSE, blob)
    assert caught.value.reason is DecryptionFailure.UNKNOWN_KEY


def test_from_strings() -> None:
    key = os.urandom(32)
    padded = base64.urlsafe_b64encode(key).decode()
    assert KeyEncryptionKeys.from_strings([b64url(key)]).current_id == kek_id(key)
    assert KeyEncryptionKeys.from_strings([padded]).current_id == kek_id(key)
    development = KeyEncryptionKeys.from_strings([DEVELOPMENT_KEK, b64url(key)])
    assert development.unwrap(PURPOSE, development.wrap(PURPOSE, b"x")) == b"x"


@pytest.mark.parametrize(
    "texts",
    [
        [],
        [b64url(b"k" * 16)],  # AES-128 is not enough
        [b64url(b"k" * 33)],
        ["not base64url!!" + "A" * 30],
        [b64url(b"k" * 32), b64url(b"k" * 32)],
    ],
)
def test_bad_kek_strings(texts: list[str]) -> None:
    with pytest.raises(InvalidKeyMaterialError) as caught:
        KeyEncryptionKeys.from_strings(texts)
    for text in texts:
        assert text not in str(caught.value)


def test_repr_shows_no_key() -> None:
    key = os.urandom(32)
    text = repr(KeyEncryptionKeys([key]))
    assert kek_id(key).hex() in text
    assert key.hex() not in text and b64url(key) not in text


# PII ----------------------------------------------------------------------------------------------------

INDEX_KEY = b"i" * 32
ID_NUMBER = "11010519491231002X"


def cipher_with(*keys: tuple[str, bytes], index_key: bytes = INDEX_KEY) -> PiiCipher:
    return PiiCipher(list(keys), index_key)


def test_pii_round_trip_and_format() -> None:
    cipher = cipher_with(("data-2025", os.urandom(32)))
    ciphertext = cipher.encrypt(PiiField.CITIZEN_NAME, "阿卜杜拉·买买提", record_id="r1")
    assert ciphertext[0] == 1 and ciphertext[1] == len("data-2025") and ciphertext[2:11] == b"data-2025"
    assert "阿卜杜拉".encode() not in ciphertext
    assert cipher.key_id_of(ciphertext) == "data-2025"
    assert cipher.decrypt(PiiField.CITIZEN_NAME, ciphertext, record_id="r1") == "阿卜杜拉·买买提"


def test_pii_field_and_record_are_bound() -> None:
    cipher = cipher_with(("k1", os.urandom(32)))
    ciphertext = cipher.encrypt(PiiField.CITIZEN_ID_NUMBER, ID_NUMBER, record_id="r1")
    for field, record in [(PiiField.CITIZEN_NAME, "r1"), (PiiField.CITIZEN_ID_NUMBER, "r2")]:
        with pytest.raises(DecryptionError) as caught:
            cipher.decrypt(field, ciphertext, record_id=record)
        assert caught.value.reason is DecryptionFailure.AUTHENTICATION_FAILED
        assert ID_NUMBER not in str(caught.value)


def test_pii_tampering_and_garbage_raise() -> None:
    cipher = cipher_with(("k1", os.urandom(32)))
    ciphertext = cipher.encrypt(PiiField.CITIZEN_NAME, "张三", record_id="r1")
    for position in range(len(ciphertext)):
        tampered = bytearray(ciphertext)
        tampered[position] ^= 0x80
        with pytest.raises(DecryptionError):
            cipher.decrypt(PiiField.CITIZEN_NAME, bytes(tampered), record_id="r1")
    for garbage in [b"", b"\x01", b"\x01\x02k1", b"\x09" + ciphertext[1:], b"\x01\x00" + b"\x00" * 40]:
        with pytest.raises(DecryptionError) as caught:
            cipher.decrypt(PiiField.CITIZEN_NAME, garbage, record_id="r1")
        assert caught.value.reason is DecryptionFailure.MALFORMED


def test_data_key_rotation() -> None:
    old, new = ("data-1", os.urandom(32)), ("data-2", os.urandom(32))
    ciphertext = cipher_with(old).encrypt(PiiField.CITIZEN_NAME, "李四", record_id="r9")
    rotating = cipher_with(new, old)
    assert rotating.current_key_id == "data-2"
    assert rotating.needs_reencrypt(ciphertext)
    assert rotating.decrypt(PiiField.CITIZEN_NAME, ciphertext, record_id="r9") == "李四"
    fresh = rotating.reencrypt(PiiField.CITIZEN_NAME, ciphertext, record_id="r9")
    assert rotating.key_id_of(fresh) == "data-2" and not rotating.needs_reencrypt(fresh)
    with pytest.raises(DecryptionError) as caught:
        cipher_with(new).decrypt(PiiField.CITIZEN_NAME, ciphertext, record_id="r9")
    assert caught.value.reason is DecryptionFailure.UNKNOWN_KEY


def test_blind_index() -> None:
    cipher = cipher_with(("k1", os.urandom(32)))
    index = cipher.blind_index(PiiField.CITIZEN_ID_NUMBER, ID_NUMBER)
    assert len(index) == 32
    assert cipher.blind_index(PiiField.CITIZEN_ID_NUMBER, " 11010519491231002x ") == index
    # Independent of the data keys (they rotate; the index must not change with them).
    assert cipher_with(("k2", os.urandom(32))).blind_index(PiiField.CITIZEN_ID_NUMBER, ID_NUMBER) == index
    assert cipher.blind_index(PiiField.CITIZEN_NAME, ID_NUMBER) != index
    assert (
        cipher_with(("k1", os.urandom(32)), index_key=b"j" * 32).blind_index(
            PiiField.CITIZEN_ID_NUMBER, ID_NUMBER
        )
        != index
    )
    assert cipher.blind_index(PiiField.CITIZEN_ID_NUMBER, "440524188001010014") != index


@pytest.mark.parametrize(
    ("keys", "index_key"),
    [
        ([], INDEX_KEY),
        ([("k1", b"short")], INDEX_KEY),
        ([("", b"k" * 32)], INDEX_KEY),
        ([("k\x00", b"k" * 32)], INDEX_KEY),
        ([("k" * 65, b"k" * 32)], INDEX_KEY),
        ([("k1", b"k" * 32), ("k1", b"l" * 32)], INDEX_KEY),
        ([("k1", b"k" * 32)], b"short index key"),
    ],
)
def test_bad_pii_keys(keys: list[tuple[str, bytes]], index_key: bytes) -> None:
    with pytest.raises(InvalidKeyMaterialError):
        PiiCipher(keys, index_key)


def test_cipher_repr_shows_ids_only() -> None:
    key = os.urandom(32)
    text = repr(PiiCipher([("data-1", key)], INDEX_KEY))
    assert "data-1" in text and key.hex() not in text and "iiii" not in text
