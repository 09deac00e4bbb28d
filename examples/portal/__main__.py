"""``python -m examples.portal``: serve the example portal on PORTAL_BASE_URL's port (default 8001)."""

from __future__ import annotations

from urllib.parse import urlsplit

from examples.portal.app import create_portal_app, settings_from_env


def main() -> None:
    settings = settings_from_env()
    parts = urlsplit(settings.base_url)
    app = create_portal_app(settings)
    app.run(host=parts.hostname or "127.0.0.1", port=parts.port or 8001)


if __name__ == "__main__":
    main()
