"""The physical card register: one row per social security card, linked to a citizen (DESIGN.md §4).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 09:30:00+00:00

Card-issuer CAs need no table: they are key sets ``card-ca-<region>`` in ``crypto_keys``, their CA
certificates on the key rows. Constraint names follow ``idp.db.NAMING_CONVENTION``, spelled out.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cards",
        sa.Column("card_id", sa.String(length=32), nullable=False),
        sa.Column("card_number", sa.String(length=9), nullable=False),
        sa.Column("citizen_id", sa.String(length=36), nullable=False),
        sa.Column("region", sa.String(length=6), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("issuer_kid", sa.String(length=64), nullable=False),
        sa.Column("certificate_serial", sa.String(length=40), nullable=False),
        sa.Column("certificate_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'lost', 'suspended', 'cancelled')", name="ck_cards_status"),
        sa.ForeignKeyConstraint(["citizen_id"], ["citizens.id"], name="fk_cards_citizen_id_citizens"),
        sa.PrimaryKeyConstraint("card_id", name="pk_cards"),
        sa.UniqueConstraint("card_number", name="uq_cards_card_number"),
        sa.UniqueConstraint("certificate_fingerprint", name="uq_cards_certificate_fingerprint"),
    )
    op.create_index("ix_cards_citizen_id", "cards", ["citizen_id"])
    op.create_index("ix_cards_region", "cards", ["region"])


def downgrade() -> None:
    op.drop_table("cards")
