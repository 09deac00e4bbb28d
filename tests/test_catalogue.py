"""The application catalogue (issue 13 item 3): staff keep it through the admin API and ``onecard
catalogue`` with a history of every version; anyone searches it through the public JSON API (ETag, 304,
paging, the filters); gate venues appear in it by themselves. On SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result
from sqlalchemy import func, make_url, select

from idp import dbadmin
from idp.cli import cli
from tests.fixtures.services import create_database_or_skip, drop_database, random_redis_prefix
from tests.support.wallet import LiveWallet, running_wallet
from wallet.catalogue.gazetteer import DIVISIONS, distance_km, region_prefix
from wallet.catalogue.model import CatalogueEntry, CatalogueRevision
from wallet.catalogue.service import CAPABILITIES, CATEGORIES, FACTS
from wallet.venues.service import VENUE_CATEGORIES, VENUE_CLAIMS

ADMIN = "/api/v1/admin/catalogue"
PUBLIC = "/api/v1/catalogue"
LIBRARY = {
    "entry_id": "wuhan-library",
    "name": "武汉图书馆",
    "category": "library",
    "region": "420103",
    "address": "武汉市江汉区建设大道861号",
    "latitude": 30.6013,
    "longitude": 114.2655,
    "capabilities": ["borrowing", "gate_entry"],
    "claims": ["name", "card_number"],
}
HOSPITAL = {
    "entry_id": "union-hospital",
    "name": "协和医院",
    "category": "hospital",
    "region": "420103",
    "address": "武汉市江汉区解放大道1277号",
    "latitude": 30.5878,
    "longitude": 114.2717,
    "capabilities": ["hospital_registration"],
    "claims": ["name", "id_number", "card_number"],
}
HALL = {
    "entry_id": "hongshan-hall",
    "name": "洪山区政务服务中心",
    "category": "government",
    "region": "420111",
    "address": "武汉市洪山区珞喻路",
    "latitude": 30.5089,
    "longitude": 114.3967,
    "capabilities": ["queue_number", "business", "self_service"],
    "claims": ["name", "id_number"],
}


# The vocabularies ----------------------------------------------------------------------------------------


def test_the_catalogue_uses_the_venue_categories_and_knows_every_gate_claim() -> None:
    assert CATEGORIES == VENUE_CATEGORIES
    assert set(VENUE_CLAIMS) <= set(FACTS)
    assert {"login", "gate_entry", "borrowing", "transit", "hospital_registration", "queue_number"} <= set(
        CAPABILITIES
    )


def test_gazetteer_codes_and_distances() -> None:
    codes = [d.code for d in DIVISIONS]
    assert len(codes) == len(set(codes)) and all(len(c) == 6 and c.startswith("42") for c in codes)
    assert region_prefix("420000") == "42" and region_prefix("420100") == "4201"
    assert region_prefix("420106") == "420106"
    # Wuhan to Yichang: about 290 km as the crow flies.
    assert 270 < distance_km(30.59, 114.30, 30.69, 111.29) < 310
    assert distance_km(30.5, 114.3, 30.5, 114.3) == 0


# A live wallet on each backend -----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveWallet]:
    if request.param == "sqlite":
        with running_wallet(f"sqlite:///{tmp_path}/catalogue.sqlite3") as server:
            yield server
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    redis_url: str = request.getfixturevalue("redis_url")
    name = create_database_or_skip(admin_url)
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        with running_wallet(url, redis_url=redis_url, redis_prefix=random_redis_prefix()) as server:
            yield server
    finally:
        drop_database(admin_url, name)


def admin_headers(live: LiveWallet) -> dict[str, str]:
    return live.service_token_headers(name="Catalogue staff")


def rows(live: LiveWallet) -> tuple[int, int, list[tuple[Any, ...]]]:
    """The entries and revisions as stored: (entries, revisions, every entry's columns)."""
    with live.services.database.session() as session:
        entries = session.scalar(select(func.count()).select_from(CatalogueEntry)) or 0
        revisions = session.scalar(select(func.count()).select_from(CatalogueRevision)) or 0
        content = [
            (e.id, e.name, e.category, e.region, e.address, e.latitude, e.capabilities, e.claims, e.version)
            for e in session.scalars(select(CatalogueEntry).order_by(CatalogueEntry.id))
        ]
    return entries, revisions, content


def create(live: LiveWallet, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(live.base_url + ADMIN, json=body, headers=headers, timeout=10)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


# The admin API ---------------------------------------------------------------------------------------------


def test_admin_crud_keeps_every_version(live: LiveWallet) -> None:
    headers = admin_headers(live)
    url = live.base_url + ADMIN
    entry = create(live, headers, LIBRARY)
    assert entry["version"] == 1 and entry["claims_source"] == "staff" and entry["listed"]
    assert entry["region"]["name"] == "武汉市江汉区"
    assert [d["code"] for d in entry["region"]["divisions"]] == ["420000", "420100", "420103"]
    assert entry["coordinates"] == {"latitude": 30.6013, "longitude": 114.2655}

    changed = requests.patch(
        f"{url}/wuhan-library",
        json={"address": "武汉市江汉区建设大道861号（新馆）", "capabilities": ["borrowing"], "version": 1},
        headers=headers,
        timeout=10,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2 and changed.json()["capabilities"] == ["borrowing"]
    # The same change again is no change: no new version.
    same = requests.patch(
        f"{url}/wuhan-library", json={"capabilities": ["borrowing"]}, headers=headers, timeout=10
    )
    assert same.status_code == 200 and same.json()["version"] == 2
    # A change made against an older version is refused, not merged.
    stale = requests.patch(
        f"{url}/wuhan-library", json={"name": "X", "version": 1}, headers=headers, timeout=10
    )
    assert stale.status_code == 409 and stale.json()["error"] == "catalogue_entry_changed"

    assert requests.delete(f"{url}/wuhan-library", headers=headers, timeout=10).status_code == 204
    assert requests.delete(f"{url}/wuhan-library", headers=headers, timeout=10).status_code == 404
    listed = requests.get(url, headers=headers, timeout=10).json()
    assert (
        listed["entries"] == []
        and "hospital" in listed["categories"]
        and "borrowing" in listed["capabilities"]
    )
    everything = requests.get(url, params={"include_withdrawn": "1"}, headers=headers, timeout=10).json()
    assert [e["entry_id"] for e in everything["entries"]] == ["wuhan-library"]
    assert requests.get(f"{live.base_url}{PUBLIC}/wuhan-library", timeout=10).status_code == 404
    restored = requests.post(f"{url}/wuhan-library/restore", headers=headers, timeout=10)
    assert restored.status_code == 200 and restored.json()["listed"] and restored.json()["version"] == 4

    history = requests.get(f"{url}/wuhan-library/history", headers=headers, timeout=10).json()
    revisions = history["revisions"]
    assert [(r["version"], r["action"]) for r in revisions] == [
        (1, "create"),
        (2, "update"),
        (3, "withdraw"),
        (4, "restore"),
    ]
    assert revisions[1]["changed"] == ["address", "capabilities"]
    assert all(r["actor"].startswith("client:") for r in revisions)
    # Every earlier version is there whole: version 1 as it was created.
    assert revisions[0]["entry"]["address"] == LIBRARY["address"]
    assert revisions[0]["entry"]["capabilities"] == ["borrowing", "gate_entry"]
    assert revisions[2]["entry"]["listed"] is False
    assert requests.get(f"{url}/nope/history", headers=headers, timeout=10).status_code == 404
    duplicate = requests.post(url, json=LIBRARY, headers=headers, timeout=10)
    assert duplicate.status_code == 409 and duplicate.json()["error"] == "catalogue_entry_exists"


# Each body is refused as a new entry; as a change to an existing one too, unless "creation only" (what
# only a new entry needs: a name, a free id).
BAD_ENTRIES = [
    ({"name": "X", "category": "casino"}, False),
    ({"name": "", "category": "park"}, False),
    ({"name": "   ", "category": "park"}, False),
    ({"name": "X" * 201, "category": "park"}, False),
    ({"category": "park"}, True),
    ({"name": "X", "category": "park", "colour": "red"}, False),
    ({"name": "X", "category": "park", "region": "4201"}, False),
    ({"name": "X", "category": "park", "region": 420100}, False),
    ({"name": "X", "category": "park", "latitude": 30.5}, True),  # a change may move one coordinate
    ({"name": "X", "category": "park", "latitude": 91, "longitude": 114}, False),
    ({"name": "X", "category": "park", "latitude": True, "longitude": 114}, False),
    ({"name": "X", "category": "park", "latitude": "30", "longitude": "114"}, False),
    ({"name": "X", "category": "park", "capabilities": ["flying"]}, False),
    ({"name": "X", "category": "park", "capabilities": "borrowing"}, False),
    ({"name": "X", "category": "park", "claims": ["blood_type"]}, False),
    ({"name": "X", "category": "park", "claims": ["name", 1]}, False),
    ({"name": "X", "category": "park", "entry_id": "A B"}, True),
    ({"name": "X", "category": "park", "entry_id": "regions"}, True),
    ({"name": "X", "category": "park", "address": "x" * 301}, False),
]


@pytest.mark.parametrize(("body", "creation_only"), BAD_ENTRIES)
def test_bad_entries_are_refused_and_change_nothing(
    live: LiveWallet, body: dict[str, Any], creation_only: bool
) -> None:
    headers = admin_headers(live)
    create(live, headers, HOSPITAL)
    before = rows(live)
    refused = requests.post(live.base_url + ADMIN, json=body, headers=headers, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_catalogue_entry", refused.text
    assert rows(live) == before
    if creation_only:
        return
    change = {key: value for key, value in body.items() if key != "entry_id"}
    refused = requests.patch(
        f"{live.base_url}{ADMIN}/union-hospital", json=change, headers=headers, timeout=10
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_catalogue_entry", refused.text
    assert rows(live) == before


def test_text_no_field_can_hold_is_refused(live: LiveWallet) -> None:
    headers = admin_headers(live)
    body = {"name": "X\u0007", "category": "park"}
    refused = requests.post(live.base_url + ADMIN, json=body, headers=headers, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert rows(live)[0] == 0


def test_malformed_bodies_are_refused(live: LiveWallet) -> None:
    headers = admin_headers(live)
    create(live, headers, HOSPITAL)
    before = rows(live)
    url = f"{live.base_url}{ADMIN}/union-hospital"
    for data in (b"not json", b"[1, 2]", b'{"name": '):
        answer = requests.patch(
            url, data=data, headers={**headers, "Content-Type": "application/json"}, timeout=10
        )
        assert answer.status_code == 400, answer.text
    answer = requests.patch(url, json={"version": "one"}, headers=headers, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_catalogue_entry"
    assert rows(live) == before


def test_admin_api_refuses_without_the_admin_scope(live: LiveWallet) -> None:
    url = live.base_url + ADMIN
    for method, path in (
        ("get", ""),
        ("post", ""),
        ("patch", "/x1x"),
        ("delete", "/x1x"),
        ("get", "/x1x/history"),
    ):
        answer = requests.request(method, url + path, json={"name": "X", "category": "park"}, timeout=10)
        assert answer.status_code == 401, (method, path)
        answer = requests.request(
            method, url + path, headers={"Authorization": "Bearer nonsense"}, json={}, timeout=10
        )
        assert answer.status_code == 401, (method, path)
    client_id, secret = live.register_client(name="Gate", kind="operator", scope="gate:verify")
    token = requests.post(
        live.base_url + "/token",
        data={"grant_type": "client_credentials", "scope": "gate:verify"},
        auth=(client_id, secret or ""),
        timeout=10,
    ).json()["access_token"]
    answer = requests.post(url, json=LIBRARY, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 403
    assert rows(live)[0] == 0


# Gate venues appear by themselves --------------------------------------------------------------------------


def test_a_gate_venue_is_listed_and_withdrawn_with_its_claims(live: LiveWallet) -> None:
    headers = admin_headers(live)
    venue_id, _secret = live.add_venue(
        "省博物馆", "museum", ("valid_resident", "age_over_60"), venue_id="museum-1"
    )
    found = requests.get(live.base_url + PUBLIC, params={"q": "博物馆"}, timeout=10).json()
    [entry] = found["entries"]
    assert entry["entry_id"] == venue_id == entry["venue_id"]
    assert entry["claims"] == ["valid_resident", "age_over_60"] and entry["claims_source"] == "venue"
    assert entry["capabilities"] == ["gate_entry"] and entry["address"] == "" and entry["region"] is None
    # Staff add where it is; what the venue learns stays the venue register's.
    url = f"{live.base_url}{ADMIN}/{venue_id}"
    located = requests.patch(
        url,
        json={
            "region": "420106",
            "address": "武汉市武昌区东湖路160号",
            "latitude": 30.5606,
            "longitude": 114.3656,
        },
        headers=headers,
        timeout=10,
    )
    assert located.status_code == 200, located.text
    for change in ({"claims": ["name"]}, {"name": "别的名字"}, {"category": "park"}):
        refused = requests.patch(url, json=change, headers=headers, timeout=10)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_catalogue_entry", change
    unchanged = requests.patch(
        url, json={"claims": ["valid_resident", "age_over_60"]}, headers=headers, timeout=10
    )
    assert unchanged.status_code == 200 and unchanged.json()["version"] == 2

    requests.delete(f"{live.base_url}/api/v1/admin/venues/{venue_id}", headers=headers, timeout=10)
    assert requests.get(live.base_url + PUBLIC, params={"q": "博物馆"}, timeout=10).json()["entries"] == []
    history = requests.get(url + "/history", headers=headers, timeout=10).json()["revisions"]
    assert [r["action"] for r in history] == ["create", "update", "withdraw"]
    assert history[0]["actor"] == "venue-register:test" and history[2]["actor"].startswith(
        "venue-register:client:"
    )
    assert history[1]["entry"]["address"] == "武汉市武昌区东湖路160号"
    # A removed venue's entry cannot be listed again by hand.
    refused = requests.post(url + "/restore", headers=headers, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_catalogue_entry"


def test_a_venue_removed_while_its_entry_was_withdrawn_cannot_be_listed_again(live: LiveWallet) -> None:
    headers = admin_headers(live)
    venue_id, _secret = live.add_venue("市图书馆", "library", (), venue_id="library-9")
    url = f"{live.base_url}{ADMIN}/{venue_id}"
    assert requests.delete(url, headers=headers, timeout=10).status_code == 204
    requests.delete(f"{live.base_url}/api/v1/admin/venues/{venue_id}", headers=headers, timeout=10)
    history = requests.get(url + "/history", headers=headers, timeout=10).json()["revisions"]
    assert [(r["action"], r["actor"].split(":")[0]) for r in history] == [
        ("create", "venue-register"),
        ("withdraw", "client"),
        ("withdraw", "venue-register"),
    ]
    refused = requests.post(url + "/restore", headers=headers, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_catalogue_entry"


def test_a_venue_whose_id_staff_took_gets_an_entry_of_its_own(live: LiveWallet) -> None:
    headers = admin_headers(live)
    create(live, headers, {**LIBRARY, "entry_id": "museum-2"})
    live.add_venue("市博物馆", "museum", (), venue_id="museum-2")
    entries = requests.get(live.base_url + ADMIN, headers=headers, timeout=10).json()["entries"]
    ids = {e["entry_id"]: e["venue_id"] for e in entries}
    assert ids["museum-2"] is None
    [generated] = [key for key, venue in ids.items() if venue == "museum-2"]
    assert generated.startswith("ce_")


# The public API --------------------------------------------------------------------------------------------


def test_public_search_filters_and_pages(live: LiveWallet) -> None:
    headers = admin_headers(live)
    for body in (LIBRARY, HOSPITAL, HALL):
        create(live, headers, body)
    create(live, headers, {"entry_id": "no-place", "name": "12333 热线", "category": "government"})

    def ids(**params: str) -> list[str]:
        answer = requests.get(live.base_url + PUBLIC, params=params, timeout=10)
        assert answer.status_code == 200, answer.text
        return [e["entry_id"] for e in answer.json()["entries"]]

    assert set(ids()) == {"no-place", "union-hospital", "hongshan-hall", "wuhan-library"}
    assert ids(category="hospital") == ["union-hospital"]
    assert set(ids(region="420103")) == {"wuhan-library", "union-hospital"}
    assert set(ids(region="420100")) == {"wuhan-library", "union-hospital", "hongshan-hall"}
    assert set(ids(region="420000")) == {"wuhan-library", "union-hospital", "hongshan-hall"}
    assert ids(region="420500") == []
    assert ids(q="图书") == ["wuhan-library"]
    assert ids(q="解放大道") == ["union-hospital"]  # the address counts too
    assert ids(q="%") == [] and ids(q="_") == []  # no wildcards
    assert ids(capability="queue_number") == ["hongshan-hall"]
    # Near Hongshan district: the hall first, then the two in Jianghan; the entry without a place last.
    assert ids(near="420111") == ["hongshan-hall", "union-hospital", "wuhan-library", "no-place"]
    near_library = requests.get(
        live.base_url + PUBLIC, params={"lat": "30.6010", "lon": "114.2650"}, timeout=10
    )
    first = near_library.json()["entries"][0]
    assert first["entry_id"] == "wuhan-library" and first["distance_km"] < 0.1
    assert near_library.json()["entries"][-1]["distance_km"] is None
    paged = requests.get(live.base_url + PUBLIC, params={"per_page": "3", "page": "2"}, timeout=10).json()
    assert (paged["total"], paged["pages"], paged["page"], len(paged["entries"])) == (4, 2, 2, 1)
    one = requests.get(f"{live.base_url}{PUBLIC}/union-hospital", timeout=10)
    assert one.status_code == 200 and one.json()["claims"] == ["name", "id_number", "card_number"]
    regions = requests.get(f"{live.base_url}{PUBLIC}/regions", timeout=10).json()["divisions"]
    assert {"code": "420111", "name": "洪山区"}.items() <= regions[
        [d["code"] for d in regions].index("420111")
    ].items()


@pytest.mark.parametrize(
    "params",
    [
        {"category": "casino"},
        {"region": "42"},
        {"region": "abcdef"},
        {"capability": "flying"},
        {"near": "110101"},
        {"lat": "30.5"},
        {"lat": "91", "lon": "114"},
        {"lat": "NaN", "lon": "114"},
        {"lat": "1e3", "lon": "114"},
        {"page": "0"},
        {"page": "-1"},
        {"page": "²"},
        {"per_page": "1000"},
        {"q": "x" * 101},
    ],
)
def test_bad_searches_are_refused(live: LiveWallet, params: dict[str, str]) -> None:
    answer = requests.get(live.base_url + PUBLIC, params=params, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_catalogue_query", answer.text


def test_etag_304_and_a_new_etag_after_an_edit(live: LiveWallet) -> None:
    headers = admin_headers(live)
    create(live, headers, LIBRARY)
    for path in (PUBLIC, f"{PUBLIC}/wuhan-library"):
        url = live.base_url + path
        first = requests.get(url, timeout=10)
        etag = first.headers["ETag"]
        assert first.status_code == 200 and etag and first.headers["Cache-Control"] == "public, no-cache"
        again = requests.get(url, headers={"If-None-Match": etag}, timeout=10)
        assert again.status_code == 304 and again.content == b""
        assert requests.get(url, headers={"If-None-Match": '"other"'}, timeout=10).status_code == 200
    search_etag = requests.get(live.base_url + PUBLIC, timeout=10).headers["ETag"]
    entry_etag = requests.get(f"{live.base_url}{PUBLIC}/wuhan-library", timeout=10).headers["ETag"]
    requests.patch(
        f"{live.base_url}{ADMIN}/wuhan-library", json={"address": "新地址"}, headers=headers, timeout=10
    ).raise_for_status()
    for url, etag in ((PUBLIC, search_etag), (f"{PUBLIC}/wuhan-library", entry_etag)):
        after = requests.get(live.base_url + url, headers={"If-None-Match": etag}, timeout=10)
        assert after.status_code == 200 and after.headers["ETag"] != etag
    # A filter is part of the document: another search has its own ETag.
    filtered = requests.get(live.base_url + PUBLIC, params={"category": "park"}, timeout=10)
    assert filtered.headers["ETag"] != requests.get(live.base_url + PUBLIC, timeout=10).headers["ETag"]


# The command line ------------------------------------------------------------------------------------------


@pytest.fixture
def migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    monkeypatch.setenv("ONECARD_ENV", "test")
    dbadmin.upgrade(url)
    return url


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def test_cli_add_update_withdraw_restore_history(migrated: str) -> None:
    added = run(
        "catalogue", "add", "--id", "east-lake", "--name", "东湖风景区", "--category", "park",
        "--region", "420106", "--address", "武汉市武昌区沿湖大道16号", "--latitude", "30.5535",
        "--longitude", "114.3766", "--capability", "gate_entry", "--claim", "valid_resident", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["version"] == 1
    updated = run("catalogue", "update", "east-lake", "--capability", "gate_entry", "--capability", "transit")
    assert updated.exit_code == 0, updated.output and "transit" in updated.output
    nothing = run("catalogue", "update", "east-lake", "--json")
    assert json.loads(nothing.stdout)["version"] == 2
    assert run("catalogue", "withdraw", "east-lake").exit_code == 0
    assert "(withdrawn)" in run("catalogue", "list", "--all").output
    assert "east-lake" not in run("catalogue", "list").output
    assert run("catalogue", "restore", "east-lake").exit_code == 0
    history = run("catalogue", "history", "east-lake")
    assert history.exit_code == 0
    lines = history.output.splitlines()
    assert [line.split()[2] for line in lines] == ["create", "update", "withdraw", "restore"]
    assert all(line.split()[3].startswith("cli:") for line in lines)
    as_json = json.loads(run("catalogue", "history", "east-lake", "--json").stdout)
    assert as_json[1]["changed"] == ["capabilities"] and as_json[0]["entry"]["capabilities"] == ["gate_entry"]
    shown = run("catalogue", "show", "east-lake")
    assert "东湖风景区" in shown.output and "420106" in shown.output


def test_cli_refuses_bad_input_in_one_line(migrated: str) -> None:
    bad_region = run("catalogue", "add", "--name", "X", "--category", "park", "--region", "12")
    assert (
        bad_region.exit_code == 1 and "region" in bad_region.output and "Traceback" not in bad_region.output
    )
    half = run("catalogue", "add", "--name", "X", "--category", "park", "--latitude", "30")
    assert half.exit_code == 1 and "longitude" in half.output
    assert run("catalogue", "add", "--name", "X", "--category", "casino").exit_code == 2
    missing = run("catalogue", "history", "nope")
    assert missing.exit_code == 1 and "No such catalogue entry" in missing.output
    assert run("catalogue", "list").output == ""


def test_cli_import_is_idempotent(migrated: str) -> None:
    items = json.dumps([LIBRARY, HOSPITAL])
    first = run("catalogue", "import", "-", stdin=items)
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [
        "created    catalogue entry wuhan-library",
        "created    catalogue entry union-hospital",
    ]
    again = run("catalogue", "import", "-", stdin=items)
    assert [line.split()[0] for line in again.output.splitlines()] == ["unchanged", "unchanged"]
    moved = run("catalogue", "import", "-", stdin=json.dumps([{**LIBRARY, "address": "新馆"}]))
    assert moved.output.split()[0] == "updated"
    history = json.loads(run("catalogue", "history", "wuhan-library", "--json").stdout)
    assert [r["version"] for r in history] == [1, 2]
    bad = run(
        "catalogue", "import", "-", stdin=json.dumps([{**HOSPITAL, "entry_id": "other"}, {"entry_id": "xyz"}])
    )
    assert bad.exit_code == 1 and "name" in bad.output
    assert "other" not in run("catalogue", "list").output  # the whole import was refused
    assert run("catalogue", "import", "-", stdin="{").exit_code == 1
    assert run("catalogue", "import", "-", stdin="{}").exit_code == 1
