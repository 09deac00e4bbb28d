"""The wallet: e-cards, passkey devices, venues and scan records (DESIGN.md §5, issue 4).

Revision ID: 0003_wallet
Revises: 0002
Create Date: 2026-11-22 11:00:00+00:00

E-cards keep no copy of the card's status (they join ``cards`` at every use), so there is nothing to
backfill. Constraint names follow ``idp.db.NAMING_CONVENTION``, spelled out; tables are created parents
first and dropped children first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003_wallet"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wallet_ecards",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("card_id", sa.String(length=32), nullable=False),
        sa.Column("citizen_id", sa.String(length=36), nullable=False),
        sa.Column("handle", sa.String(length=16), nullable=False),
        sa.Column("own_status", sa.String(length=16), nullable=False),
        sa.Column("disclosures", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("own_status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("own_status IN ('active', 'suspended')", name="ck_wallet_ecards_own_status"),
        sa.ForeignKeyConstraint(["card_id"], ["cards.card_id"], name="fk_wallet_ecards_card_id_cards"),
        sa.ForeignKeyConstraint(["citizen_id"], ["citizens.id"], name="fk_wallet_ecards_citizen_id_citizens"),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_ecards"),
        sa.UniqueConstraint("card_id", name="uq_wallet_ecards_card_id"),
        sa.UniqueConstraint("handle", name="uq_wallet_ecards_handle"),
    )
    op.create_index("ix_wallet_ecards_citizen_id", "wallet_ecards", ["citizen_id"])
    op.create_table(
        "wallet_devices",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("citizen_id", sa.String(length=36), nullable=False),
        sa.Column("credential_id", sa.String(length=344), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizens.id"], name="fk_wallet_devices_citizen_id_citizens"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_devices"),
        sa.UniqueConstraint("credential_id", name="uq_wallet_devices_credential_id"),
    )
    op.create_index("ix_wallet_devices_citizen_id", "wallet_devices", ["citizen_id"])
    op.create_table(
        "wallet_venues",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name="fk_wallet_venues_client_id_oauth_clients",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_venues"),
        sa.UniqueConstraint("client_id", name="uq_wallet_venues_client_id"),
    )
    op.create_index("ix_wallet_venues_category", "wallet_venues", ["category"])
    op.create_table(
        "wallet_scans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("venue_id", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("ecard_id", sa.String(length=36), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("result", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=True),
        sa.Column("gate_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["ecard_id"], ["wallet_ecards.id"], name="fk_wallet_scans_ecard_id_wallet_ecards"
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["wallet_venues.id"], name="fk_wallet_scans_venue_id_wallet_venues"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_scans"),
    )
    op.create_index("ix_wallet_scans_day_venue_id", "wallet_scans", ["day", "venue_id"])
    op.create_index("ix_wallet_scans_ecard_id_at", "wallet_scans", ["ecard_id", "at"])


def downgrade() -> None:
    op.drop_table("wallet_scans")
    op.drop_table("wallet_venues")
    op.drop_table("wallet_devices")
    op.drop_table("wallet_ecards")
