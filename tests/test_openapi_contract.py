"""schemathesis against a live OneCard (the IdP with the wallet), on SQLite and on PostgreSQL + Redis: for
every operation of ``/api/openapi.json`` it generates requests that fit the contract and requests that break
it, sends them with real credentials (an admin's and a real-name operator's tokens, a venue's gate
credentials, a signed-in wallet, a card login page, a QR login's computer and phone), and checks each answer:
no 5xx (``not_a_server_error``), a documented status, content type and body (``status_code_conformance``,
``content_type_conformance``, ``response_schema_conformance``), and — for a refusal — no durable row changed.

The run is seeded (``derandomize``) and modest (``EXAMPLES`` per operation), so both databases take about
a minute together. Destructive operations run against the test's throwaway database, on objects made for
that (a spare client, venue, card and QR key, passed as real path parameters half the time) or on ids
generated at random; never on the run's own admin client or the gate's venue, which would lock the run out.
Operations run in an order that keeps later ones meaningful: the browser flows first (a QR channel lives two
minutes), the key changes last (a revoked QR key would leave no key to sign e-card codes with).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.live import LiveIdp
from tests.support.openapi import ApiCallers, Caller, set_up_callers
from tests.support.rows import durable_rows

OPENAPI = "/api/openapi.json"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 12}
# Path prefixes in the order they run (see the module docstring); anything else runs in between.
FIRST = ("/login/", "/wallet/")
LAST = "/api/v1/admin/keys"
KEY_CHANGES = ("/activate", "/retire", "/remove", "/revoke")


def run_order(path: str, method: str) -> tuple[int, str, str]:
    if path.startswith(FIRST):
        rank = 0
    elif not path.startswith(LAST):
        rank = 1
    elif method == "get":
        rank = 2
    else:
        rank = 4 if path.endswith(KEY_CHANGES) else 3
    return rank, path, method


def caller_of(path: str, security: list[dict[str, list[str]]], callers: ApiCallers) -> Caller:
    """Who calls the operation: by its security requirement, and for a browser flow's call, by the page."""
    browser_flows = {
        "/login/{tx}/card/": callers.card_login,
        "/login/{tx}/more-time": callers.login_time,
        "/login/{tx}/qr/": callers.qr_computer,
        "/wallet/qr-login/": callers.qr_phone,
        "/wallet/api/": callers.wallet,
    }
    for prefix, caller in browser_flows.items():
        if path.startswith(prefix):
            return caller
    schemes = {name: scopes for requirement in security for name, scopes in requirement.items()}
    if "venueCredentials" in schemes:
        return callers.venue
    if schemes.get("serviceToken") == ["realname:verify"]:
        return callers.realname
    if schemes.get("serviceToken") == ["admin"]:
        return callers.admin
    if schemes.get("serviceToken") == ["hall:counter"]:
        return callers.counter
    assert not schemes, f"no caller for {path} ({schemes})"
    return Caller()


def spare_objects(callers: ApiCallers) -> dict[str, str]:
    """Path parameters naming objects the run may change or remove."""
    return {
        "client_id": callers.spare_client_id,
        "venue_id": callers.spare_venue_id,
        "entry_id": callers.spare_venue_id,  # the spare venue's catalogue entry has the venue's id
        "reference": callers.spare_card_id,
        "kid": callers.spare_kid,
    }


def cases_for(operation: Any, caller: Caller, spares: dict[str, str], mode: GenerationMode) -> Any:
    names = {p.name for p in operation.path_parameters}
    if caller.path_parameters:  # a browser flow's call: its own transaction and channel, always
        return operation.as_strategy(generation_mode=mode, path_parameters=caller.path_parameters)
    real = {name: spares[name] for name in names if name in spares}
    generated = operation.as_strategy(generation_mode=mode)
    return (
        st.one_of(generated, operation.as_strategy(generation_mode=mode, path_parameters=real))
        if real
        else generated
    )


def run_cases(
    live: LiveIdp,
    cases: Any,
    caller: Caller,
    *,
    examples: int,
    never_touched: set[str],
    statuses: Counter[int],
) -> None:
    """Send ``examples`` generated cases as ``caller``; every check must pass."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def keeps_the_contract(case: Case[Any]) -> None:
        assert not never_touched & set(map(str, (case.path_parameters or {}).values()))
        before = durable_rows(live)
        response = case.call(
            base_url=live.base_url,
            headers=caller.headers,
            cookies=caller.cookies,
            allow_redirects=False,
            timeout=30,
        )
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            assert durable_rows(live) == before, "a refused request changed rows"

    keeps_the_contract()


# Every route of every package, each many times: it grows with the API, past the suite's 300 s per test.
@pytest.mark.timeout(900)
def test_every_operation_keeps_the_contract(live_stack: LiveIdp) -> None:
    live = live_stack
    callers = set_up_callers(live)
    never_touched = {callers.admin_client_id, callers.venue_id}
    schema = schemathesis.openapi.from_url(live.base_url + OPENAPI)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # schemathesis could read every operation
        operations.append(result.ok())
    operations.sort(key=lambda op: run_order(op.path, op.method.lower()))
    assert len(operations) == sum(len(item) for item in schema.raw_schema["paths"].values())
    spares = spare_objects(callers)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for operation in operations:
        caller = caller_of(operation.path, operation.definition.raw.get("security", []), callers)
        for mode, examples in EXAMPLES.items():
            try:
                run_cases(
                    live,
                    cases_for(operation, caller, spares, mode),
                    caller,
                    examples=examples,
                    never_touched=never_touched,
                    statuses=statuses,
                )
            except Unsatisfiable:
                # No request can break a contract that constrains nothing but free text (an id in the path,
                # an If-None-Match header): there is no negative case to send.
                assert mode is GenerationMode.NEGATIVE, f"no positive case for {operation.label}"
            # Every operation's failures are reported, not only the first's (schemathesis raises a group).
            except (AssertionError, BaseExceptionGroup) as failure:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode}): {failure}")
    print(
        f"\n{len(operations)} operations, {sum(statuses.values())} requests: {dict(sorted(statuses.items()))}"
    )
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize(
    ("path", "method", "rank"),
    [
        ("/login/{tx}/qr/{channel_id}/status", "get", 0),
        ("/api/v1/gate/verify", "post", 1),
        ("/api/v1/admin/keys", "get", 2),
        ("/api/v1/admin/keys/rotate", "post", 3),
        ("/api/v1/admin/keys/{kid}/revoke", "post", 4),
    ],
)
def test_the_run_order_keeps_key_changes_last(path: str, method: str, rank: int) -> None:
    assert run_order(path, method)[0] == rank
