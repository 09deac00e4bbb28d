"""The application catalogue (issue 13).

Revision ID: 0006_catalogue
Revises: 0005_dpop
Create Date: 2026-12-07 10:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0006_catalogue"
down_revision: str | Sequence[str] | None = "0005_dpop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
