"""An optional PKCS#11 HSM backend for signing keys (DESIGN.md §7 "a PKCS#11 HSM backend is an option").

A key set listed in ``ONECARD_PKCS11_KEY_SETS`` gets its new keys generated inside the HSM token
(``ONECARD_PKCS11_MODULE``, ``ONECARD_PKCS11_TOKEN_LABEL``, ``ONECARD_PKCS11_PIN`` or ``…_PIN_FILE``).
The private key never leaves the token: the key store keeps only the public JWK and a *reference*
(``pkcs11:<label>``), wrapped under the KEK like any other secret so a reader of the table learns nothing
about the token layout. The key ring turns a reference into an ``HsmRsaPrivateKey`` / ``HsmEcPrivateKey``:
cryptography key objects whose ``sign`` asks the token, so PyJWT signs with them like with any key.

RS256 (CKM_SHA256_RSA_PKCS) and ES256 (CKM_ECDSA over a SHA-256 digest) are supported — the OIDC signing
algorithms. PKCS#11 sessions are not safe for concurrent use, so signing takes a lock; the session is
opened on first use, which under gunicorn is inside each worker (a PKCS#11 session does not survive fork).

``python-pkcs11`` is an optional dependency (``pip install onecard[pkcs11]``); nothing imports it unless
a module path is configured.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from idp.config import Settings
from idp.keys.errors import HsmError
from sdk.keys import Algorithm, Key, key_id_for

# DO NOT CHANGE: stored (wrapped) references start with it.
REFERENCE_PREFIX = b"pkcs11:"
HSM_ALGORITHMS: tuple[Algorithm, ...] = ("RS256", "ES256")


def hsm_key_sets(settings: Settings) -> frozenset[str]:
    return frozenset(part.strip() for part in settings.pkcs11_key_sets.split(",") if part.strip())


def is_reference(material: bytes) -> bool:
    return material.startswith(REFERENCE_PREFIX)


class Pkcs11Backend:
    """One HSM token: generates key pairs in it and hands out key objects that sign through it."""

    def __init__(self, module: str, token_label: str, pin: str) -> None:
        self._module = module
        self._token_label = token_label
        self._pin = pin
        self._lock = threading.RLock()
        self._session: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Pkcs11Backend | None:
        if not settings.pkcs11_module:
            return None
        pin = settings.pkcs11_pin
        if settings.pkcs11_pin_file:
            pin = Path(settings.pkcs11_pin_file).read_text().strip()
        return cls(settings.pkcs11_module, settings.pkcs11_token_label, pin)

    def __repr__(self) -> str:
        return f"Pkcs11Backend(module={self._module!r}, token={self._token_label!r})"  # never the PIN

    def _open(self) -> Any:
        if self._session is None:
            try:
                import pkcs11

                token = pkcs11.lib(self._module).get_token(token_label=self._token_label)
                self._session = token.open(user_pin=self._pin, rw=True)
            except ImportError:
                raise HsmError("python-pkcs11 is not installed (pip install onecard[pkcs11])") from None
            except Exception as exc:  # the library raises its own hierarchy, and OSError for the module
                _hsm_failed("opening the token", exc)
        return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def generate(self, alg: Algorithm) -> tuple[Key, bytes]:
        """A new key pair in the token: the public ``Key`` (with the token-backed private part) and the
        reference to store."""
        if alg not in HSM_ALGORITHMS:
            raise HsmError(f"{alg} keys are not generated in the HSM (only {', '.join(HSM_ALGORITHMS)})")
        import pkcs11
        from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

        label = "onecard-" + secrets.token_hex(8)
        with self._lock:
            session = self._open()
            try:
                if alg == "RS256":
                    public, _private = session.generate_keypair(
                        pkcs11.KeyType.RSA, 2048, store=True, label=label, id=label.encode()
                    )
                    numbers = rsa.RSAPublicNumbers(
                        int.from_bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT], "big"),
                        int.from_bytes(public[pkcs11.Attribute.MODULUS], "big"),
                    )
                    public_key: PublicKeyTypes = numbers.public_key()
                else:
                    parameters = session.create_domain_parameters(
                        pkcs11.KeyType.EC,
                        {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                        local=True,
                    )
                    public, _private = parameters.generate_keypair(store=True, label=label, id=label.encode())
                    public_key = serialization.load_der_public_key(encode_ec_public_key(public))
            except HsmError:
                raise
            except Exception as exc:
                _hsm_failed("generating a key", exc)
        reference = REFERENCE_PREFIX + label.encode()
        return self.load(reference, kid=key_id_for(public_key), public_key=public_key), reference

    def load(self, reference: bytes, *, kid: str, public_key: PublicKeyTypes) -> Key:
        label = reference.removeprefix(REFERENCE_PREFIX).decode("ascii")
        if isinstance(public_key, rsa.RSAPublicKey):
            return Key(kid, "RS256", public_key, HsmRsaPrivateKey(self, label, public_key))
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            return Key(kid, "ES256", public_key, HsmEcPrivateKey(self, label, public_key))
        raise HsmError(f"unsupported HSM key type {type(public_key).__name__}")

    def destroy(self, reference: bytes) -> None:
        """Delete a key pair from the token (a removed or revoked key: nothing may sign with it again)."""
        import pkcs11

        label = reference.removeprefix(REFERENCE_PREFIX).decode("ascii")
        with self._lock:
            session = self._open()
            try:
                for obj in list(session.get_objects({pkcs11.Attribute.LABEL: label})):
                    obj.destroy()
            except Exception as exc:
                _hsm_failed("destroying a key", exc)

    def sign(self, label: str, data: bytes, alg: Algorithm) -> bytes:
        import pkcs11

        with self._lock:
            session = self._open()
            try:
                key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=label)
                if alg == "RS256":
                    return bytes(key.sign(data, mechanism=pkcs11.Mechanism.SHA256_RSA_PKCS))
                # SoftHSM and most tokens lack CKM_ECDSA_SHA256; hash here, sign the digest in the token.
                digest = hashes.Hash(hashes.SHA256())
                digest.update(data)
                return bytes(key.sign(digest.finalize(), mechanism=pkcs11.Mechanism.ECDSA))
            except Exception as exc:
                _hsm_failed("signing", exc)


def _hsm_failed(what: str, exc: Exception) -> NoReturn:
    raise HsmError(f"{what} failed: {type(exc).__name__}") from exc


def _not_exportable() -> NoReturn:
    raise HsmError("the private key stays in the HSM")


class HsmRsaPrivateKey(rsa.RSAPrivateKey):
    """An RSA private key held by the token: ``sign`` (PKCS#1 v1.5, SHA-256) only."""

    def __init__(self, backend: Pkcs11Backend, label: str, public_key: rsa.RSAPublicKey) -> None:
        self._backend = backend
        self._label = label
        self._public_key = public_key

    def sign(self, data: bytes | bytearray | memoryview, padding_: Any, algorithm: Any) -> bytes:
        if not isinstance(padding_, padding.PKCS1v15) or not isinstance(algorithm, hashes.SHA256):
            raise HsmError("the HSM key signs RS256 (PKCS#1 v1.5 with SHA-256) only")
        return self._backend.sign(self._label, bytes(data), "RS256")

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def decrypt(self, ciphertext: bytes, padding_: Any) -> bytes:
        raise HsmError("the HSM key only signs")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _not_exportable()

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:
        _not_exportable()

    def __copy__(self) -> HsmRsaPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> HsmRsaPrivateKey:
        return self


class HsmEcPrivateKey(ec.EllipticCurvePrivateKey):
    """A P-256 private key held by the token: ``sign`` (ECDSA with SHA-256, DER signature) only."""

    def __init__(self, backend: Pkcs11Backend, label: str, public_key: ec.EllipticCurvePublicKey) -> None:
        self._backend = backend
        self._label = label
        self._public_key = public_key

    def sign(self, data: bytes | bytearray | memoryview, signature_algorithm: Any) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA) or not isinstance(
            signature_algorithm.algorithm, hashes.SHA256
        ):
            raise HsmError("the HSM key signs ES256 (ECDSA with SHA-256) only")
        raw = self._backend.sign(self._label, bytes(data), "ES256")
        half = len(raw) // 2
        # PKCS#11 returns r‖s; cryptography's interface (and PyJWT, which converts back) speaks DER.
        r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        return utils.encode_dss_signature(r, s)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public_key.curve

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def exchange(self, algorithm: Any, peer_public_key: Any) -> bytes:
        raise HsmError("the HSM key only signs")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _not_exportable()

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:
        _not_exportable()

    def __copy__(self) -> HsmEcPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> HsmEcPrivateKey:
        return self
