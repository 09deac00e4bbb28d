"""Usage statistics: scans per venue and category per day (DESIGN.md §5, issue 4 item 8)."""
