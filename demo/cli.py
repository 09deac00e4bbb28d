"""``onecard demo``: seed the demo data, or run the complete demo (``make run``).

Registered on the ``onecard`` command through the ``onecard.cli`` entry point group, which ``idp.cli`` loads
(idp never imports the demo). Development only: both commands refuse to run with ONECARD_ENV=production,
because the demo's secrets are published (``demo.data``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from time import monotonic as time_now
from typing import NoReturn

import click
from sqlalchemy.orm import Session

from demo import regions as demo_regions
from demo import runner
from demo.data import DEMO_CITIZENS, DEMO_CLIENTS
from idp import dbadmin
from idp.app import create_app, initialise_keys
from idp.bearer_secrets import hash_bearer_secret
from idp.citizens.idnumber import mask_id_number
from idp.citizens.service import create_citizen, find_by_id_number
from idp.cli_support import cli_actor, fail, record_cli_event, unit_of_work
from idp.clients.service import ClientRegistration, create_client, find_client
from idp.config import Settings, load_settings
from idp.services import Services


@click.group()
def demo() -> None:
    """Demo data for development."""


def _seed_client(svc: Services, session: Session, registration: ClientRegistration, secret: str) -> bool:
    """Register a demo client with its fixed secret; False when it is there already."""
    assert registration.client_id is not None
    if find_client(session, registration.client_id) is not None:
        return False
    client, _random_secret = create_client(session, registration, now=svc.now())
    # create_client hands out a random secret; the demo's is fixed and documented, so store its hash instead.
    client.client_secret_hash = hash_bearer_secret(secret)
    session.flush()
    record_cli_event(svc, session, "client.create", "client", client.client_id, kind=client.kind, demo=True)
    return True


def _seed_demo_data(svc: Services, session: Session) -> tuple[list[str], list[str]]:
    """The demo clients and citizens, created where missing: (output lines, the citizens' ids)."""
    lines = []
    citizen_ids = []
    for registration, secret in DEMO_CLIENTS:
        created = _seed_client(svc, session, registration, secret)
        state = "created" if created else "exists "
        lines.append(f"{state}  client {registration.client_id:<12} secret {secret}")
    cipher = svc.pii_cipher()
    for name, id_number in DEMO_CITIZENS:
        citizen = find_by_id_number(session, cipher, id_number)
        state = "exists "
        if citizen is None:
            citizen = create_citizen(session, cipher, name, id_number, now=svc.now())
            record_cli_event(svc, session, "citizen.create", "citizen", citizen.id, demo=True)
            state = "created"
        citizen_ids.append(citizen.id)
        lines.append(f"{state}  citizen {citizen.id} {mask_id_number(id_number)}")
    return lines, citizen_ids


def _refuse_production(settings: Settings) -> None:
    if settings.is_production:
        fail("demo data has fixed, published secrets; refused with ONECARD_ENV=production")


@demo.command("seed")
def demo_seed() -> None:
    """Create the demo clients and citizens (again and again: what exists is left alone)."""
    _refuse_production(load_settings())
    with unit_of_work(keys=True) as (svc, session):
        lines, _citizen_ids = _seed_demo_data(svc, session)
    for line in lines:
        click.echo(line)
    click.echo("The demo secrets are development values: never use them outside a laptop.", err=True)


def _run_regions(ctx: click.Context, directory: Path, no_open_dialog: bool) -> NoReturn:
    """``--regions 2``: the two-region demo of ``demo.regions`` (its own fixed ports and databases)."""
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("idp_port", "portal_port", "bridge_port", "kiosk_port")
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise click.UsageError(f"--regions runs on its own ports; leave out {', '.join(given)}")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        status = demo_regions.run_demo(directory, open_pin_dialog=not no_open_dialog, echo=click.echo)
    except runner.DemoError as error:
        fail(str(error))
    sys.exit(status)


@demo.command("run")
@click.option("--idp-port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--portal-port", default=8001, show_default=True, type=click.IntRange(1, 65535))
@click.option("--bridge-port", default=47400, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--kiosk-port",
    default=runner.DEFAULT_KIOSK_PORT,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The demo kiosk's own bridge (kiosk profile).",
)
@click.option(
    "--dir",
    "directory",
    default="var",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo card, the venue's credentials, the logs and the database are kept.",
)
@click.option("--no-open-dialog", is_flag=True, help="The bridge does not open its PIN window by itself.")
@click.option(
    "--regions",
    type=click.IntRange(2, 2),
    default=None,
    help="2: a trust anchor and two regional OneCards instead, on their own ports (docs/federation.md).",
)
@click.pass_context
def demo_run(
    ctx: click.Context,
    idp_port: int,
    portal_port: int,
    bridge_port: int,
    kiosk_port: int,
    directory: Path,
    no_open_dialog: bool,
    regions: int | None,
) -> None:
    """The complete demo: migrate and seed, then run the IdP with the wallet, the example portal and the
    reader bridge on a virtual card until Ctrl-C.

    The IdP answers as http://127.0.0.1:IDP_PORT and as http://localhost:IDP_PORT; the portal, the wallet
    and the bridge use localhost (browsers refuse passkeys on an IP address). ONECARD_ISSUER, when set,
    is used alone instead.
    """
    settings = load_settings()
    _refuse_production(settings)
    if regions is not None:
        _run_regions(ctx, directory, no_open_dialog)
    if len({idp_port, portal_port, bridge_port, kiosk_port}) != 4:
        raise click.UsageError("the IdP, portal, bridge and kiosk ports must differ")
    directory.mkdir(parents=True, exist_ok=True)
    layout = runner.DemoLayout(
        directory=directory,
        idp_port=idp_port,
        portal_port=portal_port,
        bridge_port=bridge_port,
        kiosk_port=kiosk_port,
        issuer=os.environ.get("ONECARD_ISSUER", ""),
    )
    settings = settings.replace(database_url=runner.demo_database_url(settings.database_url, layout))
    started = time_now()
    dbadmin.upgrade(settings.database_url)
    app = create_app(settings.replace(issuer=layout.public_issuer))
    svc: Services = app.extensions["onecard"]
    try:
        initialise_keys(app)
        with svc.database.session() as session:
            lines, citizen_ids = _seed_demo_data(svc, session)
            card = runner.ensure_demo_card(svc, session, citizen_ids[0], layout.card_file, actor=cli_actor())
            lines.append(card)
            kiosk_card = runner.ensure_demo_card(
                svc, session, citizen_ids[1], layout.kiosk_card_file, actor=cli_actor()
            )
            lines.append(kiosk_card)
            lines.append(runner.ensure_demo_portal_uris(svc, session, layout, actor=cli_actor()))
    finally:
        svc.database.dispose()
    env = {**os.environ, "ONECARD_DATABASE_URL": settings.database_url}  # the children use the same one
    try:
        lines.append(runner.ensure_demo_venue(layout, env))
        hall, kiosks = runner.ensure_demo_hall(layout, env)
        lines.append(hall)
        lines.append(runner.ensure_demo_kiosk(layout, env, kiosks))
        lines.append(runner.ensure_demo_catalogue(env))
        click.echo(f"seeded in {time_now() - started:.1f} s; starting the IdP, the portal and the bridges")
        status = runner.run_demo(layout, env, lines, open_pin_dialog=not no_open_dialog, echo=click.echo)
    except runner.DemoError as error:
        fail(str(error))
    sys.exit(status)
