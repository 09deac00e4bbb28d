"""``onecard catalogue``: keep the application catalogue from the command line — add, change, withdraw,
restore, list, show, history, and import a file of entries (what the demo does).

Registered on the ``onecard`` command through the ``onecard.cli`` entry point group, like ``wallet.cli``;
stands on ``idp.cli_support`` only. Every change is a new version with the actor ``cli:<os user>``.
"""

from __future__ import annotations

import json
from typing import Any

import click

from idp.cli_support import cli_actor, echo_fields, echo_json, fail, unit_of_work
from wallet.catalogue.service import (
    CAPABILITIES,
    CATEGORIES,
    FACTS,
    EntryFields,
    create_entry,
    describe_entry,
    describe_revision,
    entry_history,
    get_entry,
    import_entries,
    list_entries,
    restore_entry,
    update_entry,
    withdraw_entry,
)


@click.group()
def catalogue() -> None:
    """The application catalogue: where the card works, what it does there, what each place learns."""


def _echo_entry(fields: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(fields)
    else:
        echo_fields(fields)


_FIELD_OPTIONS = (
    click.option("--region", default=None, help="GB/T 2260 code of the district, e.g. 420106."),
    click.option("--address", default=None, help="The street address, as citizens write it."),
    click.option("--latitude", type=float, default=None, help="WGS 84 latitude (with --longitude)."),
    click.option("--longitude", type=float, default=None, help="WGS 84 longitude (with --latitude)."),
    click.option(
        "--capability",
        "capabilities",
        multiple=True,
        type=click.Choice(CAPABILITIES),
        help="What the card does there (repeat).",
    ),
    click.option(
        "--claim", "claims", multiple=True, type=click.Choice(FACTS), help="What the place learns (repeat)."
    ),
    click.option("--json", "as_json", is_flag=True, help="Print JSON."),
)


def _with_field_options(command: Any) -> Any:
    for option in reversed(_FIELD_OPTIONS):
        command = option(command)
    return command


@catalogue.command("add")
@click.option("--name", required=True, help="The name citizens know the place by.")
@click.option("--category", required=True, type=click.Choice(CATEGORIES), help="The kind of place.")
@click.option("--id", "entry_id", default=None, help="The entry id [default: random ce_…].")
@_with_field_options
def catalogue_add(
    name: str,
    category: str,
    entry_id: str | None,
    region: str | None,
    address: str | None,
    latitude: float | None,
    longitude: float | None,
    capabilities: tuple[str, ...],
    claims: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add an entry (its version 1)."""
    fields = EntryFields(name, category, region, address or "", latitude, longitude, capabilities, claims)
    with unit_of_work() as (svc, session):
        entry = create_entry(session, fields, actor=cli_actor(), now=svc.now(), entry_id=entry_id)
        shown = describe_entry(entry)
    _echo_entry(shown, as_json)


@catalogue.command("update")
@click.argument("entry_id")
@click.option("--name", default=None, help="A new name.")
@click.option("--category", default=None, type=click.Choice(CATEGORIES), help="A new kind of place.")
@click.option("--no-coordinates", is_flag=True, help="Remove the coordinates.")
@click.option("--clear-capabilities", is_flag=True, help="The card does nothing there (yet).")
@click.option("--clear-claims", is_flag=True, help="The place learns nothing.")
@click.option(
    "--version", "expected_version", type=int, default=None, help="Refuse if no longer this version."
)
@_with_field_options
def catalogue_update(
    entry_id: str,
    name: str | None,
    category: str | None,
    no_coordinates: bool,
    clear_capabilities: bool,
    clear_claims: bool,
    expected_version: int | None,
    region: str | None,
    address: str | None,
    latitude: float | None,
    longitude: float | None,
    capabilities: tuple[str, ...],
    claims: tuple[str, ...],
    as_json: bool,
) -> None:
    """Change the fields given; the rest stay. Each change is a new version (nothing given: no version)."""
    given: dict[str, Any] = {"name": name, "category": category, "region": region, "address": address}
    changes = {key: value for key, value in given.items() if value is not None}
    if no_coordinates:
        changes.update(latitude=None, longitude=None)
    elif latitude is not None or longitude is not None:
        changes.update(latitude=latitude, longitude=longitude)
    if capabilities or clear_capabilities:
        changes["capabilities"] = capabilities
    if claims or clear_claims:
        changes["claims"] = claims
    with unit_of_work() as (svc, session):
        entry = update_entry(
            session, entry_id, changes, actor=cli_actor(), now=svc.now(), expected_version=expected_version
        )
        shown = describe_entry(entry)
    _echo_entry(shown, as_json)


@catalogue.command("withdraw")
@click.argument("entry_id")
def catalogue_withdraw(entry_id: str) -> None:
    """Take an entry out of the public catalogue (it and its history stay)."""
    with unit_of_work() as (svc, session):
        withdraw_entry(session, entry_id, actor=cli_actor(), now=svc.now())
    click.echo(f"withdrawn  catalogue entry {entry_id}")


@catalogue.command("restore")
@click.argument("entry_id")
def catalogue_restore(entry_id: str) -> None:
    """List a withdrawn entry again."""
    with unit_of_work() as (svc, session):
        restore_entry(session, entry_id, actor=cli_actor(), now=svc.now())
    click.echo(f"restored  catalogue entry {entry_id}")


@catalogue.command("list")
@click.option("--all", "include_withdrawn", is_flag=True, help="Include withdrawn entries.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def catalogue_list(include_withdrawn: bool, as_json: bool) -> None:
    """List the entries."""
    with unit_of_work() as (_svc, session):
        rows = [describe_entry(e) for e in list_entries(session, include_withdrawn=include_withdrawn)]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        withdrawn = "" if row["listed"] else "  (withdrawn)"
        region = row["region"]["code"] if row["region"] else "-"
        entry_id, version, category = row["entry_id"], row["version"], row["category"]
        click.echo(f"{entry_id:<24} v{version:<3} {category:<10} {region:<6}  {row['name']}{withdrawn}")


@catalogue.command("show")
@click.argument("entry_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def catalogue_show(entry_id: str, as_json: bool) -> None:
    """Show one entry."""
    with unit_of_work() as (_svc, session):
        shown = describe_entry(get_entry(session, entry_id))
    _echo_entry(shown, as_json)


@catalogue.command("history")
@click.argument("entry_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def catalogue_history(entry_id: str, as_json: bool) -> None:
    """Every version of an entry, oldest first: who changed what, and when."""
    with unit_of_work() as (_svc, session):
        revisions = [describe_revision(r) for r in entry_history(session, entry_id)]
    if as_json:
        echo_json(revisions)
        return
    for revision in revisions:
        changed = ",".join(revision["changed"]) or "-"
        version, action = revision["version"], revision["action"]
        click.echo(f"v{version:<3} {revision['at']}  {action:<8} {revision['actor']}  {changed}")


@catalogue.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"))
def catalogue_import(source: Any) -> None:
    """Create or bring up to date the entries of a JSON file (a list of objects with ``entry_id`` and the
    admin API's fields; ``-`` reads standard input). Entries already as described are left alone."""
    try:
        items = json.load(source)
    except ValueError as error:
        fail(f"the file is not JSON: {error}")
    if not isinstance(items, list):
        fail("the file must hold a JSON list of entries")
    with unit_of_work() as (svc, session):
        results = import_entries(session, items, actor=cli_actor(), now=svc.now())
    for entry_id, state in results:
        click.echo(f"{state:<9}  catalogue entry {entry_id}")
