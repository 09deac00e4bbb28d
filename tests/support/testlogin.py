"""A login method for tests only: it logs in whichever citizen the test names, at the acr it names.

It lives under tests/ on purpose: the shipped package has no way to log anyone in without a card or a
passkey (issue #2, item 7). Tests register it with ``create_app(plugins=[install_test_login])``.
"""

from __future__ import annotations

from flask import Blueprint, Flask, request
from werkzeug.wrappers import Response

from idp.login.authenticators import LoginMethod
from idp.login.service import LoginTooWeakError, complete_login, current_transaction
from idp.scopes import ACR_HIGH, ACR_SUBSTANTIAL
from idp.sessions.service import Authentication
from idp.web import error_page
from sdk.oidc import AMR_CARD_LOGIN, AMR_ECARD_LOGIN

AMR = {ACR_HIGH: AMR_CARD_LOGIN, ACR_SUBSTANTIAL: AMR_ECARD_LOGIN}


def install_test_login(app: Flask) -> None:
    bp = Blueprint("testlogin", __name__)

    @bp.get("/test-login/<tx>")
    def start(tx: str) -> Response:
        transaction = current_transaction(tx)
        citizen = request.args.get("citizen")
        acr = request.args.get("acr", ACR_HIGH)
        if transaction is None or not citizen or acr not in AMR:
            return error_page("test login", "bad test login request")
        try:
            return complete_login(transaction, Authentication(citizen, acr, AMR[acr])).redirect()
        except LoginTooWeakError as error:
            return error_page("A stronger login is needed", error.description, 403)

    app.register_blueprint(bp)
    registry = app.extensions["onecard"].authenticators
    registry.register(
        LoginMethod("test-high", "Test card login", "Tests only.", ACR_HIGH, AMR[ACR_HIGH], "testlogin.start")
    )
    registry.register(
        LoginMethod(
            "test-substantial",
            "Test e-card login",
            "Tests only.",
            ACR_SUBSTANTIAL,
            AMR[ACR_SUBSTANTIAL],
            "testlogin.start",
        )
    )
