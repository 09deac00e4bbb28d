"""Service halls and queue numbers (issue 13 item 2): the admin API and its refusals, numbers taken with the
e-card code at the hall's scanner (real ESSC1 codes from the wallet) and through ``take_number`` (the kiosk's
call), one number per citizen and service, calling in order by each counter's registered device
(private_key_jwt, DESIGN.md §14) and no other caller, the statistics, the pages in zh and en."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click
import pytest
import redis
import requests
from click.testing import CliRunner
from sqlalchemy import func, select

from halls.plugin import init_app as install_halls
from halls.queue.errors import AlreadyQueuedError
from halls.queue.model import Ticket
from halls.queue.service import take_number
from halls.register.model import Counter, Hall, HallService
from halls.register.service import get_hall, get_service
from idp import dbadmin
from idp.audit.model import AuditEvent
from idp.cards.model import CardStatus
from idp.cli import cli
from idp.cli_support import unit_of_work
from idp.clients.errors import InvalidClientMetadataError
from idp.clients.model import Client
from idp.db import Base
from tests.fixtures.services import delete_redis_keys, random_redis_prefix
from tests.support.counter_device import CounterDevice
from tests.support.idnumbers import random_id_numbers
from tests.support.qrlogin import seed_citizen_with_ecard
from tests.support.wallet import LiveWallet, WalletUser, csrf_of, running_wallet
from wallet.scans.model import ScanRecord

HALLS = "/api/v1/admin/halls"
COUNTERS = "/api/v1/halls/civic/counters"  # the counter devices' API


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveWallet]:
    """The wallet with the halls, on SQLite, and on PostgreSQL + Redis (tables and keys dropped after)."""
    if request.param == "sqlite":
        with running_wallet(f"sqlite:///{tmp_path}/halls.sqlite3", extra_plugins=[install_halls]) as server:
            server.add_card("zhang")
            server.add_card("li")
            yield server
        return
    postgres_url: str = request.getfixturevalue("postgres_url")
    redis_url: str = request.getfixturevalue("redis_url")
    prefix = random_redis_prefix()
    with running_wallet(
        postgres_url, redis_url=redis_url, redis_prefix=prefix, extra_plugins=[install_halls]
    ) as server:
        try:
            server.add_card("zhang")
            server.add_card("li")
            yield server
        finally:
            server.services.database.engine.dispose()
            Base.metadata.drop_all(server.services.database.engine)
            client = redis.Redis.from_url(redis_url)
            delete_redis_keys(client, prefix)
            client.close()


def admin_token(live: LiveWallet) -> dict[str, str]:
    return live.service_token_headers(name="Hall staff")


def set_up_hall(live: LiveWallet, headers: dict[str, str]) -> dict[str, Any]:
    """A hall with two services and two counters, through the admin API; returns the created hall."""
    url = live.base_url + HALLS
    hall = requests.post(url, json={"name": "市民之家", "hall_id": "civic"}, headers=headers, timeout=10)
    assert hall.status_code == 201, hall.text
    for code, name, prefix in (("card", "社保卡补换", "A"), ("medical", "医保登记", "B")):
        added = requests.post(
            f"{url}/civic/services",
            json={"code": code, "name": name, "prefix": prefix, "name_en": name + " (en)"},
            headers=headers,
            timeout=10,
        )
        assert added.status_code == 201, added.text
    for code, services in (("w1", ["card"]), ("w2", ["card", "medical"])):
        counter = requests.post(
            f"{url}/civic/counters",
            json={"code": code, "name": f"{code[1]}号窗口", "services": services},
            headers=headers,
            timeout=10,
        )
        assert counter.status_code == 201, counter.text
    return hall.json()  # type: ignore[no-any-return]


def counter_devices(live: LiveWallet, headers: dict[str, str]) -> dict[str, dict[str, str]]:
    """A registered device for each of the hall's counters; their ``hall:counter`` Bearer headers by code."""
    return {code: device_headers(live, headers, code)[1] for code in ("w1", "w2")}


def device_headers(
    live: LiveWallet, headers: dict[str, str], code: str
) -> tuple[CounterDevice, dict[str, str]]:
    device = CounterDevice()
    device.register(live.base_url, headers, "civic", code)
    return device, device.headers(live.base_url)


def rows(live: LiveWallet, model: Any) -> int:
    with live.services.database.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def kiosk_take(live: LiveWallet, citizen: str, service_code: str) -> dict[str, Any]:
    """What the kiosk pages do after card + PIN: ``take_number`` with the terminal's id."""
    with live.services.database.session() as session:
        service = get_service(session, get_hall(session, "civic"), service_code)
        return take_number(
            session,
            citizen_id=live.citizens[citizen],
            service=service,
            channel="kiosk",
            terminal_id="kiosk-1",
            now=live.clock(),
        ).to_json()


def ecard_code(live: LiveWallet, citizen: str) -> str:
    """A real ESSC1 code from the wallet's code API, as a phone shows it."""
    user = WalletUser(live, citizen)
    user.login_with_card()
    assert user.activate().status_code == 303
    return str(user.code()["text"])


def test_admin_api_registers_halls_services_counters_with_audit(live: LiveWallet) -> None:
    headers = admin_token(live)
    created = set_up_hall(live, headers)
    assert created["scanner_client_id"] == "hall_civic" and created["scanner_client_secret"]
    shown = requests.get(live.base_url + HALLS + "/civic", headers=headers, timeout=10).json()
    assert [s["prefix"] for s in shown["services"]] == ["A", "B"]
    assert shown["counters"][1] == {
        "code": "w2",
        "name": "2号窗口",
        "services": ["card", "medical"],
        "device_client_id": None,
    }
    assert "scanner_client_secret" not in shown
    listed = requests.get(live.base_url + HALLS, headers=headers, timeout=10).json()
    assert [h["hall_id"] for h in listed["halls"]] == ["civic"]
    with live.services.database.session() as session:
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {"hall.create", "hall.service.add", "hall.counter.add", "venue.create"} <= actions
    # The hall's venue shows in the venue register (and so in the catalogue) as a government venue.
    venue = requests.get(live.base_url + "/api/v1/admin/venues/hall_civic", headers=headers, timeout=10)
    assert venue.json()["category"] == "government"
    assert (
        requests.delete(live.base_url + HALLS + "/civic/counters/w1", headers=headers, timeout=10).status_code
        == 204
    )
    assert (
        requests.delete(
            live.base_url + HALLS + "/civic/services/medical", headers=headers, timeout=10
        ).status_code
        == 204
    )
    shown = requests.get(live.base_url + HALLS + "/civic", headers=headers, timeout=10).json()
    assert [s["code"] for s in shown["services"]] == ["card"] and [c["code"] for c in shown["counters"]] == [
        "w2"
    ]
    assert requests.delete(live.base_url + HALLS + "/civic", headers=headers, timeout=10).status_code == 204
    assert requests.get(live.base_url + HALLS + "/civic", headers=headers, timeout=10).status_code == 404


def test_admin_api_refuses_without_admin_token_and_bad_input_changes_nothing(live: LiveWallet) -> None:
    url = live.base_url + HALLS
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url + "/civic/stats", timeout=10).status_code == 401
    assert requests.post(live.base_url + COUNTERS + "/w1/call-next", timeout=10).status_code == 401
    assert requests.post(url + "/civic/counters/w1/device", json={"jwks": {}}, timeout=10).status_code == 401
    assert requests.post(url, json={"name": "X"}, timeout=10).status_code == 401
    client_id, secret = live.register_client(name="Checker", kind="operator", scope="realname:verify")
    token = requests.post(
        live.base_url + "/token",
        data={"grant_type": "client_credentials", "scope": "realname:verify"},
        auth=(client_id, secret or ""),
        timeout=10,
    ).json()["access_token"]
    wrong_scope = requests.get(url, headers={"Authorization": "Bearer " + token}, timeout=10)
    assert wrong_scope.status_code == 403
    headers = admin_token(live)
    set_up_hall(live, headers)
    before = (rows(live, Hall), rows(live, HallService), rows(live, AuditEvent))
    bad = [
        (url, {"name": ""}),
        (url, {"name": "X", "hall_id": "Bad Id!"}),
        (url, {"name": "X", "extra": 1}),
        (url, {"name": "市民之家", "hall_id": "civic"}),  # exists: 409
        (url + "/civic/services", {"code": "x", "name": "X", "prefix": "a1"}),
        (url + "/civic/services", {"code": "other", "name": "X", "prefix": "A"}),  # prefix taken: 409
        (url + "/civic/counters", {"code": "w3", "name": "3号窗口", "services": ["nope"]}),
        (url + "/civic/counters", {"code": "w3", "name": "3号窗口", "services": []}),
        (url + "/nowhere/services", {"code": "x", "name": "X", "prefix": "C"}),
    ]
    for target, body in bad:
        answer = requests.post(target, json=body, headers=headers, timeout=10)
        assert answer.status_code in (400, 404, 409), (target, body, answer.status_code)
        assert set(answer.json()) == {"error", "error_description"}
    not_json = requests.post(
        url, data="{", headers={**headers, "Content-Type": "application/json"}, timeout=10
    )
    assert not_json.status_code == 400
    assert (rows(live, Hall), rows(live, HallService), rows(live, AuditEvent)) == before


def test_one_number_per_citizen_and_service_and_calling_in_order(live: LiveWallet) -> None:
    headers = admin_token(live)
    set_up_hall(live, headers)
    first = kiosk_take(live, "zhang", "card")
    assert first["number"] == "A001" and first["status"] == "waiting" and first["ahead"] == 0
    with pytest.raises(AlreadyQueuedError) as held:
        kiosk_take(live, "zhang", "card")
    assert held.value.ticket.number == "A001"  # the kiosk can show the number already held
    assert rows(live, Ticket) == 1
    other_service = kiosk_take(live, "zhang", "medical")
    assert other_service["number"] == "B001"
    second = kiosk_take(live, "li", "card")
    assert second["number"] == "A002" and second["ahead"] == 1 and second["estimated_wait"] > 0
    counter = live.base_url + COUNTERS
    device = counter_devices(live, headers)
    # w1 serves "card" only: A001 first, then A002; w2 gets B001 although A002 was taken later.
    called = requests.post(counter + "/w1/call-next", headers=device["w1"], timeout=10)
    assert called.status_code == 200 and called.json()["number"] == "A001"
    assert called.json()["counter"] == "1号窗口"
    busy = requests.post(counter + "/w1/call-next", headers=device["w1"], timeout=10)
    assert busy.status_code == 409 and busy.json()["error"] == "counter_busy"
    w2 = requests.post(counter + "/w2/call-next", headers=device["w2"], timeout=10)
    assert w2.json()["number"] == "B001"  # taken before A002: the longest wait across w2's services
    served = requests.post(
        counter + "/w1/finish", json={"status": "served"}, headers=device["w1"], timeout=10
    )
    assert served.status_code == 200 and served.json()["status"] == "served"
    # Once served, the citizen may take a new number for the same service.
    again = kiosk_take(live, "zhang", "card")
    assert again["number"] == "A003"
    # A number never finished lapses with its day: the next morning the citizen takes a new one.
    live.clock.advance(86_400)
    next_day = kiosk_take(live, "li", "card")
    assert next_day["number"] == "A001" and next_day["ahead"] == 0
    live.clock.advance(-86_400)
    no_show = requests.post(
        counter + "/w2/finish", json={"status": "no_show"}, headers=device["w2"], timeout=10
    )
    assert no_show.json()["status"] == "no_show"
    board = requests.get(live.base_url + "/api/v1/halls/civic/board", timeout=10).json()
    assert board["called"] == [] and board["waiting"] == {"card": 1}  # A003 (A002 lapsed)
    stats = requests.get(live.base_url + HALLS + "/civic/stats", headers=headers, timeout=10)
    assert stats.status_code == 200, stats.text
    card = stats.json()["services"][0]
    assert card["code"] == "card" and card["taken"] == 3 and card["served"] == 1
    assert card["average_wait"] is not None and sum(stats.json()["served_per_hour"].values()) == 1
    assert (
        requests.get(
            live.base_url + HALLS + "/civic/stats?day=2026-13-01", headers=headers, timeout=10
        ).status_code
        == 400
    )
    page = requests.get(
        live.base_url + HALLS + "/civic/stats/page",
        headers=headers | {"Accept-Language": "zh-CN,zh;q=0.9"},
        timeout=10,
    )
    assert page.status_code == 200 and '<svg class="chart" role="img"' in page.text and "<table>" in page.text
    assert "每小时" in page.text  # Chinese first


def test_number_with_the_ecard_code_at_the_hall_scanner(live: LiveWallet) -> None:
    headers = admin_token(live)
    hall = set_up_hall(live, headers)
    scanner = (hall["scanner_client_id"], hall["scanner_client_secret"])
    code = ecard_code(live, "zhang")
    url = live.base_url + "/api/v1/halls/scan"
    assert requests.post(url, json={"code": code, "service": "card"}, timeout=10).status_code == 401
    venue_id, venue_secret = live.add_venue("Museum", "museum")  # a venue, not a hall: refused
    assert (
        requests.post(
            url, json={"code": code, "service": "card"}, auth=(venue_id, venue_secret), timeout=10
        ).status_code
        == 403
    )
    scans_before = rows(live, ScanRecord)
    unknown = requests.post(url, json={"code": code, "service": "nope"}, auth=scanner, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"] == "service_not_found"
    assert (rows(live, Ticket), rows(live, ScanRecord)) == (0, scans_before)  # the code is still unused
    taken = requests.post(
        url, json={"code": code, "service": "card", "scanner_id": "door-1"}, auth=scanner, timeout=10
    )
    assert taken.status_code == 200 and taken.json()["result"] == "taken", taken.text
    assert taken.json()["ticket"]["number"] == "A001" and taken.json()["ticket"]["hall_name"] == "市民之家"
    replayed = requests.post(url, json={"code": code, "service": "medical"}, auth=scanner, timeout=10)
    assert replayed.json() == {"result": "rejected", "reason": "replayed"}
    forged = requests.post(
        url, json={"code": code[:-4] + "AAAA", "service": "medical"}, auth=scanner, timeout=10
    )
    assert forged.json()["result"] == "rejected" and forged.json()["reason"] != "replayed"
    again = requests.post(
        url, json={"code": ecard_code_again(live, "zhang"), "service": "card"}, auth=scanner, timeout=10
    )
    assert again.json()["result"] == "already_queued" and again.json()["ticket"]["number"] == "A001"
    # A code of an e-card whose card was reported lost since: rejected as revoked, no number.
    li_code = ecard_code(live, "li")
    live.set_card_status("li", CardStatus.LOST)
    lost = requests.post(url, json={"code": li_code, "service": "card"}, auth=scanner, timeout=10)
    assert lost.json() == {"result": "rejected", "reason": "revoked"}
    assert rows(live, Ticket) == 1
    with live.services.database.session() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.channel == "scanner" and ticket.terminal_id == "door-1"
    # A removed hall's scanner is refused at once (its venue's gate client is gone).
    assert requests.delete(live.base_url + HALLS + "/civic", headers=headers, timeout=10).status_code == 204
    gone = requests.post(url, json={"code": li_code, "service": "card"}, auth=scanner, timeout=10)
    assert gone.status_code == 401


def ecard_code_again(live: LiveWallet, citizen: str) -> str:
    """A second, fresh code of the same e-card (already activated)."""
    user = WalletUser(live, citizen)
    user.login_with_card()
    return str(user.code()["text"])


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_ticket_page_and_display_render_in_both_languages(live: LiveWallet, lang: str) -> None:
    headers = admin_token(live)
    set_up_hall(live, headers)
    kiosk_take(live, "zhang", "card")
    kiosk_take(live, "li", "card")
    user = WalletUser(live, "li")
    user.login_with_card()
    page = user.http.get(user.url("/wallet/halls"), headers={"Accept-Language": lang}, timeout=10)
    assert page.status_code == 200 and "A002" in page.text and 'aria-live="polite"' in page.text
    # The wallet's menu lists the page, in the page's language.
    home = user.http.get(user.url("/wallet"), headers={"Accept-Language": lang}, timeout=10)
    menu_label = "My queue numbers" if lang == "en" else "我的排队号"
    assert f'<a href="/wallet/halls">{menu_label}</a>' in home.text
    if lang == "en":
        assert "Numbers before yours: 1." in page.text and "社保卡补换 (en)" in page.text
    else:
        assert "前面还有1个号" in page.text
    _device, w1 = device_headers(live, headers, "w1")
    assert (
        requests.post(live.base_url + COUNTERS + "/w1/call-next", headers=w1, timeout=10).status_code == 200
    )
    display = requests.get(
        live.base_url + "/halls/civic/display", headers={"Accept-Language": lang}, timeout=10
    )
    assert display.status_code == 200 and "A001" in display.text and "1号窗口" in display.text
    assert requests.get(live.base_url + "/halls/nowhere/display", timeout=10).status_code == 404


def test_citizen_gives_up_a_number(live: LiveWallet) -> None:
    headers = admin_token(live)
    set_up_hall(live, headers)
    ticket = kiosk_take(live, "li", "card")
    user = WalletUser(live, "li")
    user.login_with_card()
    page = user.http.get(user.url("/wallet/halls"), timeout=10)
    no_csrf = user.http.post(
        user.url("/wallet/halls/cancel"), data={"ticket_id": ticket["ticket_id"]}, timeout=10
    )
    assert no_csrf.status_code == 400
    kiosk_take(live, "zhang", "medical")  # zhang's page has a form (and so a CSRF token) of its own
    other = WalletUser(live, "zhang")
    other.login_with_card()
    other_page = other.http.get(other.url("/wallet/halls"), timeout=10)
    not_theirs = other.http.post(
        other.url("/wallet/halls/cancel"),
        data={"csrf": csrf_of(other_page.text), "ticket_id": ticket["ticket_id"]},
        timeout=10,
    )
    assert not_theirs.status_code == 404
    done = user.http.post(
        user.url("/wallet/halls/cancel"),
        data={"csrf": csrf_of(page.text), "ticket_id": ticket["ticket_id"]},
        allow_redirects=False,
        timeout=10,
    )
    assert done.status_code == 303
    assert kiosk_take(live, "li", "card")["number"] == "A002"  # a new number once the old one is given up


def test_concurrent_takes_in_separate_transactions_get_distinct_numbers(live: LiveWallet) -> None:
    """Many kiosks at once, each in its own transaction on the same database (SQLite's single writer,
    PostgreSQL's row lock on the sequence): every number once; one citizen twice at once gets one number."""
    set_up_hall(live, admin_token(live))
    numbers = random_id_numbers(12, seed=7)
    citizens = [
        seed_citizen_with_ecard(live.services, name="王芳", id_number=number) for number, *_ in numbers
    ]

    def take(citizen_id: str) -> str:
        with live.services.database.session() as session:
            service = get_service(session, get_hall(session, "civic"), "card")
            try:
                view = take_number(session, citizen_id=citizen_id, service=service, now=live.clock())
            except AlreadyQueuedError:
                return "already_queued"
            return view.number

    with ThreadPoolExecutor(max_workers=6) as pool:
        given = list(pool.map(take, [*citizens, citizens[0], citizens[0]]))
    taken = sorted(n for n in given if n != "already_queued")
    assert taken == [f"A{n:03d}" for n in range(1, 13)] and given.count("already_queued") == 2


# The command line -------------------------------------------------------------------------------------


def test_cli_sets_up_a_hall_and_calls_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    monkeypatch.setenv("ONECARD_ENV", "test")
    dbadmin.upgrade(url)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    added = run("halls", "add", "--name", "市民之家", "--id", "civic", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["scanner_client_secret"]
    assert (
        run(
            "halls", "add-service", "civic", "--code", "card", "--name", "社保卡补换", "--prefix", "A"
        ).exit_code
        == 0
    )
    assert (
        run(
            "halls", "add-counter", "civic", "--code", "w1", "--name", "1号窗口", "--service", "card"
        ).exit_code
        == 0
    )
    bad = run("halls", "add-service", "civic", "--code", "x", "--name", "X", "--prefix", "a")
    assert bad.exit_code == 1 and "prefix" in bad.output
    shown = run("halls", "show", "civic", "--json")
    assert json.loads(shown.stdout)["counters"][0]["code"] == "w1"
    assert "civic" in run("halls", "list").output
    nobody = run("halls", "call-next", "civic", "w1")
    assert nobody.exit_code == 0 and "Nobody" in nobody.output
    # The counter's device, registered and rekeyed from the console; its private key is refused.
    device = CounterDevice()
    jwks_file = tmp_path / "device.jwks.json"
    jwks_file.write_text(json.dumps(device.jwks))
    registered = run("halls", "register-device", "civic", "w1", "--jwks", str(jwks_file))
    assert registered.exit_code == 0, registered.output
    client_id = registered.output.split()[2]
    shown = json.loads(run("halls", "show", "civic", "--json").stdout)
    assert shown["counters"][0]["device_client_id"] == client_id
    jwks_file.write_text(json.dumps({"keys": [{**device.key.public_jwk(), "d": "AAAA"}]}))
    private = run("halls", "replace-device-keys", "civic", "w1", "--jwks", str(jwks_file))
    assert private.exit_code == 1 and "public keys only" in private.output
    jwks_file.write_text(json.dumps(device.rotate()))
    assert run("halls", "replace-device-keys", "civic", "w1", "--jwks", str(jwks_file)).exit_code == 0
    # call-next and finish at the console are the staff override, audited as such.
    with click.Context(cli), unit_of_work(keys=True) as (svc, session):
        citizen_id = seed_citizen_with_ecard(svc, name="王芳", id_number=random_id_numbers(1, seed=3)[0][0])
        service = get_service(session, get_hall(session, "civic"), "card")
        take_number(session, citizen_id=citizen_id, service=service, now=svc.now())
    called = run("halls", "call-next", "civic", "w1")
    assert called.exit_code == 0 and "A001" in called.output
    assert run("halls", "finish", "civic", "w1", "--no-show").exit_code == 0
    with click.Context(cli), unit_of_work() as (_svc, session):
        events = session.scalars(select(AuditEvent).where(AuditEvent.action.like("hall.ticket.%"))).all()
        assert [(e.action, e.details.get("staff_override")) for e in events] == [
            ("hall.ticket.take", None),
            ("hall.ticket.call", True),
            ("hall.ticket.no_show", True),
        ]
    assert run("halls", "remove-device", "civic", "w1").exit_code == 0
    assert run("halls", "remove-device", "civic", "w1").exit_code == 1


def test_only_the_counters_own_device_calls_its_numbers(live: LiveWallet) -> None:
    """DESIGN.md §14: a counter is a registered device with its own key. Another counter's device, an admin
    token, a client_secret client holding the scope, a removed device: all refused, nothing changes."""
    headers = admin_token(live)
    set_up_hall(live, headers)
    kiosk_take(live, "zhang", "card")
    w1_device, w1 = device_headers(live, headers, "w1")
    _w2_device, w2 = device_headers(live, headers, "w2")
    url = live.base_url + COUNTERS
    # A client_secret client cannot be a device, nor open a counter with the scope an admin gave it by hand.
    with pytest.raises(InvalidClientMetadataError):
        live.register_client(name="Fake counter", kind="device", scope="hall:counter")
    secret_id, secret = live.register_client(name="Secret", kind="operator", scope="hall:counter")
    secret_token = requests.post(
        live.base_url + "/token",
        data={"grant_type": "client_credentials", "scope": "hall:counter"},
        auth=(secret_id, secret or ""),
        timeout=10,
    ).json()["access_token"]
    before = (rows(live, AuditEvent), rows(live, Client))
    refused = [
        (url + "/w1/call-next", w2, 403),  # w2's device at w1
        (url + "/w1/finish", w2, 403),
        ("/api/v1/halls/nowhere/counters/w1/call-next", w1, 403),  # not its hall
        (url + "/w1/call-next", headers, 403),  # an admin token: insufficient_scope
        (url + "/w1/call-next", {"Authorization": "Bearer " + secret_token}, 403),
        (url + "/w1/call-next", {}, 401),
    ]
    for target, auth, status in refused:
        target = target if target.startswith("http") else live.base_url + target
        answer = requests.post(target, json={"status": "served"}, headers=auth, timeout=10)
        assert answer.status_code == status, (target, answer.text)
        assert set(answer.json()) == {"error", "error_description"}
    with live.services.database.session() as session:
        assert session.scalars(select(Ticket.status)).all() == ["waiting"]
    assert (rows(live, AuditEvent), rows(live, Client)) == before
    # The device's own call: audited with the device's client id.
    nothing_called = requests.post(url + "/w1/finish", json={"status": "served"}, headers=w1, timeout=10)
    assert nothing_called.status_code == 409 and nothing_called.json()["error"] == "ticket_state"
    bad_status = requests.post(url + "/w1/finish", json={"status": "gone"}, headers=w1, timeout=10)
    assert bad_status.status_code == 400
    called = requests.post(url + "/w1/call-next", headers=w1, timeout=10)
    assert called.status_code == 200 and called.json()["number"] == "A001"
    with live.services.database.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "hall.ticket.call")).one()
        assert event.actor == f"client:{w1_device.client_id}"
        assert event.details["device_client_id"] == w1_device.client_id
    # One device per counter; the keys are staff's to replace (rotation), public keys only.
    again = requests.post(
        live.base_url + HALLS + "/civic/counters/w1/device",
        json={"jwks": CounterDevice().jwks},
        headers=headers,
        timeout=10,
    )
    assert again.status_code == 409
    keys_url = live.base_url + HALLS + "/civic/counters/w1/device/jwks"
    private = {"keys": [{**w1_device.key.public_jwk(), "d": "AAAA"}]}
    clients_before = rows(live, Client)
    shared = {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}  # a shared secret is no device key
    not_sets: list[Any] = [
        private,
        shared,
        {"keys": [w1_device.key.public_jwk()] * 6},
        {"keys": []},
        {"keys": [{"kty": "EC", "crv": "P-256", "x": "?"}]},
        [],
        "x",
    ]
    for jwks in not_sets:
        answer = requests.put(keys_url, json={"jwks": jwks}, headers=headers, timeout=10)
        assert answer.status_code == 400, (jwks, answer.text)
        assert requests.post(
            live.base_url + HALLS + "/civic/counters/w1/device",
            json={"jwks": jwks},
            headers=headers,
            timeout=10,
        ).status_code in (400, 409)
    assert rows(live, Client) == clients_before
    stale = CounterDevice(w1_device.client_id)
    stale.key = w1_device.key
    rotated = requests.put(keys_url, json={"jwks": w1_device.rotate()}, headers=headers, timeout=10)
    assert rotated.status_code == 200 and rotated.json()["device_client_id"] == w1_device.client_id
    assert w1_device.token_response(live.base_url, live.base_url).status_code == 200  # the new key works
    old_key = stale.token_response(live.base_url, live.base_url)  # the old key no more
    assert old_key.status_code in (400, 401) and old_key.json()["error"] == "invalid_client"
    # Removing the device: its credentials and its token stop working at once.
    removed = requests.delete(
        live.base_url + HALLS + "/civic/counters/w1/device", headers=headers, timeout=10
    )
    assert removed.status_code == 204
    assert requests.post(
        url + "/w1/finish", json={"status": "served"}, headers=w1, timeout=10
    ).status_code in (
        401,
        403,
    )
    assert w1_device.token_response(live.base_url, live.base_url).json()["error"] == "invalid_client"
    with live.services.database.session() as session:
        counter = session.scalars(select(Counter).where(Counter.code == "w1")).one()
        assert counter.device_client_id is None
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {
        "hall.counter.device.register",
        "hall.counter.device.keys",
        "hall.counter.device.remove",
    } <= actions
    # A new device for the counter is a new client: the old one's token opens nothing.
    _fresh, fresh = device_headers(live, headers, "w1")
    assert requests.post(
        url + "/w1/finish", json={"status": "served"}, headers=w1, timeout=10
    ).status_code in (
        401,
        403,
    )
    assert (
        requests.post(url + "/w1/finish", json={"status": "served"}, headers=fresh, timeout=10).status_code
        == 200
    )
