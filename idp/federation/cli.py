"""``onecard federation``: the subordinates a trust anchor or intermediate registers, the trust marks it
issues them, and this deployment's federation keys to hand to its superiors. Registered on the ``onecard``
group by ``idp.cli``; every change is an audit event in the command's unit of work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from idp.cli_support import echo_fields, echo_json, record_cli_event, unit_of_work
from idp.federation.errors import NotAFederationAuthorityError
from idp.federation.service import (
    SubordinateRegistration,
    create_subordinate,
    describe_subordinate,
    get_subordinate,
    issue_subordinate_trust_mark,
    list_subordinates,
    remove_subordinate,
)
from idp.services import Services


@click.group()
def federation() -> None:
    """OpenID Federation 1.0: subordinates, trust marks and this deployment's federation keys."""


def _json_file(_ctx: click.Context, param: click.Parameter, value: Path | None) -> Any:
    if value is None:
        return None
    try:
        document = json.loads(value.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise click.BadParameter(f"{value} is not a readable JSON file ({type(exc).__name__})") from exc
    if not isinstance(document, dict):
        raise click.BadParameter(f"{value} must hold a JSON object")
    return document


def _authority(svc: Services) -> None:
    assert svc.federation is not None
    if not svc.federation.config.is_authority:
        raise NotAFederationAuthorityError(
            "set ONECARD_FEDERATION_ROLES to anchor or intermediate to register subordinates"
        )


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@federation.command("add")
@click.argument("entity_id")
@click.option(
    "--jwks", type=_FILE, required=True, callback=_json_file, help="The subordinate's federation JWKS."
)
@click.option("--metadata-policy", type=_FILE, callback=_json_file, help="Its metadata policy (§6.1), JSON.")
@click.option("--metadata", type=_FILE, callback=_json_file, help="Metadata parameters set for it, JSON.")
@click.option(
    "--max-path-length", type=click.IntRange(0, 10), help="Intermediates allowed below it (§6.2.1)."
)
@click.option(
    "--allowed-entity-type", "allowed_entity_types", multiple=True, help="Entity types it may have."
)
@click.option("--trust-mark-type", "trust_mark_types", multiple=True, help="A trust mark it may be issued.")
@click.option("--replace", is_flag=True, help="Update the registration of an entity registered already.")
def add(
    entity_id: str,
    jwks: dict[str, Any],
    metadata_policy: dict[str, Any] | None,
    metadata: dict[str, Any] | None,
    max_path_length: int | None,
    allowed_entity_types: tuple[str, ...],
    trust_mark_types: tuple[str, ...],
    replace: bool,
) -> None:
    """Register ENTITY_ID as a subordinate (a city under its province)."""
    constraints: dict[str, Any] = {}
    if max_path_length is not None:
        constraints["max_path_length"] = max_path_length
    if allowed_entity_types:
        constraints["allowed_entity_types"] = list(allowed_entity_types)
    registration = SubordinateRegistration(
        entity_id=entity_id,
        jwks=jwks,
        metadata_policy=metadata_policy,
        metadata=metadata,
        constraints=constraints or None,
        trust_mark_types=trust_mark_types,
    )
    with unit_of_work(keys=True) as (svc, session):
        _authority(svc)
        assert svc.federation is not None
        row = create_subordinate(session, registration, svc.federation.config, now=svc.now(), replace=replace)
        action = "federation.subordinate.replace" if replace else "federation.subordinate.create"
        record_cli_event(svc, session, action, "federation_subordinate", row.id, entity_id=row.entity_id)
        click.echo(f"{row.id}  {row.entity_id}")


@federation.command("list")
def list_command() -> None:
    """Every registered subordinate."""
    with unit_of_work() as (_svc, session):
        for row in list_subordinates(session):
            marks = ",".join(row.trust_mark_types) or "-"
            click.echo(f"{row.id}  {row.entity_id}  trust marks: {marks}")


@federation.command("show")
@click.argument("subordinate")
@click.option("--json", "as_json", is_flag=True, help="The whole registration as JSON.")
def show(subordinate: str, as_json: bool) -> None:
    """One subordinate, by its id or entity id."""
    with unit_of_work() as (_svc, session):
        described = describe_subordinate(get_subordinate(session, subordinate))
    if as_json:
        echo_json(described)
        return
    echo_fields(
        {
            "id": described["id"],
            "entity_id": described["entity_id"],
            "keys": [jwk.get("kid", "?") for jwk in described["jwks"].get("keys", [])],
            "metadata_policy": ", ".join(sorted(described["metadata_policy"] or {})) or "-",
            "constraints": json.dumps(described["constraints"]) if described["constraints"] else "-",
            "trust_mark_types": described["trust_mark_types"],
            "created_at": described["created_at"],
            "updated_at": described["updated_at"],
        }
    )


@federation.command("remove")
@click.argument("subordinate")
def remove(subordinate: str) -> None:
    """Remove a subordinate: ``fetch`` answers not_found for it at once, and chains through it fail once
    resolvers' cached statements expire."""
    with unit_of_work() as (svc, session):
        row = remove_subordinate(session, subordinate)
        record_cli_event(
            svc,
            session,
            "federation.subordinate.remove",
            "federation_subordinate",
            row.id,
            entity_id=row.entity_id,
        )
        click.echo(f"removed {row.entity_id}")


@federation.command("issue-trust-mark")
@click.argument("subordinate")
@click.option("--type", "trust_mark_type", help="The trust mark type; default: the loa:high trust mark.")
@click.option(
    "--lifetime-days", type=click.IntRange(1, 3650), help="Default: ONECARD_FEDERATION_TRUST_MARK_TTL."
)
def issue_trust_mark_command(
    subordinate: str, trust_mark_type: str | None, lifetime_days: int | None
) -> None:
    """Issue a trust mark to a registered subordinate and print it (a JWT for its trust marks file)."""
    with unit_of_work(keys=True) as (svc, session):
        _authority(svc)
        assert svc.federation is not None
        config = svc.federation.config
        kind = trust_mark_type or config.loa_high_trust_mark
        now = svc.now()
        token = issue_subordinate_trust_mark(
            session,
            config,
            subordinate,
            kind,
            key=svc.federation.signing_keys(now=now).signing_key(),
            now=now,
            lifetime=lifetime_days * 86400 if lifetime_days else None,
        )
        row = get_subordinate(session, subordinate)
        record_cli_event(
            svc,
            session,
            "federation.trust_mark.issue",
            "federation_subordinate",
            row.id,
            trust_mark_type=kind,
        )
    click.echo(token)


@federation.command("jwks")
def jwks() -> None:
    """This deployment's federation keys (public), for its superiors to register and, for a trust anchor,
    for every deployment that trusts it (ONECARD_FEDERATION_TRUST_ANCHORS_FILE)."""
    with unit_of_work(keys=True) as (svc, _session):
        assert svc.federation is not None
        keys = svc.federation.signing_keys(now=svc.now())
    echo_json({"keys": [key.public_jwk() for key in keys]})


@federation.command("regions")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def regions(as_json: bool) -> None:
    """The other regions this deployment trusts now: its region directory, every chain resolved afresh
    through its trust anchors (what the server has at its next directory rebuild)."""
    with unit_of_work() as (svc, _session):
        assert svc.federation is not None
        found = svc.federation.directory.regions(now=svc.now())
    described = [
        {
            "entity_id": region.entity_id,
            "anchor": region.anchor,
            "name": region.name,
            "region_codes": list(region.region_codes),
            "trust_mark_types": sorted(region.trust_mark_types),
            "expires_at": region.expires_at,
        }
        for region in found
    ]
    if as_json:
        echo_json(described)
        return
    for region in found:
        click.echo(f"{region.entity_id}  regions {','.join(region.region_codes)}  via {region.anchor}")
