"""Short-lived shared state (DESIGN.md §2): one interface, an SQL and a Redis implementation."""

from idp.stores.base import EphemeralStore

__all__ = ["EphemeralStore"]
