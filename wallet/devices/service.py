"""Passkey device binding and sign-in with py_webauthn (DESIGN.md §5 "Device binding", WebAuthn Level 3).

Ceremonies: ``create_*_options`` stores the challenge in the shared short-lived store under a random
ceremony id, bound to the browser that asked; ``verify_*`` takes it (one-time, any node) and checks the
credential. User verification is required in both ceremonies; the origin must be the issuer's and the RP id
its host. The sign counter is checked by py_webauthn and raised with a compare-and-set, so two nodes cannot
both accept one assertion.

py_webauthn reports most checks as one exception type whose message says which; OneCard never reads the
message. The client data (type, challenge, origin) and the authenticator data (RP id hash, user verified,
sign counter) are checked here first, from py_webauthn's own parsers, so those refusals get a precise
reason; what py_webauthn refuses after that is mapped by exception type (``_reason_of``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_attestation_object,
    parse_authenticator_data,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import (
    InvalidAttestationObjectStructure,
    InvalidAuthenticationResponse,
    InvalidAuthenticatorDataStructure,
    InvalidCBORData,
    InvalidJSONStructure,
    InvalidPublicKeyStructure,
    SignatureVerificationException,
    WebAuthnException,
)
from webauthn.helpers.structs import (
    AuthenticatorData,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp.audit.service import record_event
from idp.citizens.service import find_citizen
from idp.db import utc_from_timestamp
from idp.stores.base import EphemeralStore, dump_json, load_json
from wallet.devices.errors import DeviceLimitError, DeviceNotFoundError, PasskeyError, PasskeyReason
from wallet.devices.model import WalletDevice

REGISTRATION_NAMESPACE: Final = "wallet_passkey_reg"
AUTHENTICATION_NAMESPACE: Final = "wallet_passkey_auth"
CEREMONY_TTL: Final = 300  # seconds; also the browser's timeout
MAX_DEVICES: Final = 10
MAX_CREDENTIAL_JSON: Final = 16 * 1024
MAX_CREDENTIAL_ID_BYTES: Final = 255
MAX_DEVICE_NAME: Final = 64
ALGORITHMS: Final = [
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]


@dataclass(frozen=True)
class RelyingParty:
    """The WebAuthn relying party: the issuer's host is the RP id, its origin the only accepted origin."""

    rp_id: str
    origin: str
    name: str = "OneCard"

    @classmethod
    def for_issuer(cls, issuer: str) -> RelyingParty:
        parts = urlsplit(issuer)
        return cls(rp_id=parts.hostname or "", origin=f"{parts.scheme}://{parts.netloc}")


@dataclass(frozen=True)
class Ceremony:
    id: str
    options_json: str  # PublicKeyCredential{Creation,Request}Options as JSON, base64url for binary


@dataclass(frozen=True)
class VerifiedPasskey:
    citizen_id: str
    device_id: str


def _user_handle(citizen_id: str) -> bytes:
    return citizen_id.encode()


def create_registration_options(
    session: Session,
    store: EphemeralStore,
    *,
    rp: RelyingParty,
    citizen_id: str,
    user_name: str,
    browser: str,
    now: float,
) -> Ceremony:
    existing = list_devices(session, citizen_id)
    if len(existing) >= MAX_DEVICES:
        raise DeviceLimitError(f"{len(existing)} devices")
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_name=user_name,
        user_id=_user_handle(citizen_id),
        user_display_name=user_name,
        timeout=CEREMONY_TTL * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(device.credential_id)) for device in existing
        ],
        supported_pub_key_algs=ALGORITHMS,
    )
    ceremony_id = secrets.token_urlsafe(24)
    record = {
        "challenge": bytes_to_base64url(options.challenge),
        "citizen_id": citizen_id,
        "browser": browser,
    }
    store.put(REGISTRATION_NAMESPACE, ceremony_id, dump_json(record), ttl=CEREMONY_TTL, now=now)
    return Ceremony(ceremony_id, options_to_json(options))


def create_authentication_options(
    store: EphemeralStore, *, rp: RelyingParty, browser: str, now: float
) -> Ceremony:
    """Options for signing in with any passkey bound here (discoverable credentials: no user named)."""
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        timeout=CEREMONY_TTL * 1000,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    ceremony_id = secrets.token_urlsafe(24)
    record = {"challenge": bytes_to_base64url(options.challenge), "browser": browser}
    store.put(AUTHENTICATION_NAMESPACE, ceremony_id, dump_json(record), ttl=CEREMONY_TTL, now=now)
    return Ceremony(ceremony_id, options_to_json(options))


def _take_ceremony(
    store: EphemeralStore, namespace: str, ceremony_id: str, *, browser: str, now: float
) -> Any:
    if not isinstance(ceremony_id, str) or not 16 <= len(ceremony_id) <= 64:
        raise PasskeyError(PasskeyReason.EXPIRED, "bad ceremony id")
    record = load_json(store.take(namespace, ceremony_id, now=now))
    if not isinstance(record, dict):
        raise PasskeyError(PasskeyReason.EXPIRED, "no such ceremony")
    if not secrets.compare_digest(str(record.get("browser", "")), browser):
        raise PasskeyError(PasskeyReason.EXPIRED, "ceremony of another browser")
    return record


def parse_credential(text: str) -> dict[str, Any]:
    """The browser's ``PublicKeyCredential`` as JSON (base64url for binary members)."""
    if not isinstance(text, str) or not text or len(text) > MAX_CREDENTIAL_JSON:
        raise PasskeyError(PasskeyReason.MALFORMED, "credential missing or too large")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PasskeyError(PasskeyReason.MALFORMED, "credential is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("response"), dict):
        raise PasskeyError(PasskeyReason.MALFORMED, "credential is not an object with a response")
    if not isinstance(data.get("id"), str) or not isinstance(data.get("rawId"), str):
        raise PasskeyError(PasskeyReason.MALFORMED, "credential has no id")
    return data


def _check_client_data(
    credential: dict[str, Any], *, expected_type: str, expected_challenge: str, expected_origin: str
) -> None:
    """WebAuthn §7.1 steps 7–9 / §7.2 steps 11–13, done before py_webauthn so refusals are precise."""
    try:
        raw = base64url_to_bytes(str(credential["response"].get("clientDataJSON", "")))
        client_data = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise PasskeyError(PasskeyReason.MALFORMED, "clientDataJSON unreadable") from exc
    if not isinstance(client_data, dict):
        raise PasskeyError(PasskeyReason.MALFORMED, "clientDataJSON is not an object")
    if client_data.get("type") != expected_type:
        raise PasskeyError(PasskeyReason.WRONG_TYPE, f"type {str(client_data.get('type'))[:40]!r}")
    if not secrets.compare_digest(str(client_data.get("challenge", "")), expected_challenge):
        raise PasskeyError(PasskeyReason.WRONG_CHALLENGE, "challenge does not match the ceremony")
    if client_data.get("origin") != expected_origin:
        raise PasskeyError(PasskeyReason.WRONG_ORIGIN, f"origin {str(client_data.get('origin'))[:100]!r}")
    if client_data.get("crossOrigin") is True:
        raise PasskeyError(PasskeyReason.WRONG_ORIGIN, "cross-origin iframe")


def _authenticator_data(credential: dict[str, Any], *, registration: bool) -> AuthenticatorData:
    """The authenticator data, parsed by py_webauthn: in the attestation object, or beside the assertion."""
    response = credential["response"]
    try:
        if registration:
            return parse_attestation_object(
                base64url_to_bytes(str(response.get("attestationObject", "")))
            ).auth_data
        return parse_authenticator_data(base64url_to_bytes(str(response.get("authenticatorData", ""))))
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise PasskeyError(PasskeyReason.MALFORMED, "authenticator data unreadable") from exc


def _check_authenticator_data(data: AuthenticatorData, *, rp_id: str, stored_sign_count: int | None) -> None:
    """WebAuthn §7.1 steps 13–15 / §7.2 steps 15–17, and §6.1.1's counter rule (``stored_sign_count`` is
    None at registration), done before py_webauthn so refusals are precise."""
    if not secrets.compare_digest(data.rp_id_hash, hashlib.sha256(rp_id.encode()).digest()):
        raise PasskeyError(PasskeyReason.WRONG_RP, "rp id hash")
    if not data.flags.uv:
        raise PasskeyError(PasskeyReason.USER_NOT_VERIFIED, "uv flag not set")
    # Authenticators that keep no counter send 0 every time (§6.1.1): only a counter in use must go up.
    counting = stored_sign_count is not None and (data.sign_count or stored_sign_count)
    if counting and data.sign_count <= (stored_sign_count or 0):
        raise PasskeyError(PasskeyReason.COUNTER, f"counter {data.sign_count} <= {stored_sign_count}")


# What py_webauthn refuses after the checks above, by exception type: in an assertion the signature is all
# that is left; unreadable structures are malformed; anything else (attestation, algorithms) is refused.
_MALFORMED_TYPES: Final = (
    InvalidCBORData,
    InvalidAuthenticatorDataStructure,
    InvalidJSONStructure,
    InvalidAttestationObjectStructure,
    InvalidPublicKeyStructure,
)


def _reason_of(exc: WebAuthnException) -> PasskeyReason:
    if isinstance(exc, _MALFORMED_TYPES):
        return PasskeyReason.MALFORMED
    if isinstance(exc, InvalidAuthenticationResponse | SignatureVerificationException):
        return PasskeyReason.BAD_SIGNATURE
    return PasskeyReason.REFUSED


def verify_registration(
    session: Session,
    store: EphemeralStore,
    *,
    rp: RelyingParty,
    ceremony_id: str,
    credential_json: str,
    citizen_id: str,
    browser: str,
    name: str,
    now: float,
) -> WalletDevice:
    """Bind the passkey the browser created in ceremony ``ceremony_id`` to ``citizen_id``."""
    record = _take_ceremony(store, REGISTRATION_NAMESPACE, ceremony_id, browser=browser, now=now)
    if record.get("citizen_id") != citizen_id:
        raise PasskeyError(PasskeyReason.EXPIRED, "ceremony of another citizen")
    credential = parse_credential(credential_json)
    _check_client_data(
        credential,
        expected_type="webauthn.create",
        expected_challenge=str(record["challenge"]),
        expected_origin=rp.origin,
    )
    _check_authenticator_data(
        _authenticator_data(credential, registration=True), rp_id=rp.rp_id, stored_sign_count=None
    )
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(str(record["challenge"])),
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_verification=True,
            supported_pub_key_algs=ALGORITHMS,
        )
    except WebAuthnException as exc:
        raise PasskeyError(_reason_of(exc), type(exc).__name__) from exc
    if len(verified.credential_id) > MAX_CREDENTIAL_ID_BYTES:
        raise PasskeyError(PasskeyReason.MALFORMED, "credential id too long")
    credential_id = bytes_to_base64url(verified.credential_id)
    if session.scalar(select(WalletDevice.id).where(WalletDevice.credential_id == credential_id)):
        raise PasskeyError(PasskeyReason.ALREADY_BOUND, "credential bound already")
    count = session.scalar(select(func.count()).where(WalletDevice.citizen_id == citizen_id)) or 0
    if count >= MAX_DEVICES:
        raise DeviceLimitError(f"{count} devices")
    transports = credential["response"].get("transports", [])
    device = WalletDevice(
        id=str(uuid.uuid4()),
        citizen_id=citizen_id,
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=clean_device_name(name),
        aaguid=verified.aaguid,
        transports=[t for t in transports if isinstance(t, str)][:8] if isinstance(transports, list) else [],
        created_at=utc_from_timestamp(now),
    )
    session.add(device)
    session.flush()
    record_event(
        session,
        actor=f"citizen:{citizen_id}",
        action="device.bind",
        target_type="wallet_device",
        target_id=device.id,
        details={"aaguid": verified.aaguid},
        now=now,
    )
    return device


def verify_authentication(
    session: Session,
    store: EphemeralStore,
    *,
    rp: RelyingParty,
    ceremony_id: str,
    credential_json: str,
    browser: str,
    now: float,
) -> VerifiedPasskey:
    """Check a passkey assertion for ceremony ``ceremony_id``: whose device, user verified, counter up."""
    record = _take_ceremony(store, AUTHENTICATION_NAMESPACE, ceremony_id, browser=browser, now=now)
    credential = parse_credential(credential_json)
    device = session.scalar(
        select(WalletDevice).where(WalletDevice.credential_id == credential["rawId"][:400])
    )
    if device is None:
        raise PasskeyError(PasskeyReason.UNKNOWN_CREDENTIAL, "no device with this credential")
    user_handle = credential["response"].get("userHandle")
    if user_handle and user_handle != bytes_to_base64url(_user_handle(device.citizen_id)):
        raise PasskeyError(PasskeyReason.UNKNOWN_CREDENTIAL, "user handle does not match the device")
    _check_client_data(
        credential,
        expected_type="webauthn.get",
        expected_challenge=str(record["challenge"]),
        expected_origin=rp.origin,
    )
    _check_authenticator_data(
        _authenticator_data(credential, registration=False),
        rp_id=rp.rp_id,
        stored_sign_count=device.sign_count,
    )
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(str(record["challenge"])),
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=device.public_key,
            credential_current_sign_count=device.sign_count,
            require_user_verification=True,
        )
    except WebAuthnException as exc:
        raise PasskeyError(_reason_of(exc), type(exc).__name__) from exc
    # Compare-and-set: of two nodes verifying assertions with the same counter, only one raises it.
    result = session.execute(
        update(WalletDevice)
        .where(WalletDevice.id == device.id, WalletDevice.sign_count == device.sign_count)
        .values(sign_count=verified.new_sign_count, last_used_at=utc_from_timestamp(now)),
        execution_options={"synchronize_session": False},
    )
    if getattr(result, "rowcount", 0) != 1:
        raise PasskeyError(PasskeyReason.COUNTER, "counter changed concurrently")
    citizen = find_citizen(session, device.citizen_id)
    if citizen is None or not citizen.is_active:
        raise PasskeyError(PasskeyReason.CITIZEN_NOT_ACTIVE, "citizen not active")
    return VerifiedPasskey(device.citizen_id, device.id)


def clean_device_name(name: str) -> str:
    text = "".join(char for char in (name or "") if char.isprintable()).strip()[:MAX_DEVICE_NAME]
    return text or "My phone"


def list_devices(session: Session, citizen_id: str) -> list[WalletDevice]:
    return list(
        session.scalars(
            select(WalletDevice)
            .where(WalletDevice.citizen_id == citizen_id)
            .order_by(WalletDevice.created_at)
        )
    )


def remove_device(session: Session, *, citizen_id: str, device_id: str, now: float) -> None:
    device = (
        session.get(WalletDevice, device_id) if isinstance(device_id, str) and len(device_id) <= 36 else None
    )
    if device is None or device.citizen_id != citizen_id:
        raise DeviceNotFoundError("no such device of this citizen")
    session.delete(device)
    session.flush()
    record_event(
        session,
        actor=f"citizen:{citizen_id}",
        action="device.remove",
        target_type="wallet_device",
        target_id=device_id,
        details={},
        now=now,
    )
