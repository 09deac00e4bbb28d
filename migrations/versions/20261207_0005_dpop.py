"""DPoP-bound refresh tokens (issue 15).

Revision ID: 0005_dpop
Revises: 0004_fapi
Create Date: 2026-12-07 10:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0005_dpop"
down_revision: str | Sequence[str] | None = "0004_fapi"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
