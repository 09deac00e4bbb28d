"""Gates across regions (issue 12 item 3): other regions' QR key sets and suspended lists, synced."""
