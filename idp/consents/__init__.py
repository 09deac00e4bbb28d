"""Consents: which client a citizen allowed to learn which scopes, remembered and revocable."""
