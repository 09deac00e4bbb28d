"""The demo's fixed data: documented development secrets, invented citizens, the demo card's PIN, the demo
venue.

Fixed so the README's demo portal works out of the box. The secrets carry the client-secret prefix like every
other secret, and ``onecard demo seed`` and ``onecard demo run`` refuse to run with ONECARD_ENV=production.
"""

from __future__ import annotations

from idp.citizens.idnumber import check_character
from idp.clients.service import ClientRegistration

DEMO_PORTAL_SECRET = "occs_demo-portal-secret"  # public on purpose (development only)
DEMO_ADMIN_SECRET = "occs_demo-admin-secret"  # public on purpose (development only)
DEMO_PORTAL = ClientRegistration(
    name="一卡通示例门户",  # the demo portal, as a province would register it
    kind="portal",
    redirect_uris=("http://127.0.0.1:8001/callback",),
    post_logout_redirect_uris=("http://127.0.0.1:8001/",),
    scope="openid profile realname idcard offline_access",  # client_secret_basic, the default
    # It asks for `idcard`, so it is registered to receive the full number (DESIGN.md §3).
    id_number_allowed=True,
    backchannel_logout_uri="http://127.0.0.1:8001/backchannel-logout",
    client_id="demo-portal",
)
DEMO_ADMIN = ClientRegistration(
    name="OneCard demo admin",
    kind="operator",
    scope="admin",  # client_credentials with client_secret_basic
    client_id="demo-admin",
)
DEMO_CLIENTS = ((DEMO_PORTAL, DEMO_PORTAL_SECRET), (DEMO_ADMIN, DEMO_ADMIN_SECRET))


def _with_check_character(first17: str) -> str:
    return first17 + check_character(first17)


# Invented people: the region codes are real (Beijing Xicheng, Shenzhen Futian), the rest made up. The 17th
# digit's parity is the sex: 张三 odd (male), 王芳 even (female).
DEMO_CITIZENS = (
    ("张三", _with_check_character("11010219491231001")),
    ("王芳", _with_check_character("44030419900307102")),
)


DEMO_PIN = "123456"  # public on purpose: the demo card's PIN (development only)
DEMO_REGION = "420100"  # the card-issuer region of the demo card (Wuhan)
DEMO_VENUE_ID = "vn_demo-museum"
DEMO_VENUE_NAME = "示例市博物馆"
DEMO_VENUE_CLAIMS = ("valid_resident", "age_over_60")
