"""The application catalogue (issue 13): its entries and every version of each.

Revision ID: 0006_catalogue
Revises: 0005_dpop
Create Date: 2026-12-07 10:40:00+00:00

Gate venues registered before this revision get no entry here (a migration does not run the venue
register); ``onecard catalogue import`` or the admin API lists them. Constraint names follow
``idp.db.NAMING_CONVENTION``, spelled out; tables are created parents first and dropped children first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006_catalogue"
down_revision: str | Sequence[str] | None = "0005_dpop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wallet_catalogue_entries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=6), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("venue_id", sa.String(length=40), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["wallet_venues.id"], name="fk_wallet_catalogue_entries_venue_id_wallet_venues"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_catalogue_entries"),
        sa.UniqueConstraint("venue_id", name="uq_wallet_catalogue_entries_venue_id"),
    )
    op.create_index("ix_wallet_catalogue_entries_category", "wallet_catalogue_entries", ["category"])
    op.create_index("ix_wallet_catalogue_entries_region", "wallet_catalogue_entries", ["region"])
    op.create_table(
        "wallet_catalogue_revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed", sa.JSON(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["wallet_catalogue_entries.id"],
            name="fk_wallet_catalogue_revisions_entry_id_wallet_catalogue_entries",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_catalogue_revisions"),
        sa.UniqueConstraint("entry_id", "version", name="uq_wallet_catalogue_revisions_entry_id"),
    )
    op.create_index("ix_wallet_catalogue_revisions_entry_id", "wallet_catalogue_revisions", ["entry_id"])


def downgrade() -> None:
    op.drop_table("wallet_catalogue_revisions")
    op.drop_table("wallet_catalogue_entries")
