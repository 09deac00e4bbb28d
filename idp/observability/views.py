"""``GET /metrics`` on the application: Prometheus text, for a scraper presenting
``Authorization: Bearer <ONECARD_METRICS_TOKEN>``.

Without a token configured the endpoint does not exist for anyone (404): metrics then go to the separate
listener on ``ONECARD_METRICS_BIND``, or nowhere. A missing or wrong token is a 401 that says only how to
authenticate. The token is read on every scrape, so a rotated ``ONECARD_METRICS_TOKEN_FILE`` takes effect
without a restart.
"""

from __future__ import annotations

import hmac
import logging
from typing import ClassVar

from flask import Blueprint, Response, request
from werkzeug.exceptions import NotFound

from idp.config import ConfigError
from idp.observability.exposition import CONTENT_TYPE, METRICS_PATH, render_metrics, scrape_registry
from idp.services import services
from sdk.errors import OneCardError, UnauthorizedError

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)
REALM = "onecard-metrics"


class MetricsTokenRequiredError(UnauthorizedError):
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": f'Bearer realm="{REALM}"'}


class MetricsUnavailableError(OneCardError):
    error = "metrics_unavailable"
    description = "The metrics are not available on this node now."
    status_code = 503


def _presented_token() -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@bp.get(METRICS_PATH)
def metrics() -> Response:
    svc = services()
    try:
        expected = svc.settings.metrics_bearer_token()
    except ConfigError as error:  # the token file went missing after start-up: say so, do not guess
        log.error("metrics token: %s", error)
        raise MetricsUnavailableError("metrics token unreadable") from None
    if not expected:
        raise NotFound()
    # Bytes, in constant time: compare_digest refuses a non-ASCII str, and a header may hold anything.
    if not hmac.compare_digest(_presented_token().encode("utf-8", "replace"), expected.encode()):
        raise MetricsTokenRequiredError("no or wrong metrics bearer token")
    registry = scrape_registry(svc.database, svc.settings, svc.clock)
    response = Response(render_metrics(registry), content_type=CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response
