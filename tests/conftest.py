"""Root test configuration: shared fixtures (databases, Redis, stores; headless Chromium) come from plugins."""

pytest_plugins = ["tests.fixtures.services", "tests.support.browser"]
