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

# The demo's application catalogue (应用目录): a dozen places in Wuhan across the categories, loaded by
# `onecard catalogue import` (idempotent: an entry already as listed here is left alone). Landmarks' names;
# addresses and coordinates are approximate, for the demo only. The demo venue's entry is listed by the
# venue register itself; this only adds where it is.
_LEARNS_AT_COUNTER = ["name", "id_number", "card_number"]
DEMO_CATALOGUE: tuple[dict[str, object], ...] = (
    {
        "entry_id": DEMO_VENUE_ID,
        "name": DEMO_VENUE_NAME,
        "category": "museum",
        "claims": list(DEMO_VENUE_CLAIMS),
        "region": "420102",
        "address": "武汉市江岸区沿江大道示例路1号",
        "latitude": 30.6010,
        "longitude": 114.3050,
        "capabilities": ["gate_entry"],
    },
    {
        "entry_id": "demo-wuhan-library",
        "name": "武汉图书馆",
        "category": "library",
        "region": "420103",
        "address": "武汉市江汉区建设大道861号",
        "latitude": 30.6013,
        "longitude": 114.2655,
        "capabilities": ["borrowing", "gate_entry"],
        "claims": ["name", "card_number"],
    },
    {
        "entry_id": "demo-hubei-library",
        "name": "湖北省图书馆",
        "category": "library",
        "region": "420106",
        "address": "武汉市武昌区公正路1号",
        "latitude": 30.5627,
        "longitude": 114.3340,
        "capabilities": ["borrowing"],
        "claims": ["name", "card_number"],
    },
    {
        "entry_id": "demo-hubei-museum",
        "name": "湖北省博物馆",
        "category": "museum",
        "region": "420106",
        "address": "武汉市武昌区东湖路160号",
        "latitude": 30.5606,
        "longitude": 114.3656,
        "capabilities": ["gate_entry"],
        "claims": ["valid_resident"],
    },
    {
        "entry_id": "demo-east-lake",
        "name": "东湖风景区听涛景区",
        "category": "park",
        "region": "420106",
        "address": "武汉市武昌区沿湖大道16号",
        "latitude": 30.5535,
        "longitude": 114.3766,
        "capabilities": ["gate_entry", "transit"],
        "claims": ["valid_resident", "age_over_60"],
    },
    {
        "entry_id": "demo-zhongshan-park",
        "name": "中山公园",
        "category": "park",
        "region": "420103",
        "address": "武汉市江汉区解放大道1259号",
        "latitude": 30.5862,
        "longitude": 114.2726,
        "capabilities": ["gate_entry"],
        "claims": ["age_over_65"],
    },
    {
        "entry_id": "demo-yellow-crane-tower",
        "name": "黄鹤楼公园",
        "category": "tourism",
        "region": "420106",
        "address": "武汉市武昌区蛇山西山坡特1号",
        "latitude": 30.5446,
        "longitude": 114.2985,
        "capabilities": ["gate_entry"],
        "claims": ["valid_resident", "age_over_60"],
    },
    {
        "entry_id": "demo-union-hospital",
        "name": "华中科技大学同济医学院附属协和医院",
        "category": "hospital",
        "region": "420103",
        "address": "武汉市江汉区解放大道1277号",
        "latitude": 30.5878,
        "longitude": 114.2717,
        "capabilities": ["hospital_registration", "self_service"],
        "claims": _LEARNS_AT_COUNTER,
    },
    {
        "entry_id": "demo-renmin-hospital",
        "name": "武汉大学人民医院",
        "category": "hospital",
        "region": "420106",
        "address": "武汉市武昌区张之洞路99号",
        "latitude": 30.5371,
        "longitude": 114.3080,
        "capabilities": ["hospital_registration"],
        "claims": _LEARNS_AT_COUNTER,
    },
    {
        "entry_id": "demo-metro-hankou-station",
        "name": "武汉地铁汉口火车站站",
        "category": "transit",
        "region": "420103",
        "address": "武汉市江汉区发展大道汉口火车站",
        "latitude": 30.6187,
        "longitude": 114.2553,
        "capabilities": ["transit"],
        "claims": ["card_number"],
    },
    {
        "entry_id": "demo-card-centre",
        "name": "武汉市社保卡服务中心",
        "category": "government",
        "region": "420102",
        "address": "武汉市江岸区三阳路示例大厦1楼",
        "latitude": 30.6050,
        "longitude": 114.3080,
        "capabilities": ["business", "queue_number", "self_service"],
        "claims": _LEARNS_AT_COUNTER,
    },
    {
        "entry_id": "demo-hongshan-hall",
        "name": "洪山区政务服务中心",
        "category": "government",
        "region": "420111",
        "address": "武汉市洪山区珞喻路示例号",
        "latitude": 30.5089,
        "longitude": 114.3967,
        "capabilities": ["queue_number", "business", "self_service"],
        "claims": ["name", "id_number"],
    },
    {
        "entry_id": "demo-hongshan-stadium",
        "name": "洪山体育中心",
        "category": "sports",
        "region": "420111",
        "address": "武汉市洪山区珞喻路",
        "latitude": 30.5125,
        "longitude": 114.3890,
        "capabilities": ["gate_entry"],
        "claims": ["valid_resident"],
    },
    {
        "entry_id": "demo-online-hall",
        "name": "湖北省人社网上办事大厅",
        "category": "government",
        "region": "420000",
        "address": "",
        "capabilities": ["login"],
        "claims": ["name", "id_number"],
    },
)

# The demo's service hall (办事大厅) with two services and two counters, added by `onecard halls …`
# (idempotent: what exists is left alone). The hall's scanner credentials are kept in var/demo-hall.json.
DEMO_HALL_ID = "demo-civic-hall"
DEMO_HALL_NAME = "武汉市民之家"
DEMO_HALL_ADDRESS = "武汉市江汉区金银潭大道61号"
# (code, Chinese name, English name, number prefix)
DEMO_HALL_SERVICES = (
    ("card-replacement", "社保卡补换", "Card replacement", "A"),
    ("medical-registration", "医保登记", "Medical insurance registration", "B"),
)
# (code, name, the services it calls)
DEMO_HALL_COUNTERS = (
    ("w1", "1号窗口", ("card-replacement",)),
    ("w2", "2号窗口", ("card-replacement", "medical-registration")),
)
# The counter with a registered device (DESIGN.md §14); its private key is kept in var/demo-counter.json.
DEMO_DEVICE_COUNTER = "w1"
# The demo hall's kiosk (self-service terminal): registered by `onecard halls register-kiosk`, its private key
# kept in var/demo-kiosk.json, its own bridge (kiosk profile) on DEFAULT_KIOSK_PORT with the second demo
# citizen's card, var/demo-kiosk-card.json.
DEMO_KIOSK_NAME = "自助机1"
