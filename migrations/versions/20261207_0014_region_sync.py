"""Issue 12: gates across regions: other regions' QR key sets and suspended lists, synced.

Revision ID: 0014_region_sync
Revises: 0013_federated_subjects
Create Date: 2026-12-07 18:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0014_region_sync"
down_revision: str | Sequence[str] | None = "0013_federated_subjects"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
