"""Venues (issue 4 item 5): `onecard venues add/list/show/remove`, the admin API, and the usage statistics
(item 8) as JSON and as the admin page with its chart and table."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from idp import dbadmin
from idp.cli import cli
from sdk.gate import GateAuthError, OnlineGateClient
from sdk.qr_token import QrTokenError
from tests.support.wallet import LiveWallet, WalletUser, running_wallet

# The command line -------------------------------------------------------------------------------------


@pytest.fixture
def migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    monkeypatch.setenv("ONECARD_ENV", "test")
    dbadmin.upgrade(url)
    return url


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_add_list_show_remove(migrated: str) -> None:
    added = run(
        "venues", "add", "--name", "Provincial Museum", "--category", "museum",
        "--claim", "valid_resident", "--claim", "age_over_60", "--id", "museum-1", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    body = json.loads(added.stdout)
    assert body["venue_id"] == body["client_id"] == "museum-1"
    assert body["client_secret"].startswith("occs_") and body["claims"] == ["valid_resident", "age_over_60"]
    listed = run("venues", "list")
    assert listed.exit_code == 0 and "museum-1" in listed.output and "museum" in listed.output
    shown = run("venues", "show", "museum-1", "--json")
    assert json.loads(shown.stdout)["category"] == "museum" and "client_secret" not in shown.stdout
    removed = run("venues", "remove", "museum-1")
    assert removed.exit_code == 0
    assert "museum-1" not in run("venues", "list").output
    assert "(removed)" in run("venues", "list", "--all").output


def test_cli_refuses_bad_input_in_one_line(migrated: str) -> None:
    bad_category = run("venues", "add", "--name", "X", "--category", "casino")
    assert bad_category.exit_code == 2
    bad_region = run("venues", "add", "--name", "X", "--category", "park", "--region", "12")
    assert bad_region.exit_code == 1 and "regions" in bad_region.output
    missing = run("venues", "show", "nope")
    assert missing.exit_code == 1 and "No such venue" in missing.output
    assert "Traceback" not in missing.output


# The admin API and the statistics ----------------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(f"sqlite:///{tmp_path}/wallet.sqlite3") as server:
        server.add_card("zhang")
        yield server


def admin_token(live: LiveWallet) -> dict[str, str]:
    return live.service_token_headers(name="Ops")


def test_admin_api(live: LiveWallet) -> None:
    headers = admin_token(live)
    url = live.base_url + "/api/v1/admin/venues"
    assert requests.get(url, timeout=10).status_code == 401
    created = requests.post(
        url,
        json={"name": "City Library", "category": "library", "claims": ["name"], "regions": ["420100"]},
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    venue = created.json()
    assert venue["client_secret"].startswith("occs_") and venue["venue_id"].startswith("vn_")
    listed = requests.get(url, headers=headers, timeout=10).json()
    assert [v["venue_id"] for v in listed["venues"]] == [venue["venue_id"]]
    assert "hospital" in listed["categories"] and "age_over_60" in listed["claims"]
    shown = requests.get(f"{url}/{venue['venue_id']}", headers=headers, timeout=10).json()
    assert shown["claims"] == ["name"] and "client_secret" not in shown
    for body in (
        {"name": "X", "category": "casino"},
        {"name": "X", "category": "park", "claims": ["id_number"]},
        {"name": "X", "category": "park", "claims": "name"},
        {"name": "", "category": "park"},
        {"name": "X", "category": "park", "colour": "red"},
    ):
        refused = requests.post(url, json=body, headers=headers, timeout=10)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_venue", body
    assert requests.get(f"{url}/nope", headers=headers, timeout=10).status_code == 404
    assert requests.delete(f"{url}/{venue['venue_id']}", headers=headers, timeout=10).status_code == 204
    assert requests.get(url, headers=headers, timeout=10).json()["venues"] == []
    gate = OnlineGateClient(live.base_url, venue["client_id"], venue["client_secret"])
    with pytest.raises(GateAuthError) as refused_gate:  # no verdict for removed credentials
        gate.verify("ESSC1:")
    assert refused_gate.value.http_status == 401


def test_stats_per_venue_and_category(live: LiveWallet) -> None:
    user = WalletUser(live, "zhang")
    user.set_up()
    museum = OnlineGateClient(live.base_url, *live.add_venue("Museum", "museum", ("valid_resident",)))
    park = OnlineGateClient(live.base_url, *live.add_venue("Park", "park"))
    for client in (museum, museum, park):
        client.verify(user.code()["text"])
    with pytest.raises(QrTokenError):
        park.verify("garbage")
    headers = admin_token(live)
    stats = requests.get(live.base_url + "/api/v1/admin/stats/scans", headers=headers, timeout=10)
    assert stats.status_code == 200, stats.text
    data = stats.json()
    assert data["totals_by_category"] == {
        "museum": {"passed": 2, "rejected": 0, "total": 2},
        "park": {"passed": 1, "rejected": 1, "total": 2},
    }
    assert sorted((row["venue_name"], row["total"]) for row in data["by_venue"]) == [
        ("Museum", 2),
        ("Park", 2),
    ]
    page = requests.get(
        live.base_url + "/api/v1/admin/stats/scans/page",
        headers=headers | {"Accept-Language": "en"},
        timeout=10,
    )
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert re.search(
        r'<svg class="chart" role="img" aria-labelledby="by-category-t by-category-d"', page.text
    )
    assert '<desc id="by-category-d">museum: 2; park: 2</desc>' in page.text
    assert "<caption>Scans per category</caption>" in page.text
    # The operators' page in Chinese when the browser asks for it (the default for a browser's page).
    chinese = requests.get(
        live.base_url + "/api/v1/admin/stats/scans/page",
        headers=headers | {"Accept": "text/html", "Accept-Language": "zh-CN,zh;q=0.9"},
        timeout=10,
    )
    assert '<html lang="zh-CN">' in chinese.text and "<caption>各类别扫码次数</caption>" in chinese.text
    assert '<desc id="by-category-d">博物馆: 2; 公园: 2</desc>' in chinese.text
    bad = requests.get(
        live.base_url + "/api/v1/admin/stats/scans?from=2026-13-01", headers=headers, timeout=10
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_period"
    too_long = requests.get(
        live.base_url + "/api/v1/admin/stats/scans?from=2020-01-01&to=2026-01-01", headers=headers, timeout=10
    )
    assert too_long.status_code == 400
