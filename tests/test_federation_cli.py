"""``onecard federation``: a province's staff register a city, issue it the loa:high trust mark, show,
list and remove it — each change audited, refusals one line and no traceback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from idp import dbadmin
from idp.audit.model import AuditEvent
from idp.audit.service import verify_chain
from idp.cli import cli
from idp.db import Database
from idp.federation.trust_marks import parse_trust_mark
from sdk.keys import KeySet, generate_key

PROVINCE = "http://province.onecard.test"
CITY = "http://city.onecard.test"
LOA_HIGH = "https://onecard.example/trust-marks/loa-high"


@pytest.fixture
def province(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated SQLite database, and the settings of a province's OneCard as trust anchor."""
    for key in list(os.environ):
        if key.startswith("ONECARD_") and not key.startswith("ONECARD_TEST_"):
            monkeypatch.delenv(key)
    url = f"sqlite:///{tmp_path / 'province.sqlite3'}"
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    monkeypatch.setenv("ONECARD_ENV", "test")
    monkeypatch.setenv("ONECARD_ISSUER", PROVINCE)
    monkeypatch.setenv("ONECARD_FEDERATION_ROLES", "anchor")
    dbadmin.upgrade(url)
    yield url


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def actions(url: str) -> list[str]:
    database = Database(url)
    try:
        with database.session() as session:
            assert verify_chain(session).ok
            return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))
    finally:
        database.dispose()


def test_staff_register_a_city_and_issue_it_the_loa_high_trust_mark(province: str, tmp_path: Path) -> None:
    jwks = tmp_path / "city.jwks.json"
    jwks.write_text(json.dumps(KeySet.of([generate_key("ES256").public_only()]).to_jwks()))
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"openid_provider": {"acr_values_supported": {"subset_of": ["loa:high"]}}}))
    added = run(
        "federation", "add", CITY, "--jwks", str(jwks), "--metadata-policy", str(policy),
        "--max-path-length", "1", "--trust-mark-type", LOA_HIGH,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert CITY in added.output
    assert CITY in run("federation", "list").output
    shown = json.loads(run("federation", "show", CITY, "--json").output)
    assert shown["constraints"] == {"max_path_length": 1}
    assert shown["trust_mark_types"] == [LOA_HIGH]

    issued = run("federation", "issue-trust-mark", CITY)
    assert issued.exit_code == 0, issued.output
    mark = parse_trust_mark(issued.output.strip())
    assert (mark.issuer, mark.subject, mark.trust_mark_type) == (PROVINCE, CITY, LOA_HIGH)

    keys = json.loads(run("federation", "jwks").output)
    assert keys["keys"] and all("d" not in key for key in keys["keys"])

    again = run("federation", "add", CITY, "--jwks", str(jwks))
    assert again.exit_code == 1 and "already registered" in again.output
    assert run("federation", "add", CITY, "--jwks", str(jwks), "--replace").exit_code == 0
    other = run("federation", "issue-trust-mark", CITY, "--type", "https://x.example/other")
    assert other.exit_code == 1 and "not registered for the trust mark" in other.output

    assert run("federation", "remove", CITY).exit_code == 0
    gone = run("federation", "show", CITY)
    assert gone.exit_code == 1 and "not a subordinate" in gone.output
    recorded = [a for a in actions(province) if a.startswith("federation.")]
    assert recorded == [
        "federation.subordinate.create",
        "federation.trust_mark.issue",
        "federation.subordinate.replace",
        "federation.subordinate.remove",
    ]


def test_a_bad_registration_is_one_line_and_writes_nothing(province: str, tmp_path: Path) -> None:
    jwks = tmp_path / "private.jwks.json"
    key = generate_key("ES256")
    jwks.write_text(json.dumps({"keys": [{**key.public_jwk(), "d": "AAAA"}]}))
    refused = run("federation", "add", CITY, "--jwks", str(jwks))
    assert refused.exit_code == 1
    assert refused.output.startswith("Error: ") and len(refused.output.strip().splitlines()) == 1
    assert run("federation", "list").output == ""
    assert not [a for a in actions(province) if a.startswith("federation.")]


def test_a_leaf_registers_no_subordinates(
    province: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONECARD_FEDERATION_ROLES", "leaf")
    jwks = tmp_path / "city.jwks.json"
    jwks.write_text(json.dumps(KeySet.of([generate_key("ES256").public_only()]).to_jwks()))
    refused = run("federation", "add", CITY, "--jwks", str(jwks))
    assert refused.exit_code == 1 and "ONECARD_FEDERATION_ROLES" in refused.output


def test_bad_federation_settings_stop_the_command(province: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONECARD_FEDERATION_ROLES", "emperor")
    refused = run("federation", "list")
    assert refused.exit_code == 1 and "ONECARD_FEDERATION_ROLES" in refused.output
