"""The hall register: add, list, show and remove halls, their services, counters and kiosks (audited).

A hall's scanner is a wallet venue (category ``government``, no claims): ``create_hall`` registers it through
the wallet's own ``create_venue`` and returns the venue's gate credentials once, so a code scanned in the
hall is verified by the gate's path (``wallet.scans.service.verify_gate_code``) and the hall is listed in the
application catalogue like every venue.

A counter's device (DESIGN.md §14) is an ``idp.clients`` client of kind ``device`` registered through idp's
own ``create_client`` (as the wallet registers a venue's gate client): ``private_key_jwt`` with the JWK Set
staff register for it, the single scope ``hall:counter``, bound to that one counter (``device_client_id``).
Its keys are replaced with ``replace_client_jwks``; removing the device, its counter or its hall removes the
client, so its credentials stop working at once.

A kiosk (a self-service terminal, issue 13) is registered the same way, as a client of kind ``kiosk``, and
bound to one hall by its ``kiosk_terminals`` row: ``/kiosk/start`` opens the pages of that hall only
(``find_kiosk``). Counter devices and kiosks share one path through idp (``_DeviceKind``, the table of what
each kind of terminal is).

Functions take a ``Session`` and ``now`` and never commit; they validate everything before they write, so a
refused request changes no row.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from halls.register.errors import (
    CounterNotFoundError,
    HallExistsError,
    HallNotFoundError,
    HallServiceNotFoundError,
    InvalidHallError,
    KioskNotFoundError,
)
from halls.register.model import Counter, Hall, HallService, Kiosk
from idp.audit.service import record_event
from idp.clients.model import Client
from idp.clients.service import (
    ClientRegistration,
    create_client,
    find_client,
    remove_client,
    replace_client_jwks,
)
from idp.config import is_local_bridge_url
from idp.db import utc_from_timestamp
from idp.scopes import HALL_COUNTER, OPENID
from sdk.keys import InvalidKeyError, KeySet
from wallet.venues.service import VenueRegistration, create_venue, remove_venue

HALL_ID_PATTERN: Final = "[a-z0-9][a-z0-9_-]{2,33}"  # short enough for its venue's id, "hall_" + id
CODE_PATTERN: Final = "[a-z0-9][a-z0-9_-]{0,39}"
PREFIX_PATTERN: Final = "[A-Z]{1,2}"
VENUE_PREFIX: Final = "hall_"
DEVICE_PREFIX: Final = "dev_"
KIOSK_PREFIX: Final = "kio_"
MAX_BRIDGE_URL: Final = 100
MAX_NAME: Final = 200
MAX_COUNTER_NAME: Final = 100
MAX_ADDRESS: Final = 300
MAX_COUNTER_SERVICES: Final = 20
MAX_DEVICE_KEYS: Final = 5  # the key in use and the next one while a device rotates, with room to spare
_HALL_ID = re.compile(HALL_ID_PATTERN)
_CODE = re.compile(CODE_PATTERN)
_PREFIX = re.compile(PREFIX_PATTERN)


@dataclass(frozen=True)
class CreatedHall:
    hall: Hall
    scanner_client_id: str
    scanner_client_secret: str = field(repr=False)


def _text(value: Any, what: str, max_length: int, *, required: bool = True) -> str:
    text = value.strip() if isinstance(value, str) else None
    if text is None or (required and not text) or len(text) > max_length or not text.isprintable():
        raise InvalidHallError(
            what, description=f"{what} must be printable text of at most {max_length} characters"
        )
    return text


def _code(value: Any, what: str = "code") -> str:
    if not (isinstance(value, str) and _CODE.fullmatch(value)):
        raise InvalidHallError(what, description=f"{what} is 1-40 of a-z, 0-9, '-' and '_'")
    return value


# Halls -----------------------------------------------------------------------------------------------------


def create_hall(
    session: Session, *, name: Any, address: Any = "", hall_id: Any = None, actor: str, now: float
) -> CreatedHall:
    """Register a hall and its scanner (a venue); the scanner's secret is returned once."""
    name = _text(name, "name", MAX_NAME)
    address = _text(address, "address", MAX_ADDRESS, required=False)
    if hall_id is None:
        hall_id = "h" + secrets.token_hex(6)
    elif not (isinstance(hall_id, str) and _HALL_ID.fullmatch(hall_id)):
        raise InvalidHallError("hall_id", description="a hall id is 3-34 of a-z, 0-9, '-' and '_'")
    if session.get(Hall, hall_id) is not None:
        raise HallExistsError(hall_id)
    created = create_venue(
        session,
        VenueRegistration(name=name, category="government", venue_id=VENUE_PREFIX + hall_id),
        actor=actor,
        now=now,
    )
    hall = Hall(
        id=hall_id, name=name, address=address, venue_id=created.venue.id, created_at=utc_from_timestamp(now)
    )
    session.add(hall)
    session.flush()
    record_event(session, actor=actor, action="hall.create", target_type="hall", target_id=hall_id, now=now)
    assert created.venue.client_id is not None
    return CreatedHall(hall, created.venue.client_id, created.client_secret)


def find_hall(session: Session, hall_id: Any) -> Hall | None:
    if not isinstance(hall_id, str) or not 0 < len(hall_id) <= 40:
        return None
    return session.get(Hall, hall_id)


def get_hall(session: Session, hall_id: Any, *, live: bool = True) -> Hall:
    hall = find_hall(session, hall_id)
    if hall is None or (live and not hall.is_live):
        raise HallNotFoundError(str(hall_id)[:40])
    return hall


def find_hall_by_venue(session: Session, venue_id: str) -> Hall | None:
    return session.scalar(select(Hall).where(Hall.venue_id == venue_id, Hall.removed_at.is_(None)))


def list_halls(session: Session, *, include_removed: bool = False) -> list[Hall]:
    query = select(Hall).order_by(Hall.created_at, Hall.id)
    if not include_removed:
        query = query.where(Hall.removed_at.is_(None))
    return list(session.scalars(query))


def remove_hall(session: Session, hall_id: str, *, actor: str, now: float) -> None:
    """Remove a hall: its scanner's credentials stop working at once (its venue is removed)."""
    hall = get_hall(session, hall_id)
    hall.removed_at = utc_from_timestamp(now)
    for counter in list_counters(session, hall):
        _unbind_device(session, counter)
    for kiosk in list_kiosks(session, hall):
        _delete_kiosk(session, kiosk)
    if hall.venue_id is not None:
        remove_venue(session, hall.venue_id, actor=actor, now=now)
    record_event(session, actor=actor, action="hall.remove", target_type="hall", target_id=hall.id, now=now)


# Services --------------------------------------------------------------------------------------------------


def add_service(
    session: Session,
    hall: Hall,
    *,
    code: Any,
    name: Any,
    prefix: Any,
    name_en: Any = "",
    actor: str,
    now: float,
) -> HallService:
    code = _code(code)
    name = _text(name, "name", MAX_NAME)
    name_en = _text(name_en, "name_en", MAX_NAME, required=False)
    if not (isinstance(prefix, str) and _PREFIX.fullmatch(prefix)):
        raise InvalidHallError("prefix", description="prefix is one or two capital letters A-Z")
    taken = session.scalar(
        select(HallService.id).where(
            HallService.hall_id == hall.id, (HallService.code == code) | (HallService.prefix == prefix)
        )
    )
    if taken is not None:
        raise HallExistsError(f"{hall.id}/{code}")
    service = HallService(
        id="hs" + secrets.token_hex(8),
        hall_id=hall.id,
        code=code,
        name=name,
        name_en=name_en,
        prefix=prefix,
        created_at=utc_from_timestamp(now),
    )
    session.add(service)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="hall.service.add",
        target_type="hall",
        target_id=hall.id,
        details={"code": code, "prefix": prefix},
        now=now,
    )
    return service


def list_services(session: Session, hall: Hall, *, include_removed: bool = False) -> list[HallService]:
    query = select(HallService).where(HallService.hall_id == hall.id).order_by(HallService.prefix)
    if not include_removed:
        query = query.where(HallService.removed_at.is_(None))
    return list(session.scalars(query))


def get_service(session: Session, hall: Hall, code: Any) -> HallService:
    service = (
        session.scalar(select(HallService).where(HallService.hall_id == hall.id, HallService.code == code))
        if isinstance(code, str) and len(code) <= 40
        else None
    )
    if service is None or not service.is_live:
        raise HallServiceNotFoundError(str(code)[:40])
    return service


def remove_service(session: Session, hall: Hall, code: str, *, actor: str, now: float) -> None:
    """Withdraw a service: no new numbers; tickets already taken are still called and served."""
    service = get_service(session, hall, code)
    service.removed_at = utc_from_timestamp(now)
    record_event(
        session,
        actor=actor,
        action="hall.service.remove",
        target_type="hall",
        target_id=hall.id,
        details={"code": service.code},
        now=now,
    )


# Counters --------------------------------------------------------------------------------------------------


def add_counter(
    session: Session, hall: Hall, *, code: Any, name: Any, services: Any, actor: str, now: float
) -> Counter:
    """A counter (窗口) calling the numbers of ``services`` (service codes, in the order it prefers them)."""
    code = _code(code)
    name = _text(name, "name", MAX_COUNTER_NAME)
    if (
        not isinstance(services, list)
        or not 0 < len(services) <= MAX_COUNTER_SERVICES
        or not all(isinstance(s, str) for s in services)
    ):
        raise InvalidHallError(
            "services", description=f"services is a list of 1-{MAX_COUNTER_SERVICES} service codes"
        )
    by_code = {s.code: s for s in list_services(session, hall)}
    unknown = [s for s in services if s not in by_code]
    if unknown:
        raise InvalidHallError("services", description="services names a service this hall does not offer")
    if session.scalar(select(Counter.id).where(Counter.hall_id == hall.id, Counter.code == code)):
        raise HallExistsError(f"{hall.id}/{code}")
    counter = Counter(
        id="hc" + secrets.token_hex(8),
        hall_id=hall.id,
        code=code,
        name=name,
        service_ids=[by_code[s].id for s in dict.fromkeys(services)],
        created_at=utc_from_timestamp(now),
    )
    session.add(counter)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="hall.counter.add",
        target_type="hall",
        target_id=hall.id,
        details={"code": code, "services": list(dict.fromkeys(services))},
        now=now,
    )
    return counter


def list_counters(session: Session, hall: Hall) -> list[Counter]:
    query = select(Counter).where(Counter.hall_id == hall.id, Counter.removed_at.is_(None))
    return list(session.scalars(query.order_by(Counter.code)))


def get_counter(session: Session, hall: Hall, code: Any) -> Counter:
    counter = (
        session.scalar(select(Counter).where(Counter.hall_id == hall.id, Counter.code == code))
        if isinstance(code, str) and len(code) <= 40
        else None
    )
    if counter is None or not counter.is_live:
        raise CounterNotFoundError(str(code)[:40])
    return counter


def remove_counter(session: Session, hall: Hall, code: str, *, actor: str, now: float) -> None:
    counter = get_counter(session, hall, code)
    counter.removed_at = utc_from_timestamp(now)
    _unbind_device(session, counter)
    record_event(
        session,
        actor=actor,
        action="hall.counter.remove",
        target_type="hall",
        target_id=hall.id,
        details={"code": counter.code},
        now=now,
    )


# Counter devices -------------------------------------------------------------------------------------------


def _public_jwks(jwks: Any) -> dict[str, Any]:
    """The JWK Set's keys, refused if any carries a private or shared part (RFC 7518 §6.2.2.1 ``d``, RSA's
    primes, a symmetric ``k``) or is of a type idp does not verify: a device's private key never leaves it,
    so staff cannot paste it here by mistake, and a device never holds a shared secret."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise InvalidHallError("jwks", description='jwks is a JWK Set: {"keys": [public JWK, …]}')
    if not 0 < len(keys) <= MAX_DEVICE_KEYS:
        raise InvalidHallError("jwks", description=f"jwks holds 1-{MAX_DEVICE_KEYS} public keys")
    if any(secret in key for key in keys for secret in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise InvalidHallError("jwks", description="jwks must hold public keys only")
    try:
        usable = len(KeySet.from_jwks({"keys": keys}))
    except InvalidKeyError as exc:
        raise InvalidHallError(str(exc)[:200], description="jwks is not a valid JWK Set") from exc
    if usable != len(keys):
        raise InvalidHallError("jwks", description="jwks holds RSA, EC P-256 or Ed25519 public keys only")
    return {"keys": keys}


@dataclass(frozen=True)
class _DeviceKind:
    """What makes a hall's keyed terminal an ``idp.clients`` client: every kind is created, re-keyed and
    removed by the same functions below, so a rule about devices is written once."""

    kind: str  # idp.clients.service.KEYED_KINDS
    scope: str
    prefix: str  # + random: a re-registered terminal never inherits its predecessor's tokens or sessions


COUNTER_DEVICE: Final = _DeviceKind(kind="device", scope=HALL_COUNTER, prefix=DEVICE_PREFIX)
# A kiosk never asks for tokens; it authenticates at /kiosk/start only. idp wants a scope and, for
# ``openid``, a redirect URI: the kiosk pages themselves, so a code sent there lands on OneCard's own page.
KIOSK_DEVICE: Final = _DeviceKind(kind="kiosk", scope=OPENID, prefix=KIOSK_PREFIX)


def _create_device_client(
    session: Session,
    device: _DeviceKind,
    *,
    name: str,
    jwks: Any,
    redirect_uris: tuple[str, ...] = (),
    now: float,
) -> Client:
    client, secret = create_client(
        session,
        ClientRegistration(
            name=name[:200],
            kind=device.kind,
            scope=device.scope,
            redirect_uris=redirect_uris,
            token_endpoint_auth_method="private_key_jwt",
            jwks=_public_jwks(jwks),
            client_id=device.prefix + secrets.token_hex(8),
        ),
        now=now,
    )
    assert secret is None  # private_key_jwt: no shared secret exists
    return client


def _remove_client(session: Session, client_id: str) -> None:
    session.flush()  # the row that named the client lets go of it before the client goes
    if find_client(session, client_id) is not None:
        remove_client(session, client_id)
        session.flush()


def _audit_hall(
    session: Session, action: str, hall_id: str, details: dict[str, Any], *, actor: str, now: float
) -> None:
    record_event(
        session, actor=actor, action=action, target_type="hall", target_id=hall_id, details=details, now=now
    )


def register_counter_device(
    session: Session, hall: Hall, code: Any, *, jwks: Any, actor: str, now: float
) -> Client:
    """Register the counter's device: a ``private_key_jwt`` client with ``jwks`` and scope ``hall:counter``,
    bound to this counter only. A counter has one device; replace its keys, or remove it first."""
    counter = get_counter(session, hall, code)
    if counter.device_client_id is not None:
        raise HallExistsError(f"{hall.id}/{counter.code}/device")
    client = _create_device_client(
        session, COUNTER_DEVICE, name=f"{hall.name} {counter.name}", jwks=jwks, now=now
    )
    counter.device_client_id = client.client_id
    session.flush()
    _audit_device(session, "hall.counter.device.register", counter, client.client_id, actor=actor, now=now)
    return client


def replace_counter_device_keys(
    session: Session, hall: Hall, code: Any, *, jwks: Any, actor: str, now: float
) -> Client:
    """Key rotation of the counter's device: its registered JWK Set becomes ``jwks``."""
    counter = get_counter(session, hall, code)
    if counter.device_client_id is None:
        raise CounterNotFoundError(f"{counter.code}: no device")
    client = replace_client_jwks(session, counter.device_client_id, _public_jwks(jwks))
    _audit_device(session, "hall.counter.device.keys", counter, client.client_id, actor=actor, now=now)
    return client


def remove_counter_device(session: Session, hall: Hall, code: Any, *, actor: str, now: float) -> None:
    """Remove the counter's device: its client is removed, its tokens stop working at once."""
    counter = get_counter(session, hall, code)
    client_id = counter.device_client_id
    if client_id is None:
        raise CounterNotFoundError(f"{counter.code}: no device")
    _unbind_device(session, counter)
    _audit_device(session, "hall.counter.device.remove", counter, client_id, actor=actor, now=now)


def counter_of_device(session: Session, client_id: str) -> Counter | None:
    """The live counter (of a live hall) this device client is bound to, if any."""
    return session.scalar(
        select(Counter)
        .join(Hall, Hall.id == Counter.hall_id)
        .where(
            Counter.device_client_id == client_id,
            Counter.removed_at.is_(None),
            Hall.removed_at.is_(None),
        )
    )


def _unbind_device(session: Session, counter: Counter) -> None:
    client_id = counter.device_client_id
    if client_id is None:
        return
    counter.device_client_id = None
    _remove_client(session, client_id)


def _audit_device(
    session: Session, action: str, counter: Counter, client_id: str, *, actor: str, now: float
) -> None:
    details = {"counter": counter.code, "device_client_id": client_id}
    _audit_hall(session, action, counter.hall_id, details, actor=actor, now=now)


# Kiosks ----------------------------------------------------------------------------------------------------


def _bridge_url(value: Any) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and len(value) <= MAX_BRIDGE_URL and is_local_bridge_url(value)):
        raise InvalidHallError(
            "bridge_url", description="bridge_url is http://127.0.0.1:PORT, where the kiosk's bridge listens"
        )
    return value


def register_kiosk(
    session: Session,
    hall: Hall,
    *,
    name: Any,
    jwks: Any,
    bridge_url: Any = None,
    issuer: str,
    actor: str,
    now: float,
) -> Kiosk:
    """Register a self-service terminal of ``hall``: a ``private_key_jwt`` client of kind ``kiosk`` with
    ``jwks``, whose ``/kiosk/start`` opens this hall's kiosk pages and no other's. ``bridge_url`` is its
    own reader bridge's, if not the deployment's ``card_bridge_url``; ``issuer`` gives its redirect URI."""
    name = _text(name, "name", MAX_NAME)
    bridge_url = _bridge_url(bridge_url)
    if session.scalar(select(Kiosk.client_id).where(Kiosk.hall_id == hall.id, Kiosk.name == name)):
        raise HallExistsError(f"{hall.id}/kiosk {name}")
    client = _create_device_client(
        session,
        KIOSK_DEVICE,
        name=f"{hall.name} {name}",
        jwks=jwks,
        redirect_uris=(issuer.rstrip("/") + "/kiosk",),
        now=now,
    )
    kiosk = Kiosk(
        client_id=client.client_id,
        hall_id=hall.id,
        name=name,
        bridge_url=bridge_url,
        created_at=utc_from_timestamp(now),
    )
    session.add(kiosk)
    session.flush()
    _audit_kiosk(session, "hall.kiosk.register", kiosk, actor=actor, now=now)
    return kiosk


def list_kiosks(session: Session, hall: Hall) -> list[Kiosk]:
    query = select(Kiosk).where(Kiosk.hall_id == hall.id).order_by(Kiosk.created_at, Kiosk.name)
    return list(session.scalars(query))


def get_kiosk(session: Session, hall: Hall, client_id: Any) -> Kiosk:
    kiosk = session.get(Kiosk, client_id) if isinstance(client_id, str) and len(client_id) <= 64 else None
    if kiosk is None or kiosk.hall_id != hall.id:
        raise KioskNotFoundError(str(client_id)[:64])
    return kiosk


def find_kiosk(session: Session, client_id: str) -> Kiosk | None:
    """The registration of this kiosk client, if it is registered to a live hall."""
    return session.scalar(
        select(Kiosk)
        .join(Hall, Hall.id == Kiosk.hall_id)
        .where(Kiosk.client_id == client_id, Hall.removed_at.is_(None))
    )


def hall_of_kiosk(session: Session, client_id: str) -> Hall | None:
    """The live hall this kiosk client is registered to, if any."""
    kiosk = find_kiosk(session, client_id)
    return session.get(Hall, kiosk.hall_id) if kiosk is not None else None


def replace_kiosk_keys(
    session: Session, hall: Hall, client_id: Any, *, jwks: Any, actor: str, now: float
) -> Kiosk:
    """Key rotation of a kiosk: its registered JWK Set becomes ``jwks``."""
    kiosk = get_kiosk(session, hall, client_id)
    replace_client_jwks(session, kiosk.client_id, _public_jwks(jwks))
    _audit_kiosk(session, "hall.kiosk.keys", kiosk, actor=actor, now=now)
    return kiosk


def remove_kiosk(session: Session, hall: Hall, client_id: Any, *, actor: str, now: float) -> None:
    """Remove a kiosk: its client goes, so its assertions and its terminal's next start are refused."""
    kiosk = get_kiosk(session, hall, client_id)
    _audit_kiosk(session, "hall.kiosk.remove", kiosk, actor=actor, now=now)
    _delete_kiosk(session, kiosk)


def _delete_kiosk(session: Session, kiosk: Kiosk) -> None:
    client_id = kiosk.client_id
    session.delete(kiosk)
    _remove_client(session, client_id)


def _audit_kiosk(session: Session, action: str, kiosk: Kiosk, *, actor: str, now: float) -> None:
    details = {"kiosk_client_id": kiosk.client_id, "kiosk": kiosk.name}
    _audit_hall(session, action, kiosk.hall_id, details, actor=actor, now=now)


# Descriptions (the admin API's and the CLI's JSON) ---------------------------------------------------------


def describe_service(service: HallService) -> dict[str, Any]:
    return {
        "code": service.code,
        "name": service.name,
        "name_en": service.name_en,
        "prefix": service.prefix,
    }


def describe_kiosk(kiosk: Kiosk) -> dict[str, Any]:
    return {
        "hall_id": kiosk.hall_id,
        "client_id": kiosk.client_id,
        "name": kiosk.name,
        "bridge_url": kiosk.bridge_url,
        "created_at": int(kiosk.created_at.timestamp()),
    }


def describe_hall(session: Session, hall: Hall) -> dict[str, Any]:
    services = list_services(session, hall)
    codes = {s.id: s.code for s in list_services(session, hall, include_removed=True)}
    return {
        "hall_id": hall.id,
        "name": hall.name,
        "address": hall.address,
        "scanner_client_id": hall.venue_id,
        "services": [describe_service(s) for s in services],
        "counters": [
            {
                "code": c.code,
                "name": c.name,
                "services": [codes[i] for i in c.service_ids if i in codes],
                "device_client_id": c.device_client_id,
            }
            for c in list_counters(session, hall)
        ],
        "kiosks": [describe_kiosk(k) for k in list_kiosks(session, hall)],
        "created_at": int(hall.created_at.timestamp()),
        "removed_at": int(hall.removed_at.timestamp()) if hall.removed_at else None,
    }
