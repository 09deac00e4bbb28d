"""Registered clients: portals (relying parties), operators and venues (DESIGN.md §3)."""
