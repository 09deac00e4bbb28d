"""SSO sessions: one browser's login at the IdP, shared by every portal it signs in to (DESIGN.md §3)."""
