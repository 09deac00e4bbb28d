"""QR scan-to-login in two real browsers across two server nodes (issue 5 item 1, "How it is checked"): the
result is delivered through a different node than the one that created the channel.

Two gunicorn processes on one PostgreSQL database and one Redis (tests/support/nodes.py) sit behind a small
reverse proxy (tests/support/proxy.py) whose public URL, ``http://localhost:<port>``, is the issuer: both
Chromium contexts see one origin (cookies ignore ports; passkeys are bound to the origin) while the proxy
sends the channel's creation and the rest of the login to node A, and the phone's wallet pages and the
desktop's watch of the channel (long-poll and collection) to node B.

The desktop context starts a portal's login; the phone context — a DevTools virtual authenticator, its
passkey bound first through the wallet's devices page — opens the URL decoded from the desktop's QR code,
picks the number and approves; the desktop's page collects at node B and lands on the portal with a code,
which the portal redeems. Skipped without Chromium, PostgreSQL or Redis (failed under CI=true)."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from idp.cardlogin.views import AMR as CARD_AMR
from idp.clients.service import ClientRegistration, create_client
from idp.scopes import ACR_HIGH, ACR_SUBSTANTIAL
from idp.sessions.service import Authentication, create_session
from idp.web import SESSION_COOKIE
from tests.support.nodes import migrated_deployment, running_nodes
from tests.support.proxy import ProxiedRequest, ReverseProxy, Routed
from tests.support.qrimage import decode_qr
from tests.support.qrlogin import CHALLENGE, VERIFIER, seed_citizen_with_ecard
from wallet.plugin import init_app as install_wallet

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.redis]

NODE_A = "A"
NODE_B = "B"
_CREATE = re.compile(r"/login/[^/]+/qr")
_WATCH = re.compile(r"/login/[^/]+/qr/[^/]+/(status|collect)")
_PHONE = re.compile(r"/wallet/qr-login/[^/]+(/(match|options|approve|deny))?")


def route(request: ProxiedRequest) -> str:
    """The load balancer's rule for this test: the wallet's paths (the phone's pages and APIs, and the
    wallet's static files) and the desktop's watch of the channel to node B; everything else — the portal's
    authorization request, the login page, the channel's creation, the resumed login, the token endpoint —
    to node A."""
    path = request.path_only
    if path.startswith("/wallet/") or _WATCH.fullmatch(path):
        return NODE_B
    return NODE_A


class _Portal(BaseHTTPRequestHandler):
    """The portal's redirect URI: records what the browser brought back."""

    received: list[dict[str, list[str]]]

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/cb":  # (not the favicon)
            self.received.append(parse_qs(urlsplit(self.path).query))
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<h1>Portal</h1>")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def portal() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    received: list[dict[str, list[str]]] = []
    handler = type("Portal", (_Portal,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_port}/cb", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _virtual_authenticator(context: Any, page: Any) -> None:
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )


def _bind_passkey(phone: Any, base: str, session_cookie: str) -> None:
    """The phone, logged in at loa:high (the SSO session a card + PIN login records, handed to the browser
    as its cookie: there is no test login on the nodes), binds its passkey on the wallet's devices page,
    then signs out — approving needs the passkey alone."""
    phone.context.add_cookies(
        [{"name": SESSION_COOKIE, "value": session_cookie, "url": base, "httpOnly": True, "sameSite": "Lax"}]
    )
    phone.goto(f"{base}/wallet/")
    assert "Ready to use" in phone.inner_text("#ecard-status")
    phone.goto(f"{base}/wallet/devices")
    phone.fill("#device-name", "Zhang's phone")
    phone.click("#passkey-register")
    phone.wait_for_selector("text=Zhang's phone", timeout=10_000)
    phone.goto(f"{base}/wallet/")
    phone.click("text=Sign out")
    phone.wait_for_url(re.compile(r".*/wallet/signin$"))


def _id_token_claims(token_url: str, client_id: str, secret: str, code: str, redirect_uri: str) -> Any:
    token = requests.post(
        token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": VERIFIER,
        },
        auth=(client_id, secret),
        timeout=10,
    )
    assert token.status_code == 200, token.text
    payload = token.json()["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_scan_to_login_delivered_through_another_node(
    chromium: Any,
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
    portal: tuple[str, list[dict[str, list[str]]]],
) -> None:
    redirect_uri, landed = portal
    with migrated_deployment(
        postgres_url, redis_url, label="oc-qr-nodes-browser", plugins=[install_wallet]
    ) as (
        svc,
        prefix,
    ):
        citizen_id = seed_citizen_with_ecard(svc)
        with svc.database.session() as session:
            client, secret = create_client(
                session,
                ClientRegistration(
                    name="Provincial Tax Portal",
                    redirect_uris=(redirect_uri,),
                    scope="openid profile",
                    first_party=True,
                ),
                now=svc.now(),
            )
            client_id = client.client_id
            _record, session_cookie = create_session(
                session,
                Authentication(citizen_id, ACR_HIGH, CARD_AMR),
                ttl=svc.settings.sso_session_ttl,
                now=svc.now(),
            )
        assert secret is not None
        svc.database.dispose()

        with (
            ReverseProxy(route) as proxy,
            running_nodes(postgres_url, redis_url, prefix, log_dir=tmp_path, issuer=proxy.url) as nodes,
        ):
            node_a, node_b = nodes
            assert node_a.process.pid != node_b.process.pid
            proxy.set_upstreams({NODE_A: node_a.url, NODE_B: node_b.url})
            base = proxy.url
            # English pages (the assertions read English; Chinese is the default, tests/test_i18n_browser.py).
            phone_context = chromium.new_context(
                viewport={"width": 412, "height": 915}, device_scale_factor=2, locale="en-US"
            )
            desktop_context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
            try:
                phone = phone_context.new_page()
                _virtual_authenticator(phone_context, phone)
                _bind_passkey(phone, base, session_cookie)
                desktop = desktop_context.new_page()

                # The desktop: the portal's login, the QR method; node A opens the channel.
                desktop.goto(
                    f"{base}/authorize?response_type=code&client_id={client_id}&redirect_uri={redirect_uri}"
                    f"&scope=openid%20profile&state=s1&nonce=n1&code_challenge={CHALLENGE}"
                    "&code_challenge_method=S256"
                )
                desktop.click("#start-qr")
                desktop.wait_for_selector("#qr-login[data-state=waiting]")
                url = decode_qr(desktop.screenshot(full_page=True))
                assert re.fullmatch(re.escape(base) + r"/wallet/qr-login/[A-Za-z0-9_-]{32}", url)
                code = desktop.inner_text("#match-code").strip()

                # The phone scans, matches and approves with its passkey — all at node B.
                phone.goto(url)
                desktop.wait_for_selector("#qr-login[data-state=scanned]", timeout=15_000)
                assert phone.inner_text("#req-client") == "Provincial Tax Portal"
                phone.click(f"#choice-{code}")
                phone.wait_for_selector("#qr-approve-button")
                phone.click("#qr-approve-button")
                phone.wait_for_selector("#qr-result[data-outcome=approved]", timeout=10_000)

                # The desktop's page collects (at node B) and goes on to the portal (through node A).
                desktop.wait_for_url(re.compile("^" + re.escape(redirect_uri) + r"\?code="), timeout=30_000)
                assert SESSION_COOKIE in {c["name"] for c in desktop_context.cookies(base)}
            finally:
                desktop_context.close()
                phone_context.close()

            assert len(landed) == 1 and landed[0]["state"] == ["s1"] and landed[0]["iss"] == [base]
            claims = _id_token_claims(f"{base}/token", client_id, secret, landed[0]["code"][0], redirect_uri)
            assert claims["acr"] == ACR_SUBSTANTIAL and claims["amr"] == ["hwk", "mfa"]

            # Where each step was answered.
            def at(node: str, method: str, pattern: re.Pattern[str]) -> list[Routed]:
                return proxy.requests_to(
                    node, lambda r: r.method == method and bool(pattern.fullmatch(urlsplit(r.path).path))
                )

            created = at(NODE_A, "GET", _CREATE)
            assert [r.status for r in created] == [200] and not at(NODE_B, "GET", _CREATE)
            channel = url.rsplit("/", 1)[1]
            assert [r.status for r in at(NODE_B, "GET", re.compile(f"/wallet/qr-login/{channel}"))]
            approvals = at(NODE_B, "POST", re.compile(f"/wallet/qr-login/{channel}/approve"))
            assert [r.status for r in approvals] == [200]
            polls = at(NODE_B, "GET", re.compile(rf"/login/[^/]+/qr/{channel}/status"))
            assert polls and all(r.status == 200 for r in polls)
            collections = at(NODE_B, "POST", re.compile(rf"/login/[^/]+/qr/{channel}/collect"))
            assert [r.status for r in collections] == [200]
            assert not at(NODE_A, "GET", _WATCH) and not at(NODE_A, "POST", _WATCH)
            assert not proxy.requests_to(NODE_A, lambda r: bool(_PHONE.fullmatch(urlsplit(r.path).path)))
            # The resumed login and the token were node A's.
            assert at(NODE_A, "GET", re.compile(r"/authorize(/.*)?"))
            assert [r.status for r in at(NODE_A, "POST", re.compile("/token"))] == [200]
            assert proxy.errors == []
