"""The login-method plug-in interface (DESIGN.md §3, §4, §6).

A login method (card + PIN, e-card passkey, QR scan-to-login) registers a ``LoginMethod`` saying which acr
and amr it yields and which endpoint starts it; it brings its own blueprint for its pages and APIs, and
when the citizen has proven who they are it calls ``idp.login.service.complete_login``. The login page
offers the methods whose acr meets what the client asked for. The shipped package registers no method
that logs anyone in without a card or a passkey.
"""

from __future__ import annotations

from dataclasses import dataclass

from idp.scopes import acr_rank


@dataclass(frozen=True)
class LoginMethod:
    name: str  # short id, e.g. "card"
    label: str  # the button text
    description: str  # one plain sentence for the login page
    acr: str
    amr: tuple[str, ...]
    start_endpoint: str  # Flask endpoint taking ``tx`` (the login transaction id)


class AuthenticatorRegistry:
    def __init__(self) -> None:
        self._methods: dict[str, LoginMethod] = {}

    def register(self, method: LoginMethod) -> None:
        if method.name in self._methods:
            raise ValueError(f"login method {method.name!r} registered twice")
        self._methods[method.name] = method

    def get(self, name: str) -> LoginMethod | None:
        return self._methods.get(name)

    def all(self) -> list[LoginMethod]:
        return list(self._methods.values())

    def methods_for(self, required_acr: str) -> list[LoginMethod]:
        """Methods strong enough for ``required_acr``, strongest first."""
        fit = [m for m in self._methods.values() if acr_rank(m.acr) >= acr_rank(required_acr)]
        return sorted(fit, key=lambda m: -acr_rank(m.acr))
