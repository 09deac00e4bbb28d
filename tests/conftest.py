"""Root test configuration: the shared fixtures (databases, Redis, stores, Chromium) come from plugins."""

pytest_plugins = ["tests.fixtures.services", "tests.support.browser"]
