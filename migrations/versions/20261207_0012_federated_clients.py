"""Issue 12: automatic registration (§12.1): the clients other regions' OneCards registered as.

Revision ID: 0012_federated_clients
Revises: 0011_federation
Create Date: 2026-12-07 18:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0012_federated_clients"
down_revision: str | Sequence[str] | None = "0011_federation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
