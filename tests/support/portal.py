"""The example portal (examples/portal) as a relying party of a live OneCard: an in-process werkzeug
server, registered at the IdP as its own client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

from examples.portal.app import PortalSettings, create_portal_app
from tests.support.live import LiveIdp


@contextmanager
def running_portal(idp: LiveIdp, name: str) -> Iterator[str]:
    """An example portal registered at ``idp`` as its own client; yields its base URL."""
    holder: list[Any] = []
    server = make_server("127.0.0.1", 0, lambda env, start: holder[0](env, start), threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    client_id, secret = idp.register_client(
        name=name,
        redirect_uris=(f"{base}/callback",),
        post_logout_redirect_uris=(f"{base}/",),
        backchannel_logout_uri=f"{base}/backchannel-logout",
        scope="openid profile realname idcard",
        id_number_allowed=True,  # like the demo portal
    )
    settings = PortalSettings(idp.base_url, client_id, str(secret), base, "test-secret-" + name, name)
    holder.append(create_portal_app(settings))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        thread.join(5)
