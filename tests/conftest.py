"""Root test configuration: the shared fixtures (databases, Redis, stores) come from a plugin module."""

pytest_plugins = ["tests.fixtures.services"]
