"""``onecard serve``: migrate the database, create any missing keys, and serve the application (granian by
default, gunicorn with ``--server gunicorn``, werkzeug's development server with ``--dev``). Registered on the
``onecard`` group by ``idp.cli``.

Why granian (bench/README.md, issue #16): one granian worker answered 1.6–3 × the requests of one gunicorn
gthread worker on the same work (its HTTP/1.1 parsing and keep-alive are Rust, off the GIL), and idle
keep-alive connections hold no Python thread. Its WSGI requests run on ``--threads`` blocking threads per
worker, so the QR-login long-poll waits on a thread, as under gthread. Both servers fork their workers from
this process after the app is built, stop gracefully on SIGTERM/SIGINT sent to this process's PID, and share
the workers' metrics through the multiprocess directory.

It also runs what operators watch (``idp.observability``): the request log as JSON lines on stderr, and with
``ONECARD_METRICS_BIND`` a metrics listener of its own — in the master (granian's or gunicorn's), whose
workers share their metrics through a multiprocess directory prepared before the first fork, or in the
development server.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click
from flask import Flask

from idp import dbadmin
from idp.app import create_app, initialise_keys, start_background_work
from idp.config import Settings, load_settings
from idp.db import Database
from idp.observability.exposition import MetricsListener, render_metrics, scrape_registry
from idp.observability.multiprocess import MultiprocessDirectory, prepare_multiprocess_directory
from idp.observability.web import request_log_to_stderr
from idp.services import Services
from sdk.clock import system_clock

SERVERS = ("granian", "gunicorn")
DEFAULT_SERVER = "granian"


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
    help="Worker processes [default: 2 × CPUs + 1, at most 8].",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Threads per worker (granian's blocking threads; above 1, gunicorn's gthread workers).",
)
@click.option(
    "--server",
    type=click.Choice(SERVERS),
    default=DEFAULT_SERVER,
    show_default=True,
    help="The WSGI server: granian, or gunicorn (sync workers, gthread with --threads above 1).",
)
@click.option("--dev", is_flag=True, help="Werkzeug's single-process development server instead.")
def serve(host: str, port: int, workers: int | None, threads: int, server: str, dev: bool) -> None:
    """Migrate the database, create any missing keys, and serve the application."""
    settings = load_settings()
    if dev and settings.is_production:
        raise click.UsageError("--dev is the development server; production is served by granian or gunicorn")
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
        address = settings.metrics_address()
        listener = None
        if address is not None:
            registry = scrape_registry(svc.database, settings, svc.clock)  # one process: its own registry
            listener = MetricsListener(*address, lambda: render_metrics(registry)).start()
            click.echo(f"metrics on http://{settings.metrics_bind}/metrics", err=True)
        try:
            with request_log_to_stderr():
                run_simple(host, port, app, use_reloader=False, use_debugger=False, threaded=True)
        finally:
            if listener is not None:
                listener.stop()
        return
    count = workers or _default_workers()
    per_worker = f" × {threads} threads" if threads > 1 else ""
    click.echo(f"OneCard {settings.issuer} on {where} with {count} {server} worker(s){per_worker}", err=True)
    if server == "granian":
        _run_granian(app, host=host, port=port, workers=count, threads=threads)
    else:
        _run_gunicorn(app, bind=where.removeprefix("http://"), workers=count, threads=threads)


def _run_granian(app: Flask, *, host: str, port: int, workers: int, threads: int) -> None:
    """Run ``app`` under granian in this process: its master forks ``workers`` copies of it (Linux's
    default start method), each running WSGI requests on ``threads`` blocking threads."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    settings: Settings = app.extensions["onecard"].settings
    metrics_directory = prepare_multiprocess_directory()  # before the first fork, as under gunicorn
    after_fork = _dispose_after_fork(app)

    def load(_target: str) -> Flask:
        # In each worker, after the fork. Granian has no hook in the master when a worker exits (gunicorn's
        # child_exit), so a worker starting drops the live-gauge files of the workers that are gone.
        _forget_exited_workers(metrics_directory)
        after_fork(None, None)
        return app

    server = Granian(
        "idp.wsgi:app",  # only named: ``load`` hands over the app built here
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        websockets=False,
        log_level=LogLevels.warning,
        # No access log: request lines carry query strings (login_hint, state) that may hold PII.
        log_access=False,
        # A worker that dies is replaced, as gunicorn's master does; its counters stay in the directory.
        respawn_failed_workers=True,
        respawn_interval=1.0,
    )
    server.on_startup(lambda: _start_master_metrics_listener(settings)(None))
    server.on_shutdown(metrics_directory.remove)
    with request_log_to_stderr():  # the workers forked in here inherit it
        server.serve(target_loader=load)


def _run_gunicorn(app: Flask, *, bind: str, workers: int, threads: int = 1) -> None:
    """Run ``app`` under gunicorn in this process: the master forks ``workers`` copies of it."""
    from gunicorn.app.base import BaseApplication

    settings: Settings = app.extensions["onecard"].settings
    # Before the first fork: every worker writes its metrics into this directory, and a scrape of any of
    # them (or of the master's listener) adds them all up.
    metrics_directory = prepare_multiprocess_directory()

    def child_exit(_server: Any, worker: Any) -> None:
        metrics_directory.worker_exited(worker.pid)

    def on_exit(_server: Any) -> None:
        metrics_directory.remove()

    class OneCardApplication(BaseApplication):  # type: ignore[misc]
        def __init__(self) -> None:
            self.options = {
                "bind": bind,
                "workers": workers,
                # Threads (gthread) serve requests that mostly wait — the QR-login long-poll sleeps for up to
                # ONECARD_QR_LOGIN_POLL_SECONDS — without holding a whole process each (docs/deploy.md).
                "worker_class": "gthread" if threads > 1 else "sync",
                "threads": threads,
                "proc_name": "onecard",
                # No access log: request lines carry query strings (login_hint, state) that may hold PII.
                # The request log (logger onecard.request, JSON on stderr) has the route template instead.
                "accesslog": None,
                "errorlog": "-",
                "post_fork": _dispose_after_fork(app),
                "when_ready": _start_master_metrics_listener(settings),
                "child_exit": child_exit,
                "on_exit": on_exit,
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

    with request_log_to_stderr():  # the workers forked in here inherit it
        OneCardApplication().run()


def _forget_exited_workers(directory: MultiprocessDirectory) -> None:
    """``worker_exited`` for every process that left metric files (``<kind>_<pid>.db``) and no longer runs."""
    pids = {
        int(pid) for pid in (p.stem.rpartition("_")[2] for p in directory.path.glob("*.db")) if pid.isdigit()
    }
    for pid in pids - {os.getpid()}:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            directory.worker_exited(pid)
        except PermissionError:
            pass  # another user's process of that number runs: not one of our workers


def _dispose_after_fork(app: Flask) -> Callable[[Any, Any], None]:
    def post_fork(_server: Any, _worker: Any) -> None:
        # Belt and braces: a connection the master opened after start-up must stay the master's.
        app.extensions["onecard"].database.engine.dispose(close=False)
        start_background_work(app)  # each worker serves, so each runs the scheduler (one tick at a time)

    return post_fork


def _start_master_metrics_listener(settings: Settings) -> Callable[[Any], None]:
    """gunicorn's ``when_ready``: the master serves ``ONECARD_METRICS_BIND``, every worker's metrics added up.

    The master forks workers while this listener's thread may be mid-scrape, so the thread must hold nothing
    a child could inherit locked or use: it records no metric of its own (its database is not instrumented)
    and keeps no connection between scrapes (a forked copy of a pooled connection would be closed, or used,
    by the child).
    """

    def when_ready(_server: Any) -> None:
        address = settings.metrics_address()
        if address is None:
            return
        database = Database(settings.database_url)
        registry = scrape_registry(database, settings, system_clock)

        def render() -> bytes:
            try:
                return render_metrics(registry)
            finally:
                database.dispose()

        MetricsListener(*address, render).start()  # a daemon thread: it ends with the master

    return when_ready
