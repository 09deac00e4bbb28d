"""Issue 12: cross-region login: citizens of other regions as this deployment knows them.

Revision ID: 0013_federated_subjects
Revises: 0012_federated_clients
Create Date: 2026-12-07 18:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0013_federated_subjects"
down_revision: str | Sequence[str] | None = "0012_federated_clients"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
