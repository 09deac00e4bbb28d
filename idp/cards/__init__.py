"""The physical card register: cards linked to citizens, their status, and card issuance (DESIGN.md §4)."""
