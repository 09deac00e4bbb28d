"""Issue 12: cross-region login: citizens of other regions as this deployment knows them.

``federated_subjects``: (home region, the home region's sub) → the citizen id of this deployment's sessions,
consents and grants; no name, no ID number. ``federated_sessions``: an SSO session → the home session and
the home claims, encrypted (idp.federation.login_model).

Revision ID: 0013_federated_subjects
Revises: 0012_federated_clients
Create Date: 2026-12-07 18:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0013_federated_subjects"
down_revision: str | Sequence[str] | None = "0012_federated_clients"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "federated_subjects",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("home_entity_id", sa.String(length=512), nullable=False),
        sa.Column("home_subject", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_federated_subjects"),
        sa.UniqueConstraint("home_entity_id", "home_subject", name="uq_federated_subjects_home_entity_id"),
    )
    op.create_table(
        "federated_sessions",
        sa.Column("sid", sa.String(length=43), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("home_entity_id", sa.String(length=512), nullable=False),
        sa.Column("home_sid", sa.String(length=255), nullable=True),
        sa.Column("claims_ct", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sid"], ["sso_sessions.sid"], name="fk_federated_sessions_sid_sso_sessions", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["federated_subjects.id"],
            name="fk_federated_sessions_subject_id_federated_subjects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sid", name="pk_federated_sessions"),
    )
    op.create_index("ix_federated_sessions_subject_id", "federated_sessions", ["subject_id"])
    op.create_index("ix_federated_sessions_home_sid", "federated_sessions", ["home_sid"])


def downgrade() -> None:
    op.drop_index("ix_federated_sessions_home_sid", table_name="federated_sessions")
    op.drop_index("ix_federated_sessions_subject_id", table_name="federated_sessions")
    op.drop_table("federated_sessions")
    op.drop_table("federated_subjects")
