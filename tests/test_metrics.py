"""Prometheus metrics (idp.observability): ``/metrics`` behind its bearer token, the counters moving after
real outcomes on a live server (a card login, token grants, gate verdicts, real-name calls, a rate-limit
refusal), the latency histograms and key gauges, no personal data in any series, and the aggregation across
gunicorn workers of ``onecard serve`` with its separate metrics listener. On SQLite and on PostgreSQL + Redis.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from idp.config import ConfigError, load_settings
from idp.oauth.discovery import provider_metadata
from idp.observability.database import statement_kind
from idp.observability.metrics import TOKEN_GRANT_TYPES
from idp.ratelimit import RateLimiter
from sdk.gate import OnlineGateClient
from sdk.qr_token import QrTokenError, QrTokenReason
from sdk.realname import RealnameClient, RealnameRateLimitedError
from tests.support.cardlogin import Flow, issue_test_card
from tests.support.live import CITIZENS, LiveIdp
from tests.support.nodes import ROOT, free_port
from tests.support.wallet import LiveWallet, WalletUser

TOKEN = "metrics-" + secrets.token_hex(16)
PURPOSE = "Opening a library account"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def open_metrics(live: LiveIdp, token: str = TOKEN) -> None:
    """Configure the metrics token on a running server (settings are read per request)."""
    live.services.settings = live.services.settings.replace(metrics_token=token)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(url: str, token: str | None = TOKEN) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels`` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (sample, found), v in samples.items() if sample == name and wanted <= found)


@pytest.fixture
def live(live_stack: LiveIdp) -> LiveWallet:
    """The provider with the wallet, on SQLite and on PostgreSQL + Redis, with /metrics open to ``TOKEN``."""
    wallet = LiveWallet(live_stack.base_url, live_stack.app, live_stack.clock, live_stack.citizens)
    open_metrics(wallet)
    return wallet


# --- the endpoint ------------------------------------------------------------------------------------------


def test_metrics_is_not_found_without_a_token_configured(idp: LiveIdp) -> None:
    response = requests.get(f"{idp.base_url}/metrics", headers={"Authorization": "Bearer x"}, timeout=10)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_metrics_refuses_a_missing_or_wrong_token(idp: LiveIdp) -> None:
    open_metrics(idp)
    url = f"{idp.base_url}/metrics"
    for headers in (
        {},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Basic " + base64.b64encode(f"scraper:{TOKEN}".encode()).decode()},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer \u00e9\u00e9".encode("latin-1")},  # not ASCII: refused, not a 500
    ):
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="onecard-metrics"'
        assert "onecard_" not in response.text
    assert "onecard_http_requests_total" in scrape(idp.base_url)


def test_the_token_file_wins_and_is_read_at_each_scrape(idp: LiveIdp, tmp_path: Path) -> None:
    token_file = tmp_path / "metrics-token"
    token_file.write_text("first-token-" + secrets.token_hex(8) + "\n")
    svc = idp.services
    svc.settings = svc.settings.replace(metrics_token=TOKEN, metrics_token_file=str(token_file))
    with_setting = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(f"{idp.base_url}/metrics", headers=with_setting, timeout=10).status_code == 401
    scrape(idp.base_url, token_file.read_text().strip())
    token_file.write_text("second-token-" + secrets.token_hex(8))
    scrape(idp.base_url, token_file.read_text())
    token_file.unlink()
    gone = requests.get(f"{idp.base_url}/metrics", headers=with_setting, timeout=10)
    assert gone.status_code == 503 and gone.json()["error"] == "metrics_unavailable"


# --- the settings -------------------------------------------------------------------------------------------

PRODUCTION = {
    "ONECARD_ENV": "production",
    "ONECARD_ISSUER": "https://id.example.gov.cn",
    "ONECARD_DATABASE_URL": "postgresql://onecard@db.internal/onecard",
    "ONECARD_KEK": "cHJvZHVjdGlvbi1rZWstZm9yLXRoZS10ZXN0LW9ubHk",
    "ONECARD_PAIRWISE_SALT": "a-long-random-salt",
}


def test_metrics_settings_are_checked_at_start_up(tmp_path: Path) -> None:
    assert load_settings(PRODUCTION).metrics_address() is None  # metrics closed: nothing required
    good = load_settings({**PRODUCTION, "ONECARD_METRICS_TOKEN": TOKEN, "ONECARD_METRICS_BIND": "[::1]:9464"})
    assert good.metrics_bearer_token() == TOKEN and good.metrics_address() == ("::1", 9464)
    for change, problem in [
        ({"ONECARD_METRICS_TOKEN": "short"}, "ONECARD_METRICS_TOKEN must be at least 32 characters"),
        ({"ONECARD_METRICS_TOKEN": "with space " * 4}, "printable ASCII without spaces"),
        ({"ONECARD_METRICS_TOKEN": "é" * 40}, "printable ASCII without spaces"),
        ({"ONECARD_METRICS_TOKEN_FILE": str(tmp_path / "missing")}, "ONECARD_METRICS_TOKEN_FILE"),
        ({"ONECARD_METRICS_BIND": "9464"}, "ONECARD_METRICS_BIND must be host:port"),
        ({"ONECARD_METRICS_BIND": "127.0.0.1:0"}, "ONECARD_METRICS_BIND must be host:port"),
        ({"ONECARD_METRICS_BIND": "127.0.0.1:١٢"}, "ONECARD_METRICS_BIND must be host:port"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_settings({**PRODUCTION, **change})
        assert problem in str(caught.value), change
        assert TOKEN not in str(caught.value)
    # Outside production a short token is allowed (a developer's laptop).
    assert load_settings({"ONECARD_METRICS_TOKEN": "dev"}).metrics_bearer_token() == "dev"


# --- counters after real outcomes --------------------------------------------------------------------------


def test_a_card_login_and_its_token_grant_are_counted(live: LiveWallet) -> None:
    card = issue_test_card(live)
    before = parse(scrape(live.base_url))
    first = Flow(live)
    first.id_token_claims(first.browser.login(first.page, card))
    # Another login, then the same answer again: refused, a failed card login counted by its error code.
    second = Flow(live)
    challenge = second.browser.challenge(second.page)
    signed = card.sign(second.browser.origin, challenge)
    assert second.browser.verify(second.page, challenge, signed).status_code == 200
    replayed = second.browser.verify(second.page, challenge, signed)
    assert replayed.status_code >= 400
    refusal = replayed.json()["error"]
    bad_client = requests.post(
        f"{live.base_url}/token",
        data={"grant_type": "client_credentials"},
        auth=("oc_nobody", "occs_wrong"),
        timeout=10,
    )
    assert bad_client.status_code == 401
    odd_grant = requests.post(f"{live.base_url}/token", data={"grant_type": "x" * 300}, timeout=10)
    assert odd_grant.status_code == 400
    after = parse(scrape(live.base_url))

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("onecard_logins_total", method="card", result="success") == 2
    assert moved("onecard_logins_total", method="card", result=refusal) == 1
    assert moved("onecard_token_grants_total", grant_type="authorization_code", result="success") == 1
    assert moved("onecard_token_grants_total", grant_type="client_credentials", result="invalid_client") == 1
    # A grant type OneCard does not know is not a label value of the caller's choosing.
    assert moved("onecard_token_grants_total", grant_type="other", result="unsupported_grant_type") == 1
    assert "x" * 300 not in scrape(live.base_url)
    assert moved("onecard_http_requests_total", endpoint="oidc.token", method="POST", status="200") == 1
    assert moved("onecard_http_requests_total", endpoint="cardlogin.verify", method="POST", status="200") == 2
    assert moved("onecard_http_request_duration_seconds_count", endpoint="cardlogin.verify") == 3
    # What the requests waited on: the store (sql or redis) and the database, by operation kind only.
    backend = "redis" if live.services.settings.redis_url else "sql"
    assert moved("onecard_store_operation_duration_seconds_count", backend=backend, operation="take") >= 1
    assert moved("onecard_db_statement_duration_seconds_count", operation="select") >= 1
    assert moved("onecard_db_statement_duration_seconds_count", operation="insert") >= 1


def test_gate_verdicts_are_counted_by_category_and_reason(live: LiveWallet) -> None:
    live.add_card("zhang")
    user = WalletUser(live, "zhang")
    user.login_with_card()
    assert user.activate().status_code == 303
    client_id, secret = live.add_venue("Provincial Museum", "museum", ("valid_resident",))
    gate = OnlineGateClient(live.base_url, client_id, secret)
    before = parse(scrape(live.base_url))
    code = user.code()["text"]
    gate.verify(code)
    with pytest.raises(QrTokenError) as again:
        gate.verify(code)
    assert again.value.reason is QrTokenReason.REPLAYED
    after = parse(scrape(live.base_url))
    for verdict in ("pass", "replayed"):
        name = "onecard_gate_verifications_total"
        labels = {"category": "museum", "verdict": verdict}
        assert value(after, name, **labels) - value(before, name, **labels) == 1


def test_realname_calls_and_rate_limit_refusals_are_counted(live: LiveWallet) -> None:
    name, id_number = CITIZENS["zhang"]
    client_id, secret = live.register_client(name="City library", kind="operator", scope="realname:verify")
    assert secret
    client = RealnameClient(live.base_url, client_id, secret, clock=live.clock)
    before = parse(scrape(live.base_url))
    live.services.realname.limiter = RateLimiter(live.services.store, "realname", 2, 60)
    assert client.verify_name(PURPOSE, name, id_number).matched
    assert not client.verify_name(PURPOSE, "李四", id_number).matched
    with pytest.raises(RealnameRateLimitedError):
        client.verify_name(PURPOSE, name, id_number)
    after = parse(scrape(live.base_url))

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("onecard_realname_verifications_total", result="match") == 1
    assert moved("onecard_realname_verifications_total", result="no_match") == 1
    assert moved("onecard_realname_verifications_total", result="rate_limited") == 1
    assert moved("onecard_rate_limit_refusals_total", limit="realname") == 1
    assert moved("onecard_token_grants_total", grant_type="client_credentials", result="success") == 1


def test_key_age_and_next_rotation_per_key_set(live: LiveWallet) -> None:
    samples = parse(scrape(live.base_url))
    settings = live.services.settings
    for key_set, days in (
        ("oidc-es256", settings.key_rotation_oidc_days),
        ("qr", settings.key_rotation_qr_days),
    ):
        age = value(samples, "onecard_key_age_seconds", key_set=key_set)
        due = value(samples, "onecard_key_rotation_due_seconds", key_set=key_set)
        assert 0 <= age < 600  # made when the test server started
        # Rotation starts ahead of the interval by the pre-publication period, never after it.
        assert 0 < due <= days * 86400
    # The blind-index key never rotates: it has an age, no rotation.
    assert ("onecard_key_rotation_due_seconds", frozenset({("key_set", "index")})) not in samples
    assert value(samples, "onecard_key_age_seconds", key_set="index") >= 0
    live.clock.advance(settings.key_rotation_qr_days * 86400)  # nobody ran `onecard keys tick`
    overdue = parse(scrape(live.base_url))
    assert value(overdue, "onecard_key_rotation_due_seconds", key_set="qr") < 0


# --- no personal data --------------------------------------------------------------------------------------


def test_no_personal_data_in_metrics_or_request_log(
    live: LiveWallet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="onecard.request")
    name, id_number = CITIZENS["zhang"]
    card = issue_test_card(live)
    flow = Flow(live)
    portal_secret = flow.client.client_secret
    assert flow.id_token_claims(flow.browser.login(flow.page, card))["acr"]
    token = dict(flow.client.token)
    # Personal data in a query string and a JSON body too: neither may reach a log line or a label.
    requests.get(f"{live.base_url}/authorize", params={"login_hint": id_number, "state": name}, timeout=10)
    operator_id, operator_secret = live.register_client(
        name="Library", kind="operator", scope="realname:verify"
    )
    assert operator_secret
    RealnameClient(live.base_url, operator_id, operator_secret, clock=live.clock).verify_name(
        PURPOSE, name, id_number
    )
    text = scrape(live.base_url)
    lines = [record.getMessage() for record in caplog.records if record.name == "onecard.request"]
    assert len(lines) > 10
    secrets_seen = [
        name,
        id_number,
        id_number[-6:],
        portal_secret,
        operator_secret,
        flow.page.tx,
        card.card_id,
    ]
    secrets_seen += [token["access_token"], token["id_token"], token.get("refresh_token", "")]
    for secret in filter(None, secrets_seen):
        assert secret not in text, secret
        assert all(secret not in line for line in lines), secret


# --- names and labels cannot drift from what they count -----------------------------------------------------


def test_the_dashboard_shows_every_metric_and_only_those(live: LiveWallet) -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    assert any(
        v["type"] == "datasource" and v["query"] == "prometheus" for v in dashboard["templating"]["list"]
    )
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in panels)
    exprs = " ".join(target["expr"] for panel in panels for target in panel["targets"])
    used = {re.sub(r"_(bucket|count|sum|total)$", "", name) for name in re.findall(r"onecard_\w+", exprs)}
    # Every family OneCard defines (idp.observability: metrics.py and the key gauges), by its base name.
    sources = ("metrics.py", "keys.py")
    source = "".join((ROOT / "idp" / "observability" / name).read_text() for name in sources)
    defined = set(re.findall(r'"(onecard_[a-z_]+)"', source))
    assert used == defined
    # And what a scrape shows is named that way.
    text = scrape(live.base_url)
    for family in text_string_to_metric_families(text):
        if family.name.startswith("onecard_"):  # the text format shows a series' _created on its own
            assert family.name.removesuffix("_created") in defined, family.name


def test_token_grant_labels_are_the_grants_the_server_registers() -> None:
    assert set(provider_metadata("https://idp.example")["grant_types_supported"]) == TOKEN_GRANT_TYPES


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("SELECT crypto_keys.kid FROM crypto_keys", "select"),
        ("\n  insert into store_entries VALUES (?)", "insert"),
        ("UPDATE oauth_clients SET name=?", "update"),
        ("DELETE FROM store_entries WHERE key = ? RETURNING value", "delete"),
        ("PRAGMA journal_mode=WAL", "other"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "other"),
        ("", "other"),
        ("SELECTED", "other"),
    ],
)
def test_statements_are_labelled_by_kind_only(statement: str, kind: str) -> None:
    assert statement_kind(statement) == kind


# --- gunicorn workers --------------------------------------------------------------------------------------


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise AssertionError(f"onecard serve exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"onecard serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(30)


@pytest.fixture(params=["granian", "gunicorn"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, Path, Path]]:
    """``onecard serve --workers 2`` on a fresh SQLite file, with a metrics listener of its own, under each
    server it offers; yields the app's URL, the listener's URL, the multiprocess directory and the server's
    stderr log."""
    port, metrics_port = free_port(), free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    # An earlier run's file: onecard serve must empty the directory, or a scrape would read it.
    (metrics_dir / "counter_1.db").write_bytes(secrets.token_bytes(64))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ONECARD_", "PROMETHEUS_"))}
    env.update(
        ONECARD_ENV="test",
        ONECARD_ISSUER=f"http://127.0.0.1:{port}",
        ONECARD_DATABASE_URL=f"sqlite:///{tmp_path}/served.sqlite3",
        ONECARD_METRICS_BIND=f"127.0.0.1:{metrics_port}",
        ONECARD_METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("onecard")),
                "serve",
                *("--server", request.param),
                *("--workers", "2", "--port", str(port)),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_up(f"{base_url}/.well-known/openid-configuration", process, log)
        yield base_url, f"http://127.0.0.1:{metrics_port}", metrics_dir, log
    finally:
        _stop(process)


def _healthz_count(text: str) -> float:
    return value(
        parse(text), "onecard_http_requests_total", endpoint="health.healthz", method="GET", status="200"
    )


def test_counts_add_up_across_workers(served: tuple[str, str, Path, Path]) -> None:
    base_url, metrics_url, metrics_dir, log = served
    sent = 40
    with ThreadPoolExecutor(4) as pool:  # several at once, so both workers take some
        answers = list(
            pool.map(lambda _: requests.get(f"{base_url}/healthz", timeout=10).status_code, range(sent))
        )
    assert answers == [200] * sent
    listener = requests.get(f"{metrics_url}/metrics", timeout=10)
    assert listener.status_code == 200  # the private listener asks for no token
    assert _healthz_count(listener.text) == sent
    # A worker's own /metrics (behind the token) reads every worker's files too.
    assert _healthz_count(scrape(base_url)) == sent
    assert requests.get(f"{metrics_url}/other", timeout=10).status_code == 404
    # Counters outlive the worker that made them: stop one, the server starts another, the total stays.
    workers = {int(path.stem.rsplit("_", 1)[1]) for path in metrics_dir.glob("counter_*.db")}
    assert workers and 1 not in workers  # the stale file is gone
    os.kill(next(iter(workers)), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while len({path.stem for path in metrics_dir.glob("counter_*.db")}) == len(workers):
        requests.get(f"{base_url}/healthz", timeout=10)
        sent += 1
        assert time.monotonic() < deadline, "no worker replaced the stopped one"
    assert _healthz_count(requests.get(f"{metrics_url}/metrics", timeout=10).text) == sent
    # onecard serve writes the request log: one JSON line per request, on stderr.
    assert '"route":"/healthz"' in log.read_text()
