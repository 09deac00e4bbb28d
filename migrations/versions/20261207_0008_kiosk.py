"""Kiosk terminals (issue 13).

Revision ID: 0008_kiosk
Revises: 0007_queue
Create Date: 2026-12-07 10:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0008_kiosk"
down_revision: str | Sequence[str] | None = "0007_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
