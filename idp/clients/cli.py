"""``onecard clients``: register, list, show and remove clients — portals, operators and venues. Registered
on the ``onecard`` group by ``idp.cli``. The one secret printed is a new client's, once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from idp.cli_support import echo_fields, echo_json, record_cli_event, unit_of_work
from idp.clients.service import (
    AUTH_METHODS,
    CLIENT_KINDS,
    ID_TOKEN_ALGS,
    SUBJECT_TYPES,
    ClientRegistration,
    create_client,
    describe_client,
    get_client,
    list_clients,
    remove_client,
    replace_client_jwks,
)


@click.group()
def clients() -> None:
    """Registered clients: portals, operators and venues."""


def _read_jwks(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        jwks = json.loads(value.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise click.BadParameter(f"{value} is not a readable JSON file ({type(exc).__name__})") from exc
    if not isinstance(jwks, dict):
        raise click.BadParameter(f"{value} must hold a JWK Set object")
    return jwks


@clients.command("add")
@click.option("--name", required=True, help="Display name shown to citizens on the consent page.")
@click.option("--kind", type=click.Choice(CLIENT_KINDS), default="portal", show_default=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI (repeatable).")
@click.option(
    "--post-logout-redirect-uri",
    "post_logout_redirect_uris",
    multiple=True,
    help="Exact post-logout redirect URI (repeatable).",
)
@click.option("--scope", default="openid profile", show_default=True, help="Space-separated scopes.")
@click.option(
    "--auth-method",
    type=click.Choice(AUTH_METHODS),
    default="client_secret_basic",
    show_default=True,
    help="Token endpoint authentication method.",
)
@click.option(
    "--jwks",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_read_jwks,
    help="JWK Set file with the client's public keys (private_key_jwt).",
)
@click.option("--subject-type", type=click.Choice(SUBJECT_TYPES), default="pairwise", show_default=True)
@click.option("--sector-identifier", default=None, help="Pairwise sector (default: the redirect URIs' host).")
@click.option(
    "--alg",
    type=click.Choice(ID_TOKEN_ALGS),
    default=None,
    help="ID token signing algorithm (default: ES256 for a FAPI 2.0 client, RS256 for the others).",
)
@click.option("--first-party", is_flag=True, help="Skip the consent page for this client.")
@click.option("--id-number-allowed", is_flag=True, help="Release the full ID number under the idcard scope.")
@click.option("--backchannel-logout-uri", default=None, help="Back-channel logout endpoint.")
@click.option("--client-id", default=None, help="Choose the client id (default: a random oc_… id).")
@click.option(
    "--fapi2",
    "fapi2_security_profile",
    is_flag=True,
    help="Enforce the FAPI 2.0 Security Profile (needs --auth-method private_key_jwt).",
)
@click.option("--require-par", is_flag=True, help="Only pushed authorization requests (RFC 9126).")
@click.option("--require-signed-request-object", is_flag=True, help="Only signed request objects (RFC 9101).")
@click.option("--dpop", "dpop_bound_access_tokens", is_flag=True, help="Only DPoP-bound tokens (RFC 9449).")
@click.option("--json", "as_json", is_flag=True, help="Print the registration as JSON.")
def clients_add(
    name: str,
    kind: str,
    redirect_uris: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...],
    scope: str,
    auth_method: str,
    jwks: dict[str, Any] | None,
    subject_type: str,
    sector_identifier: str | None,
    alg: str | None,
    first_party: bool,
    id_number_allowed: bool,
    backchannel_logout_uri: str | None,
    client_id: str | None,
    fapi2_security_profile: bool,
    require_par: bool,
    require_signed_request_object: bool,
    dpop_bound_access_tokens: bool,
    as_json: bool,
) -> None:
    """Register a client and print its id and secret (the secret is shown only this once)."""
    registration = ClientRegistration(
        name=name,
        kind=kind,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris,
        scope=scope,
        token_endpoint_auth_method=auth_method,
        jwks=jwks,
        subject_type=subject_type,
        sector_identifier=sector_identifier,
        id_token_signed_response_alg=alg,
        first_party=first_party,
        id_number_allowed=id_number_allowed,
        backchannel_logout_uri=backchannel_logout_uri,
        client_id=client_id,
        fapi2_security_profile=fapi2_security_profile,
        require_pushed_authorization_requests=require_par,
        require_signed_request_object=require_signed_request_object,
        dpop_bound_access_tokens=dpop_bound_access_tokens,
    )
    with unit_of_work() as (svc, session):
        client, secret = create_client(session, registration, now=svc.now())
        record_cli_event(svc, session, "client.create", "client", client.client_id, kind=client.kind)
        description = describe_client(client)
    if as_json:
        echo_json({**description, "client_secret": secret})
    else:
        click.echo(f"client_id      {description['client_id']}")
        if secret:
            click.echo(f"client_secret  {secret}")
    if secret:
        click.echo(
            "Store the client secret now: it is shown only this once and cannot be shown again.", err=True
        )


@clients.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def clients_list(as_json: bool) -> None:
    """List registered clients."""
    with unit_of_work() as (_svc, session):
        described = [describe_client(client) for client in list_clients(session)]
    if as_json:
        echo_json(described)
        return
    if not described:
        click.echo("no clients registered")
        return
    width = max(len(item["client_id"]) for item in described)
    for item in described:
        click.echo(
            f"{item['client_id'].ljust(width)}  {item['kind']:<8}  {item['token_endpoint_auth_method']:<19}"
            f"  {item['name']}"
        )


@clients.command("show")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def clients_show(client_id: str, as_json: bool) -> None:
    """Show one client's registration."""
    with unit_of_work() as (_svc, session):
        described = describe_client(get_client(session, client_id))
    if as_json:
        echo_json(described)
    else:
        echo_fields(described)


@clients.command("replace-keys")
@click.argument("client_id")
@click.option(
    "--jwks",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_read_jwks,
    help="JWK Set file with the client's new public keys (keep the old one in it while the client switches).",
)
def clients_replace_keys(client_id: str, jwks: dict[str, Any]) -> None:
    """Rotate a private_key_jwt client's keys (a kiosk terminal, a counter device, a FAPI portal)."""
    with unit_of_work() as (svc, session):
        replace_client_jwks(session, client_id, jwks)
        record_cli_event(svc, session, "client.replace_keys", "client", client_id)
    click.echo(f"replaced the keys of client {client_id}")


@clients.command("remove")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clients_remove(client_id: str, yes: bool) -> None:
    """Remove a client: it can no longer log anyone in or get tokens."""
    if not yes:
        with unit_of_work() as (_svc, session):
            client_name = get_client(session, client_id).name
        # Asked outside any transaction: a prompt must not hold the database while the operator reads it.
        click.confirm(f"Remove client {client_id} ({client_name})?", abort=True)
    with unit_of_work() as (svc, session):
        remove_client(session, client_id)
        record_cli_event(svc, session, "client.remove", "client", client_id)
    click.echo(f"removed client {client_id}")
