"""The bridge's local API (reader_bridge.server) over real HTTP, with the in-process virtual card."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from reader_bridge.emulator import CardEmulator
from reader_bridge.operations import Settings
from reader_bridge.pin import DialogPinSource
from reader_bridge.server import BridgeConfig, create_server, parse_origins
from reader_bridge.virtual import VirtualTerminal
from sdk.card_auth import verify_card_auth_token
from sdk.card_file import VirtualCardFile
from sdk.keys import b64url
from tests.bridge.local_api import EVIL, NONCE, ORIGIN, Client, serving
from tests.bridge.pki import NOW, TestCA


@pytest.fixture
def terminal(card: VirtualCardFile) -> VirtualTerminal:
    return VirtualTerminal(CardEmulator(card))


@pytest.fixture
def client(terminal: VirtualTerminal) -> Iterator[Client]:
    config = BridgeConfig(
        allowed_origins=parse_origins([ORIGIN]),
        terminal=terminal,
        pin_source=DialogPinSource(),
        settings=Settings(card_timeout=5, pin_timeout=10),
        dev_mode=True,
    )
    with serving(config) as client:
        yield client


def test_origin_not_allowed(client: Client) -> None:
    status, headers, body = client.json(
        "POST", "/v1/authenticate", origin=EVIL, body={"nonce": b64url(NONCE)}
    )
    assert status == 403 and body["error"] == "origin_not_allowed"
    assert not any(name.startswith("access-control-") for name in headers)
    status, headers, _ = client.request(
        "OPTIONS",
        "/v1/authenticate",
        origin=EVIL,
        headers={"Access-Control-Request-Method": "POST", "Access-Control-Request-Private-Network": "true"},
    )
    assert status == 403 and not any(name.startswith("access-control-") for name in headers)
    status, _, body = client.json("POST", "/v1/authenticate", origin=None, body={"nonce": b64url(NONCE)})
    assert status == 403


def test_preflight_with_private_network_access(client: Client) -> None:
    status, headers, _ = client.request(
        "OPTIONS",
        "/v1/authenticate",
        headers={
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-private-network"] == "true"
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["vary"] == "Origin"
    status, headers, _ = client.request(
        "OPTIONS", "/v1/status", headers={"Access-Control-Request-Method": "GET"}
    )
    assert status == 204 and "access-control-allow-private-network" not in headers


def test_status(client: Client) -> None:
    status, headers, body = client.json("GET", "/v1/status")
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN
    assert body["readers"] == [
        {"name": "OneCard Virtual PCD (in-process)", "card_present": True, "virtual": True}
    ]
    assert body["busy"] is False and body["pin_source"] == "dialog"
    status, _, _ = client.json("GET", "/v1/status", origin=None)  # `onecard-bridge status`
    assert status == 200


def test_full_authenticate_with_the_pin_dialog(client: Client, ca: TestCA) -> None:
    operation_id = client.start_authenticate()
    seen: list[dict[str, Any]] = []
    assert client.next_event(operation_id, seen)["type"] == "reading_card"
    event = client.next_event(operation_id, seen)
    assert event["type"] == "enter_pin" and event["tries_left"] == 3
    assert event["pin_expires_in"] > 0  # the login page counts the PIN window's time down
    # Chinese unless the browser or the login page's link (?lang=) asks otherwise; English on request.
    path = urllib.parse.urlsplit(event["pin_url"]).path
    _, _, chinese = client.request("GET", path, origin=None)
    assert '<html lang="zh-CN">' in chinese.decode() and "还可以输入3次" in chinese.decode()
    _, _, english = client.request(
        "GET", path + "?lang=en", origin=None, headers={"Accept-Language": "zh-CN"}
    )
    assert b'<html lang="en">' in english and b"3 tries left" in english
    status, page = client.submit_pin(event["pin_url"], pin="000000", action="submit")
    assert status == 200
    assert b'<label for="pin">' in page and b"3 tries left" in page and b"Cancel" in page
    assert b'<html lang="en">' in page
    assert client.next_event(operation_id, seen) == {"seq": 3, "type": "pin_wrong", "tries_left": 2}
    event = client.next_event(operation_id, seen)
    assert event["type"] == "enter_pin" and event["tries_left"] == 2
    # A typo is caught by the page, not spent on the card.
    path = urllib.parse.urlsplit(event["pin_url"]).path
    status, _, page = client.request(
        "POST", path, origin=client.server.own_origin, form={"pin": "12"}, headers={"Accept-Language": "en"}
    )
    assert status == 400 and b"6 digits" in page
    status, page = client.submit_pin(event["pin_url"], pin="123456", action="submit")
    assert status == 200 and b"The PIN was wrong." in page
    done = client.next_event(operation_id, seen)
    assert done["type"] == "done"
    verified = verify_card_auth_token(
        done["result"],
        expected_origin=ORIGIN,
        expected_nonce=NONCE,
        trusted_issuers=[ca.certificate],
        now=NOW,
    )
    assert verified.card_number == "X00000019"
    status, _, body = client.json("GET", f"/v1/operations/{operation_id}")
    assert body["state"] == "done" and body["result"] == done["result"]
    # Another origin cannot see the operation, even if allowed elsewhere.
    status, _, _ = client.json("GET", f"/v1/operations/{operation_id}", origin=EVIL)
    assert status == 403


def test_busy_then_cancel(client: Client) -> None:
    operation_id = client.start_authenticate()
    seen: list[dict[str, Any]] = []
    while client.next_event(operation_id, seen)["type"] != "enter_pin":
        pass
    status, _, body = client.json("POST", "/v1/authenticate", body={"nonce": b64url(NONCE)})
    assert status == 409 and body["error"] == "busy"
    status, _, body = client.json("POST", "/v1/change-pin", body={})
    assert status == 409
    status, _, _ = client.json("POST", f"/v1/operations/{operation_id}/cancel", body={})
    assert status == 200
    event = client.next_event(operation_id, seen)
    assert event["type"] == "error" and event["error"] == "cancelled"
    assert client.start_authenticate()  # free again


def test_dialog_cancel_button(client: Client) -> None:
    operation_id = client.start_authenticate()
    seen: list[dict[str, Any]] = []
    while (event := client.next_event(operation_id, seen))["type"] != "enter_pin":
        pass
    status, _ = client.submit_pin(event["pin_url"], action="cancel")
    assert status == 200
    assert client.next_event(operation_id, seen)["error"] == "cancelled"


def test_dialog_more_time_restarts_its_time_and_tells_the_page(client: Client) -> None:
    """WCAG 2.2.1: the PIN window says how long it waits and offers "More time", which gives the full time
    again and tells the login page (a new enter_pin event, ``extended``) so its countdown follows."""
    operation_id = client.start_authenticate()
    seen: list[dict[str, Any]] = []
    while (event := client.next_event(operation_id, seen))["type"] != "enter_pin":
        pass
    path = urllib.parse.urlsplit(event["pin_url"]).path
    _, _, page = client.request("GET", path, origin=None, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "这个窗口会等您输入密码到" in page.decode() and 'value="more_time"' in page.decode()
    status, _, page = client.request(
        "POST",
        path,
        origin=client.server.own_origin,
        form={"action": "more_time"},
        headers={"Accept-Language": "en"},
    )
    assert status == 200 and b"This window waits for the PIN until" in page and b'name="pin"' in page
    extended = client.next_event(operation_id, seen)
    assert extended["type"] == "enter_pin" and extended["extended"] is True
    assert extended["pin_url"] == event["pin_url"] and extended["pin_expires_in"] > 0
    client.json("POST", f"/v1/operations/{operation_id}/cancel", body={})


def test_pin_form_only_from_the_bridge_origin(client: Client) -> None:
    operation_id = client.start_authenticate()
    seen: list[dict[str, Any]] = []
    while (event := client.next_event(operation_id, seen))["type"] != "enter_pin":
        pass
    path = urllib.parse.urlsplit(event["pin_url"]).path
    for origin in (ORIGIN, EVIL):
        status, _, _ = client.request("POST", path, origin=origin, form={"pin": "123456"})
        assert status == 403
    client.json("POST", f"/v1/operations/{operation_id}/cancel", body={})


def test_blocked_card_is_explained(client: Client, terminal: VirtualTerminal, card: VirtualCardFile) -> None:
    terminal.insert(CardEmulator(card.with_pin_state(pin=card.pin, tries_left=0)))
    operation_id = client.start_authenticate()
    seen: list[dict[str, Any]] = []
    while (event := client.next_event(operation_id, seen))["type"] not in ("error", "done"):
        if event["type"] == "card_blocked":
            assert "card service counter" in event["what_to_do"]
    assert event["error"] == "card_blocked" and "card service counter" in event["error_description"]
    assert [e["type"] for e in seen] == ["reading_card", "card_blocked", "error"]


def test_insert_card_event(client: Client, terminal: VirtualTerminal, card: VirtualCardFile) -> None:
    terminal.remove()
    operation_id = client.start_authenticate()
    seen: list[dict[str, Any]] = []
    assert client.next_event(operation_id, seen)["type"] == "insert_card"
    terminal.insert(CardEmulator(card))
    assert client.next_event(operation_id, seen)["type"] == "reading_card"
    client.json("POST", f"/v1/operations/{operation_id}/cancel", body={})


def test_change_pin_through_the_dialog(client: Client, terminal: VirtualTerminal) -> None:
    status, _, body = client.json("POST", "/v1/change-pin", body={})
    assert status == 202
    operation_id = body["operation_id"]
    seen: list[dict[str, Any]] = []
    while (event := client.next_event(operation_id, seen))["type"] != "enter_pin":
        pass
    status, page = client.submit_pin(
        event["pin_url"], old_pin="123456", new_pin="246810", new_pin_again="246810", action="submit"
    )
    assert status == 200 and b"new_pin_again" in page
    assert client.next_event(operation_id, seen)["type"] == "done"
    assert terminal.emulator is not None and terminal.emulator.card.pin == "246810"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"body": {"nonce": "short"}}, 400),
        ({"body": {"nonce": b64url(NONCE) + "="}}, 400),
        ({"body": {}}, 400),
        ({"body": [1]}, 400),
        ({"body": {"nonce": b64url(NONCE)}, "headers": {"Content-Type": "text/plain"}}, 400),
    ],
)
def test_bad_requests_get_json_errors(client: Client, kwargs: dict[str, Any], code: int) -> None:
    status, _, body = client.json("POST", "/v1/authenticate", **kwargs)
    assert status == code and body["error"] == "invalid_request" and "Traceback" not in json.dumps(body)


def test_unknown_paths_and_hosts(client: Client) -> None:
    status, _, body = client.json("GET", "/v1/nothing")
    assert status == 404 and body["error"] == "not_found"
    status, _, _ = client.request("GET", "/v1/status", headers={"Host": "attacker.example:47400"})
    assert status == 421  # DNS rebinding
    status, _, _ = client.request("GET", "/pin/unknown", origin=None)
    assert status == 404


def test_server_refuses_non_loopback(card: VirtualCardFile) -> None:
    config = BridgeConfig(frozenset({ORIGIN}), VirtualTerminal(CardEmulator(card)), DialogPinSource())
    with pytest.raises(ValueError, match="loopback"):
        create_server(config, host="0.0.0.0", port=0)  # noqa: S104
    with pytest.raises(ValueError):
        parse_origins(["https://login.example/path"])
    assert parse_origins(["https://A.example/, http://127.0.0.1:8000"]) == {
        "https://a.example",
        "http://127.0.0.1:8000",
    }


# --- the long poll's wait --------------------------------------------------------------------------------


@pytest.mark.parametrize("wait", ["nan", "NaN", "inf", "-inf", "-1", "1e999", "soon"])
def test_wait_must_be_finite_and_not_negative(client: Client, wait: str) -> None:
    operation_id = client.start_authenticate()
    status, _, body = client.json("GET", f"/v1/operations/{operation_id}/events?after=99&wait={wait}")
    assert status == 400 and body["error"] == "invalid_request", body
    client.json("POST", f"/v1/operations/{operation_id}/cancel", body={})


def test_wait_is_capped(terminal: VirtualTerminal) -> None:
    """A huge wait is held to the cap: the poll answers (with no events) after the cap, not after 1e300 s."""
    config = BridgeConfig(
        allowed_origins=parse_origins([ORIGIN]),
        terminal=terminal,
        pin_source=DialogPinSource(),
        settings=Settings(card_timeout=5, pin_timeout=10),
        dev_mode=True,
        max_wait=0.3,
    )
    with serving(config) as capped:
        operation_id = capped.start_authenticate()
        started = time.monotonic()
        status, _, body = capped.json("GET", f"/v1/operations/{operation_id}/events?after=99&wait=1e300")
        assert status == 200 and body["events"] == [] and time.monotonic() - started < 5
        capped.json("POST", f"/v1/operations/{operation_id}/cancel", body={})


# --- leaving and cancelling ------------------------------------------------------------------------------


def _until(client: Client, operation_id: str, kind: str) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []
    while (event := client.next_event(operation_id, seen))["type"] != kind:
        assert event["type"] not in ("done", "error"), event
    return event


def test_a_cancelled_operation_frees_the_bridge_at_once(client: Client) -> None:
    operation_id = client.start_authenticate()
    event = _until(client, operation_id, "enter_pin")
    # What a page being left sends: fetch(…, {method: "POST", keepalive: true}), no body, no Content-Type.
    status, _, body = client.json("POST", f"/v1/operations/{operation_id}/cancel")
    assert status == 200 and body["state"] == "error" and body["error"]["error"] == "cancelled"
    # The next page starts straight away, and the abandoned PIN dialog is closed.
    second = client.start_authenticate()
    assert second != operation_id
    status, _, _ = client.request("GET", urllib.parse.urlsplit(event["pin_url"]).path, origin=None)
    assert status == 404
    client.json("POST", f"/v1/operations/{second}/cancel")


def test_cancel_is_only_for_the_operation_s_own_origin(client: Client) -> None:
    operation_id = client.start_authenticate()
    _until(client, operation_id, "enter_pin")
    status, _, _ = client.json("POST", f"/v1/operations/{operation_id}/cancel", origin=EVIL)
    assert status == 403
    status, _, body = client.json("GET", "/v1/status")
    assert body["busy"] is True
    client.json("POST", f"/v1/operations/{operation_id}/cancel")


def test_a_pin_prompt_left_unanswered_times_out_and_frees_the_bridge(terminal: VirtualTerminal) -> None:
    assert Settings().pin_timeout <= 60  # a page left without cancelling holds the bridge a minute at most
    config = BridgeConfig(
        allowed_origins=parse_origins([ORIGIN]),
        terminal=terminal,
        pin_source=DialogPinSource(),
        settings=Settings(card_timeout=5, pin_timeout=0.5),
        dev_mode=True,
    )
    with serving(config) as quick:
        operation_id = quick.start_authenticate()
        event = _until(quick, operation_id, "error")
        assert event["error"] == "timeout"
        assert quick.start_authenticate()


# --- the page's card check before the PIN ----------------------------------------------------------------


def test_card_check_pauses_until_the_page_continues(client: Client, card: VirtualCardFile) -> None:
    status, _, body = client.json(
        "POST", "/v1/authenticate", body={"nonce": b64url(NONCE), "card_check": True}
    )
    assert status == 202
    operation_id = body["operation_id"]
    read = _until(client, operation_id, "card_read")
    assert base64.b64decode(read["card_certificate"]) == card.certificate_der
    status, _, body = client.json("GET", f"/v1/operations/{operation_id}/events?after={read['seq']}&wait=0.5")
    assert body["events"] == []  # no PIN asked before the page says so
    status, _, body = client.json("POST", f"/v1/operations/{operation_id}/continue", origin=EVIL)
    assert status == 403
    status, _, body = client.json("POST", f"/v1/operations/{operation_id}/continue")
    assert status == 200 and body["state"] == "running"
    assert _until(client, operation_id, "enter_pin")["tries_left"] == 3
    client.json("POST", f"/v1/operations/{operation_id}/cancel")


def test_card_check_must_be_a_boolean(client: Client) -> None:
    status, _, body = client.json(
        "POST", "/v1/authenticate", body={"nonce": b64url(NONCE), "card_check": "yes"}
    )
    assert status == 400 and body["error"] == "invalid_request"
    status, _, body = client.json("GET", "/v1/status")
    assert body["busy"] is False
