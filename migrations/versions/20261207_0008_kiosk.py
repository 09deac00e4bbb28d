"""Kiosk terminals (issue 13): an SSO session remembers the self-service terminal it was started at.

Kiosk terminals themselves are ``oauth_clients`` of kind ``kiosk``; ``kind`` has no check constraint (the
allowed kinds are checked in ``idp.clients.service``), so only the session columns are new: the terminal
and the card a card login used.

Revision ID: 0008_kiosk
Revises: 0007_queue
Create Date: 2026-12-07 10:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008_kiosk"
down_revision: str | Sequence[str] | None = "0007_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sso_sessions") as batch:
        batch.add_column(sa.Column("terminal_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("card_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sso_sessions") as batch:
        batch.drop_column("card_id")
        batch.drop_column("terminal_id")
