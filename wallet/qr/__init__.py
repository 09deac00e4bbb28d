"""Dynamic ESSC1 QR codes issued for an e-card (DESIGN.md §5, docs/formats/essc1.md)."""
