"""The request log (idp.observability.web): one JSON line per request on ``onecard.request`` with the route
template and never the path or query, the client id when the request authenticated a client, the request id
echoed in ``X-Request-ID`` (a proxy's when it is a plain token, else a fresh one), and ``onecard serve``'s
JSON lines on stderr."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from idp.observability.web import REQUEST_LOGGER, request_log_to_stderr
from tests.support.live import CITIZENS, LiveIdp

FIELDS = {"ts", "request_id", "method", "route", "endpoint", "status", "duration_ms"}
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def request_lines(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """The request log's lines, parsed, as the test goes on (one list, filled from the captured records)."""
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(record.getMessage()))  # each message is one JSON document

    handler = Collect()
    logger = logging.getLogger(REQUEST_LOGGER)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def only_line(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    found = [line for line in lines if line["request_id"] == request_id]
    assert len(found) == 1, lines
    return found[0]


def test_one_json_line_per_request(idp: LiveIdp, request_lines: list[dict[str, Any]]) -> None:
    response = requests.get(f"{idp.base_url}/healthz", timeout=10)
    request_id = response.headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(request_id)
    line = only_line(request_lines, request_id)
    assert set(line) == FIELDS  # no client authenticated: no client_id
    assert line["method"] == "GET" and line["status"] == 200
    assert line["route"] == "/healthz" and line["endpoint"] == "health.healthz"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["ts"].endswith("+00:00")


def test_the_route_is_the_template_never_the_path_or_query(
    idp: LiveIdp, request_lines: list[dict[str, Any]]
) -> None:
    name, id_number = CITIZENS["zhang"]
    transaction = "tx-" + id_number
    response = requests.get(
        f"{idp.base_url}/login/{transaction}/card",
        params={"login_hint": id_number, "state": name},
        timeout=10,
    )
    line = only_line(request_lines, response.headers["X-Request-ID"])
    assert line["route"] == "/login/<tx>/card" and line["endpoint"] == "cardlogin.start"
    text = json.dumps(line, ensure_ascii=False)
    assert id_number not in text and name not in text and "login_hint" not in text


def test_a_request_no_rule_matches_is_unmatched(idp: LiveIdp, request_lines: list[dict[str, Any]]) -> None:
    response = requests.get(f"{idp.base_url}/no/such/page/11010519491231002X", timeout=10)
    assert response.status_code == 404
    line = only_line(request_lines, response.headers["X-Request-ID"])
    assert line["endpoint"] == "unmatched" and line["route"] is None and line["status"] == 404
    odd = requests.request("BREW", f"{idp.base_url}/healthz", timeout=10)
    line = only_line(request_lines, odd.headers["X-Request-ID"])
    assert line["status"] == 405 and line["method"] == "other"


def test_a_request_refused_by_an_early_hook_is_logged_too(
    idp: LiveIdp, request_lines: list[dict[str, Any]]
) -> None:
    response = requests.get(f"{idp.base_url}/authorize", params={"state": "a\x00b"}, timeout=10)
    assert response.status_code == 400  # refused before any view ran
    assert only_line(request_lines, response.headers["X-Request-ID"])["endpoint"] == "oidc.authorize"


@pytest.mark.parametrize("inbound", ["abc", "Proxy-Req.42_x", "a" * 64])
def test_a_proxys_request_id_is_kept(idp: LiveIdp, request_lines: list[dict[str, Any]], inbound: str) -> None:
    response = requests.get(f"{idp.base_url}/healthz", headers={"X-Request-ID": inbound}, timeout=10)
    assert response.headers["X-Request-ID"] == inbound
    only_line(request_lines, inbound)


@pytest.mark.parametrize(
    "inbound",
    ["", "a" * 65, "two words", 'quote"', "new\\nline", "semi;colon", "üml", "a/b", "{}"],
)
def test_a_malformed_request_id_is_replaced(
    idp: LiveIdp, request_lines: list[dict[str, Any]], inbound: str
) -> None:
    response = requests.get(
        f"{idp.base_url}/healthz", headers={"X-Request-ID": inbound.encode("utf-8")}, timeout=10
    )
    replaced = response.headers["X-Request-ID"]
    assert replaced != inbound and GENERATED_ID.fullmatch(replaced)
    only_line(request_lines, replaced)
    assert all(line["request_id"] != inbound for line in request_lines)


def test_the_client_is_named_when_it_authenticated(idp: LiveIdp, request_lines: list[dict[str, Any]]) -> None:
    client_id, secret = idp.register_client(name="Operator", kind="operator", scope="admin")
    assert secret
    granted = requests.post(
        f"{idp.base_url}/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=10,
    )
    assert granted.status_code == 200
    assert only_line(request_lines, granted.headers["X-Request-ID"])["client_id"] == client_id
    # A bearer token names its client too (the admin API, the real-name API, userinfo).
    access_token = granted.json()["access_token"]
    listed = requests.get(
        f"{idp.base_url}/api/v1/admin/clients",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )
    assert listed.status_code == 200
    assert only_line(request_lines, listed.headers["X-Request-ID"])["client_id"] == client_id
    # Credentials that do not authenticate name nobody.
    refused = requests.post(
        f"{idp.base_url}/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, "wrong"),
        timeout=10,
    )
    assert refused.status_code == 401
    line = only_line(request_lines, refused.headers["X-Request-ID"])
    assert "client_id" not in line
    everything = json.dumps(request_lines)
    assert secret not in everything and access_token not in everything


def test_onecard_serve_writes_the_request_log_to_stderr_while_it_serves(
    idp: LiveIdp, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger(REQUEST_LOGGER)
    handlers, level = list(logger.handlers), logger.level
    with request_log_to_stderr():
        response = requests.get(f"{idp.base_url}/healthz", timeout=10)
    request_id = response.headers["X-Request-ID"]
    written = [json.loads(line) for line in capsys.readouterr().err.splitlines() if request_id in line]
    assert len(written) == 1 and written[0]["route"] == "/healthz"
    # Afterwards the logger is as it was: an in-process `onecard serve` (the CLI tests) leaves nothing behind.
    assert logger.handlers == handlers and logger.level == level
    requests.get(f"{idp.base_url}/healthz", timeout=10)
    assert request_id not in capsys.readouterr().err
