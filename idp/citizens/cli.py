"""``onecard citizens``: the real-name register — import a CSV file, list, add, show. Registered on the
``onecard`` group by ``idp.cli``. ID numbers are shown masked and names are not shown (DESIGN.md §2)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from idp.citizens.idnumber import mask_id_number
from idp.citizens.importer import ImportStage, format_problems, import_citizens
from idp.citizens.service import (
    MAX_PAGE_SIZE,
    count_citizens,
    create_citizen,
    decrypt_profile,
    get_citizen,
    list_citizens,
)
from idp.cli_support import echo_fields, echo_json, fail, record_cli_event, unit_of_work
from idp.services import Services


@click.group()
def citizens() -> None:
    """The real-name register (ID numbers are shown masked)."""


class _ImportProgressBars:
    """One tqdm bar per import stage (validate, check, insert), fed by the importer's progress callback."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.stage: ImportStage | None = None
        self.bar: Any = None

    def __call__(self, stage: ImportStage, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if stage is not self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(
                total=total,
                desc=f"{stage.value:<8}",
                unit=" rows",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=True,
            )
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@citizens.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate the whole file and import nothing.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def citizens_import(file: Path, dry_run: bool, quiet: bool) -> None:
    """Import a CSV file (header name,id_number): every row, or none when any row is wrong."""
    data = file.read_bytes()
    bars = _ImportProgressBars(enabled=not quiet)
    try:
        with unit_of_work(keys=True) as (svc, session):
            report = import_citizens(
                session, svc.pii_cipher(), data, now=svc.now(), progress=bars, dry_run=dry_run
            )
            if report.ok and not dry_run:
                record_cli_event(
                    svc, session, "citizens.import", "citizen_register", "-", rows=report.imported
                )
    finally:
        bars.close()
    if not report.ok:
        click.echo(f"{file.name}: {len(report.problems)} problem(s)")
        for line in format_problems(report.problems):
            click.echo(f"  {line}")
        fail(report.summary())
    click.echo(report.summary())


def _citizen_row(svc: Services, citizen: Any) -> dict[str, Any]:
    profile = decrypt_profile(svc.pii_cipher(), citizen)
    # Outside the owner's own view, ID numbers are masked and names left out (DESIGN.md §2).
    return {
        "citizen_id": citizen.id,
        "id_number": profile.masked_id_number,
        "status": citizen.status,
        "created_at": citizen.created_at.isoformat(),
    }


@citizens.command("list")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1, MAX_PAGE_SIZE), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def citizens_list(offset: int, limit: int, as_json: bool) -> None:
    """List a page of the register, oldest first."""
    with unit_of_work(keys=True) as (svc, session):
        total = count_citizens(session)
        rows = [_citizen_row(svc, citizen) for citizen in list_citizens(session, offset=offset, limit=limit)]
    if as_json:
        echo_json({"total": total, "offset": offset, "citizens": rows})
        return
    click.echo(f"{total} citizen(s); showing {offset + 1 if rows else offset}–{offset + len(rows)}")
    for row in rows:
        click.echo(f"{row['citizen_id']}  {row['id_number']}  {row['status']:<8}  {row['created_at']}")


@citizens.command("add")
@click.option("--name", prompt=True, help="The name as on the card (prompted for when left out).")
@click.option(
    "--id-number",
    prompt="ID number",
    help="The 18-character ID number (prompted for when left out: keeps it out of shell history).",
)
def citizens_add(name: str, id_number: str) -> None:
    """Register one citizen."""
    with unit_of_work(keys=True) as (svc, session):
        citizen = create_citizen(session, svc.pii_cipher(), name, id_number, now=svc.now())
        record_cli_event(svc, session, "citizen.create", "citizen", citizen.id)
        citizen_id = citizen.id
    click.echo(f"registered citizen {citizen_id} ({mask_id_number(id_number)})")


@citizens.command("show")
@click.argument("citizen_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def citizens_show(citizen_id: str, as_json: bool) -> None:
    """Show one citizen (ID number masked)."""
    with unit_of_work(keys=True) as (svc, session):
        citizen = get_citizen(session, citizen_id)
        row = {
            **_citizen_row(svc, citizen),
            "updated_at": citizen.updated_at.isoformat(),
            "data_key_id": citizen.data_key_id,
        }
    if as_json:
        echo_json(row)
    else:
        echo_fields(row)
