"""Wallet devices: passkeys (WebAuthn) bound to a citizen's phones (DESIGN.md §5 "Device binding")."""
