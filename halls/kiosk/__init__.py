"""The kiosk pages of a service hall's self-service terminal (issue 13 item 1)."""
