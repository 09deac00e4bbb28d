"""``POST /api/v1/gate/verify`` before Flask: the gate's lean route (idp.fastpath.routes, issue 16).

The same steps as the Flask view (``wallet.scans.endpoint``: the same fields, decision, admission and group
commit), without Flask's request context, the ORM's row loading and the request's unit of work. It takes a
request only when it is sure to answer as the view would; every other one goes to the view unchanged,
before anything is counted or used:

- a venue client whose entry is in the venue cache and fresh, its secret right, allowed to verify, with a
  live venue (``VenueCache.peek``; a refusal is the view's, decided on reloaded rows);
- its HTTP Basic credentials read alike by Authlib's parser and by the request-text check (``idp.web``);
- a plain ``application/json`` body of the contract's shape (``code``, optional ``gate_id``) that
  ``verify_fields`` takes (a bad request is counted by the view, then refused);
- from a program that states no language and prefers JSON: error answers are then the English wire text
  (``idp.fastpath.routes.error_answer``), as ``json_error`` gives them;
- a venue cache entry that is still current at admission (a stale one: the view reloads it).

Once the verification has reached its admission, the lean route answers whatever comes — a verdict, the
rate limit's 429, a 503 without verdict, or the 500 the view's error handler would give — since a code it
may have used up cannot be handed on. Before that, a failure (a kept database connection that broke) hands
the request to the view, which has counted and used nothing of it.

Its reads go through ``Readers``: connections kept open in autocommit mode, so a read is one statement —
no pool checkout with its pre-ping, no BEGIN and ROLLBACK (on PostgreSQL that was ~0.35 ms of the
verification's CPU). Statuses are still read at every verification, never cached.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import replace
from typing import Any, Final

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from idp.clients.errors import ClientAuthenticationError
from idp.db import make_engine
from idp.fastpath.routes import JSON, LeanAnswer, LeanRoute, error_answer, json_answer, read_body, started_now
from idp.i18n import LANGUAGE_COOKIE
from idp.services import Services
from idp.web import basic_credentials, validate_text
from sdk.errors import InvalidRequestError, OneCardError
from wallet.regions.runtime import RegionRuntime, online_regions
from wallet.scans.admission import Admission, GateAdmission
from wallet.scans.endpoint import FIELDS, VenueChanged, verify_and_record, verify_fields
from wallet.scans.runtime import GateRuntime

VERIFY_PATH: Final = "/api/v1/gate/verify"
ENDPOINT: Final = "gate.verify"  # the Flask view's endpoint name, for the request log line and metrics
# Far above the largest request of the contract (a 512-character code and a 64-character gate id).
MAX_BODY_BYTES: Final = 4096
# What a gate sends (sdk.gate: application/json; HTTP libraries' default: */*): the view answers JSON.
_PROGRAM_ACCEPTS: Final = frozenset({None, JSON, "*/*"})
_NO_STORE: Final = [("Cache-Control", "no-store")]
KEEP_READERS: Final = 8  # idle database connections kept for the reads: granian's 8 threads a worker

log = logging.getLogger(__name__)
_ERRORS = logging.getLogger("idp.app")  # where the view's error handler logs its 500s (idp.app)


def _credentials(authorization: str | None) -> tuple[str, str] | None:
    """The client id and secret when Authlib's parser and the request-text check read them alike."""
    if not authorization:
        return None
    try:
        strict = basic_credentials(authorization)  # first: Authlib's parser raises on what is not UTF-8
        validate_text(strict)
    except (ClientAuthenticationError, InvalidRequestError):
        return None
    client_id, secret = extract_basic_authorization({"Authorization": authorization})
    if not client_id or not secret:
        return None
    return (client_id, secret) if strict == (client_id, secret) else None


def _states_nothing(environ: dict[str, Any]) -> bool:
    """A program that prefers JSON and states no language (``idp.i18n``: no Accept-Language, no cookie)."""
    return (
        environ.get("HTTP_ACCEPT") in _PROGRAM_ACCEPTS
        and "HTTP_ACCEPT_LANGUAGE" not in environ
        and LANGUAGE_COOKIE not in environ.get("HTTP_COOKIE", "")
    )


class Readers:
    """Database connections in autocommit mode kept open for the verification's reads (the e-card's status,
    and a venue's profile facts or another region's keys where it needs them): no pool checkout, no
    pre-ping, no transaction to begin and end per read — about 0.3 ms of CPU per verification on
    PostgreSQL. At most ``keep`` stay open (one per server thread is enough); a connection that failed is
    dropped, never reused.

    They come from an engine of their own (``make_engine`` of the application's URL), so the application's
    pool keeps every connection it had for the view, the admission and the scans' commits. Disposing of the
    application's engine disposes of this one: in the process that opened the connections they are closed;
    in a forked worker (``dispose(close=False)``, idp.serve_cli) they are only let go of — their sockets are
    the parent's, and closing them would end the parent's sessions."""

    def __init__(self, engine: Engine, *, keep: int = KEEP_READERS) -> None:
        self._url = engine.url.render_as_string(hide_password=False)
        self._keep = keep
        self._own: Engine | None = None
        self._idle: list[Connection] = []
        self._inherited: list[Connection] = []  # a forked worker's copies: kept, never closed (see above)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        event.listen(engine, "engine_disposed", self._disposed)

    def take(self) -> Connection:
        try:
            return self._idle.pop()  # atomic under the GIL: no two threads get the same connection
        except IndexError:
            return self._open()

    def _open(self) -> Connection:
        with self._lock:
            if self._own is None:
                self._own = make_engine(self._url)
            own = self._own
        return own.connect().execution_options(isolation_level="AUTOCOMMIT")

    def give_back(self, connection: Connection) -> None:
        if connection.engine is not self._own:
            self.drop(connection)  # its engine was disposed of while it was in use
        elif len(self._idle) < self._keep:
            self._idle.append(connection)
        else:
            connection.close()

    @staticmethod
    def drop(connection: Connection) -> None:
        try:
            connection.invalidate()  # its DBAPI connection never goes back to a pool either
        finally:
            connection.close()

    def _disposed(self, _engine: Engine) -> None:
        with self._lock:
            own, self._own = self._own, None
            idle, self._idle = self._idle, []
        if own is None:
            return
        if os.getpid() != self._pid:
            self._inherited.extend(idle)
            own.dispose(close=False)
            self._pid = os.getpid()
            return
        for connection in idle:
            self.drop(connection)
        own.dispose()


class _CountedAdmission:
    """The gate's admission, noting whether this verification reached it (then it may have used the code)."""

    def __init__(self, admission: GateAdmission) -> None:
        self.admission = admission
        self.reached = False

    def admit(self, **kwargs: Any) -> Admission:
        self.reached = True
        return self.admission.admit(**kwargs)


class LeanGateVerify:
    def __init__(self, svc: Services, gate: GateRuntime, regions: RegionRuntime) -> None:
        self.svc = svc
        self.gate = gate
        self.regions = regions
        self.readers = Readers(svc.database.engine)

    def route(self) -> LeanRoute:
        return LeanRoute(ENDPOINT, self.answer)

    def answer(self, environ: dict[str, Any]) -> LeanAnswer | None:
        started = started_now()
        credentials = _credentials(environ.get("HTTP_AUTHORIZATION"))
        if credentials is None or not _states_nothing(environ):
            return None
        client_id, secret = credentials
        now = self.svc.now()
        cached = self.gate.venues.peek(client_id, now=now)
        if cached is None:
            return None
        client, generation = cached
        venue = client.venue
        if not (client.basic_auth and client.check_secret(secret) and client.may_verify) or venue is None:
            return None
        fields = self._fields(environ)
        if fields is None:
            return None
        code, gate_id = fields
        admission = _CountedAdmission(self.gate.admission)
        connection: Connection | None = None
        try:
            connection = self.readers.take()
            with Session(bind=connection) as session:
                verdict = verify_and_record(
                    session,
                    svc=self.svc,
                    gate=replace(self.gate, admission=admission),
                    venue=venue,
                    generation=generation,
                    code=code,
                    gate_id=gate_id,
                    foreign=online_regions(self.svc, self.regions),
                    now=now,
                )
            answer = json_answer(
                200, verdict.to_json(), started=started, client_id=client_id, headers=_NO_STORE
            )
        except VenueChanged:
            answer = None  # nothing counted or used: the view reloads the venue and verifies
        except OneCardError as exc:
            answer = error_answer(exc, started=started, client_id=client_id)
        except Exception as exc:
            if connection is not None:
                self._let_go(connection, broken=True)
            if not admission.reached:
                # A kept connection that broke (the database restarted): nothing counted or used, so the
                # view answers, through its pool, which pings before use.
                log.warning("lean gate verification failed before admission: %s", type(exc).__name__)
                return None
            # The view's error handler's answer and log line: the type, never the data; no verdict.
            _ERRORS.exception("unhandled %s", type(exc).__name__)
            return error_answer(OneCardError("unhandled"), started=started, client_id=client_id)
        self._let_go(connection, broken=False)
        return answer

    def _let_go(self, connection: Connection | None, *, broken: bool) -> None:
        """Give the connection back (or drop it); never raises — the answer stands, whatever happens here."""
        if connection is None:
            return
        try:
            if broken:
                self.readers.drop(connection)
            else:
                self.readers.give_back(connection)
        except Exception as exc:
            log.warning("a kept database connection could not be let go: %s", type(exc).__name__)

    @staticmethod
    def _fields(environ: dict[str, Any]) -> tuple[str, str | None] | None:
        body = read_body(environ, content_type=JSON, max_bytes=MAX_BODY_BYTES)
        if body is None:
            return None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or not data.keys() <= FIELDS:
            return None
        try:
            fields = verify_fields(data)
            # The view's json_body: text no field can hold (control characters, lone surrogates) is refused.
            validate_text(value for value in data.values() if isinstance(value, str))
        except InvalidRequestError:
            return None
        return fields
