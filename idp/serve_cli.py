"""``onecard serve``: migrate the database, create any missing keys, and serve the application (gunicorn, or
werkzeug's development server with ``--dev``). Registered on the ``onecard`` group by ``idp.cli``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click
from flask import Flask

from idp import dbadmin
from idp.app import create_app, initialise_keys, start_background_work
from idp.config import load_settings
from idp.services import Services


def _default_workers() -> int:
    # Gunicorn's rule of thumb (2 × cores + 1), capped: each worker holds its own database pool.
    return min(2 * (os.cpu_count() or 1) + 1, 8)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Gunicorn worker processes [default: 2 × CPUs + 1, at most 8].",
)
@click.option("--dev", is_flag=True, help="Werkzeug's single-process development server instead of gunicorn.")
def serve(host: str, port: int, workers: int | None, dev: bool) -> None:
    """Migrate the database, create any missing keys, and serve the application."""
    settings = load_settings()
    if dev and settings.is_production:
        raise click.UsageError("--dev is the development server; production is served by gunicorn")
    dbadmin.upgrade(settings.database_url)
    app = create_app(settings)
    svc: Services = app.extensions["onecard"]
    created = initialise_keys(app)
    if created:
        click.echo(f"created the first key of: {', '.join(created)}", err=True)
    # Close the connections start-up used: forked workers must not share the parent's sockets.
    svc.database.dispose()
    where = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    if dev:
        from werkzeug.serving import run_simple

        click.echo(f"OneCard {settings.issuer} (development server) on {where}", err=True)
        start_background_work(app)
        run_simple(host, port, app, use_reloader=False, use_debugger=False, threaded=True)
        return
    count = workers or _default_workers()
    click.echo(f"OneCard {settings.issuer} on {where} with {count} gunicorn worker(s)", err=True)
    _run_gunicorn(app, bind=where.removeprefix("http://"), workers=count)


def _run_gunicorn(app: Flask, *, bind: str, workers: int) -> None:
    """Run ``app`` under gunicorn in this process: the master forks ``workers`` copies of it."""
    from gunicorn.app.base import BaseApplication

    class OneCardApplication(BaseApplication):  # type: ignore[misc]
        def __init__(self) -> None:
            self.options = {
                "bind": bind,
                "workers": workers,
                "proc_name": "onecard",
                # No access log: request lines carry query strings (login_hint, state) that may hold PII.
                "accesslog": None,
                "errorlog": "-",
                "post_fork": _dispose_after_fork(app),
            }
            super().__init__()

        def load_config(self) -> None:
            for key, value in self.options.items():
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:
                # Gunicorn ≥ 25.1 opens a control socket at one fixed path per user; two nodes on one machine
                # (the multi-node tests) would take it from each other. OneCard is managed by signals.
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Flask:
            return app

    OneCardApplication().run()


def _dispose_after_fork(app: Flask) -> Callable[[Any, Any], None]:
    def post_fork(_server: Any, _worker: Any) -> None:
        # Belt and braces: a connection the master opened after start-up must stay the master's.
        app.extensions["onecard"].database.engine.dispose(close=False)
        start_background_work(app)  # each worker serves, so each runs the scheduler (one tick at a time)

    return post_fork
