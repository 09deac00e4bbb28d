"""QR scan-to-login (DESIGN.md §6): the IdP login page shows a login-channel QR code and a match code; the
citizen opens it in the wallet, picks the matching code and approves with the passkey."""
