"""``onecard audit verify`` and ``export`` through click's CliRunner; tampering done with plain SQL."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from idp import dbadmin
from idp.audit.service import verify_exported_events
from idp.cli import cli


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key in list(os.environ):
        if key.startswith("ONECARD_") and not key.startswith("ONECARD_TEST_"):
            monkeypatch.delenv(key)
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    monkeypatch.setenv("ONECARD_DATABASE_URL", url)
    monkeypatch.setenv("ONECARD_ENV", "test")
    dbadmin.upgrade(url)
    yield url


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def some_events() -> None:
    for key_set in ("qr", "oidc-es256", "cookie"):
        assert run("keys", "rotate", key_set, "--reason", "audit test").exit_code == 0
    assert run("keys", "tick").exit_code == 0


def sql(url: str, *statements: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_an_intact_chain_verifies_and_names_its_head(database_url: str) -> None:
    some_events()
    result = run("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "event(s) verified" in result.output and "head " in result.output
    head = result.output.split("head ")[1].split()[0]
    assert run("audit", "verify", "--head", head).exit_code == 0


@pytest.mark.parametrize(
    ("tampering", "bad_seq"),
    [
        (["UPDATE audit_events SET actor = 'cli:mallory' WHERE seq = 2"], 2),
        (["DELETE FROM audit_events WHERE seq = 2"], 2),
        # Swap events 1 and 2, through a free number (seq is the primary key).
        (
            [
                "UPDATE audit_events SET seq = 100 WHERE seq = 1",
                "UPDATE audit_events SET seq = 1 WHERE seq = 2",
                "UPDATE audit_events SET seq = 2 WHERE seq = 100",
            ],
            1,
        ),
    ],
    ids=["edit", "delete", "reorder"],
)
def test_tampering_is_detected(database_url: str, tampering: list[str], bad_seq: int) -> None:
    some_events()
    sql(database_url, *tampering)
    result = run("audit", "verify")
    assert result.exit_code == 1
    assert f"first bad event is seq {bad_seq}" in result.output
    as_json = run("audit", "verify", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.output)["ok"] is False


def test_a_deleted_last_event_needs_the_kept_head(database_url: str) -> None:
    some_events()
    head = run("audit", "verify").output.split("head ")[1].split()[0]
    last = int(head.split(":")[0])
    sql(database_url, f"DELETE FROM audit_events WHERE seq = {last}")  # noqa: S608 - an int from our output
    assert run("audit", "verify").exit_code == 0  # the chain alone cannot tell
    assert run("audit", "verify", "--head", head).exit_code == 1


def test_export_writes_json_lines_that_verify_on_their_own(database_url: str, tmp_path: Path) -> None:
    some_events()
    out = tmp_path / "events.jsonl"
    result = run(
        "audit", "export", "--since", "2000-01-01", "--until", "2100-01-01T00:00:00Z", "--output", str(out)
    )
    assert result.exit_code == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["action"] for e in events][:2] == ["key.create", "key.create"]
    assert all(e["actor"].startswith("cli:") for e in events)
    assert verify_exported_events(events).ok
    empty = run("audit", "export", "--since", "2000-01-01", "--until", "2000-01-02")
    assert empty.exit_code == 0 and empty.output == ""
    assert run("audit", "export", "--since", "2001-01-01", "--until", "2000-01-01").exit_code == 2
