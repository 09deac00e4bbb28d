"""OpenID Federation 1.0 (issue 12): the subordinates a trust anchor or intermediate registers.

The federation key set needs no table of its own: its keys are rows of ``crypto_keys`` like every set's.

Revision ID: 0011_federation
Revises: 0010_venue_rate
Create Date: 2026-12-07 15:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011_federation"
down_revision: str | Sequence[str] | None = "0010_venue_rate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "federation_subordinates",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=512), nullable=False),
        sa.Column("jwks", sa.JSON(), nullable=False),
        sa.Column("metadata_policy", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("constraints", sa.JSON(), nullable=True),
        sa.Column("trust_mark_types", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_federation_subordinates"),
        sa.UniqueConstraint("entity_id", name="uq_federation_subordinates_entity_id"),
    )


def downgrade() -> None:
    op.drop_table("federation_subordinates")
