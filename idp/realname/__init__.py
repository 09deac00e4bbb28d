"""Real-name verification for operators (DESIGN.md §6): ``POST /api/v1/realname/verify``."""
