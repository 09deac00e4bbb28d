"""What every ``onecard`` command group shares: the application, a unit of work, output, the audit actor, and
the one-line errors.

Every command reads the same settings as the server (``ONECARD_*`` over ``ONECARD_CONFIG_FILE``,
``idp.config``), builds the application with ``create_app`` and works through its services, so what the
command does is what the server would do. Changes are audit events with the actor ``cli:<os user>``.

Errors from OneCard, the configuration, the database or bad input end as one line on stderr and exit
status 1 (2 for a usage mistake) — never a traceback (``OneCardGroup``). Output never carries PII: ID numbers
are masked and names are not shown (DESIGN.md §2).

The domain command groups (``idp.clients.cli``, ``idp.keys.cli``, ``wallet.cli``, …) import this module and
never ``idp.cli``, which assembles them (import-linter contracts in pyproject.toml).
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from flask import Flask
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from idp import dbadmin
from idp.app import create_app, initialise_keys
from idp.audit.service import record_event
from idp.config import ConfigError, load_settings
from idp.services import Services
from sdk.errors import OneCardError

# Errors ------------------------------------------------------------------------------------------------


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


class OneCardGroup(click.Group):
    """Turns every expected error of any subcommand into click's one-line ``Error: …`` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HANDLED_ERRORS as error:
            raise click.ClickException(describe_error(error)) from error


def fail(message: str) -> NoReturn:
    """End the command with ``Error: message`` on stderr and exit status 1."""
    raise click.ClickException(message)


# The application and the database ----------------------------------------------------------------------


def cli_actor() -> str:
    """``cli:<os user>`` for audit events: who ran the command on this machine."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers run with arbitrary uids)
        user = f"uid{os.getuid()}"
    user = "".join(char for char in user if char.isprintable())[:100] or "unknown"
    return f"cli:{user}"


def open_app(*, keys: bool) -> tuple[Flask, Services]:
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
def unit_of_work(*, keys: bool = False) -> Iterator[tuple[Services, Session]]:
    """The services and one database session, committed when the block ends without an error."""
    _app, svc = open_app(keys=keys)
    with svc.database.session() as session:
        yield svc, session


def record_cli_event(
    svc: Services, session: Session, action: str, target_type: str, target_id: str, **details: Any
) -> None:
    """An audit event by ``cli_actor()``, in the command's unit of work."""
    record_event(
        session,
        actor=cli_actor(),
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
        now=svc.now(),
    )


# Output ------------------------------------------------------------------------------------------------


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def echo_fields(fields: dict[str, Any]) -> None:
    """``key  value`` lines, the keys aligned; lists joined with commas, empty values shown as ``-``."""
    width = max(len(key) for key in fields)
    for key, value in fields.items():
        if isinstance(value, list | tuple):
            value = ", ".join(str(item) for item in value) or "-"
        elif value is None or value == "":
            value = "-"
        click.echo(f"{key.ljust(width)}  {value}")
