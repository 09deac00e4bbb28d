"""The ``onecard`` command: serve, migrate, register clients, manage the citizen register, seed demo data.

Every command reads the same settings as the server (``ONECARD_*`` over ``ONECARD_CONFIG_FILE``,
``idp.config``), builds the application with ``create_app`` and works through its services, so what the
command does is what the server would do. Changes are audit events with the actor ``cli:<os user>``.

Errors from OneCard, the configuration, the database or bad input end as one line on stderr and exit
status 1 (2 for a usage mistake) — never a traceback. Output never carries PII: ID numbers are masked and
names are not shown (DESIGN.md §2); the one secret printed is a new client's, once.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from time import monotonic as time_now
from typing import Any, NoReturn

import click
from flask import Flask
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from idp import dbadmin
from idp.app import create_app, initialise_keys
from idp.audit.service import record_event
from idp.bearer_secrets import hash_bearer_secret
from idp.citizens.idnumber import check_character, mask_id_number
from idp.citizens.importer import ImportStage, format_problems, import_citizens
from idp.citizens.service import (
    MAX_PAGE_SIZE,
    count_citizens,
    create_citizen,
    decrypt_profile,
    find_by_id_number,
    get_citizen,
    list_citizens,
)
from idp.clients.service import (
    AUTH_METHODS,
    CLIENT_KINDS,
    ID_TOKEN_ALGS,
    SUBJECT_TYPES,
    ClientRegistration,
    create_client,
    describe_client,
    find_client,
    get_client,
    list_clients,
    remove_client,
)
from idp.config import ConfigError, Settings, load_settings
from idp.services import Services
from sdk.errors import OneCardError

# Demo data (`onecard demo seed`) ------------------------------------------------------------------------
# Fixed, documented development secrets so the README's demo portal works out of the box. They carry the
# client-secret prefix like every other secret, and `demo seed` refuses to run with ONECARD_ENV=production.
DEMO_PORTAL_SECRET = "occs_demo-portal-secret"  # public on purpose (development only)
DEMO_ADMIN_SECRET = "occs_demo-admin-secret"  # public on purpose (development only)
DEMO_PORTAL = ClientRegistration(
    name="OneCard demo portal",
    kind="portal",
    redirect_uris=("http://127.0.0.1:8001/callback",),
    post_logout_redirect_uris=("http://127.0.0.1:8001/",),
    scope="openid profile realname idcard offline_access",  # client_secret_basic, the default
    # It asks for `idcard`, so it is registered to receive the full number (DESIGN.md §3).
    id_number_allowed=True,
    backchannel_logout_uri="http://127.0.0.1:8001/backchannel-logout",
    client_id="demo-portal",
)
DEMO_ADMIN = ClientRegistration(
    name="OneCard demo admin",
    kind="operator",
    scope="admin",  # client_credentials with client_secret_basic
    client_id="demo-admin",
)
DEMO_CLIENTS = ((DEMO_PORTAL, DEMO_PORTAL_SECRET), (DEMO_ADMIN, DEMO_ADMIN_SECRET))


def _with_check_character(first17: str) -> str:
    return first17 + check_character(first17)


# Invented people: the region codes are real (Beijing Xicheng, Shenzhen Futian), the rest made up. The 17th
# digit's parity is the sex: 张三 odd (male), 王芳 even (female).
DEMO_CITIZENS = (
    ("张三", _with_check_character("11010219491231001")),
    ("王芳", _with_check_character("44030419900307102")),
)


# Error handling ----------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe_error(error: BaseException) -> str:
    """A one-line message for an error the operator can act on (never a name or an ID number)."""
    if isinstance(error, OneCardError):
        description = str(error.description)
        detail = error.detail
        if detail and detail not in description:
            return _one_line(f"{description.rstrip('.')}: {detail}")
        return _one_line(description)
    if isinstance(error, ConfigError):
        return _one_line(f"configuration: {error}")
    if isinstance(error, DBAPIError) and error.orig is not None:
        # The driver's own message only: SQLAlchemy's adds the statement and its parameters (ciphertexts).
        lines = str(error.orig).strip().splitlines() or [type(error.orig).__name__]
        return _one_line(f"database: {lines[0]}")
    if isinstance(error, SQLAlchemyError):
        lines = str(error).strip().splitlines() or [type(error).__name__]
        return _one_line(f"database: {lines[0]}")
    if isinstance(error, OSError):
        if error.strerror and error.filename:
            return _one_line(f"{error.strerror}: {error.filename}")
        return _one_line(str(error) or type(error).__name__)
    return _one_line(str(error) or type(error).__name__)


HANDLED_ERRORS = (OneCardError, ConfigError, dbadmin.MigrationError, SQLAlchemyError, OSError)


class _OneCardGroup(click.Group):
    """Turns every expected error of any subcommand into click's one-line ``Error: …`` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HANDLED_ERRORS as error:
            raise click.ClickException(describe_error(error)) from error


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


# Shared plumbing ---------------------------------------------------------------------------------------


def cli_actor() -> str:
    """``cli:<os user>`` for audit events: who ran the command on this machine."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers run with arbitrary uids)
        user = f"uid{os.getuid()}"
    user = "".join(char for char in user if char.isprintable())[:100] or "unknown"
    return f"cli:{user}"


def _open_app(*, keys: bool) -> tuple[Flask, Services]:
    """The application for the current settings, on a database at the head revision.

    ``keys`` creates the first key of any key set that has none: reading or writing PII needs the data keys.
    The database's connections are closed when the command ends.
    """
    settings = load_settings()
    dbadmin.require_current(settings.database_url)
    app = create_app(settings)
    svc: Services = app.extensions["onecard"]
    click.get_current_context().call_on_close(svc.database.dispose)
    if keys:
        initialise_keys(app)
    return app, svc


@contextmanager
def _unit_of_work(*, keys: bool = False) -> Iterator[tuple[Services, Session]]:
    _app, svc = _open_app(keys=keys)
    with svc.database.session() as session:
        yield svc, session


def _audit(
    svc: Services, session: Session, action: str, target_type: str, target_id: str, **details: Any
) -> None:
    record_event(
        session,
        actor=cli_actor(),
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
        now=svc.now(),
    )


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _echo_fields(fields: dict[str, Any]) -> None:
    width = max(len(key) for key in fields)
    for key, value in fields.items():
        if isinstance(value, list | tuple):
            value = ", ".join(str(item) for item in value) or "-"
        elif value is None or value == "":
            value = "-"
        click.echo(f"{key.ljust(width)}  {value}")


# The command group -------------------------------------------------------------------------------------


@click.group(cls=_OneCardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="onecard")
def cli() -> None:
    """OneCard: the OpenID Connect provider for the social security card.

    Settings come from ONECARD_* environment variables and the TOML file named by ONECARD_CONFIG_FILE.
    """


def main() -> None:
    """The ``onecard`` console script."""
    cli(prog_name="onecard")


# serve -------------------------------------------------------------------------------------------------


def _default_workers() -> int:
    # Gunicorn's rule of thumb (2 × cores + 1), capped: each worker holds its own database pool.
    return min(2 * (os.cpu_count() or 1) + 1, 8)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Gunicorn worker processes [default: 2 × CPUs + 1, at most 8].",
)
@click.option("--dev", is_flag=True, help="Werkzeug's single-process development server instead of gunicorn.")
def serve(host: str, port: int, workers: int | None, dev: bool) -> None:
    """Migrate the database, create any missing keys, and serve the application."""
    settings = load_settings()
    if dev and settings.is_production:
        raise click.UsageError("--dev is the development server; production is served by gunicorn")
    dbadmin.upgrade(settings.database_url)
    app = create_app(settings)
    svc: Services = app.extensions["onecard"]
    created = initialise_keys(app)
    if created:
        click.echo(f"created the first key of: {', '.join(created)}", err=True)
    # Close the connections start-up used: forked workers must not share the parent's sockets.
    svc.database.dispose()
    where = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    if dev:
        from werkzeug.serving import run_simple

        click.echo(f"OneCard {settings.issuer} (development server) on {where}", err=True)
        run_simple(host, port, app, use_reloader=False, use_debugger=False, threaded=True)
        return
    count = workers or _default_workers()
    click.echo(f"OneCard {settings.issuer} on {where} with {count} gunicorn worker(s)", err=True)
    _run_gunicorn(app, bind=where.removeprefix("http://"), workers=count)


def _run_gunicorn(app: Flask, *, bind: str, workers: int) -> None:
    """Run ``app`` under gunicorn in this process: the master forks ``workers`` copies of it."""
    from gunicorn.app.base import BaseApplication

    class OneCardApplication(BaseApplication):  # type: ignore[misc]
        def __init__(self) -> None:
            self.options = {
                "bind": bind,
                "workers": workers,
                "proc_name": "onecard",
                # No access log: request lines carry query strings (login_hint, state) that may hold PII.
                "accesslog": None,
                "errorlog": "-",
                "post_fork": _dispose_after_fork(app),
            }
            super().__init__()

        def load_config(self) -> None:
            for key, value in self.options.items():
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:
                # Gunicorn ≥ 25.1 opens a control socket at one fixed path per user; two nodes on one machine
                # (the multi-node tests) would take it from each other. OneCard is managed by signals.
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Flask:
            return app

    OneCardApplication().run()


def _dispose_after_fork(app: Flask) -> Callable[[Any, Any], None]:
    def post_fork(_server: Any, _worker: Any) -> None:
        # Belt and braces: a connection the master opened after start-up must stay the master's.
        app.extensions["onecard"].database.engine.dispose(close=False)

    return post_fork


# db ----------------------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database migrations (Alembic)."""


def _revision_text(revisions: tuple[str, ...]) -> str:
    if not revisions:
        return "empty (never migrated)"
    heads = dbadmin.head_revisions()
    shown = ", ".join(revisions)
    return f"{shown} (head)" if set(revisions) == set(heads) else f"{shown} (head is {', '.join(heads)})"


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    url = load_settings().database_url
    dbadmin.upgrade(url, revision)
    click.echo(f"database at {_revision_text(dbadmin.current(url))}")


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def db_downgrade(revision: str, yes: bool) -> None:
    """Migrate the database down to REVISION ("base" drops every table and its data)."""
    url = load_settings().database_url
    if not yes:
        click.confirm(f"Downgrade the database to {revision}? Data in dropped tables is lost", abort=True)
    dbadmin.downgrade(url, revision)
    click.echo(f"database at {_revision_text(dbadmin.current(url))}")


@db.command("current")
def db_current() -> None:
    """Show the revision the database is at."""
    click.echo(_revision_text(dbadmin.current(load_settings().database_url)))


@db.command("check")
def db_check() -> None:
    """Fail when the models and the migrations differ (a model change without its migration)."""
    dbadmin.check(load_settings().database_url)
    click.echo("the models and the migrations match")


# clients -----------------------------------------------------------------------------------------------


@cli.group()
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
    default="RS256",
    show_default=True,
    help="ID token signing algorithm.",
)
@click.option("--first-party", is_flag=True, help="Skip the consent page for this client.")
@click.option("--id-number-allowed", is_flag=True, help="Release the full ID number under the idcard scope.")
@click.option("--backchannel-logout-uri", default=None, help="Back-channel logout endpoint.")
@click.option("--client-id", default=None, help="Choose the client id (default: a random oc_… id).")
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
    alg: str,
    first_party: bool,
    id_number_allowed: bool,
    backchannel_logout_uri: str | None,
    client_id: str | None,
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
    )
    with _unit_of_work() as (svc, session):
        client, secret = create_client(session, registration, now=svc.now())
        _audit(svc, session, "client.create", "client", client.client_id, kind=client.kind)
        description = describe_client(client)
    if as_json:
        _echo_json({**description, "client_secret": secret})
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
    with _unit_of_work() as (_svc, session):
        described = [describe_client(client) for client in list_clients(session)]
    if as_json:
        _echo_json(described)
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
    with _unit_of_work() as (_svc, session):
        described = describe_client(get_client(session, client_id))
    if as_json:
        _echo_json(described)
    else:
        _echo_fields(described)


@clients.command("remove")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clients_remove(client_id: str, yes: bool) -> None:
    """Remove a client: it can no longer log anyone in or get tokens."""
    if not yes:
        with _unit_of_work() as (_svc, session):
            client_name = get_client(session, client_id).name
        # Asked outside any transaction: a prompt must not hold the database while the operator reads it.
        click.confirm(f"Remove client {client_id} ({client_name})?", abort=True)
    with _unit_of_work() as (svc, session):
        remove_client(session, client_id)
        _audit(svc, session, "client.remove", "client", client_id)
    click.echo(f"removed client {client_id}")


# citizens ----------------------------------------------------------------------------------------------


@cli.group()
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
        with _unit_of_work(keys=True) as (svc, session):
            report = import_citizens(
                session, svc.pii_cipher(), data, now=svc.now(), progress=bars, dry_run=dry_run
            )
            if report.ok and not dry_run:
                _audit(svc, session, "citizens.import", "citizen_register", "-", rows=report.imported)
    finally:
        bars.close()
    if not report.ok:
        click.echo(f"{file.name}: {len(report.problems)} problem(s)")
        for line in format_problems(report.problems):
            click.echo(f"  {line}")
        _fail(report.summary())
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
    with _unit_of_work(keys=True) as (svc, session):
        total = count_citizens(session)
        rows = [_citizen_row(svc, citizen) for citizen in list_citizens(session, offset=offset, limit=limit)]
    if as_json:
        _echo_json({"total": total, "offset": offset, "citizens": rows})
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
    with _unit_of_work(keys=True) as (svc, session):
        citizen = create_citizen(session, svc.pii_cipher(), name, id_number, now=svc.now())
        _audit(svc, session, "citizen.create", "citizen", citizen.id)
        citizen_id = citizen.id
    click.echo(f"registered citizen {citizen_id} ({mask_id_number(id_number)})")


@citizens.command("show")
@click.argument("citizen_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def citizens_show(citizen_id: str, as_json: bool) -> None:
    """Show one citizen (ID number masked)."""
    with _unit_of_work(keys=True) as (svc, session):
        citizen = get_citizen(session, citizen_id)
        row = {
            **_citizen_row(svc, citizen),
            "updated_at": citizen.updated_at.isoformat(),
            "data_key_id": citizen.data_key_id,
        }
    if as_json:
        _echo_json(row)
    else:
        _echo_fields(row)


# demo --------------------------------------------------------------------------------------------------


@cli.group()
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
    _audit(svc, session, "client.create", "client", client.client_id, kind=client.kind, demo=True)
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
            _audit(svc, session, "citizen.create", "citizen", citizen.id, demo=True)
            state = "created"
        citizen_ids.append(citizen.id)
        lines.append(f"{state}  citizen {citizen.id} {mask_id_number(id_number)}")
    return lines, citizen_ids


def _refuse_production(settings: Settings) -> None:
    if settings.is_production:
        _fail("demo data has fixed, published secrets; refused with ONECARD_ENV=production")


@demo.command("seed")
def demo_seed() -> None:
    """Create the demo clients and citizens (again and again: what exists is left alone)."""
    _refuse_production(load_settings())
    with _unit_of_work(keys=True) as (svc, session):
        lines, _citizen_ids = _seed_demo_data(svc, session)
    for line in lines:
        click.echo(line)
    click.echo("The demo secrets are development values: never use them outside a laptop.", err=True)


@demo.command("run")
@click.option("--idp-port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--portal-port", default=8001, show_default=True, type=click.IntRange(1, 65535))
@click.option("--bridge-port", default=47400, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--dir",
    "directory",
    default="var",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo card, the venue's credentials, the logs and the database are kept.",
)
@click.option("--no-open-dialog", is_flag=True, help="The bridge does not open its PIN window by itself.")
def demo_run(
    idp_port: int, portal_port: int, bridge_port: int, directory: Path, no_open_dialog: bool
) -> None:
    """The complete demo: migrate and seed, then run the IdP with the wallet, the example portal and the
    reader bridge on a virtual card until Ctrl-C.

    The IdP answers as http://127.0.0.1:IDP_PORT and as http://localhost:IDP_PORT; the portal, the wallet
    and the bridge use localhost (browsers refuse passkeys on an IP address). ONECARD_ISSUER, when set,
    is used alone instead.
    """
    from idp import demo as demo_module

    settings = load_settings()
    _refuse_production(settings)
    if len({idp_port, portal_port, bridge_port}) != 3:
        raise click.UsageError("the IdP, portal and bridge ports must differ")
    directory.mkdir(parents=True, exist_ok=True)
    layout = demo_module.DemoLayout(
        directory=directory,
        idp_port=idp_port,
        portal_port=portal_port,
        bridge_port=bridge_port,
        issuer=os.environ.get("ONECARD_ISSUER", ""),
    )
    settings = settings.replace(database_url=demo_module.demo_database_url(settings.database_url, layout))
    started = time_now()
    dbadmin.upgrade(settings.database_url)
    app = create_app(settings.replace(issuer=layout.public_issuer))
    svc: Services = app.extensions["onecard"]
    try:
        initialise_keys(app)
        with svc.database.session() as session:
            lines, citizen_ids = _seed_demo_data(svc, session)
            card = demo_module.ensure_demo_card(
                svc, session, citizen_ids[0], layout.card_file, actor=cli_actor()
            )
            lines.append(card)
            lines.append(demo_module.ensure_demo_portal_uris(svc, session, layout, actor=cli_actor()))
    finally:
        svc.database.dispose()
    env = {**os.environ, "ONECARD_DATABASE_URL": settings.database_url}  # the children use the same one
    try:
        lines.append(demo_module.ensure_demo_venue(layout, env))
        click.echo(f"seeded in {time_now() - started:.1f} s; starting the IdP, the portal and the bridge")
        status = demo_module.run_demo(layout, env, lines, open_pin_dialog=not no_open_dialog, echo=click.echo)
    except demo_module.DemoError as error:
        _fail(str(error))
    sys.exit(status)


from idp.cards.cli import cards as cards_group  # noqa: E402 - it uses the helpers above, when it runs

cli.add_command(cards_group)
from idp.keys.cli import register_key_commands  # noqa: E402 - the "keys" and "audit" groups (DESIGN §7)

register_key_commands(cli)


def _register_plugin_commands() -> None:
    """Command groups of plug-ins (the wallet's ``venues``) from the ``onecard.cli`` entry point group."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="onecard.cli"):
        cli.add_command(entry.load(), entry.name)


_register_plugin_commands()
