"""Scans: online gate verification (docs/formats/essc1.md §7), the suspended-handles list (§6) and the
scan records."""
