"""The hall register: add, list, show and remove halls, their services and counters (audited).

A hall's scanner is a wallet venue (category ``government``, no claims): ``create_hall`` registers it through
the wallet's own ``create_venue`` and returns the venue's gate credentials once, so a code scanned in the
hall is verified by the gate's path (``wallet.scans.service.verify_gate_code``) and the hall is listed in the
application catalogue like every venue.

A counter's device (DESIGN.md §14) is an ``idp.clients`` client of kind ``device`` registered through idp's
own ``create_client`` (as the wallet registers a venue's gate client): ``private_key_jwt`` with the JWK Set
staff register for it, the single scope ``hall:counter``, bound to that one counter (``device_client_id``).
Its keys are replaced with ``replace_client_jwks``; removing the device, its counter or its hall removes the
client, so its credentials stop working at once. Functions take a ``Session`` and ``now`` and never commit;
they validate everything before they write, so a refused request changes no row.
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
)
from halls.register.model import Counter, Hall, HallService
from idp.audit.service import record_event
from idp.clients.model import Client
from idp.clients.service import (
    ClientRegistration,
    create_client,
    find_client,
    remove_client,
    replace_client_jwks,
)
from idp.db import utc_from_timestamp
from idp.scopes import HALL_COUNTER
from sdk.keys import InvalidKeyError, KeySet
from wallet.venues.service import VenueRegistration, create_venue, remove_venue

HALL_ID_PATTERN: Final = "[a-z0-9][a-z0-9_-]{2,33}"  # short enough for its venue's id, "hall_" + id
CODE_PATTERN: Final = "[a-z0-9][a-z0-9_-]{0,39}"
PREFIX_PATTERN: Final = "[A-Z]{1,2}"
VENUE_PREFIX: Final = "hall_"
DEVICE_PREFIX: Final = "dev_"  # + random: a re-registered device never inherits its predecessor's tokens
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


def register_counter_device(
    session: Session, hall: Hall, code: Any, *, jwks: Any, actor: str, now: float
) -> Client:
    """Register the counter's device: a ``private_key_jwt`` client with ``jwks`` and scope ``hall:counter``,
    bound to this counter only. A counter has one device; replace its keys, or remove it first."""
    counter = get_counter(session, hall, code)
    if counter.device_client_id is not None:
        raise HallExistsError(f"{hall.id}/{counter.code}/device")
    client, secret = create_client(
        session,
        ClientRegistration(
            name=f"{hall.name} {counter.name}"[:200],
            kind="device",
            scope=HALL_COUNTER,
            token_endpoint_auth_method="private_key_jwt",
            jwks=_public_jwks(jwks),
            client_id=DEVICE_PREFIX + secrets.token_hex(8),
        ),
        now=now,
    )
    assert secret is None  # private_key_jwt: no shared secret exists
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
    session.flush()  # the row lets go of the client before the client goes
    if find_client(session, client_id) is not None:
        remove_client(session, client_id)
        session.flush()


def _audit_device(
    session: Session, action: str, counter: Counter, client_id: str, *, actor: str, now: float
) -> None:
    record_event(
        session,
        actor=actor,
        action=action,
        target_type="hall",
        target_id=counter.hall_id,
        details={"counter": counter.code, "device_client_id": client_id},
        now=now,
    )


# Descriptions (the admin API's and the CLI's JSON) ---------------------------------------------------------


def describe_service(service: HallService) -> dict[str, Any]:
    return {
        "code": service.code,
        "name": service.name,
        "name_en": service.name_en,
        "prefix": service.prefix,
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
        "created_at": int(hall.created_at.timestamp()),
        "removed_at": int(hall.removed_at.timestamp()) if hall.removed_at else None,
    }
