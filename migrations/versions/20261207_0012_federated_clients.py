"""Issue 12: automatic registration (§12.1): the clients other regions' OneCards registered as.

They are rows of ``oauth_clients`` (kind ``federation``) like every client's; what they add is when the
registration must be resolved again through the federation (``federation_expires_at``, NULL for every
client registered by staff).

Revision ID: 0012_federated_clients
Revises: 0011_federation
Create Date: 2026-12-07 18:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0012_federated_clients"
down_revision: str | Sequence[str] | None = "0011_federation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("federation_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("federation_expires_at")
