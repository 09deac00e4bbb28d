"""Card login end to end on the real PC/SC stack (issue #3 "How it is checked"; DESIGN.md §9).

pcscd + vsmartcard's vpcd + the card emulator on a card file written by ``onecard cards issue`` (the CLI
code path); the reader bridge's own local API server with pyscard, its allow-list holding the IdP's origin;
the PIN typed into the bridge's PIN dialog; and Authlib's OAuth2Session completing code + PKCE.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from idp.cardlogin.challenge import CHALLENGE_TTL
from idp.scopes import ACR_HIGH
from reader_bridge.operations import Settings
from sdk.card_file import load_card_file
from sdk.keys import b64url
from tests.support.bridge import BridgeClient, Outcome, running_bridge
from tests.support.cardlogin import PIN, Flow, emulator, issue, onecard, refused
from tests.support.live import LiveIdp

pytestmark = pytest.mark.pcsc

WRONG = "999999"


@pytest.fixture
def idp(migrated_idp: LiveIdp) -> LiveIdp:
    return migrated_idp


@pytest.fixture
def card_path(idp: LiveIdp, tmp_path: Path) -> Path:
    return issue(idp, tmp_path)


@pytest.fixture
def bridge(idp: LiveIdp, slot: tuple[str, int]) -> Iterator[BridgeClient]:
    from reader_bridge.transport import PcscTerminal

    reader, _port = slot
    with running_bridge(PcscTerminal(dev_mode=True, reader_names=[reader]), [idp.base_url]) as client:
        yield client


@pytest.fixture
def inserted_card(card_path: Path, slot: tuple[str, int]) -> Iterator[Any]:
    from tests.bridge.pcsc_env import inserted

    reader, port = slot
    with inserted(emulator(card_path), reader, port) as client:
        yield client


def authenticate(bridge: BridgeClient, challenge: str, *pins: str, **kwargs: Any) -> Outcome:
    return bridge.run("/v1/authenticate", {"nonce": challenge}, [{"pin": pin} for pin in pins], **kwargs)


@pytest.mark.parametrize("protocol", ["T=1", "T=0"])
def test_oidc_code_flow_through_card_login(
    idp: LiveIdp, tmp_path: Path, slot: tuple[str, int], bridge: BridgeClient, protocol: str
) -> None:
    from tests.bridge.pcsc_env import inserted

    path = issue(idp, tmp_path, protocol)
    reader, port = slot
    with inserted(emulator(path), reader, port):
        flow = Flow(idp)
        challenge = flow.browser.challenge(flow.page)
        outcome = authenticate(bridge, challenge, PIN)
        assert outcome.result is not None, outcome.error
        assert outcome.types[:2] == ["reading_card", "enter_pin"]
        assert outcome.events[1]["tries_left"] == 3
        final = flow.browser.finish(flow.browser.verify(flow.page, challenge, outcome.result))
        claims = flow.id_token_claims(final)
    assert claims["acr"] == ACR_HIGH
    assert claims["amr"] == ["sc", "pin", "mfa"]


def test_issued_card_keeps_ef06_closed_and_logs_in_after_the_card_check(
    idp: LiveIdp, card_path: Path, slot: tuple[str, int], bridge: BridgeClient, inserted_card: Any
) -> None:
    """`onecard cards issue` writes EF06 (CARD_PROFILE "EF06"); on the 3.00 card it answers 6982 over the
    real PC/SC stack, and the login — the page's way: card check before the PIN — never needs it."""
    from reader_bridge.card import SocialSecurityCard
    from reader_bridge.errors import SecurityStatusError
    from reader_bridge.profile import EF05, EF06
    from reader_bridge.transport import PcscTerminal

    card_file = load_card_file(card_path)
    assert card_file.version == "3.00" and card_file.holder is not None
    reader, _port = slot
    with PcscTerminal(dev_mode=True, reader_names=[reader]).connect(reader) as session:
        ssc = SocialSecurityCard(session)
        ssc.select_ssse()
        ssc.select_file(EF06)
        with pytest.raises(SecurityStatusError) as closed:
            ssc.read_record(1)
        assert closed.value.sw == 0x6982
        ssc.select_file(EF05)
        with pytest.raises(SecurityStatusError):
            ssc.read_record(7)

    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    checked: list[int] = []
    operation_id: list[str] = []

    def check_card(event: dict[str, Any]) -> None:
        if event["type"] == "card_read":
            answer = flow.browser.precheck(flow.page, challenge, event["card_certificate"])
            checked.append(answer.status_code)
            status, _ = bridge.request("POST", f"/v1/operations/{operation_id[0]}/continue")
            assert status == 200

    outcome = bridge.run(
        "/v1/authenticate",
        {"nonce": challenge, "card_check": True},
        [{"pin": PIN}],
        on_event=check_card,
        on_start=operation_id.append,
    )
    assert checked == [200] and outcome.result is not None, outcome.events
    assert outcome.types[:3] == ["reading_card", "card_read", "enter_pin"]
    final = flow.browser.finish(flow.browser.verify(flow.page, challenge, outcome.result))
    assert flow.id_token_claims(final)["acr"] == ACR_HIGH


def test_wrong_pins_count_down_then_the_right_one_works(
    idp: LiveIdp, card_path: Path, bridge: BridgeClient, inserted_card: Any
) -> None:
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    outcome = authenticate(bridge, challenge, WRONG, WRONG, PIN)
    assert [e["tries_left"] for e in outcome.events if e["type"] == "pin_wrong"] == [2, 1]
    assert [e["tries_left"] for e in outcome.events if e["type"] == "enter_pin"] == [3, 2, 1]
    assert outcome.result is not None
    assert "code=" in flow.browser.finish(flow.browser.verify(flow.page, challenge, outcome.result))
    assert load_card_file(card_path).tries_left == 3


def test_blocked_card(idp: LiveIdp, card_path: Path, bridge: BridgeClient, inserted_card: Any) -> None:
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    outcome = authenticate(bridge, challenge, WRONG, WRONG, WRONG)
    assert outcome.types[-2:] == ["card_blocked", "error"]
    assert (
        outcome.error is not None
        and outcome.error["error"] == "card_blocked"
        and outcome.error["sw"] == "6983"
    )
    assert "service counter" in outcome.error["error_description"]
    assert load_card_file(card_path).tries_left == 0
    again = authenticate(bridge, challenge)
    assert (
        "enter_pin" not in again.types and again.error is not None and again.error["error"] == "card_blocked"
    )


def test_card_reported_lost(idp: LiveIdp, card_path: Path, bridge: BridgeClient, inserted_card: Any) -> None:
    onecard(idp, "cards", "lost", load_card_file(card_path).card_number)
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    outcome = authenticate(bridge, challenge, PIN)
    assert outcome.result is not None  # the card itself does not know
    refused(flow.browser.verify(flow.page, challenge, outcome.result), 403, "card_lost")
    onecard(idp, "cards", "restore", load_card_file(card_path).card_number)
    challenge = flow.browser.challenge(flow.page)
    outcome = authenticate(bridge, challenge, PIN)
    assert outcome.result is not None
    assert "code=" in flow.browser.finish(flow.browser.verify(flow.page, challenge, outcome.result))


def test_challenge_replayed_and_expired(idp: LiveIdp, bridge: BridgeClient, inserted_card: Any) -> None:
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    outcome = authenticate(bridge, challenge, PIN)
    assert outcome.result is not None
    assert flow.browser.verify(flow.page, challenge, outcome.result).status_code == 200
    refused(flow.browser.verify(flow.page, challenge, outcome.result), 400, "challenge_invalid")

    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    outcome = authenticate(bridge, challenge, PIN)
    assert outcome.result is not None
    idp.clock.advance(CHALLENGE_TTL + 1)
    refused(flow.browser.verify(flow.page, challenge, outcome.result), 400, "challenge_invalid")


def test_bridge_refuses_an_origin_not_on_its_allow_list(bridge: BridgeClient, inserted_card: Any) -> None:
    status, body = bridge.start(
        "/v1/authenticate", {"nonce": b64url(bytes(32))}, origin="https://evil.example"
    )
    assert status == 403 and body["error"] == "origin_not_allowed"


def test_card_removed_mid_operation(idp: LiveIdp, bridge: BridgeClient, inserted_card: Any) -> None:
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    pulled: list[bool] = []

    def pull_at_pin(event: dict[str, Any]) -> None:
        if event["type"] == "enter_pin" and not pulled:
            inserted_card.stop()  # the cardholder pulls the card while the PIN dialog is open
            pulled.append(True)

    outcome = authenticate(bridge, challenge, PIN, on_event=pull_at_pin)
    inserted_card.start()  # put it back, so the fixture sees the same card leave at the end
    assert outcome.error is not None and outcome.error["error"] == "card_removed", outcome.events
    assert "Insert the card" in outcome.error["error_description"]


def test_no_reader(idp: LiveIdp, pcscd: None) -> None:
    from reader_bridge.transport import PcscTerminal

    terminal = PcscTerminal(dev_mode=True, reader_names=["No Such Reader 00 00"])
    with running_bridge(terminal, [idp.base_url], settings=Settings(card_timeout=1, pin_timeout=5)) as bridge:
        outcome = authenticate(bridge, b64url(bytes(32)))
    assert outcome.types == ["no_reader", "error"]
    assert outcome.error is not None and outcome.error["error"] == "no_reader"


def test_changed_pin_works_for_login(
    idp: LiveIdp, card_path: Path, bridge: BridgeClient, inserted_card: Any
) -> None:
    changed = bridge.run(
        "/v1/change-pin", {}, [{"old_pin": PIN, "new_pin": "246810", "new_pin_again": "246810"}]
    )
    assert changed.result == {"changed": True}, changed.events
    assert load_card_file(card_path).pin == "246810"
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    outcome = authenticate(bridge, challenge, "246810")
    assert outcome.result is not None
    claims = flow.id_token_claims(
        flow.browser.finish(flow.browser.verify(flow.page, challenge, outcome.result))
    )
    assert claims["acr"] == ACR_HIGH
