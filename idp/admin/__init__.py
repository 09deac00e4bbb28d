"""The admin JSON API for card-service staff and the security team (``admin`` scope, client credentials)."""
