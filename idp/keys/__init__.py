"""Key custody: every key set OneCard signs, encrypts or MACs with (DESIGN.md §7)."""

# Where the QR key set is published; discovery's ``onecard_qr_keys_uri`` names it for gates.
QR_KEYS_PATH = "/.well-known/onecard-qr-keys.json"
