"""Root test configuration: shared fixtures (databases, Redis, stores, Chromium, PC/SC, live servers) come
from plugins."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.support.browser",
    "tests.support.pcsc",
    "tests.support.live",
    "tests.support.openid_client",
    "tests.support.site",
]
