"""Back-channel logout delivery (OIDC Back-Channel Logout 1.0 §2.5): one signed logout token per client
that took part in the ended session, POSTed in parallel with a short timeout. A slow or failing portal
cannot hold up the citizen's logout; failures are logged without PII."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogoutDelivery:
    client_id: str
    uri: str
    logout_token: str


@dataclass(frozen=True)
class DeliveryResult:
    client_id: str
    ok: bool
    status: int | None


def _deliver(delivery: LogoutDelivery, timeout: float) -> DeliveryResult:
    try:
        response = requests.post(
            delivery.uri,
            data={"logout_token": delivery.logout_token},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        log.warning("back-channel logout to client %s failed: %s", delivery.client_id, type(exc).__name__)
        return DeliveryResult(delivery.client_id, False, None)
    ok = response.status_code == 200
    if not ok:
        log.warning("back-channel logout to client %s answered %s", delivery.client_id, response.status_code)
    return DeliveryResult(delivery.client_id, ok, response.status_code)


def deliver_logout_tokens(deliveries: Sequence[LogoutDelivery], *, timeout: float) -> list[DeliveryResult]:
    if not deliveries:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(deliveries))) as pool:
        return list(pool.map(lambda d: _deliver(d, timeout), deliveries))
