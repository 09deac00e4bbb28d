"""Key custody: every key set OneCard signs, encrypts or MACs with (DESIGN.md §7)."""
