"""Flask integration of ``sdk.portal``: a blueprint with login, callback, logout and back-channel logout, and
``current_citizen()`` for the portal's own views.

This is the one module of ``sdk`` that imports Flask (the import-linter contract lists the exception): the
issue asks for a Flask integration in ``sdk.portal``, and keeping it here means ``import sdk.portal`` still
loads no Flask. Install with ``pip install 'onecard[portal-flask]'``.

Session contents (Flask's session; the app must set ``SECRET_KEY``): while a login is under way, the
``AuthorizationStart``; afterwards the verified id_token claims, the userinfo claims, the raw id_token (for
the logout hint) and when the login happened. Access and refresh tokens are *not* put in the session (a
Flask session is a signed cookie the browser can read); ``on_login`` receives them to keep server-side.

Back-channel logout (OIDC Back-Channel Logout 1.0): the endpoint verifies the logout token and records its
``sid`` (or ``sub``) as logged out in a ``LogoutStore``; the next request of a browser whose login carries
that ``sid`` (or ``sub``, and logged in before the token) finds its session cleared. The default store is in
memory, for one process; several processes need a shared one (anything with ``mark``/``logged_out_at``).
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from html import escape
from types import MappingProxyType
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, redirect, request, session
from werkzeug.wrappers import Response

from sdk.portal import (
    ACR_LEVELS,
    DEFAULT_SCOPE,
    AuthorizationStart,
    PortalClient,
    PortalError,
    PortalTokens,
    TokenValidationError,
)

EXTENSION: Final = "onecard_portal"
SESSION_START: Final = "onecard.start"
SESSION_LOGIN: Final = "onecard.login"
_LANGUAGE_TAGS: Final = re.compile(
    r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*(?: [A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*){0,4}"
)
SESSION_CSRF: Final = "onecard.csrf"
DEFAULT_LOGOUT_MEMORY: Final = 86_400.0  # how long a back-channel logout is remembered (≥ session lifetime)


class LogoutStore(Protocol):
    """Where back-channel logouts are remembered until every session they end has come back (or expired)."""

    def mark(self, key: str, *, at: float, ttl: float) -> None: ...

    def logged_out_at(self, key: str, *, now: float) -> float | None: ...


class MemoryLogoutStore:
    """The default ``LogoutStore``: a dict in this process, entries dropped after their ``ttl``."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (logged out at, forget after)
        self._lock = threading.Lock()

    def mark(self, key: str, *, at: float, ttl: float) -> None:
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[1] > at}
            previous = self._entries.get(key)
            self._entries[key] = (max(at, previous[0]) if previous else at, at + ttl)

    def logged_out_at(self, key: str, *, now: float) -> float | None:
        with self._lock:
            entry = self._entries.get(key)
        return entry[0] if entry is not None and entry[1] > now else None


@dataclass(frozen=True, slots=True)
class PortalCitizen:
    """The logged-in citizen as this portal's session holds it."""

    subject: str
    sid: str | None
    acr: str | None
    amr: tuple[str, ...]
    auth_time: int | None
    logged_in_at: float
    claims: Mapping[str, Any]  # id_token claims overlaid with the userinfo claims
    id_token: str

    def get(self, name: str, default: Any = None) -> Any:
        return self.claims.get(name, default)


LoginHook = Callable[[PortalTokens, Mapping[str, Any]], None]
LogoutHook = Callable[[PortalCitizen | None], None]


@dataclass
class _PortalState:
    client: PortalClient
    store: LogoutStore
    logout_memory: float


def _state() -> _PortalState:
    state: _PortalState = current_app.extensions[EXTENSION]
    return state


def _now() -> float:
    return _state().client.clock()


def _local_path(target: str | None, default: str) -> str:
    """Only same-site paths: no scheme, no host, no ``//`` or backslash tricks (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(char) < 0x20 for char in target):
        return default
    return target


def _session_citizen() -> PortalCitizen | None:
    data = session.get(SESSION_LOGIN)
    if not isinstance(data, dict):
        return None
    try:
        claims = dict(data["claims"])
        return PortalCitizen(
            subject=str(data["sub"]),
            sid=data.get("sid"),
            acr=data.get("acr"),
            amr=tuple(data.get("amr") or ()),
            auth_time=data.get("auth_time"),
            logged_in_at=float(data["logged_in_at"]),
            claims=MappingProxyType(claims),
            id_token=str(data["id_token"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _logged_out_by_back_channel(citizen: PortalCitizen) -> bool:
    state = _state()
    now = _now()
    if citizen.sid is not None and state.store.logged_out_at(f"sid:{citizen.sid}", now=now) is not None:
        return True
    at = state.store.logged_out_at(f"sub:{citizen.subject}", now=now)
    return at is not None and citizen.logged_in_at <= at


def current_citizen() -> PortalCitizen | None:
    """The citizen logged in to this portal in this browser, or None (also after a back-channel logout)."""
    citizen = _session_citizen()
    if citizen is None:
        return None
    if _logged_out_by_back_channel(citizen):
        session.pop(SESSION_LOGIN, None)
        return None
    return citizen


def logout_csrf_token() -> str:
    """The token the logout form posts back (put it in a hidden ``csrf`` field)."""
    token = session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        session[SESSION_CSRF] = token
    return token


def create_portal_blueprint(
    client: PortalClient,
    *,
    name: str = "onecard",
    url_prefix: str | None = None,
    scope: str = DEFAULT_SCOPE,
    default_acr: str | None = None,
    acr_choices: Collection[str] = ACR_LEVELS,
    fetch_userinfo: bool = True,
    on_login: LoginHook | None = None,
    on_logout: LogoutHook | None = None,
    after_login: str = "/",
    post_logout_redirect_uri: str | None = None,
    logout_store: LogoutStore | None = None,
    logout_memory: float = DEFAULT_LOGOUT_MEMORY,
) -> Blueprint:
    """Routes (under ``url_prefix``):

    - ``GET login[?acr=…&next=/path&prompt=login]`` — start a login; ``acr`` (one of ``acr_choices``)
      asks for that assurance, which is also how a logged-in citizen steps up;
    - ``GET callback`` — the registered redirect URI: verifies everything, fills the session, calls
      ``on_login(tokens, userinfo)``, redirects to ``next`` (or ``after_login``);
    - ``POST logout`` (form field ``csrf`` = ``logout_csrf_token()``) — clears the local session and sends
      the browser to the provider to end the OneCard session everywhere (RP-initiated logout);
    - ``POST backchannel-logout`` — the registered back-channel logout URI.
    """
    bp = Blueprint(name, __name__, url_prefix=url_prefix)
    store = logout_store if logout_store is not None else MemoryLogoutStore()
    allowed_acrs = frozenset(acr_choices)

    @bp.record_once
    def _register(setup: Any) -> None:
        setup.app.extensions[EXTENSION] = _PortalState(client, store, logout_memory)

    @bp.before_app_request
    def _enforce_back_channel_logout() -> None:
        current_citizen()  # clears the session of a citizen logged out elsewhere

    @bp.get("/login")
    def login() -> Response:
        acr = request.args.get("acr") or default_acr
        if acr is not None and acr not in allowed_acrs:
            return _problem("This sign-in level is not offered.", 400)
        prompt = request.args.get("prompt")
        if prompt not in (None, "login", "consent"):
            return _problem("Unknown prompt.", 400)
        # The portal's page language, passed on so OneCard's login pages speak it too (OIDC ``ui_locales``).
        ui_locales = request.args.get("ui_locales") or None
        if ui_locales is not None and not _LANGUAGE_TAGS.fullmatch(ui_locales):
            return _problem("Unknown ui_locales.", 400)
        start = client.authorization_url(
            scope, acr_values=[acr] if acr else None, prompt=prompt, ui_locales=ui_locales
        )
        session[SESSION_START] = {
            **start.to_dict(),
            "next": _local_path(request.args.get("next"), after_login),
        }
        return redirect(start.url, 303)

    @bp.get("/callback")
    def callback() -> Response:
        saved = session.pop(SESSION_START, None)
        if not isinstance(saved, dict):
            return _problem("This sign-in was not started here, or it was already completed.", 400)
        start = AuthorizationStart.from_dict(saved)
        try:
            tokens = client.exchange_code(request.args.to_dict(flat=True), start)
            verified = tokens.id_token_claims
            assert verified is not None and tokens.id_token is not None
            userinfo: Mapping[str, Any] = {}
            if fetch_userinfo:
                userinfo = client.userinfo(
                    tokens.access_token, expected_subject=verified.subject, token_type=tokens.token_type
                )
        except PortalError as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "oauth_error", "")
            current_app.logger.warning("OneCard sign-in refused: %s %s", exc.error, reason)
            return _problem(exc.description, 502 if exc.status_code >= 500 else 400)
        if on_login is not None:
            on_login(tokens, userinfo)
        csrf = session.get(SESSION_CSRF)
        session.clear()  # a new login starts a new session (no fixation)
        if isinstance(csrf, str):
            session[SESSION_CSRF] = csrf
        session[SESSION_LOGIN] = {
            "sub": verified.subject,
            "sid": verified.sid,
            "acr": verified.acr,
            "amr": list(verified.amr),
            "auth_time": verified.auth_time,
            "logged_in_at": client.clock(),
            "claims": {**_profile_claims(verified.claims), **dict(userinfo)},
            "id_token": tokens.id_token,
        }
        return redirect(_local_path(str(saved.get("next") or ""), after_login), 303)

    @bp.post("/logout")
    def logout() -> Response:
        expected = session.get(SESSION_CSRF)
        posted = request.form.get("csrf", "")
        if not isinstance(expected, str) or not secrets.compare_digest(expected, posted):
            return _problem("Please use the log-out button on the page.", 400)
        citizen = _session_citizen()
        session.clear()
        if on_logout is not None:
            on_logout(citizen)
        if citizen is None:
            return redirect(post_logout_redirect_uri or after_login, 303)
        return redirect(
            client.logout_url(citizen.id_token, post_logout_redirect_uri, secrets.token_urlsafe(12)), 303
        )

    @bp.post("/backchannel-logout")
    def backchannel_logout() -> Response:
        token = request.form.get("logout_token", "")
        try:
            verified = client.verify_logout_token(token)
        except TokenValidationError as exc:
            current_app.logger.warning("back-channel logout token refused: %s", exc.reason)
            response = jsonify({"error": "invalid_request", "error_description": exc.description})
            response.status_code = 400
            response.headers["Cache-Control"] = "no-store"
            return response
        now = client.clock()
        if verified.sid is not None:
            store.mark(f"sid:{verified.sid}", at=now, ttl=logout_memory)
        else:
            store.mark(f"sub:{verified.subject}", at=now, ttl=logout_memory)
        return Response(status=200, headers={"Cache-Control": "no-store"})

    return bp


_ID_TOKEN_HOUSEKEEPING: Final = frozenset(
    {"iss", "aud", "azp", "exp", "iat", "nonce", "at_hash", "c_hash", "jti", "auth_time", "sid"}
)


def _profile_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in claims.items() if name not in _ID_TOKEN_HOUSEKEEPING}


def _problem(message: str, status: int) -> Response:
    """A plain, accessible error page; the portal can style its own by wrapping the blueprint."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in problem</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        '<body style="font-size:1.25rem;line-height:1.5;max-width:40rem;margin:2rem auto">'
        f'<h1>Sign-in problem</h1><p role="alert">{escape(message)}</p><p><a href="/">Back</a></p>'
        "</body></html>"
    )
    return Response(body, status=status, mimetype="text/html")


__all__ = [
    "LogoutStore",
    "MemoryLogoutStore",
    "PortalCitizen",
    "create_portal_blueprint",
    "current_citizen",
    "logout_csrf_token",
]
