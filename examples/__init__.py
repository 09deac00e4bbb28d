"""Runnable examples of integrating with OneCard (not part of the installed package)."""
