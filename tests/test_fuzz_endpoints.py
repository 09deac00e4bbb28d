"""A property-based fuzzer over every endpoint OneCard serves (issue #9, item 4), on SQLite and on
PostgreSQL + Redis: hypothesis builds requests from the parameter names OneCard reads, values that break
naive code (NUL, lone surrogates in JSON, "²", huge numbers, deep nesting, odd URLs) and real credentials,
and every answer must be below 500; an answer of 400 or more must leave every durable row as it was.

The route list comes from the app's own URL map, so a new endpoint is fuzzed without anyone remembering to.
Counts are printed (``-s`` shows them) and recorded in the closing note of the issue.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from halls.register.service import add_counter, add_service, create_hall, register_counter_device
from tests.support.counter_device import CounterDevice
from tests.support.live import REDIRECT, LiveIdp
from tests.support.rows import durable_rows
from wallet.venues.service import VenueRegistration, create_venue

# Every name OneCard reads from a query, form or JSON body (grep of idp/ and wallet/), plus OAuth's own.
PARAMETER_NAMES = (  # noqa: SIM905 (a word list reads best as words)
    "access_token acr_values all browser card_certificate card_id category ceremony challenge "
    "choices citizen_id claims client_id client_secret client_assertion client_assertion_type code "
    "code_challenge code_challenge_method code_verifier credential csrf decision dry_run exp force "
    "from gate_id grant_type iat id id_number id_token_hint include_removed key_set known limit "
    "login_hint max_age name nonce offset origin period post_logout_redirect_uri prompt purpose "
    "reason redirect_uri redirect_uris refresh_token regions request request_uri requester response "
    "response_mode response_type scope sid signature algorithm format state status to token "
    "token_type token_type_hint tx type venue_id wait "
    # the application catalogue's search and admin fields
    "q region capability near lat lon page per_page address latitude longitude capabilities "
    "include_withdrawn entry_id version "
    # the service halls' admin, scanner and counter fields
    "hall_id service services prefix name_en scanner_id day ticket_id jwks"
).split()

NASTY_TEXT = [
    "",
    "\x00",
    "a\x00b",
    "²",
    "١٢",
    "-1",
    "99999999999999999999999999",
    "1e309",
    "NaN",
    "nan",
    "inf",
    "'; DROP TABLE oauth_clients; --",
    '"\\',
    "%00",
    "../../etc/passwd",
    "javascript:alert(1)",
    "https://evil.example.com/cb",
    REDIRECT,
    "ESSC1:" + "A" * 600,
    "x" * 5000,
    "张三",
    "\u202e",
    "null",
    "S256",
    "plain",
    "openid admin",
    "authorization_code",
    "client_credentials",
    "refresh_token",
    "ocrt_" + "x" * 43,
    "urn:onecard:loa:high",
    # Pushed-request references and request objects (RFC 9126, RFC 9101): shapes that reach the decoders.
    "urn:ietf:params:oauth:request_uri:" + "x" * 43,
    "urn:ietf:params:oauth:request_uri:",
    "eyJhbGciOiJub25lIn0.e30.",
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJvYyJ9.AAAA",
    # The seeded hall, its service and counter (halls/): path arguments that reach the halls' code.
    "civic",
    "card",
    "w1",
]

# Characters that break naive code, put into otherwise plausible values so they travel deep.
POISON = ["\x00", "\x1b", "\x7f", "\u2028", "²", '"', "\\", "%", "\ufeff", "\U0010ffff"]
PLAUSIBLE = [REDIRECT, "oc_0123456789abcdef", "vn_0123456789abcdef", "openid", "S256", "code", "admin"]
poisoned = st.builds(
    lambda text, poison, at: text[: at % (len(text) + 1)] + poison + text[at % (len(text) + 1) :],
    st.sampled_from(PLAUSIBLE),
    st.sampled_from(POISON),
    st.integers(min_value=0, max_value=64),
)
text_values = st.one_of(
    st.sampled_from(NASTY_TEXT),
    poisoned,
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text_values,
    # Lone surrogates only travel inside JSON escapes.
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(PARAMETER_NAMES), children, max_size=3)
    ),
    max_leaves=8,
)
# The names the protocol endpoints turn on, drawn more often than the rest.
HOT_NAMES = ["client_id", "redirect_uri", "response_type", "grant_type", "code", "token", "scope", "state"]
HOT_NAMES += ["name", "offset", "limit", "claims", "max_age", "prompt", "refresh_token", "id_number", "wait"]
HOT_NAMES += ["request", "request_uri"]
names = st.sampled_from(HOT_NAMES) | st.sampled_from(PARAMETER_NAMES)
fields = st.dictionaries(names, text_values, max_size=4)


# Routes whose defined answer may be 503: readiness on the test servers' databases, which are created without
# Alembic and so are "not at head" (tests/test_health.py checks the endpoint itself).
ANSWERS_503 = {"/readyz"}


@dataclass(frozen=True)
class Credentials:
    portal: tuple[str, str]
    venue: tuple[str, str]
    admin_token: str
    counter_token: str  # the hall counter w1's registered device (private_key_jwt, hall:counter)

    def valid_fields(self) -> dict[str, Any]:
        """Values a well-formed request would carry, so that a mutation of one reaches deep code."""
        return {
            "client_id": self.portal[0],
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid profile",
            "state": "st",
            "nonce": "n",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "grant_type": "client_credentials",
            "token": self.admin_token,
            "name": "A portal",
            "redirect_uris": [REDIRECT],
            "category": "museum",
            "code": "ESSC1:" + "0" * 40,
            "id_number": "11010519491231002X",
            "purpose": "entry",
            "service": "card",
            "status": "served",
        }


@dataclass(frozen=True)
class Route:
    rule: str
    method: str

    def path(self, args: dict[str, str]) -> str:
        return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: quote(args[m.group(1)], safe=""), self.rule)

    @property
    def arguments(self) -> list[str]:
        return re.findall(r"<(?:[^:>]+:)?([^>]+)>", self.rule)


def routes_of(idp: LiveIdp) -> list[Route]:
    found = []
    for rule in idp.app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append(Route(rule.rule, method))
    return sorted(found, key=lambda route: (route.rule, route.method))


def seed(idp: LiveIdp) -> Credentials:
    portal_id, portal_secret = idp.register_client(redirect_uris=(REDIRECT,), scope="openid profile realname")
    operator_id, operator_secret = idp.register_client(
        name="Operator", kind="operator", scope="admin realname:verify"
    )
    with idp.services.database.session() as session:
        create_venue(
            session,
            VenueRegistration(name="Museum", category="museum", claims=("valid_resident",)),
            actor="test",
            now=idp.clock(),
        )
        # A service hall, whose scanner is a venue too: its credentials serve the gate and the hall scanner.
        hall = create_hall(session, name="市民之家", hall_id="civic", actor="test", now=idp.clock())
        add_service(
            session, hall.hall, code="card", name="社保卡补换", prefix="A", actor="test", now=idp.clock()
        )
        add_counter(
            session, hall.hall, code="w1", name="1号窗口", services=["card"], actor="test", now=idp.clock()
        )
        # The counter's device, so that fuzzed counter calls get past authentication to the counter's code.
        device = CounterDevice()
        device.client_id = register_counter_device(
            session, hall.hall, "w1", jwks=device.jwks, actor="test", now=idp.clock()
        ).client_id
        venue_credentials = (hall.scanner_client_id, hall.scanner_client_secret)
    token = requests.post(
        f"{idp.base_url}/token",
        auth=(operator_id, operator_secret or ""),
        data={"grant_type": "client_credentials"},
        timeout=5,
    ).json()["access_token"]
    return Credentials(
        (portal_id, portal_secret or ""),
        venue_credentials,
        token,
        device.headers(idp.base_url)["Authorization"],
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def authorization_headers(credentials: Credentials) -> st.SearchStrategy[dict[str, str]]:
    users = st.sampled_from([credentials.portal[0], credentials.venue[0]]) | text_values
    nasty_basic = st.tuples(users, text_values).map(lambda pair: {"Authorization": basic(*pair)})
    return (
        nasty_basic
        | st.sampled_from(
            [
                {},
                {"Authorization": f"Bearer {credentials.admin_token}"},
                {"Authorization": credentials.counter_token},
                {"Authorization": "Bearer " + "x" * 20},
                {"Authorization": "Basic " + "%%%"},
                {"Authorization": "Basic YTpi"},
                {"Accept": "text/html"},
            ]
        )
        | st.sampled_from([credentials.portal, credentials.venue]).map(
            lambda pair: {"Authorization": basic(*pair)}
        )
    )


@st.composite
def requests_for(draw: st.DrawFn, route: Route, credentials: Credentials) -> dict[str, Any]:
    args = {name: draw(text_values.filter(lambda value: value != "")) for name in route.arguments}
    headers = dict(draw(authorization_headers(credentials)))
    valid = credentials.valid_fields()

    def mutated(kind: st.SearchStrategy[Any]) -> dict[str, Any]:
        """The valid fields, a few of them dropped, a few replaced or added by drawn values."""
        dropped = draw(st.sets(st.sampled_from(sorted(valid)), max_size=2))
        kept = {name: value for name, value in valid.items() if name not in dropped}
        return {**kept, **draw(st.dictionaries(names, kind, min_size=1, max_size=2))}

    def as_form(document: dict[str, Any]) -> dict[str, str]:
        return {
            key: value if isinstance(value, str) else json.dumps(value) for key, value in document.items()
        }

    request: dict[str, Any] = {
        "method": route.method,
        "path": route.path(args),
        "params": as_form(mutated(text_values))
        if route.method == "GET"
        else draw(fields.filter(lambda f: len(f) < 2)),
        "headers": headers,
    }
    if route.method in ("POST", "PUT", "PATCH", "DELETE"):
        kind = draw(st.sampled_from(["form", "form", "form", "json", "json", "raw"]))
        if kind == "form":
            request["data"] = as_form(mutated(text_values))
        elif kind == "json":
            request["data"] = json.dumps(mutated(json_values)).encode()  # ensure_ascii: surrogates as \\ud800
            headers["Content-Type"] = "application/json"
        else:
            request["data"] = draw(
                st.sampled_from([b"{", b"[" * 5000 + b"]" * 5000, b"\xff\xfe\x00", b'{"a":' * 3000, b"null"])
            )
            headers["Content-Type"] = draw(
                st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"])
            )
    return request


def fuzz_route(
    idp: LiveIdp,
    http: requests.Session,
    route: Route,
    credentials: Credentials,
    examples: int,
    statuses: Counter[int],
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(request=requests_for(route, credentials))
    def fuzz(request: dict[str, Any]) -> None:
        before = durable_rows(idp)
        response = http.request(
            request["method"],
            idp.base_url + request["path"],
            params=request["params"],
            data=request.get("data"),
            headers=request["headers"],
            allow_redirects=False,
            timeout=30,
        )
        statuses[response.status_code] += 1
        if route.rule in ANSWERS_503 and response.status_code == 503:
            return
        assert response.status_code < 500, (route, request, response.status_code, response.text[:300])
        if response.status_code >= 400:
            assert durable_rows(idp) == before, ("a refused request changed rows", route, request)

    fuzz()


# Every route of every package, each many times: it grows with the API, past the suite's 300 s per test.
@pytest.mark.timeout(900)
def test_no_endpoint_answers_5xx_or_changes_rows_when_it_refuses(live_stack: LiveIdp) -> None:
    idp = live_stack
    credentials = seed(idp)
    routes = routes_of(idp)
    assert len(routes) > 60  # the whole surface: idp, wallet, admin, gate, real-name
    examples = 40 if idp.services.settings.database_url.startswith("sqlite") else 25
    statuses: Counter[int] = Counter()
    with requests.Session() as http:
        for route in routes:
            fuzz_route(idp, http, route, credentials, examples, statuses)
    total = sum(statuses.values())
    print(f"\nfuzzed {len(routes)} routes with {total} requests: {dict(sorted(statuses.items()))}")
