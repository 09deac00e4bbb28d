"""FAPI 2.0 client profile and pushed authorization requests (issue 15).

Revision ID: 0004_fapi
Revises: 0003_wallet
Create Date: 2026-12-07 10:40:00+00:00

Four client flags, all false for the clients registered before: their behaviour does not change.
Pushed requests themselves live in the short-lived store, not in a table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004_fapi"
down_revision: str | Sequence[str] | None = "0003_wallet"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLIENT_FLAGS = (
    "fapi2_security_profile",
    "require_pushed_authorization_requests",
    "require_signed_request_object",
    "dpop_bound_access_tokens",
)


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        for name in CLIENT_FLAGS:
            batch.add_column(sa.Column(name, sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        for name in reversed(CLIENT_FLAGS):
            batch.drop_column(name)
