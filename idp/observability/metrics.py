"""Every Prometheus metric OneCard defines, and the calls that move them.

Metrics are created on first use, not at import: prometheus_client decides between in-process values and
files shared by gunicorn workers (multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``) when a metric is made, so
``onecard serve`` must be able to switch modes before any exists (``use_multiprocess_mode``).

Label values come from fixed sets only. A value that arrives from outside (an HTTP method, a grant type, an
OAuth error code) is checked against its set here and counted as "other" when it is not in it, so a caller
can never mint series or put text of its choosing into a label.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields
from typing import Final

from prometheus_client import REGISTRY, Counter, Histogram, values

from sdk.errors import OneCardError

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
OTHER: Final = "other"
SUCCESS: Final = "success"
UNMATCHED: Final = "unmatched"  # the endpoint label of a request no URL rule matched (404, 405)

HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The grants idp.oauth.server registers (tests/test_metrics.py holds this to discovery's
# grant_types_supported, which is built from the same grant classes).
TOKEN_GRANT_TYPES: Final = frozenset({"authorization_code", "refresh_token", "client_credentials"})
# RFC 6749 §5.2: what a token endpoint refusal can say.
TOKEN_ERRORS: Final = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)

# Short-lived store operations and single statements take well under a millisecond to tens of milliseconds.
_FAST_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_REQUEST_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class _Metrics:
    requests: Counter
    request_seconds: Histogram
    logins: Counter
    token_grants: Counter
    gate_verifications: Counter
    realname_verifications: Counter
    rate_limit_refusals: Counter
    store_seconds: Histogram
    database_seconds: Histogram


def _create_metrics() -> _Metrics:
    return _Metrics(
        requests=Counter(
            "onecard_http_requests",
            "HTTP requests answered, by Flask endpoint (unmatched: no URL rule), method and status.",
            ["endpoint", "method", "status"],
        ),
        request_seconds=Histogram(
            "onecard_http_request_duration_seconds",
            "Time from the first request hook to the response, by Flask endpoint and method.",
            ["endpoint", "method"],
            buckets=_REQUEST_BUCKETS,
        ),
        logins=Counter(
            "onecard_logins",
            "Login attempts by method (card, ecard, qr) and result (success, or the refusal's error code).",
            ["method", "result"],
        ),
        token_grants=Counter(
            "onecard_token_grants",
            "Token endpoint requests by grant type and result (success, or the RFC 6749 error code).",
            ["grant_type", "result"],
        ),
        gate_verifications=Counter(
            "onecard_gate_verifications",
            "Online gate verdicts by venue category and verdict (pass, or the reject reason).",
            ["category", "verdict"],
        ),
        realname_verifications=Counter(
            "onecard_realname_verifications",
            "Real-name verification calls by result (match, no_match, or the refusal's error code).",
            ["result"],
        ),
        rate_limit_refusals=Counter(
            "onecard_rate_limit_refusals",
            "Attempts refused by a rate limit, by the limit's name.",
            ["limit"],
        ),
        store_seconds=Histogram(
            "onecard_store_operation_duration_seconds",
            "Short-lived store operations by backend (sql, redis) and operation.",
            ["backend", "operation"],
            buckets=_FAST_BUCKETS,
        ),
        database_seconds=Histogram(
            "onecard_db_statement_duration_seconds",
            "Database statements by kind (select, insert, update, delete, other).",
            ["operation"],
            buckets=_FAST_BUCKETS,
        ),
    )


_lock = threading.Lock()
_current: _Metrics | None = None


def _metrics() -> _Metrics:
    global _current
    current = _current
    if current is None:
        with _lock:
            if _current is None:
                _current = _create_metrics()
            current = _current
    return current


def multiprocess_directory() -> str | None:
    """The directory worker processes write their metrics to, when this process serves under gunicorn."""
    return os.environ.get(MULTIPROCESS_ENV) or None


def use_multiprocess_mode(directory: str) -> None:
    """From now on, keep every metric in files under ``directory`` that all forked workers share.

    prometheus_client reads ``PROMETHEUS_MULTIPROC_DIR`` once, when ``prometheus_client.values`` is first
    imported, to pick the class that holds metric values. ``onecard serve`` imported it long before it knew
    it would fork, so the choice is made again here; metrics made before (start-up's statements) are
    dropped and made afresh, file-backed, on their next use.
    """
    global _current
    os.environ[MULTIPROCESS_ENV] = directory
    with _lock:
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        if _current is not None:
            for metric in fields(_current):
                REGISTRY.unregister(getattr(_current, metric.name))
        _current = None


def _bounded(value: str | None, allowed: frozenset[str]) -> str:
    return value if value is not None and value in allowed else OTHER


# --- requests -------------------------------------------------------------------------------------------


def http_method_label(method: str) -> str:
    """The request's method if it is a standard one, else "other" (any token is a valid HTTP method)."""
    return method if method in HTTP_METHODS else OTHER


def observe_request(*, endpoint: str, method: str, status: int, seconds: float) -> None:
    """``endpoint`` is a Flask endpoint name (fixed by the URL map) or ``UNMATCHED``, never a path."""
    metrics = _metrics()
    label = http_method_label(method)
    metrics.requests.labels(endpoint=endpoint, method=label, status=str(status)).inc()
    metrics.request_seconds.labels(endpoint=endpoint, method=label).observe(seconds)


# --- outcomes -------------------------------------------------------------------------------------------


class Attempt:
    """One attempt, counted when its ``with`` block ends: ``result`` ("success" unless a caller sets it), the
    error code of a refusal the caller answered itself (``refused``), or the error code of the
    ``OneCardError`` that ended the block ("error" for anything else)."""

    def __init__(self, result: str = SUCCESS) -> None:
        self.result = result

    def refused(self, error: OneCardError) -> None:
        self.result = error.error


@contextmanager
def _counted(count: Callable[[str], None]) -> Iterator[Attempt]:
    attempt = Attempt()
    try:
        yield attempt
    except OneCardError as error:
        count(error.error)  # a class attribute: one of a fixed set of wire codes
        raise
    except Exception:
        count("error")
        raise
    count(attempt.result)


def login_attempt(method: str) -> AbstractContextManager[Attempt]:
    """Counts one login attempt of ``method`` (a ``LoginMethod.name`` or the wallet's "qr")."""
    return _counted(lambda result: _metrics().logins.labels(method=method, result=result).inc())


def realname_attempt() -> AbstractContextManager[Attempt]:
    """Counts one real-name call; the view sets ``result`` to the verdict (match / no_match)."""
    return _counted(lambda result: _metrics().realname_verifications.labels(result=result).inc())


def count_token_grant(grant_type: str | None, result: str) -> None:
    """One token endpoint answer: ``result`` is "success" or the RFC 6749 §5.2 error code it carried."""
    _metrics().token_grants.labels(
        grant_type=_bounded(grant_type, TOKEN_GRANT_TYPES),
        result=result if result == SUCCESS else _bounded(result, TOKEN_ERRORS),
    ).inc()


def count_gate_verification(*, category: str, reason: str | None) -> None:
    """One online gate verdict: ``reason`` None for a pass, else a ``QrTokenReason`` value."""
    _metrics().gate_verifications.labels(category=category, verdict=reason or "pass").inc()


def count_rate_limit_refusal(limit: str) -> None:
    """``limit`` is the limiter's namespace, a name fixed in code (``realname``, ``card_login_fail_ip``)."""
    _metrics().rate_limit_refusals.labels(limit=limit).inc()


# --- latency of what requests wait on -------------------------------------------------------------------


@contextmanager
def timed_store_operation(*, backend: str, operation: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        _metrics().store_seconds.labels(backend=backend, operation=operation).observe(
            time.perf_counter() - started
        )


def observe_database_statement(*, operation: str, seconds: float) -> None:
    _metrics().database_seconds.labels(operation=operation).observe(seconds)
