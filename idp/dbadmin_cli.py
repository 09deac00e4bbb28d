"""``onecard db``: the database migrations (Alembic, through ``idp.dbadmin``). Registered on the ``onecard``
group by ``idp.cli``."""

from __future__ import annotations

import click

from idp import dbadmin
from idp.config import load_settings


@click.group()
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
