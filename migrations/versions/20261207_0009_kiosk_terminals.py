"""Kiosk terminals registered to one hall (issue 13): ``kiosk_terminals``, one row per kiosk client.

The row goes with its client (``ON DELETE CASCADE``): a kiosk removed through ``onecard clients remove``
leaves no registration behind that a new client could inherit.

Revision ID: 0009_kiosk_terminals
Revises: 0008_kiosk
Create Date: 2026-12-07 14:10:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009_kiosk_terminals"
down_revision: str | Sequence[str] | None = "0008_kiosk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kiosk_terminals",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("hall_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("bridge_url", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name="fk_kiosk_terminals_client_id_oauth_clients",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hall_id"], ["halls_halls.id"], name="fk_kiosk_terminals_hall_id_halls_halls"
        ),
        sa.PrimaryKeyConstraint("client_id", name="pk_kiosk_terminals"),
        sa.UniqueConstraint("hall_id", "name", name="uq_kiosk_terminals_hall_id"),
    )


def downgrade() -> None:
    op.drop_table("kiosk_terminals")
