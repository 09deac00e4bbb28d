"""``onecard venues``: add, list, show, rate-limit and remove venues (scenario operators) and their gate
credentials.

Registered on the ``onecard`` command through the ``onecard.cli`` entry point group, which ``idp.cli`` loads
(idp never imports the wallet). Uses the plumbing every command group shares, ``idp.cli_support`` — the unit
of work, output helpers, the audit actor. Output names venues, categories and client ids; the one secret
printed is a new venue's client secret, once.
"""

from __future__ import annotations

import click

from idp.cli_support import cli_actor, echo_fields, echo_json, unit_of_work
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
