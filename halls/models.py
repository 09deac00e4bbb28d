"""Every halls table, imported in one place (the ``onecard.models`` entry point) so Alembic and the tests
see them on ``idp.db.Base.metadata``."""

from __future__ import annotations

from halls.queue.model import NumberSequence, Ticket
from halls.register.model import Counter, Hall, HallService, Kiosk

__all__ = ["Counter", "Hall", "HallService", "Kiosk", "NumberSequence", "Ticket"]
