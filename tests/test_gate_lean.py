"""The gate's lean route (wallet.scans.lean): ``POST /api/v1/gate/verify`` answered before Flask exactly as
the Flask view answers it — the same verdicts, bodies, headers and scan rows, one use per code across both
paths — and every request it is not sure of handed to the view before anything is counted or used.

Each test runs two apps on one database (and one Redis on PostgreSQL): ``lean``, and ``full`` with the lean
path off — two nodes, one of them answering everything through Flask.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import select, text

from idp.cards.model import Card, CardStatus
from idp.fastpath.wsgi import LeanPath
from idp.observability.web import REQUEST_LOGGER
from idp.services import Services
from tests.support.lean import BACKENDS, lean_and_full
from tests.support.live import ShiftClock
from tests.support.qrlogin import seed_citizen_with_ecard
from wallet.ecards.service import get_current_ecard
from wallet.qr.service import issue_ecard_code
from wallet.scans.lean import VERIFY_PATH
from wallet.scans.model import ScanRecord
from wallet.venues.model import Venue
from wallet.venues.service import VenueRegistration, create_venue

REGION = "420100"
VOLATILE = {"X-Request-ID", "Date", "Content-Length"}  # Content-Length: a scan id is in the body
_FAIL_SCANS = {
    "sqlite": [
        "CREATE TRIGGER fail_scans BEFORE INSERT ON wallet_scans BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION fail_scans() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$",
        "CREATE TRIGGER fail_scans BEFORE INSERT ON wallet_scans FOR EACH ROW EXECUTE FUNCTION fail_scans()",
    ],
}


@dataclass
class Nodes:
    lean: Flask
    full: Flask
    clock: ShiftClock
    citizen_id: str
    card_id: str

    @property
    def svc(self) -> Services:
        return self.full.extensions["onecard"]  # type: ignore[no-any-return]

    @staticmethod
    def svc_of(app: Flask) -> Services:
        return app.extensions["onecard"]  # type: ignore[no-any-return]

    @property
    def served(self) -> int:
        wsgi = self.lean.wsgi_app
        assert isinstance(wsgi, LeanPath)
        return wsgi.served

    def venue(self, claims: tuple[str, ...] = ("valid_resident",), **kwargs: Any) -> dict[str, str]:
        """Basic credentials of a new venue."""
        with self.svc.database.session() as session:
            created = create_venue(
                session,
                VenueRegistration("Museum", "museum", claims, **kwargs),
                actor="test",
                now=self.clock(),
            )
            pair = f"{created.venue.id}:{created.client_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def code(self) -> str:
        with self.svc.database.session() as session:
            view = get_current_ecard(session, self.citizen_id)
            return issue_ecard_code(
                session, keyring=self.svc.keyring, cipher=self.svc.pii_cipher(), view=view, now=self.clock()
            ).text

    def scans(self) -> list[tuple[Any, ...]]:
        with self.svc.database.engine.connect() as conn:
            rows = conn.execute(
                select(
                    ScanRecord.venue_id,
                    ScanRecord.ecard_id,
                    ScanRecord.result,
                    ScanRecord.reason,
                    ScanRecord.gate_id,
                ).order_by(ScanRecord.at, ScanRecord.id)
            )
            return [tuple(row) for row in rows]


@pytest.fixture(params=BACKENDS)
def nodes(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Nodes]:
    clock = ShiftClock()
    with lean_and_full(request, tmp_path, clock) as (lean, full):
        svc: Services = full.extensions["onecard"]
        citizen_id = seed_citizen_with_ecard(svc)
        with svc.database.session() as session:
            card_id = get_current_ecard(session, citizen_id).card.card_id
        yield Nodes(lean, full, clock, citizen_id, card_id)


def post(app: Flask, body: Any, headers: dict[str, str]) -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    client = app.test_client()
    headers = {"Content-Type": "application/json", **headers}
    cookie = headers.pop("Cookie", None)
    if cookie is not None:  # the test client sends its own jar's cookies, not a Cookie header
        name, _, value = cookie.partition("=")
        client.set_cookie(name, value)
    return client.post(VERIFY_PATH, data=data, headers=headers)


def stable_headers(response: Any) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name not in VOLATILE}


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A verdict without what differs between two codes of one e-card: its scan and its validity period."""
    assert document.get("scan_id", "x") and type(document.get("issued_at", 0)) is int  # a pass names them
    return {
        name: value for name, value in document.items() if name not in ("scan_id", "issued_at", "expires_at")
    }


def warm(nodes: Nodes, venue: dict[str, str]) -> None:
    """The lean route takes a venue only from a fresh cache entry: one verification through the view (at
    the lean node, handed on) loads it."""
    served = nodes.served
    assert post(nodes.lean, {"code": nodes.code()}, venue).get_json()["verdict"] == "pass"
    assert nodes.served == served  # the view answered and cached the venue


def test_the_route_is_the_views(nodes: Nodes) -> None:
    assert any(
        rule.rule == VERIFY_PATH and rule.endpoint == "gate.verify"
        for rule in nodes.lean.url_map.iter_rules()
    )


def test_a_pass_from_the_lean_route_is_the_views(nodes: Nodes) -> None:
    venue = nodes.venue(("valid_resident", "region", "age_over_60", "name"))  # profile facts: decrypted
    warm(nodes, venue)
    served = nodes.served
    lean = post(nodes.lean, {"code": nodes.code(), "gate_id": "north"}, venue)
    assert nodes.served == served + 1  # the lean route answered, Flask did not
    full = post(nodes.full, {"code": nodes.code(), "gate_id": "north"}, venue)
    assert lean.status_code == full.status_code == 200
    assert stable_headers(lean) == stable_headers(full)
    assert comparable(lean.get_json()) == comparable(full.get_json())
    assert lean.get_json()["claims"] == {
        "valid_resident": True,
        "region": REGION,
        "age_over_60": True,
        "name": "张三",
    }
    assert lean.data.endswith(b"\n") and json.loads(lean.data) == lean.get_json()
    scans = nodes.scans()
    assert scans[-1] == scans[-2] and scans[-1][2:] == ("pass", None, "north")


@pytest.mark.parametrize("first", ["lean", "full"])
def test_a_code_is_used_once_across_both_paths(nodes: Nodes, first: str) -> None:
    venue = nodes.venue()
    warm(nodes, venue)
    a, b = (nodes.lean, nodes.full) if first == "lean" else (nodes.full, nodes.lean)
    code = nodes.code()
    assert post(a, {"code": code}, venue).get_json()["verdict"] == "pass"
    again = post(b, {"code": code}, venue)
    assert again.get_json() == {"verdict": "reject", "reason": "replayed"}
    assert post(a, {"code": code}, venue).get_json() == {"verdict": "reject", "reason": "replayed"}


def test_refusals_are_the_views_verdicts_and_rows(nodes: Nodes) -> None:
    venue = nodes.venue()
    warm(nodes, venue)
    code = nodes.code()
    for app in (nodes.lean, nodes.full):  # not one code: each node's own garbage and expired code
        assert post(app, {"code": "ESSC1:garbage"}, venue).get_json() == {
            "verdict": "reject",
            "reason": "malformed",
        }
        assert post(app, {"code": "x" * 600}, venue).get_json() == {
            "verdict": "reject",
            "reason": "malformed",
        }
    nodes.clock.advance(200)  # the code is expired now (60 s + 30 s skew)
    expired = [post(app, {"code": code}, venue) for app in (nodes.lean, nodes.full)]
    assert [answer.get_json() for answer in expired] == [{"verdict": "reject", "reason": "expired"}] * 2
    assert stable_headers(expired[0]) == stable_headers(expired[1])
    nodes.clock.advance(-200)
    # A suspended card: revoked, on both paths; the scan goes into the e-card's history (its id recorded).
    with nodes.svc.database.session() as session:
        session.get(Card, nodes.card_id).status = CardStatus.LOST.value  # type: ignore[union-attr]
    with nodes.svc.database.session() as session:
        ecard_id = get_current_ecard(session, nodes.citizen_id).ecard.id
    for app in (nodes.lean, nodes.full):
        # Codes made before the suspension: the status is read at the verification, never cached.
        with nodes.svc.database.session() as session:
            session.get(Card, nodes.card_id).status = CardStatus.ACTIVE.value  # type: ignore[union-attr]
        stale_code = nodes.code()
        with nodes.svc.database.session() as session:
            session.get(Card, nodes.card_id).status = CardStatus.LOST.value  # type: ignore[union-attr]
        assert post(app, {"code": stale_code}, venue).get_json() == {"verdict": "reject", "reason": "revoked"}
    revoked = [row[1:4] for row in nodes.scans() if row[3] == "revoked"]
    assert revoked == [(ecard_id, "reject", "revoked")] * 2
    # The expired code, verified after the signature held, also went into the e-card's history.
    assert [row[1] for row in nodes.scans() if row[3] == "expired"] == [ecard_id] * 2
    served = nodes.served
    assert post(nodes.lean, {"code": "ESSC1:garbage"}, venue).status_code == 200
    assert nodes.served == served + 1


@pytest.mark.parametrize(
    ("body", "headers", "content_type"),
    [
        ({"code": 5}, {}, "application/json"),  # not text: counted by the view, then 400
        ({"code": "ESSC1:x", "extra": 1}, {}, "application/json"),  # not the contract's shape
        ({"code": "ESSC1:x", "gate_id": ""}, {}, "application/json"),
        ({"code": "ESSC1:x", "gate_id": "a\u0000b"}, {}, "application/json"),
        ({"code": "ESSC1:\u001dAB"}, {}, "application/json"),  # a scanner's GS: text no field can hold
        ('{"code": "ESSC1:\\ud800"}', {}, "application/json"),  # a lone surrogate
        ("[1]", {}, "application/json"),
        ("{", {}, "application/json"),
        ({"code": "ESSC1:x"}, {}, "text/plain"),
        ({"code": "ESSC1:x"}, {"Accept-Language": "zh-CN"}, "application/json"),  # states a language
        ({"code": "ESSC1:x"}, {"Cookie": "oclang=zh-CN"}, "application/json"),
        ({"code": "ESSC1:x"}, {"Accept": "text/html"}, "application/json"),  # a person's browser
    ],
    ids=["code-not-text", "extra-member", "empty-gate-id", "nul-gate-id", "gs-in-code", "surrogate",
         "array", "not-json", "text-plain",
         "accept-language", "language-cookie", "wants-page"],
)  # fmt: skip
def test_what_the_lean_route_is_not_sure_of_goes_to_the_view(
    nodes: Nodes, body: Any, headers: dict[str, str], content_type: str
) -> None:
    venue = nodes.venue()
    warm(nodes, venue)
    served = nodes.served
    lean = post(nodes.lean, body, {**venue, **headers, "Content-Type": content_type})
    full = post(nodes.full, body, {**venue, **headers, "Content-Type": content_type})
    assert nodes.served == served  # handed to the view
    assert lean.status_code == full.status_code
    assert lean.data == full.data and stable_headers(lean) == stable_headers(full)


def test_credentials_it_cannot_vouch_for_go_to_the_view(nodes: Nodes) -> None:
    venue = nodes.venue()
    warm(nodes, venue)
    client_id = venue_client(venue)
    served = nodes.served
    wrong = {"Authorization": "Basic " + base64.b64encode(f"{client_id}:wrong".encode()).decode()}
    sloppy = {
        "Authorization": venue["Authorization"][:10] + "!" + venue["Authorization"][10:]
    }  # Authlib skips "!"
    for headers in (wrong, sloppy, {}, {"Authorization": "Bearer x"}):
        lean = post(nodes.lean, {"code": nodes.code()}, headers)
        full = post(nodes.full, {"code": nodes.code()}, headers)
        assert lean.status_code == full.status_code and lean.status_code in (400, 401)
        assert lean.get_json() == full.get_json()
    assert nodes.served == served


def test_the_rate_limit_answers_429_on_the_lean_route_as_on_the_view(nodes: Nodes) -> None:
    venue = nodes.venue(verify_per_minute=2)
    warm(nodes, venue)  # the first of the window
    assert post(nodes.lean, {"code": nodes.code()}, venue).get_json()["verdict"] == "pass"
    served = nodes.served
    code = nodes.code()
    lean = post(nodes.lean, {"code": code}, venue)
    assert nodes.served == served + 1
    full = post(nodes.full, {"code": code}, venue)
    assert lean.status_code == full.status_code == 429
    assert lean.data == full.data and stable_headers(lean) == stable_headers(full)
    assert int(lean.headers["Retry-After"]) >= 1 and lean.headers["Cache-Control"] == "no-store"
    nodes.clock.advance(61)  # a new window: the refused code kept its one use
    assert post(nodes.lean, {"code": code}, venue).get_json()["verdict"] == "pass"


def test_a_venue_changed_on_the_other_node_is_reloaded_by_the_view(nodes: Nodes) -> None:
    venue = nodes.venue()
    warm(nodes, venue)
    venue_id = venue_client(venue)
    with nodes.svc.database.session() as session:
        session.get(Venue, venue_id).claims = ["valid_resident", "region"]  # type: ignore[union-attr]
    served = nodes.served
    answer = post(nodes.lean, {"code": nodes.code()}, venue)
    assert nodes.served == served  # the generation moved: nothing counted or used, the view reloaded
    assert answer.get_json()["claims"] == {"valid_resident": True, "region": REGION}
    assert post(nodes.lean, {"code": nodes.code()}, venue).get_json()["claims"] == {
        "valid_resident": True,
        "region": REGION,
    }
    assert nodes.served == served + 1  # and the next one is the lean route's again


def test_a_scan_not_recorded_is_503_without_verdict_on_the_lean_route(nodes: Nodes) -> None:
    venue = nodes.venue()
    warm(nodes, venue)
    before = len(nodes.scans())
    engine = nodes.svc.database.engine
    with engine.begin() as conn:  # the database refuses the insert, as a full disk would
        for statement in _FAIL_SCANS[engine.dialect.name]:
            conn.execute(text(statement))
    served = nodes.served
    lean = post(nodes.lean, {"code": nodes.code()}, venue)
    full = post(nodes.full, {"code": nodes.code()}, venue)
    assert nodes.served == served + 1
    assert lean.status_code == full.status_code == 503
    assert lean.data == full.data and stable_headers(lean) == stable_headers(full)
    assert lean.get_json()["error"] == "temporarily_unavailable" and "verdict" not in lean.get_json()
    with engine.begin() as conn:
        conn.execute(
            text("DROP TRIGGER fail_scans" + (" ON wallet_scans" if engine.dialect.name != "sqlite" else ""))
        )
    assert len(nodes.scans()) == before


def test_a_failure_after_the_code_is_used_is_the_views_500_not_a_second_try(
    nodes: Nodes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    venue = nodes.venue(("valid_resident", "name"))
    warm(nodes, venue)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the data keys are unreachable")

    monkeypatch.setattr("wallet.scans.service.decrypt_profile", broken)  # after the one use
    code = nodes.code()
    served = nodes.served
    with caplog.at_level(logging.ERROR):
        lean = post(nodes.lean, {"code": code}, venue)
    assert nodes.served == served + 1  # not handed on: the view would have called the used code replayed
    assert lean.status_code == 500 and lean.get_json()["error"] == "server_error"
    assert "unhandled RuntimeError" in caplog.text and "unreachable" not in lean.get_data(as_text=True)
    full = post(nodes.full, {"code": nodes.code()}, venue)
    assert full.status_code == 500 and full.data == lean.data
    monkeypatch.undo()
    assert post(nodes.lean, {"code": code}, venue).get_json() == {"verdict": "reject", "reason": "replayed"}


def test_the_request_log_and_metrics_name_the_views_route(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    venue = nodes.venue()
    warm(nodes, venue)
    labels = {"endpoint": "gate.verify", "method": "POST", "status": "200"}
    before = REGISTRY.get_sample_value("onecard_http_requests_total", labels) or 0.0
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    answer = post(nodes.lean, {"code": nodes.code()}, {**venue, "X-Request-ID": "gate-1"})
    assert answer.headers["X-Request-ID"] == "gate-1"
    assert REGISTRY.get_sample_value("onecard_http_requests_total", labels) == before + 1
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == REQUEST_LOGGER]
    line = next(item for item in lines if item["request_id"] == "gate-1")
    assert line["route"] == VERIFY_PATH and line["endpoint"] == "gate.verify" and line["status"] == 200
    assert line["client_id"] == venue_client(venue)


def venue_client(venue: dict[str, str]) -> str:
    return base64.b64decode(venue["Authorization"].split()[1]).decode().partition(":")[0]


def test_a_kept_connection_that_broke_hands_the_verification_to_the_view(nodes: Nodes) -> None:
    venue = nodes.venue()
    warm(nodes, venue)
    assert post(nodes.lean, {"code": nodes.code()}, venue).get_json()["verdict"] == "pass"  # a reader kept
    route = nodes.svc_of(nodes.lean).lean_routes.find("POST", VERIFY_PATH)
    assert route is not None
    readers = route.answer.__self__.readers  # type: ignore[attr-defined]
    assert readers._idle
    engine = nodes.svc.database.engine
    for connection in readers._idle:  # as a database restart leaves them
        dbapi = connection.connection.dbapi_connection
        if engine.dialect.name == "postgresql":  # the server ends it
            with engine.connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dbapi.info.backend_pid})
        else:
            dbapi.close()
    served = nodes.served
    code = nodes.code()
    answer = post(nodes.lean, {"code": code}, venue)
    assert answer.get_json()["verdict"] == "pass"  # through the view: nothing was counted or used before
    assert nodes.served == served
    assert post(nodes.lean, {"code": code}, venue).get_json() == {"verdict": "reject", "reason": "replayed"}
    assert nodes.served == served + 1  # a fresh connection: the lean route again


def test_a_request_handed_on_is_counted_once(nodes: Nodes) -> None:
    venue = nodes.venue(verify_per_minute=3)
    warm(nodes, venue)  # 1: the view
    assert post(nodes.lean, {"code": 5}, venue).status_code == 400  # 2: handed on, counted by the view alone
    assert (
        post(nodes.lean, {"code": nodes.code()}, venue).get_json()["verdict"] == "pass"
    )  # 3: the lean route
    assert post(nodes.lean, {"code": nodes.code()}, venue).status_code == 429  # the 4th of the window


def test_kept_connections_leave_the_applications_pool_alone(nodes: Nodes) -> None:
    venue = nodes.venue()
    warm(nodes, venue)
    served = nodes.served
    for _ in range(3):
        assert post(nodes.lean, {"code": nodes.code()}, venue).get_json()["verdict"] == "pass"
    assert nodes.served == served + 3
    pool = nodes.svc_of(nodes.lean).database.engine.pool
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
