"""E-cards: the electronic twin of a physical social security card, one per card (DESIGN.md §5)."""
