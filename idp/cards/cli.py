"""``onecard cards``: issue cards, report them lost, restore, suspend, cancel, show, list; manage the
card-issuer CAs (``onecard cards ca create|list``) and hand out a region's CA certificates
(``onecard cards ca REGION``). Registered on the ``onecard`` group by ``idp.cli``.

Output carries card ids, card numbers and citizen ids only — never a name, an ID number or a PIN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import serialization

from idp.cards.issuance import (
    DEFAULT_REGION,
    create_issuer_ca,
    issue_card,
    issuer_ca_certificates,
    list_issuer_cas,
)
from idp.cards.model import CardStatus
from idp.cards.service import (
    MAX_PAGE_SIZE,
    change_status,
    describe_card,
    get_card_by_reference,
    list_cards,
    parse_status,
)
from idp.cli_support import cli_actor, echo_fields, echo_json, fail, unit_of_work
from sdk.card_file import save_card_file


@click.group()
def cards() -> None:
    """The physical card register and card issuance."""


@cards.command("issue")
@click.option("--citizen", "citizen_id", required=True, help="The citizen's id in the register.")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Card file to write."
)
@click.option("--pin", default=None, help="Initial 6-digit PIN [default: random; it is in the card file].")
@click.option("--protocol", type=click.Choice(["T=0", "T=1"]), default="T=1", show_default=True)
@click.option("--region", default=DEFAULT_REGION, show_default=True, help="GB/T 2260 code of the issuer.")
@click.option("--replace", is_flag=True, help="Cancel the citizen's live card(s) and issue a new one.")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def cards_issue(
    citizen_id: str, out: Path, pin: str | None, protocol: str, region: str, replace: bool, force: bool
) -> None:
    """Issue a card: register it, make its key pair and certificate, write the virtual card file.

    The file holds the card's private key and PIN: a development and test artefact, never for a real citizen.
    """
    if out.exists() and not force:
        fail(f"{out} exists; pass --force to overwrite it")
    if not out.parent.is_dir():
        fail(f"no such directory: {out.parent}")
    with unit_of_work(keys=True) as (svc, session):
        issued = issue_card(
            session,
            svc.keks,
            citizen_id=citizen_id,
            actor=cli_actor(),
            now=svc.now(),
            region=region,
            pin=pin,
            protocol=protocol,  # type: ignore[arg-type]
            replace=replace,
            pii=svc.pii_cipher(),  # EF06: the cardholder's records, as on a real card
        )
        # Written before the unit of work commits: if the file cannot be written, no card is registered.
        save_card_file(out, issued.card_file)
        row = describe_card(issued.card)
    click.echo(
        f"issued card {row['card_id']} (number {row['card_number']}, region {row['region']}, "
        f"expires {row['expires_on']}) to citizen {row['citizen_id']}"
    )
    click.echo(f"card file: {out} ({protocol}); the initial PIN is in it" + ("" if pin else " (random)"))


def _change(reference: str, to: CardStatus) -> None:
    with unit_of_work() as (svc, session):
        card = get_card_by_reference(session, reference)
        change_status(session, card, to, actor=cli_actor(), now=svc.now())
        row = describe_card(card)
    click.echo(f"card {row['card_id']} ({row['card_number']}) is now {row['status']}")


@cards.command("lost")
@click.argument("card")
def cards_lost(card: str) -> None:
    """Report CARD (card id or card number) lost: it can no longer log in."""
    _change(card, CardStatus.LOST)


@cards.command("restore")
@click.argument("card")
def cards_restore(card: str) -> None:
    """Restore a lost or suspended CARD to active."""
    _change(card, CardStatus.ACTIVE)


@cards.command("suspend")
@click.argument("card")
def cards_suspend(card: str) -> None:
    """Suspend CARD."""
    _change(card, CardStatus.SUSPENDED)


@cards.command("cancel")
@click.argument("card")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def cards_cancel(card: str, yes: bool) -> None:
    """Cancel CARD for good (a cancelled card cannot be restored)."""
    if not yes:
        click.confirm(f"Cancel card {card} for good?", abort=True)
    _change(card, CardStatus.CANCELLED)


@cards.command("show")
@click.argument("card")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cards_show(card: str, as_json: bool) -> None:
    """Show CARD (card id or card number)."""
    with unit_of_work() as (_svc, session):
        row = describe_card(get_card_by_reference(session, card))
    if as_json:
        echo_json(row)
    else:
        echo_fields(row)


@cards.command("list")
@click.option("--citizen", "citizen_id", default=None, help="Only this citizen's cards.")
@click.option("--status", default=None, type=click.Choice([s.value for s in CardStatus]))
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(1, MAX_PAGE_SIZE), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cards_list(citizen_id: str | None, status: str | None, offset: int, limit: int, as_json: bool) -> None:
    """List cards, oldest first."""
    with unit_of_work() as (_svc, session):
        total, rows = list_cards(
            session,
            citizen_id=citizen_id,
            status=parse_status(status) if status else None,
            offset=offset,
            limit=limit,
        )
        described = [describe_card(card) for card in rows]
    if as_json:
        echo_json({"total": total, "offset": offset, "cards": described})
        return
    click.echo(f"{total} card(s); showing {offset + 1 if described else offset}–{offset + len(described)}")
    for row in described:
        click.echo(
            f"{row['card_id']}  {row['card_number']}  {row['region']}  {row['status']:<9}  "
            f"{row['citizen_id']}  expires {row['expires_on']}"
        )


class _RegionIsCertGroup(click.Group):
    """A group whose first argument may be a region instead of a subcommand: ``ca REGION`` runs
    ``ca cert REGION``, so the common question "which CA do I trust?" is the shortest command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["cert", *args]
        return super().parse_args(ctx, args)


@cards.group("ca", cls=_RegionIsCertGroup)
def ca() -> None:
    """Card-issuer CAs, one key set per region (card-ca-<region>).

    \b
    onecard cards ca REGION [--out FILE]   the region's CA certificate(s), PEM
    onecard cards ca create --region REGION
    onecard cards ca list
    """


def _describe_ca(record: Any) -> dict[str, Any]:
    return {
        "kid": record.kid,
        "key_set": record.key_set,
        "state": record.state,
        "created_at": record.created_at.isoformat(),
    }


@ca.command("create")
@click.option("--region", required=True, help="GB/T 2260 division code, e.g. 420100.")
def ca_create(region: str) -> None:
    """Create a region's CA: active if the region has none, otherwise pending (trusted, not yet signing)."""
    with unit_of_work(keys=True) as (svc, session):
        record = create_issuer_ca(session, svc.keks, region, actor=cli_actor(), now=svc.now())
        row = _describe_ca(record)
    click.echo(f"created {row['state']} CA {row['kid']} in key set {row['key_set']}")


@ca.command("cert")
@click.argument("region")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the PEM here instead of standard output.",
)
def ca_cert(region: str, out: Path | None) -> None:
    """Write REGION's card-issuer CA certificate as PEM, for bridges, kiosks and test tools.

    While the region's CA is being rotated, every CA certificate verifiers accept is written, the active
    one first. Public data: no key, nothing about any citizen.
    """
    with unit_of_work() as (_svc, session):
        certificates = issuer_ca_certificates(session, region)
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certificates)
    if out is None:
        click.echo(pem, nl=False)
        return
    if not out.parent.is_dir():
        fail(f"no such directory: {out.parent}")
    out.write_text(pem, encoding="ascii")
    click.echo(f"wrote {len(certificates)} CA certificate(s) of region {region} to {out}", err=True)


@ca.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ca_list(as_json: bool) -> None:
    """List the card-issuer CAs of every region."""
    with unit_of_work() as (_svc, session):
        rows = [_describe_ca(record) for record in list_issuer_cas(session)]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['key_set']:<16} {row['kid']:<12} {row['state']:<8} {row['created_at']}")
