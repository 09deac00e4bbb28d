"""``onecard venues``: add, list, show, rate-limit and remove venues (scenario operators) and their gate
credentials; ``onecard venues regions``: the other regions whose codes the gates accept (sync, list).

Registered on the ``onecard`` command through the ``onecard.cli`` entry point group, which ``idp.cli`` loads
(idp never imports the wallet). Uses the plumbing every command group shares, ``idp.cli_support`` — the unit
of work, output helpers, the audit actor. Output names venues, categories and client ids; the one secret
printed is a new venue's client secret, once.
"""

from __future__ import annotations

from typing import Any

import click

from idp.cli_support import cli_actor, echo_fields, echo_json, unit_of_work
from wallet.regions.service import load_trusted_regions, sync_regions
from wallet.venues.model import DEFAULT_VERIFY_PER_MINUTE
from wallet.venues.service import (
    VENUE_CATEGORIES,
    VENUE_CLAIMS,
    VenueRegistration,
    create_venue,
    describe_venue,
    get_venue,
    list_venues,
    remove_venue,
    set_verify_per_minute,
)


@click.group()
def venues() -> None:
    """Venues whose gates scan electronic card codes, and their gate credentials."""


@venues.command("add")
@click.option("--name", required=True, help="The venue's name, as staff and citizens see it.")
@click.option("--category", required=True, type=click.Choice(VENUE_CATEGORIES), help="The scenario.")
@click.option(
    "--claim",
    "claims",
    multiple=True,
    type=click.Choice(sorted(VENUE_CLAIMS)),
    help="A fact the online API may tell this venue (repeat). Default: none.",
)
@click.option(
    "--region", "regions", multiple=True, help="Accept only cards of this region (repeat). Default: all."
)
@click.option("--id", "venue_id", default=None, help="The venue id (and client id) [default: random vn_…].")
@click.option(
    "--verify-per-minute",
    type=int,
    default=DEFAULT_VERIFY_PER_MINUTE,
    show_default=True,
    help="Online verifications a minute its gates may ask for, all together.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def venues_add(
    name: str,
    category: str,
    claims: tuple[str, ...],
    regions: tuple[str, ...],
    venue_id: str | None,
    verify_per_minute: int,
    as_json: bool,
) -> None:
    """Register a venue and print its gate credentials (the secret is shown only now)."""
    with unit_of_work() as (svc, session):
        created = create_venue(
            session,
            VenueRegistration(name, category, claims, regions, venue_id, verify_per_minute),
            actor=cli_actor(),
            now=svc.now(),
        )
        fields = describe_venue(created.venue)
    fields["client_secret"] = created.client_secret
    if as_json:
        echo_json(fields)
    else:
        echo_fields(fields)
        click.echo("Store the client secret now: it is not shown again.", err=True)


@venues.command("list")
@click.option("--all", "include_removed", is_flag=True, help="Include removed venues.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def venues_list(include_removed: bool, as_json: bool) -> None:
    """List venues."""
    with unit_of_work() as (_svc, session):
        rows = [describe_venue(v) for v in list_venues(session, include_removed=include_removed)]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        removed = "  (removed)" if row["removed_at"] else ""
        claims = ",".join(row["claims"]) or "-"
        click.echo(f"{row['venue_id']}  {row['category']:<10}  {claims:<30}  {row['name']}{removed}")


@venues.command("show")
@click.argument("venue_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def venues_show(venue_id: str, as_json: bool) -> None:
    """Show one venue."""
    with unit_of_work() as (_svc, session):
        fields = describe_venue(get_venue(session, venue_id))
    if as_json:
        echo_json(fields)
    else:
        echo_fields(fields)


@venues.command("rate")
@click.argument("venue_id")
@click.argument("verify_per_minute", type=int)
def venues_rate(venue_id: str, verify_per_minute: int) -> None:
    """Set how many online verifications a minute the venue's gates may ask for (all nodes together)."""
    with unit_of_work() as (svc, session):
        set_verify_per_minute(session, venue_id, verify_per_minute, actor=cli_actor(), now=svc.now())
    click.echo(f"venue {venue_id}: {verify_per_minute} verifications per minute")


@venues.command("remove")
@click.argument("venue_id")
def venues_remove(venue_id: str) -> None:
    """Remove a venue: its gate credentials stop working; its scan records stay for the statistics."""
    with unit_of_work() as (svc, session):
        remove_venue(session, venue_id, actor=cli_actor(), now=svc.now())
    click.echo(f"removed  venue {venue_id}")


@click.group()
def regions() -> None:
    """Other regions of the federation whose e-card codes the gates accept (their keys and lists, synced)."""


@regions.command("sync")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def regions_sync(as_json: bool) -> None:
    """Sync every trusted region's QR key set and suspended list now; drop regions no longer trusted."""
    with unit_of_work(keys=True) as (svc, session):
        if svc.federation is None:
            raise click.ClickException("this deployment takes part in no federation")
        report = sync_regions(session, svc.federation, now=svc.now(), fresh_directory=True)
    if as_json:
        echo_json(report.to_json())
    else:
        for label, entity_ids in (
            ("changed", report.changed),
            ("unchanged", report.unchanged),
            ("removed", report.removed),
        ):
            for entity_id in entity_ids:
                click.echo(f"{label:<10}{entity_id}")
        for entity_id, why in report.failed.items():
            click.echo(f"{'failed':<10}{entity_id}  {why}")
    if report.failed:
        raise SystemExit(1)


@regions.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def regions_list(as_json: bool) -> None:
    """The synced regions: entity id, region codes, keys, suspended handles and the list's age."""
    with unit_of_work() as (svc, session):
        now = svc.now()
        rows: list[dict[str, Any]] = [
            {
                "entity_id": region.entity_id,
                "name": region.name,
                "region_codes": list(region.region_codes),
                "qr_keys": len(region.keys),
                "suspended": len(region.suspended),
                "list_age_seconds": max(0, int(now - region.suspended_updated_at)),
            }
            for region in load_trusted_regions(session, now=now).regions
        ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        codes = ",".join(row["region_codes"])
        click.echo(
            f"{row['entity_id']}  {codes}  keys={row['qr_keys']}  suspended={row['suspended']}  "
            f"age={row['list_age_seconds']}s  {row['name']}"
        )


# Under ``onecard venues`` until ``onecard.cli`` lists ``regions`` as a group of its own.
venues.add_command(regions)
