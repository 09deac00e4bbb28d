"""What a session of a citizen of another region owes that home region, beyond the login itself
(docs/federation.md "Cross-region login"):

- a portal asking for more than the home login brought (``realname`` after a first portal's ``profile``)
  sends the citizen home again, rather than being given a token without the claims it asked for;
- the citizen's logout here is sent home too (OpenID RP-Initiated Logout 1.0, with the home id_token as
  ``id_token_hint``), so a shared computer keeps no home session behind: the home region ends its session,
  then sends the browser back to ``/federation/logout/done``, which goes on to the portal's own
  ``post_logout_redirect_uri`` — one kept here under a one-time ``state``, never one the home region names.

Both read the session's ``HomeClaims`` (``idp.federation.login_model``); both are no-ops for this
deployment's own citizens and when the federation is off.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from idp.federation.login_model import HomeClaims, find_home_claims
from idp.federation.metadata import FEDERATED_LOGIN_SCOPE, FEDERATED_LOGOUT_DONE_PATH
from idp.federation.rp import home_scope
from idp.services import services
from idp.sessions.model import SsoSession
from idp.web import browser_binding, db_session

LOGOUT_NAMESPACE: Final = "federated_logout"  # state → where to go after the home region's logout, once
LOGOUT_LIFETIME: Final = 600.0  # a slow reader may have to confirm the logout at home


def _home_claims(sid: str) -> HomeClaims | None:
    svc = services()
    if svc.federation is None:
        return None
    return find_home_claims(db_session(), svc.pii_cipher(), sid, now=svc.now())


def home_region_for_wider_scope(sid: str, portal_scope: str) -> str | None:
    """The region code to send the citizen to when the portal's request needs scopes the session's home
    login did not bring; None when it brought them all, and for a session that is not federated (or whose
    home region left the directory: then nothing more can be asked of it)."""
    home = _home_claims(sid)
    if home is None or home.covers(home_scope(portal_scope, FEDERATED_LOGIN_SCOPE)):
        return None
    context = services().federation
    assert context is not None  # _home_claims found a federated session
    region = context.directory.get(home.home_entity_id, now=services().now())
    return region.region_codes[0] if region is not None and region.region_codes else None


def scope_to_ask_home(portal_scope: str, home_entity_id: str, current_sid: str | None) -> str:
    """The scopes a login at the home region asks for: the portal's (those cross-region login supports),
    and, when the browser's session is already one of that home region, the scopes it holds — the new home
    claims replace the old ones, and the session's other portals keep what they were given."""
    asked = set(home_scope(portal_scope, FEDERATED_LOGIN_SCOPE).split())
    home = _home_claims(current_sid) if current_sid else None
    if home is not None and home.home_entity_id == home_entity_id:
        asked |= set(home.scope.split())
    return " ".join(scope for scope in FEDERATED_LOGIN_SCOPE.split() if scope in asked)


@dataclass(frozen=True)
class AfterLogout:
    """Where the browser goes once the home region has ended its session: the portal's registered
    ``post_logout_redirect_uri`` with its ``state``, or this deployment's signed-out page (None)."""

    redirect_uri: str | None
    state: str | None
    browser: str = ""  # the browser binding (idp.web): the way back is this browser's only

    def to_json(self) -> bytes:
        return json.dumps(
            {"redirect_uri": self.redirect_uri, "state": self.state, "browser": self.browser}
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> AfterLogout:
        data = json.loads(raw)
        return cls(data.get("redirect_uri"), data.get("state"), str(data.get("browser", "")))


def home_logout_url(sso: SsoSession, after: AfterLogout) -> str | None:
    """The home region's end-session URL for the federated session ``sso`` (read before it ends: its home
    claims end with it), remembering ``after`` under a one-time state; None when there is nothing to end
    at home (not federated, no id_token kept, or the home region publishes no end_session_endpoint)."""
    home = _home_claims(sso.sid)
    if home is None or home.id_token is None:
        return None
    svc = services()
    context = svc.federation
    assert context is not None
    now = svc.now()
    region = context.directory.get(home.home_entity_id, now=now)
    endpoint = region.endpoint("end_session_endpoint") if region is not None else None
    if endpoint is None:
        return None
    state = secrets.token_urlsafe(32)
    kept = dataclasses.replace(after, browser=browser_binding())
    svc.store.put(LOGOUT_NAMESPACE, state, kept.to_json(), ttl=LOGOUT_LIFETIME, now=now)
    query = {
        "id_token_hint": home.id_token,
        "client_id": context.config.entity_id,
        "post_logout_redirect_uri": context.config.entity_id + FEDERATED_LOGOUT_DONE_PATH,
        "state": state,
    }
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)


def take_after_logout(state: str | None) -> AfterLogout | None:
    """What ``home_logout_url`` remembered under ``state`` for this browser: once."""
    if not state or len(state) > 128:
        return None
    svc = services()
    raw = svc.store.get(LOGOUT_NAMESPACE, state, now=svc.now())
    if raw is None or AfterLogout.from_json(raw).browser != browser_binding():
        return None  # another browser's state (sent to a victim) leads nowhere
    raw = svc.store.take(LOGOUT_NAMESPACE, state, now=svc.now())
    return AfterLogout.from_json(raw) if raw is not None else None
