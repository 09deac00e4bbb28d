"""An example portal built on ``sdk.portal`` (see README.md here and docs/portal-guide.md)."""
