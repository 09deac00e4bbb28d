"""``onecard audit verify`` and ``export`` through click's CliRunner; tampering done with plain SQL."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from idp import dbadmin
from idp.audit.service import EventRecord, compute_event_hash, verify_exported_events
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


def test_export_since_alone_runs_to_the_last_event(database_url: str) -> None:
    some_events()
    result = run("audit", "export", "--since", "2000-01-01")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert events and events[0]["seq"] == 1 and verify_exported_events(events).ok
    head = run("audit", "verify").output.split("head ")[1].split()[0]
    assert f"{events[-1]['seq']}:{events[-1]['hash']}" == head


def export_to(tmp_path: Path) -> Path:
    out = tmp_path / "export.jsonl"
    assert run("audit", "export", "--since", "2000-01-01", "--output", str(out)).exit_code == 0
    return out


def test_an_exported_file_verifies_without_the_database(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    some_events()
    out = export_to(tmp_path)
    head = run("audit", "verify").output.split("head ")[1].split()[0]
    monkeypatch.setenv("ONECARD_DATABASE_URL", f"sqlite:///{tmp_path / 'nowhere' / 'gone.sqlite3'}")
    result = run("audit", "verify", "--file", str(out), "--head", head)
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert f"{len(lines)} event(s) verified" in result.output and f"last event {head}" in result.output


@pytest.mark.parametrize(
    ("tamper", "bad_line", "reason"),
    [
        # One field of one event changed: its own hash no longer fits.
        (lambda events: events[2].update(actor="cli:mallory"), 3, "modified"),
        (lambda events: events[1]["details"].update(reason="nothing to see"), 2, "modified"),
        # One event taken out: the gap shows at the next line.
        (lambda events: events.pop(2), 3, "missing"),
        # One event rewritten with a fresh, self-consistent hash: the next one no longer links to it.
        (None, 4, "unlinked"),
    ],
    ids=["actor", "details", "removed", "rehashed"],
)
def test_tampering_with_one_line_of_an_export_is_found_at_that_line(
    database_url: str, tmp_path: Path, tamper: Any, bad_line: int, reason: str
) -> None:
    some_events()
    for key_set in ("oidc-rs256", "data"):
        assert run("keys", "rotate", key_set, "--reason", "more events").exit_code == 0
    out = export_to(tmp_path)
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 5
    if tamper is not None:
        tamper(events)
    else:
        events[2]["actor"] = "cli:mallory"
        events[2]["hash"] = compute_event_hash(EventRecord.from_export(events[2]))
    out.write_text("".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in events))
    result = run("audit", "verify", "--file", str(out))
    assert result.exit_code == 1
    assert f"first bad line is {bad_line}" in result.output
    assert f"line {bad_line} (seq " in result.output and reason in result.output
    as_json = run("audit", "verify", "--file", str(out), "--json")
    assert as_json.exit_code == 1
    problems = json.loads(as_json.output)["problems"]
    assert (problems[0]["line"], problems[0]["reason"]) == (bad_line, reason)


def test_lines_that_are_not_events_are_named(database_url: str, tmp_path: Path) -> None:
    some_events()
    out = export_to(tmp_path)
    lines = out.read_text().splitlines()
    lines.insert(1, "{not json")
    lines.append(lines[-1])  # a repeated event
    out.write_text("\n".join(lines) + "\n")
    result = run("audit", "verify", "--file", str(out), "--json")
    assert result.exit_code == 1
    problems = [(p["line"], p["reason"]) for p in json.loads(result.output)["problems"]]
    assert problems == [(2, "malformed"), (len(lines), "malformed")]


def test_the_chain_hash_is_computed_as_the_runbook_says(database_url: str, tmp_path: Path) -> None:
    """docs/runbook.md "The exported audit file", recomputed with hashlib and json alone."""
    some_events()
    previous = "0" * 64
    for line in export_to(tmp_path).read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        at = datetime.fromisoformat(event["at"].replace("Z", "+00:00"))
        at_us = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        fields = {k: event[k] for k in ("action", "actor", "details", "prev_hash", "seq", "target_id")}
        canonical = json.dumps(
            {**fields, "target_type": event["target_type"], "at_us": at_us},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
        ).encode()
        assert event["prev_hash"] == previous
        assert hashlib.sha256(b"onecard/audit/v1\x00" + canonical).hexdigest() == event["hash"]
        previous = event["hash"]
