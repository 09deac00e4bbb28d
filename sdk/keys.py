"""Keys and key sets (DESIGN.md §7, STYLE.md "Keys are ordered sets").

One key-set type serves OIDC signing (RS256, ES256), QR signing (EdDSA) and every verifier: the keys are
ordered, the first one that holds a private part signs, all of them verify. Lifecycle states (pending,
active, retired) belong to the server's key store; a ``KeySet`` is what a signer or verifier holds *now*.

Key ids are the first 8 bytes of the RFC 7638 JWK thumbprint, base64url-encoded (11 characters), so the
same id fits a JWKS ``kid`` and the 8-byte COSE ``kid`` of the QR token.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from sdk.errors import OneCardError

Algorithm = Literal["RS256", "ES256", "EdDSA"]
ALGORITHMS: tuple[Algorithm, ...] = ("RS256", "ES256", "EdDSA")


class InvalidKeyError(OneCardError):
    error = "invalid_key"
    description = "The key is not usable."
    status_code = 400


class UnknownKeyError(InvalidKeyError):
    error = "unknown_key"
    description = "The token names a key that is not in the key set."


class NoSigningKeyError(InvalidKeyError):
    error = "no_signing_key"
    description = "No key in the set can sign."
    status_code = 500


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _b64_int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def public_jwk_members(public_key: PublicKeyTypes) -> dict[str, str]:
    """The required JWK members of a public key, the ones RFC 7638 hashes."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {"e": _int_b64(numbers.e), "kty": "RSA", "n": _int_b64(numbers.n)}
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise InvalidKeyError("only P-256 EC keys are supported")
        point = public_key.public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(point.x.to_bytes(32, "big")),
            "y": b64url(point.y.to_bytes(32, "big")),
        }
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    raise InvalidKeyError(f"unsupported key type {type(public_key).__name__}")


def key_id_for(public_key: PublicKeyTypes) -> str:
    """8 bytes of the RFC 7638 thumbprint, base64url."""
    canonical = json.dumps(public_jwk_members(public_key), separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest()[:8])


def _algorithm_of(public_key: PublicKeyTypes) -> Algorithm:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ES256"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise InvalidKeyError(f"unsupported key type {type(public_key).__name__}")


@dataclass(frozen=True)
class Key:
    """One key: its id, algorithm, public part and, for a signer, its private part."""

    kid: str
    alg: Algorithm
    public_key: PublicKeyTypes
    private_key: PrivateKeyTypes | None = None

    @property
    def can_sign(self) -> bool:
        return self.private_key is not None

    def public_jwk(self) -> dict[str, str]:
        return {**public_jwk_members(self.public_key), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_only(self) -> Key:
        return Key(self.kid, self.alg, self.public_key)

    def private_pem(self) -> bytes:
        if self.private_key is None:
            raise NoSigningKeyError(f"key {self.kid} has no private part")
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @classmethod
    def from_private_pem(cls, pem: bytes, *, kid: str | None = None) -> Key:
        private_key = serialization.load_pem_private_key(pem, password=None)
        public_key = private_key.public_key()
        return cls(kid or key_id_for(public_key), _algorithm_of(public_key), public_key, private_key)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> Key:
        """A public key from a JWK; raises ``InvalidKeyError`` on anything malformed."""
        try:
            kty = jwk["kty"]
            public_key: PublicKeyTypes
            if kty == "RSA":
                public_key = rsa.RSAPublicNumbers(_b64_int(jwk["e"]), _b64_int(jwk["n"])).public_key()
            elif kty == "EC" and jwk.get("crv") == "P-256":
                public_key = ec.EllipticCurvePublicNumbers(
                    _b64_int(jwk["x"]), _b64_int(jwk["y"]), ec.SECP256R1()
                ).public_key()
            elif kty == "OKP" and jwk.get("crv") == "Ed25519":
                public_key = ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
            else:
                raise InvalidKeyError(f"unsupported JWK kty={kty!r} crv={jwk.get('crv')!r}")
            alg = _algorithm_of(public_key)
            if "alg" in jwk and jwk["alg"] != alg:
                raise InvalidKeyError(f"JWK alg {jwk['alg']!r} does not match its key type")
            kid = str(jwk.get("kid") or key_id_for(public_key))
        except InvalidKeyError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidKeyError(f"malformed JWK: {exc}") from exc
        return cls(kid, alg, public_key)


def generate_key(alg: Algorithm) -> Key:
    """Fresh random key material for ``alg``."""
    private_key: PrivateKeyTypes
    if alg == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise InvalidKeyError(f"unsupported algorithm {alg!r}")
    public_key = cast(PublicKeyTypes, private_key.public_key())
    return Key(key_id_for(public_key), alg, public_key, private_key)


@dataclass(frozen=True)
class KeySet:
    """Ordered keys: the first that can sign (for an algorithm) signs; every key verifies."""

    keys: tuple[Key, ...] = ()

    def __post_init__(self) -> None:
        kids = [key.kid for key in self.keys]
        if len(kids) != len(set(kids)):
            raise InvalidKeyError("duplicate kid in key set")

    def __iter__(self) -> Any:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def signing_key(self, alg: Algorithm | None = None) -> Key:
        for key in self.keys:
            if key.can_sign and (alg is None or key.alg == alg):
                return key
        raise NoSigningKeyError(f"no signing key for {alg or 'any algorithm'}")

    def find(self, kid: str) -> Key | None:
        for key in self.keys:
            if key.kid == kid:
                return key
        return None

    def find_raw(self, kid: bytes) -> Key | None:
        """The key whose kid is ``b64url(kid)``, exactly as ``find(b64url(kid))``, without encoding it:
        the offline gate looks up the raw kid of every code it scans."""
        return self._by_raw_kid.get(kid)

    @cached_property
    def _by_raw_kid(self) -> dict[bytes, Key]:
        # Only kids that are canonical base64url name raw bytes; any other can never equal b64url(...).
        by_raw: dict[bytes, Key] = {}
        for key in self.keys:
            try:
                raw = b64url_decode(key.kid)
            except ValueError:
                continue
            if b64url(raw) == key.kid:
                by_raw[raw] = key
        return by_raw

    def get(self, kid: str) -> Key:
        key = self.find(kid)
        if key is None:
            raise UnknownKeyError(f"kid {kid!r} not in key set")
        return key

    def to_jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any]) -> KeySet:
        """Parse a JWKS; keys of unsupported types are skipped (RFC 7517 §5), malformed ones raise."""
        raw_keys = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(raw_keys, list):
            raise InvalidKeyError("a JWKS needs a 'keys' array")
        keys: list[Key] = []
        for jwk in raw_keys:
            if not isinstance(jwk, Mapping):
                raise InvalidKeyError("JWKS entries must be objects")
            if jwk.get("kty") not in {"RSA", "EC", "OKP"}:
                continue
            keys.append(Key.from_jwk(jwk))
        return cls(tuple(keys))

    @classmethod
    def of(cls, keys: Iterable[Key]) -> KeySet:
        return cls(tuple(keys))
