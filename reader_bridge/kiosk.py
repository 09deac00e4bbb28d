"""The kiosk launch page (issue 13): how a kiosk's browser starts its terminal session at OneCard.

In the kiosk profile with ``--kiosk-credentials FILE`` the bridge holds the terminal's private key (the file
the hall's staff made when they registered the kiosk: ``client_id``, ``kid``, ``private_key_pem`` and the
``issuer``, the assertion's audience). ``GET /kiosk`` on the bridge is then the kiosk device's start URL: a
page whose form posts a fresh one-time client assertion (``sdk.client_assertion``, private_key_jwt) to
``ORIGIN/kiosk/start`` and submits itself. The key never reaches the browser's pages: the assertion is
good for one start within a minute.

Only a top-level navigation typed, bookmarked or launched (``Sec-Fetch-Site: none``) gets the page; a
request with an ``Origin`` header or from any site is refused, so no web page can make the kiosk start a
session. No Flask and no OneCard server code here (DESIGN.md §1).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sdk.client_assertion import client_assertion_fields
from sdk.keys import InvalidKeyError, Key

KIOSK_LAUNCH_PATH: Final = "/kiosk"
START_PATH: Final = "/kiosk/start"
_SUBMIT_SCRIPT: Final = 'document.getElementById("start").submit();'
_SCRIPT_HASH: Final = base64.b64encode(hashlib.sha256(_SUBMIT_SCRIPT.encode()).digest()).decode()


class InvalidKioskCredentialsError(ValueError):
    """The credentials file cannot be used; the message says why (never the key)."""


@dataclass(frozen=True)
class KioskCredentials:
    client_id: str
    issuer: str  # the audience of its assertions
    key: Key = field(repr=False)


@dataclass(frozen=True)
class KioskLaunch:
    """What ``GET /kiosk`` needs: where the kiosk pages are (the kiosk profile's one origin) and the key."""

    origin: str
    credentials: KioskCredentials

    @property
    def start_url(self) -> str:
        return self.origin + START_PATH


def parse_kiosk_credentials(document: Any) -> KioskCredentials:
    if not isinstance(document, dict):
        raise InvalidKioskCredentialsError("not a JSON object")
    texts = {name: document.get(name) for name in ("client_id", "kid", "private_key_pem", "issuer")}
    missing = [name for name, value in texts.items() if not (isinstance(value, str) and value)]
    if missing:
        raise InvalidKioskCredentialsError(f"missing {', '.join(missing)}")
    try:
        key = Key.from_private_pem(str(texts["private_key_pem"]).encode(), kid=str(texts["kid"]))
    except (InvalidKeyError, ValueError, TypeError) as exc:
        raise InvalidKioskCredentialsError(
            f"private_key_pem is not a usable private key ({type(exc).__name__})"
        ) from None
    return KioskCredentials(client_id=str(texts["client_id"]), issuer=str(texts["issuer"]), key=key)


def load_kiosk_credentials(path: Path) -> KioskCredentials:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidKioskCredentialsError(f"{path}: not a readable JSON file ({exc})") from None
    return parse_kiosk_credentials(document)


def launch_allowed(*, origin: str | None, fetch_site: str | None) -> bool:
    """A top-level navigation started by the kiosk itself: no ``Origin`` header (browsers send one with
    what a page makes them request) and, where the browser sends Fetch Metadata, ``Sec-Fetch-Site: none``."""
    return origin is None and (fetch_site is None or fetch_site.lower() == "none")


def launch_headers(launch: KioskLaunch) -> dict[str, str]:
    """The page's own policy: its one inline script (by hash), its form to the kiosk pages only, no frame."""
    return {
        "Content-Security-Policy": f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; "
        f"style-src 'unsafe-inline'; form-action {launch.origin}; frame-ancestors 'none'; base-uri 'none'",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def launch_page(launch: KioskLaunch, *, now: float) -> str:
    """The self-submitting start form with a fresh assertion (a ``<noscript>`` button without script)."""
    credentials = launch.credentials
    fields = client_assertion_fields(
        client_id=credentials.client_id, audience=credentials.issuer, key=credentials.key, now=now
    )
    inputs = "\n".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )
    return f"""<!DOCTYPE html>
<html lang="zh-Hans"><head><meta charset="utf-8"><title>自助终端 · Self-service terminal</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:1.5rem system-ui,sans-serif;margin:3rem;text-align:center}}</style></head>
<body><main>
<p>正在启动自助终端… <span lang="en">Starting the terminal…</span></p>
<form id="start" method="post" action="{html.escape(launch.start_url)}">
{inputs}
<noscript><button type="submit">开始 <span lang="en">Start</span></button></noscript>
</form>
<script>{_SUBMIT_SCRIPT}</script>
</main></body></html>
"""
