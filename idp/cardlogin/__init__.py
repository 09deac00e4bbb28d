"""Card + PIN login through the reader bridge: the "card" login method (DESIGN.md §4)."""
