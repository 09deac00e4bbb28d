"""The ``onecard`` command: serve, migrate, register clients, manage the citizen register, cards and keys,
verify the audit trail — and the plug-ins' groups (the wallet's ``venues``, the ``demo``).

This module only assembles the command: each group lives with its domain (``idp.clients.cli``,
``idp.keys.cli``, …) and stands on ``idp.cli_support``, never on this module (import-linter contracts in
pyproject.toml). Plug-ins add their groups through the ``onecard.cli`` entry point group, loaded when the
command line is parsed, not when this module is imported.

Errors end as one line on stderr and exit status 1 (2 for a usage mistake) — never a traceback. Output
never carries PII: ID numbers are masked and names are not shown (DESIGN.md §2); the one secret printed is a
new client's, once.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click

from idp.audit.cli import audit
from idp.cards.cli import cards
from idp.citizens.cli import citizens
from idp.cli_support import OneCardGroup
from idp.clients.cli import clients
from idp.dbadmin_cli import db
from idp.federation.cli import federation
from idp.keys.cli import keys
from idp.serve_cli import serve


class _OneCardCommand(OneCardGroup):
    """The root group: its own groups, and the plug-ins' from the ``onecard.cli`` entry points, loaded the
    first time a command is looked up or listed (so importing ``idp.cli`` loads no plug-in)."""

    plugins_loaded = False

    def load_plugins(self) -> None:
        if self.plugins_loaded:
            return
        for entry in entry_points(group="onecard.cli"):
            self.add_command(entry.load(), entry.name)
        self.plugins_loaded = True

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self.load_plugins()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.load_plugins()
        return super().list_commands(ctx)


@click.group(cls=_OneCardCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="onecard")
def cli() -> None:
    """OneCard: the OpenID Connect provider for the social security card.

    Settings come from ONECARD_* environment variables and the TOML file named by ONECARD_CONFIG_FILE.
    """


cli.add_command(serve)
cli.add_command(db)
cli.add_command(clients)
cli.add_command(citizens)
cli.add_command(cards)
cli.add_command(keys)
cli.add_command(audit)
cli.add_command(federation)


def main() -> None:
    """The ``onecard`` console script."""
    cli(prog_name="onecard")
