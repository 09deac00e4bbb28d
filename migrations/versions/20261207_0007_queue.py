"""Service halls and queue numbers (issue 13).

Revision ID: 0007_queue
Revises: 0006_catalogue
Create Date: 2026-12-07 10:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007_queue"
down_revision: str | Sequence[str] | None = "0006_catalogue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "halls_halls",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("venue_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["venue_id"], ["wallet_venues.id"], name="fk_halls_halls_venue_id_wallet_venues"),
        sa.PrimaryKeyConstraint("id", name="pk_halls_halls"),
        sa.UniqueConstraint("venue_id", name="uq_halls_halls_venue_id"),
    )
    op.create_table(
        "halls_services",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("hall_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=2), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["hall_id"], ["halls_halls.id"], name="fk_halls_services_hall_id_halls_halls"),
        sa.PrimaryKeyConstraint("id", name="pk_halls_services"),
        sa.UniqueConstraint("hall_id", "code", name="uq_halls_services_hall_id"),
        sa.UniqueConstraint("hall_id", "prefix", name="uq_halls_services_hall_id_prefix"),
    )
    op.create_table(
        "halls_counters",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("hall_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("service_ids", sa.JSON(), nullable=False),
        sa.Column("device_client_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_client_id"],
            ["oauth_clients.client_id"],
            name="fk_halls_counters_device_client_id_oauth_clients",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["hall_id"], ["halls_halls.id"], name="fk_halls_counters_hall_id_halls_halls"),
        sa.PrimaryKeyConstraint("id", name="pk_halls_counters"),
        sa.UniqueConstraint("device_client_id", name="uq_halls_counters_device_client_id"),
        sa.UniqueConstraint("hall_id", "code", name="uq_halls_counters_hall_id"),
    )
    op.create_table(
        "halls_tickets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("hall_id", sa.String(length=40), nullable=False),
        sa.Column("service_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=8), nullable=False),
        sa.Column("citizen_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("terminal_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("active_key", sa.String(length=80), nullable=True),
        sa.Column("counter_id", sa.String(length=40), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('waiting', 'called', 'served', 'cancelled', 'no_show')", name="ck_halls_tickets_status"
        ),
        sa.ForeignKeyConstraint(["citizen_id"], ["citizens.id"], name="fk_halls_tickets_citizen_id_citizens"),
        sa.ForeignKeyConstraint(
            ["counter_id"], ["halls_counters.id"], name="fk_halls_tickets_counter_id_halls_counters"
        ),
        sa.ForeignKeyConstraint(["hall_id"], ["halls_halls.id"], name="fk_halls_tickets_hall_id_halls_halls"),
        sa.ForeignKeyConstraint(
            ["service_id"], ["halls_services.id"], name="fk_halls_tickets_service_id_halls_services"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_halls_tickets"),
        sa.UniqueConstraint("active_key", name="uq_halls_tickets_active_key"),
        sa.UniqueConstraint("service_id", "day", "seq", name="uq_halls_tickets_service_id"),
    )
    op.create_index("ix_halls_tickets_hall_id_day", "halls_tickets", ["hall_id", "day"])
    op.create_index("ix_halls_tickets_citizen_id_taken_at", "halls_tickets", ["citizen_id", "taken_at"])
    op.create_table(
        "halls_number_sequences",
        sa.Column("service_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"], ["halls_services.id"], name="fk_halls_number_sequences_service_id_halls_services"
        ),
        sa.PrimaryKeyConstraint("service_id", "day", name="pk_halls_number_sequences"),
    )


def downgrade() -> None:
    op.drop_table("halls_number_sequences")
    op.drop_index("ix_halls_tickets_citizen_id_taken_at", table_name="halls_tickets")
    op.drop_index("ix_halls_tickets_hall_id_day", table_name="halls_tickets")
    op.drop_table("halls_tickets")
    op.drop_table("halls_counters")
    op.drop_table("halls_services")
    op.drop_table("halls_halls")
