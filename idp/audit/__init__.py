"""The audit trail: append-only, hash-chained events (DESIGN.md §7 "every change is an audit event", §8)."""
