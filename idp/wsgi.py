"""The WSGI entry point for an external server: ``gunicorn idp.wsgi:app``.

``onecard serve`` does everything below itself and is the simple way to run OneCard. With gunicorn (or any
WSGI server) directly:

1. migrate first — ``onecard db upgrade`` — as a deployment step; this module refuses to start on a
   database that is not at the head revision rather than answer every request with a 500;
2. keys: importing this module creates the first key of every key set that has none
   (``initialise_keys``, idempotent). On a brand-new database start gunicorn with ``--preload`` (or run
   ``onecard serve`` once), so that happens once in the master rather than racing in every worker.

Importing this module builds the application from the ``ONECARD_*`` settings: that is its one job.
"""

from __future__ import annotations

from idp.app import create_app, initialise_keys, start_background_work
from idp.dbadmin import require_current
from idp.services import Services

app = create_app()
_services: Services = app.extensions["onecard"]
require_current(_services.settings.database_url)
initialise_keys(app)
# With --preload the master built the app; its start-up connections must not be inherited by the workers.
_services.database.dispose()
start_background_work(app)  # a serving process: the key scheduler, if ONECARD_KEY_TICK_INTERVAL asks for it
