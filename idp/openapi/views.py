"""``GET /api/openapi.json``: the contract, public and cacheable (ETag, 304 on If-None-Match).

The document is built and serialised once, when the app is built (``ApiContract.seal``); it changes only
with a new release, so caches may keep it an hour and revalidate it with its ETag after that.
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint, Response

from idp.services import services
from idp.web import conditional_json

OPENAPI_PATH: Final = "/api/openapi.json"
MAX_AGE: Final = 3600

bp = Blueprint("openapi", __name__)


@bp.get(OPENAPI_PATH)
def document() -> Response:
    return conditional_json(services().api_contract.sealed.body, cache_control=f"public, max-age={MAX_AGE}")
