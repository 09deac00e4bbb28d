"""FAPI 2.0 client profile and pushed authorization requests (issue 15).

Revision ID: 0004_fapi
Revises: 0003_wallet
Create Date: 2026-12-07 10:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0004_fapi"
down_revision: str | Sequence[str] | None = "0003_wallet"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
