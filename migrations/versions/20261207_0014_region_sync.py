"""Issue 12: gates across regions: other regions' QR key sets and suspended lists, synced.

Revision ID: 0014_region_sync
Revises: 0013_federated_subjects
Create Date: 2026-12-07 18:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0014_region_sync"
down_revision: str | Sequence[str] | None = "0013_federated_subjects"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wallet_synced_regions",
        sa.Column("entity_id", sa.String(length=512), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region_codes", sa.JSON(), nullable=False),
        sa.Column("qr_jwks", sa.JSON(), nullable=False),
        sa.Column("qr_jwks_etag", sa.String(length=200), nullable=True),
        sa.Column("qr_jwks_synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("suspended_handles", sa.JSON(), nullable=False),
        sa.Column("suspended_etag", sa.String(length=200), nullable=True),
        sa.Column("suspended_generated_at", sa.BigInteger(), nullable=False),
        sa.Column("suspended_synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entity_id", name="pk_wallet_synced_regions"),
    )


def downgrade() -> None:
    op.drop_table("wallet_synced_regions")
