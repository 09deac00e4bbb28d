"""DPoP-bound refresh tokens (issue 15).

Revision ID: 0005_dpop
Revises: 0004_fapi
Create Date: 2026-12-07 10:40:00+00:00

One nullable column: the thumbprint of the DPoP key a grant was first issued with, which makes it a
DPoP-bound grant whose refreshes need a proof (RFC 9449 §5). Grants made before stay Bearer, as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005_dpop"
down_revision: str | Sequence[str] | None = "0004_fapi"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_grants") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(43), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_grants") as batch:
        batch.drop_column("dpop_jkt")
