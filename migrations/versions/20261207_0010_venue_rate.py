"""A venue's own limit of online verifications per minute (issue 16).

The built-in 12,000 a minute (200/s) capped a metro line's gates; each venue now has its limit in
``wallet_venues.verify_per_minute``, and every existing venue keeps the old figure.

Revision ID: 0010_venue_rate
Revises: 0009_kiosk_terminals
Create Date: 2026-12-07 14:10:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010_venue_rate"
down_revision: str | Sequence[str] | None = "0009_kiosk_terminals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wallet_venues") as batch:
        batch.add_column(sa.Column("verify_per_minute", sa.Integer(), nullable=False, server_default="12000"))


def downgrade() -> None:
    with op.batch_alter_table("wallet_venues") as batch:
        batch.drop_column("verify_per_minute")
