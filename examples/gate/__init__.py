"""An example venue gate built on ``sdk.gate`` (see README.md here and docs/venues.md)."""
