"""``onecard halls``: halls, their services, counters, counter devices and kiosks, and the staff override for
calling numbers at a counter (a counter calls with its own registered device, DESIGN.md §14; these commands
are for staff at the server's console when it cannot, and are audited as an override).

Registered on the ``onecard`` command through the ``onecard.cli`` entry point group (idp never imports the
halls). Uses the plumbing every command group shares, ``idp.cli_support``: the unit of work (errors become
one line and exit status 1), output helpers, the audit actor. The one secret printed is a new hall
scanner's client secret, once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from halls.queue.service import call_next, finish_current
from halls.register.service import (
    add_counter,
    add_service,
    create_hall,
    describe_hall,
    describe_kiosk,
    get_counter,
    get_hall,
    list_halls,
    register_counter_device,
    register_kiosk,
    remove_counter_device,
    remove_hall,
    remove_kiosk,
    replace_counter_device_keys,
    replace_kiosk_keys,
)
from idp.cli_support import cli_actor, echo_fields, echo_json, unit_of_work


@click.group()
def halls() -> None:
    """Service halls: their services (业务), counters (窗口) and queue numbers (取号)."""


@halls.command("add")
@click.option("--name", required=True, help="The hall's name, as its signs say it.")
@click.option("--address", default="", help="Its address.")
@click.option("--id", "hall_id", default=None, help="The hall id [default: random].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def halls_add(name: str, address: str, hall_id: str | None, as_json: bool) -> None:
    """Register a hall and print its scanner's credentials (the secret is shown only now)."""
    with unit_of_work() as (svc, session):
        created = create_hall(
            session, name=name, address=address, hall_id=hall_id, actor=cli_actor(), now=svc.now()
        )
        fields = describe_hall(session, created.hall)
    fields["scanner_client_secret"] = created.scanner_client_secret
    if as_json:
        echo_json(fields)
    else:
        echo_fields(fields)
        click.echo("Store the scanner's client secret now: it is not shown again.", err=True)


@halls.command("list")
def halls_list() -> None:
    """List the live halls."""
    with unit_of_work() as (_svc, session):
        for hall in list_halls(session):
            click.echo(f"{hall.id}  {hall.name}")


@halls.command("show")
@click.argument("hall_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def halls_show(hall_id: str, as_json: bool) -> None:
    """Show a hall with its services, counters and kiosks."""
    with unit_of_work() as (_svc, session):
        fields = describe_hall(session, get_hall(session, hall_id))
    if as_json:
        echo_json(fields)
    else:
        echo_fields(fields)


@halls.command("remove")
@click.argument("hall_id")
def halls_remove(hall_id: str) -> None:
    """Remove a hall: its scanner's credentials stop working at once."""
    with unit_of_work() as (svc, session):
        remove_hall(session, hall_id, actor=cli_actor(), now=svc.now())
    click.echo(f"removed  hall {hall_id}")


@halls.command("add-service")
@click.argument("hall_id")
@click.option("--code", required=True, help="The service's code, e.g. card-replacement.")
@click.option("--name", required=True, help="Its name in Chinese, e.g. 社保卡补换.")
@click.option("--name-en", default="", help="Its name in English.")
@click.option("--prefix", required=True, help="The letter its numbers start with, e.g. A.")
def halls_add_service(hall_id: str, code: str, name: str, name_en: str, prefix: str) -> None:
    """Add a service (业务) to a hall."""
    with unit_of_work() as (svc, session):
        add_service(
            session,
            get_hall(session, hall_id),
            code=code,
            name=name,
            name_en=name_en,
            prefix=prefix,
            actor=cli_actor(),
            now=svc.now(),
        )
    click.echo(f"added  service {code} to {hall_id}")


@halls.command("add-counter")
@click.argument("hall_id")
@click.option("--code", required=True, help="The counter's code, e.g. w3.")
@click.option("--name", required=True, help="Its name, e.g. 3号窗口.")
@click.option("--service", "services", multiple=True, required=True, help="A service it calls (repeat).")
def halls_add_counter(hall_id: str, code: str, name: str, services: tuple[str, ...]) -> None:
    """Add a counter (窗口) calling the numbers of some services."""
    with unit_of_work() as (svc, session):
        add_counter(
            session,
            get_hall(session, hall_id),
            code=code,
            name=name,
            services=list(services),
            actor=cli_actor(),
            now=svc.now(),
        )
    click.echo(f"added  counter {code} to {hall_id}")


def _read_jwks(_ctx: click.Context, _param: click.Parameter, value: Path) -> Any:
    try:
        return json.loads(value.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise click.BadParameter(f"{value}: not a JSON file ({exc})") from exc


_JWKS_OPTION = click.option(
    "--jwks",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=_read_jwks,
    help="A JSON file with the device's public JWK Set (its private key stays on the device).",
)


@halls.command("register-device")
@click.argument("hall_id")
@click.argument("counter")
@_JWKS_OPTION
def halls_register_device(hall_id: str, counter: str, jwks: Any) -> None:
    """Register a counter's device (private_key_jwt, scope hall:counter) and print its client id."""
    with unit_of_work() as (svc, session):
        client = register_counter_device(
            session, get_hall(session, hall_id), counter, jwks=jwks, actor=cli_actor(), now=svc.now()
        )
        client_id = client.client_id
    click.echo(f"registered  device {client_id} for {hall_id}/{counter}")


@halls.command("replace-device-keys")
@click.argument("hall_id")
@click.argument("counter")
@_JWKS_OPTION
def halls_replace_device_keys(hall_id: str, counter: str, jwks: Any) -> None:
    """Replace the keys of a counter's device (key rotation)."""
    with unit_of_work() as (svc, session):
        client = replace_counter_device_keys(
            session, get_hall(session, hall_id), counter, jwks=jwks, actor=cli_actor(), now=svc.now()
        )
        client_id = client.client_id
    click.echo(f"replaced  keys of device {client_id}")


@halls.command("remove-device")
@click.argument("hall_id")
@click.argument("counter")
def halls_remove_device(hall_id: str, counter: str) -> None:
    """Remove a counter's device: its credentials stop working at once."""
    with unit_of_work() as (svc, session):
        remove_counter_device(session, get_hall(session, hall_id), counter, actor=cli_actor(), now=svc.now())
    click.echo(f"removed  device of {hall_id}/{counter}")


@halls.command("register-kiosk")
@click.argument("hall_id")
@click.option("--name", required=True, help="The kiosk's name in the hall, e.g. 自助机1.")
@_JWKS_OPTION
@click.option(
    "--bridge-url",
    default=None,
    help="Where the kiosk's reader bridge listens, http://127.0.0.1:PORT [default: ONECARD_CARD_BRIDGE_URL].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def halls_register_kiosk(hall_id: str, name: str, jwks: Any, bridge_url: str | None, as_json: bool) -> None:
    """Register a kiosk terminal of a hall (private_key_jwt, kind kiosk) and print its client id."""
    with unit_of_work() as (svc, session):
        kiosk = register_kiosk(
            session,
            get_hall(session, hall_id),
            name=name,
            jwks=jwks,
            bridge_url=bridge_url,
            issuer=svc.settings.issuer,
            actor=cli_actor(),
            now=svc.now(),
        )
        fields = describe_kiosk(kiosk)
    if as_json:
        echo_json(fields)
    else:
        click.echo(f"registered  kiosk {fields['client_id']} for {hall_id}")


@halls.command("replace-kiosk-keys")
@click.argument("hall_id")
@click.argument("client_id")
@_JWKS_OPTION
def halls_replace_kiosk_keys(hall_id: str, client_id: str, jwks: Any) -> None:
    """Replace the keys of a kiosk (key rotation)."""
    with unit_of_work() as (svc, session):
        replace_kiosk_keys(
            session, get_hall(session, hall_id), client_id, jwks=jwks, actor=cli_actor(), now=svc.now()
        )
    click.echo(f"replaced  keys of kiosk {client_id}")


@halls.command("remove-kiosk")
@click.argument("hall_id")
@click.argument("client_id")
def halls_remove_kiosk(hall_id: str, client_id: str) -> None:
    """Remove a kiosk: its credentials stop working at once."""
    with unit_of_work() as (svc, session):
        remove_kiosk(session, get_hall(session, hall_id), client_id, actor=cli_actor(), now=svc.now())
    click.echo(f"removed  kiosk {client_id} of {hall_id}")


@halls.command("call-next")
@click.argument("hall_id")
@click.argument("counter")
def halls_call_next(hall_id: str, counter: str) -> None:
    """Staff override: call the next number at a counter without its device (audited as an override)."""
    with unit_of_work() as (svc, session):
        called = call_next(
            session,
            get_counter(session, get_hall(session, hall_id), counter),
            actor=cli_actor(),
            device_client_id=None,
            now=svc.now(),
        )
    click.echo(f"called  {called.number}  {called.service_name}" if called else "Nobody is waiting.")


@halls.command("finish")
@click.argument("hall_id")
@click.argument("counter")
@click.option("--no-show", is_flag=True, help="The citizen did not come: not served.")
def halls_finish(hall_id: str, counter: str, no_show: bool) -> None:
    """Staff override: mark the number the counter called as served (or, with --no-show, not there)."""
    status = "no_show" if no_show else "served"
    with unit_of_work() as (svc, session):
        finished = finish_current(
            session,
            get_counter(session, get_hall(session, hall_id), counter),
            status,
            actor=cli_actor(),
            device_client_id=None,
            now=svc.now(),
        )
    click.echo(f"{status}  {finished.number}")
