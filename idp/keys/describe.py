"""What operators see of keys and key-set policies: ``onecard keys list|show|policy`` and the admin API
(``/api/v1/admin/keys``) render these dicts. Never a key's secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from idp.db import utc_from_timestamp
from idp.keys.actor import KeyActor
from idp.keys.model import KeyRecord, KeyState
from idp.keys.policy import KeySetPolicy
from idp.keys.reencrypt import rows_under_data_key
from idp.keys.service import DATA_KEYS, list_keys


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _iso(value: float | None) -> str | None:
    return utc_from_timestamp(value).isoformat() if value is not None else None


def describe_key(session: Session, who: KeyActor, record: KeyRecord, *, now: float) -> dict[str, Any]:
    """What operators see of a key: never its secret."""
    policy = who.policy(record.key_set)
    state = KeyState(record.state)
    next_step: dict[str, Any] | None = None
    if state is KeyState.PENDING:
        next_step = {
            "action": "activate",
            "not_before": _iso(record.created_at.timestamp() + policy.prepublication),
        }
    elif state is KeyState.RETIRED:
        next_step = {
            "action": "remove",
            "not_before": _iso((_ts(record.retired_at) or now) + policy.retention),
        }
    elif state is KeyState.ACTIVE:
        due = policy.rotation_due(_ts(record.activated_at) or record.created_at.timestamp())
        next_step = {"action": "rotate", "not_before": _iso(due)} if due is not None else None
    described: dict[str, Any] = {
        "kid": record.kid,
        "key_set": record.key_set,
        "alg": record.alg,
        "state": record.state,
        "created_at": _iso(_ts(record.created_at)),
        "activated_at": _iso(_ts(record.activated_at)),
        "retired_at": _iso(_ts(record.retired_at)),
        "removed_at": _iso(_ts(record.removed_at)),
        "revoked_at": _iso(_ts(record.revoked_at)),
        "published": record.is_published and policy.published,
        "next": next_step,
    }
    if record.public_jwk is not None:
        described["public_jwk"] = record.public_jwk
    if record.key_set == DATA_KEYS.name:
        described["rows"] = rows_under_data_key(session, record.kid)
    return described


def describe_policy(policy: KeySetPolicy) -> dict[str, Any]:
    return {
        "key_set": policy.name,
        "published": policy.published,
        "prepublication_seconds": policy.prepublication,
        "retention_seconds": policy.retention,
        "rotation_interval_seconds": policy.rotation_interval,
        "rotatable": policy.rotatable,
        "derivation": policy.why,
    }


def list_described(
    session: Session, who: KeyActor, key_set: str | None, *, now: float, include_gone: bool = False
) -> list[dict[str, Any]]:
    records = list_keys(session, key_set)
    return [
        describe_key(session, who, record, now=now)
        for record in records
        if include_gone or record.is_published
    ]
