"""``onecard audit``: verify the hash chain and export events (DESIGN.md §7, §8).

    onecard audit verify [--head SEQ:HASH]      exit 0 and the head to keep, or exit 1 naming each bad seq
    onecard audit verify --file FILE [--head SEQ:HASH]   an exported file, no database: each bad line
    onecard audit export --since 2026-11-01 [--until 2026-12-01] [--output FILE]    JSON lines

The exported file's format and how its chain hash is computed are in docs/runbook.md, "The exported audit
file".

Registered on the ``onecard`` group by ``idp.cli``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from idp.audit.service import (
    AuditHead,
    ExportVerification,
    chain_head,
    export_events,
    verify_chain,
    verify_export_lines,
)
from idp.cli_support import echo_json


def _database() -> Any:
    """The database of the current settings, at the head revision (no app, no keys needed)."""
    from idp import dbadmin
    from idp.config import load_settings
    from idp.db import Database

    settings = load_settings()
    dbadmin.require_current(settings.database_url)
    database = Database(settings.database_url)
    click.get_current_context().call_on_close(database.dispose)
    return database


def _parse_head(_ctx: click.Context, _param: click.Parameter, value: str | None) -> AuditHead | None:
    if value is None:
        return None
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise click.BadParameter("expected SEQ:HASH as printed by a previous `onecard audit verify`")
    return AuditHead(int(seq), digest)


def _parse_time(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@click.group()
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command("verify")
@click.option(
    "--head",
    callback=_parse_head,
    default=None,
    help="SEQ:HASH kept from an earlier run: also detects a deleted tail or a rewritten chain.",
)
@click.option(
    "--file",
    "export_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Verify this file written by `onecard audit export` instead of the database.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit_verify(head: AuditHead | None, export_file: Path | None, as_json: bool) -> None:
    """Recompute every event's hash and link; exit status 1 if anything was modified, removed or moved."""
    if export_file is not None:
        _verify_export_file(export_file, head, as_json=as_json)
        return
    database = _database()
    with database.session() as session:
        result = verify_chain(session, expected_head=head)
        current = chain_head(session)
    if as_json:
        echo_json(
            {
                "ok": result.ok,
                "events_checked": result.events_checked,
                "head": f"{current.seq}:{current.hash}" if current else None,
                "problems": [
                    {"seq": p.seq, "reason": p.reason.value, "detail": p.detail} for p in result.problems
                ],
            }
        )
    else:
        for problem in result.problems:
            click.echo(
                f"seq {problem.seq}: {problem.reason.value}"
                + (f" ({problem.detail})" if problem.detail else "")
            )
        if result.problems_truncated:
            click.echo("… more problems not listed")
    if not result.ok:
        raise (
            click.exceptions.Exit(1)
            if as_json
            else click.ClickException(
                f"the audit trail was tampered with: first bad event is seq {result.first_bad_seq}"
            )
        )
    if not as_json:
        click.echo(f"{result.events_checked} event(s) verified")
        if current is not None:
            click.echo(f"head {current.seq}:{current.hash}  (keep it elsewhere; pass it to --head next time)")


def _verify_export_file(path: Path, head: AuditHead | None, *, as_json: bool) -> None:
    with path.open(encoding="utf-8", errors="replace") as lines:
        result: ExportVerification = verify_export_lines(lines, expected_head=head)
    if as_json:
        echo_json(
            {
                "ok": result.ok,
                "events_checked": result.events_checked,
                "head": f"{result.head.seq}:{result.head.hash}" if result.head else None,
                "problems": [
                    {"line": p.line, "seq": p.seq, "reason": p.reason.value, "detail": p.detail}
                    for p in result.problems
                ],
            }
        )
        if not result.ok:
            raise click.exceptions.Exit(1)
        return
    for problem in result.problems:
        where = f"line {problem.line}" + (f" (seq {problem.seq})" if problem.seq is not None else "")
        click.echo(f"{where}: {problem.reason.value}" + (f" ({problem.detail})" if problem.detail else ""))
    if result.problems_truncated:
        click.echo("… more problems not listed")
    if not result.ok:
        raise click.ClickException(f"{path} was tampered with: first bad line is {result.first_bad_line}")
    click.echo(f"{result.events_checked} event(s) verified in {path}")
    if result.head is not None:
        click.echo(f"last event {result.head.seq}:{result.head.hash}")


@audit.command("export")
@click.option(
    "--since", required=True, callback=_parse_time, help="Start (inclusive), ISO 8601; UTC if no offset."
)
@click.option(
    "--until",
    default=None,
    callback=_parse_time,
    help="End (exclusive), ISO 8601; UTC if no offset. Default: up to the last event.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to FILE instead of standard output.",
)
def audit_export(since: datetime, until: datetime | None, output: Path | None) -> None:
    """Events of a period as JSON lines, with their hashes (re-verifiable without the database:
    `onecard audit verify --file`)."""
    if until is not None and until <= since:
        raise click.BadParameter("--until must be after --since")
    database = _database()
    with database.session() as session:
        events = export_events(session, since, until)
    lines = "".join(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n" for event in events)
    if output is None:
        click.echo(lines, nl=False)
    else:
        output.write_text(lines, encoding="utf-8")
        click.echo(f"{len(events)} event(s) written to {output}", err=True)
