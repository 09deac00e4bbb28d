"""What one card login costs the server (issue 16 item 4): the HTTP requests and database statements of each
step, held under an upper bound, and the card certificate's chain check kept per certificate without
keeping anything that changes (register status, card status, the CA's place in the trust list, time)."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import flask
import pytest
import requests
from sqlalchemy import event

from idp.cardlogin.challenge import CardLoginPolicy
from idp.cards.chain import CardCertificateVerifier
from idp.cards.issuance import active_issuer_ca
from idp.cards.model import CardStatus
from idp.cards.service import change_status, get_card
from idp.citizens.service import set_citizen_status
from idp.keys.model import KeyState
from idp.keys.service import transition
from sdk.card_auth import CardAuthFailure, InvalidCardAuthError
from tests.bridge.pki import make_ca, make_card
from tests.support.cardlogin import Flow, VirtualCard, issue_test_card, refresh_trust, refused, use_policy
from tests.support.live import REDIRECT, LiveIdp, portal

# Upper bounds, per request path kind: what the steps of a login may send to the database. Today:
# verify = card and holder in one SELECT, three for the audit event (lock, last link, insert), the SSO
# session insert; the card page and the challenge touch no table (the challenge is in the short-lived store).
MAX_STATEMENTS = {"card_page": 0, "challenge": 0, "verify": 5}
MAX_STATEMENTS_PER_LOGIN = 20  # authorize … token, first-party client (no consent page)


@contextmanager
def counting_statements(idp: LiveIdp) -> Iterator[collections.Counter[str]]:
    """Statements sent on the provider's engine while the block runs, counted per kind of request path."""
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    engine = idp.services.database.engine

    def count(*_args: Any) -> None:
        path = flask.request.path if flask.has_request_context() else ""
        kind = path.rsplit("/", 1)[-1] if "/card" in path else path.split("/")[1] if path else "outside"
        kind = {"card": "card_page"}.get(kind, kind)
        with lock:
            counts[kind] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture(name="idp")
def each_database_idp(live_idp: LiveIdp) -> LiveIdp:
    """On SQLite, and on PostgreSQL + Redis (where the short-lived store is not in the database at all)."""
    return live_idp


@pytest.fixture
def card(idp: LiveIdp) -> VirtualCard:
    return issue_test_card(idp)


def first_party_flow(idp: LiveIdp) -> Flow:
    return Flow(idp, portal(idp, redirect_uris=(REDIRECT,), scope="openid", first_party=True))


def test_one_card_login_stays_under_its_statement_bounds(idp: LiveIdp, card: VirtualCard) -> None:
    warm = first_party_flow(idp)  # the key ring and the trust list loaded, as on a running node
    warm.id_token_claims(warm.browser.login(warm.page, card))
    flow = first_party_flow(idp)
    with counting_statements(idp) as counts:
        final = flow.browser.login(flow.page, card)
        flow.id_token_claims(final)
    for kind, bound in MAX_STATEMENTS.items():
        assert counts[kind] <= bound, (kind, dict(counts))
    assert counts["verify"] >= 1  # the register was read: the count is of the real path
    assert sum(n for kind, n in counts.items() if kind != "outside") <= MAX_STATEMENTS_PER_LOGIN, dict(counts)


def test_the_chain_check_is_kept_per_certificate(idp: LiveIdp, card: VirtualCard) -> None:
    verifier = idp.services.card_login.certificates
    for _ in range(3):
        flow = Flow(idp)
        flow.id_token_claims(flow.browser.login(flow.page, card))
    assert verifier.misses == 1
    assert verifier.hits == 2


def verify_again(idp: LiveIdp, card: VirtualCard) -> requests.Response:
    """A new login with ``card`` up to the verify answer."""
    flow = Flow(idp)
    challenge = flow.browser.challenge(flow.page)
    return flow.browser.verify(flow.page, challenge, card.sign(flow.browser.origin, challenge))


def set_card_status(idp: LiveIdp, card: VirtualCard, status: CardStatus) -> None:
    with idp.services.database.session() as session:
        change_status(session, get_card(session, card.card_id), status, actor="test", now=idp.clock())


def test_a_kept_certificate_still_needs_an_active_card_and_holder(idp: LiveIdp, card: VirtualCard) -> None:
    use_policy(idp, CardLoginPolicy(failures_per_card=100, failures_per_ip=100))
    flow = Flow(idp)
    flow.id_token_claims(flow.browser.login(flow.page, card))
    set_card_status(idp, card, CardStatus.LOST)
    refused(verify_again(idp, card), 403, "card_lost")
    set_card_status(idp, card, CardStatus.ACTIVE)
    with idp.services.database.session() as session:
        set_citizen_status(session, idp.citizens["zhang"], "disabled", now=idp.clock())
    refused(verify_again(idp, card), 403, "account_disabled")
    assert idp.services.card_login.certificates.hits >= 2  # refused by the register, the chain check kept


def test_a_revoked_issuer_ca_is_not_trusted_from_the_kept_result(idp: LiveIdp, card: VirtualCard) -> None:
    flow = Flow(idp)
    flow.id_token_claims(flow.browser.login(flow.page, card))
    svc = idp.services
    with svc.database.session() as session:
        ca = active_issuer_ca(session, "420100")
        assert ca is not None
        transition(ca, KeyState.REVOKED, now=idp.clock())
    refresh_trust(idp)  # what the 5-second cache does by itself on every node
    refused(verify_again(idp, card), 403, "card_not_trusted")


def test_a_kept_certificate_past_its_validity_is_verified_again_and_refused(
    idp: LiveIdp, card: VirtualCard
) -> None:
    verifier = CardCertificateVerifier(idp.services.card_login.trust_list)
    der = card.card_file.certificate_der
    now = idp.clock()
    assert verifier.verify(der, now=now).card_id_hex == card.card_id
    assert verifier.verify(der, now=now + 1).card_id_hex == card.card_id
    assert (verifier.misses, verifier.hits) == (1, 1)
    after = card.card_file.certificate.not_valid_after_utc.timestamp() + 60
    with pytest.raises(InvalidCardAuthError) as refusal:
        verifier.verify(der, now=after)
    assert refusal.value.reason is CardAuthFailure.EXPIRED_CERTIFICATE
    assert verifier.misses == 2


def test_an_untrusted_certificate_is_not_kept(idp: LiveIdp) -> None:
    verifier = CardCertificateVerifier(idp.services.card_login.trust_list)
    foreign = make_card(make_ca("Some Other Issuer CA"))
    for _ in range(2):
        with pytest.raises(InvalidCardAuthError) as refusal:
            verifier.verify(foreign.certificate_der, now=idp.clock())
        assert refusal.value.reason is CardAuthFailure.UNTRUSTED_ISSUER
    assert (verifier.misses, verifier.hits) == (2, 0)
