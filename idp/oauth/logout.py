"""Ending an SSO session and back-channel logout (OIDC Back-Channel Logout 1.0 §2.5): the session's grants
are revoked, then one signed logout token per client that took part in it is POSTed in parallel with a
short timeout. A slow or failing portal cannot hold up the citizen's logout; failures are logged without
PII."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from idp.clients.service import find_client
from idp.federation.login_model import forget_sessions
from idp.grants.model import Grant
from idp.grants.service import grants_of_session, revoke_grant
from idp.keys.service import OIDC_ES256, OIDC_RS256
from idp.oauth.claims import subject_for
from idp.oauth.tokens import issue_logout_token
from idp.scopes import OFFLINE_ACCESS
from idp.services import services
from idp.sessions.model import SsoSession
from idp.sessions.service import end_session
from idp.web import db_session

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


def end_sso_session(sso: SsoSession, *, now: float) -> None:
    """End the session, revoke the grants made in it (except offline access), notify every portal."""
    svc = services()
    session = db_session()
    participants = end_session(session, sso, now=now)
    forget_sessions(session, [sso.sid])  # a citizen of another region: their home claims end with it
    for grant_id in grants_of_session(session, sso.sid):
        grant = session.get(Grant, grant_id)
        if grant is not None and OFFLINE_ACCESS not in grant.scope.split():
            revoke_grant(session, grant_id, reason="logout", now=now)
    deliveries = []
    for client_id in participants:
        client = find_client(session, client_id)
        if client is None or not client.backchannel_logout_uri:
            continue
        key_set = OIDC_ES256 if client.id_token_signed_response_alg == "ES256" else OIDC_RS256
        logout_token = issue_logout_token(
            keys=svc.keyring.key_set(key_set.name, now=now),
            alg=key_set.alg,  # type: ignore[arg-type]
            issuer=svc.settings.issuer,
            client_id=client.client_id,
            subject=subject_for(
                client, sso.citizen_id, salt=svc.settings.pairwise_salt or svc.settings.issuer
            ),
            sid=sso.sid,
            now=now,
        )
        deliveries.append(LogoutDelivery(client.client_id, client.backchannel_logout_uri, logout_token))
    session.commit()  # the session is over before any portal hears of it
    deliver_logout_tokens(deliveries, timeout=svc.settings.back_channel_logout_timeout)
