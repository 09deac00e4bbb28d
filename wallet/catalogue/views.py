"""The catalogue on the web: a public page and a public JSON API (no login), and the staff's admin API.

Public, read-only, searchable by ``q``, ``category``, ``region``, ``capability`` and ``near`` (a division of
the gazetteer) or ``lat``/``lon`` (the browser's position, "near me"), paged by ``page``/``per_page``:

- ``GET /catalogue``                         → the page (the search form works without JavaScript)
- ``GET /api/v1/catalogue``                  → ``{"entries": [...], "total", "page", "per_page", "pages"}``
- ``GET /api/v1/catalogue/<entry_id>``
- ``GET /api/v1/catalogue/regions``          → the gazetteer's divisions with their centroids

The JSON carries a strong ETag (a hash of the body) and ``Cache-Control: public, no-cache``: a caller keeps
its copy and asks again with If-None-Match, answered 304 until staff change something.

Admin (``admin`` scope, client_credentials), every change a new version:

- ``GET    /api/v1/admin/catalogue``                     (``?include_withdrawn=1``)
- ``POST   /api/v1/admin/catalogue``                     → 201
- ``GET    /api/v1/admin/catalogue/<entry_id>``
- ``PATCH  /api/v1/admin/catalogue/<entry_id>``          some fields (``version``: refuse a lost update)
- ``DELETE /api/v1/admin/catalogue/<entry_id>``          → 204: withdrawn from the public catalogue
- ``POST   /api/v1/admin/catalogue/<entry_id>/restore``  → listed again
- ``GET    /api/v1/admin/catalogue/<entry_id>/history``  → every version, oldest first
"""

from __future__ import annotations

import json
from typing import Any, Final

from flask import Blueprint, Response, jsonify, make_response, render_template, request, url_for
from flask_babel import get_locale, gettext

from idp.i18n import EN
from idp.oauth.resource import current_access, require_scope
from idp.scopes import ADMIN
from idp.services import services
from idp.web import conditional_json, db_session, json_body
from wallet.catalogue.errors import (
    CatalogueEntryNotFoundError,
    InvalidCatalogueEntryError,
    InvalidCatalogueQueryError,
)
from wallet.catalogue.gazetteer import DIVISIONS
from wallet.catalogue.search import (
    QUERY_PARAMETERS,
    CatalogueQuery,
    SearchResult,
    parse_query,
    search_catalogue,
)
from wallet.catalogue.service import (
    CAPABILITIES,
    CATEGORIES,
    FACTS,
    changes_from_json,
    create_entry,
    describe_entry,
    describe_revision,
    entry_history,
    get_entry,
    list_entries,
    new_fields_from_json,
    restore_entry,
    update_entry,
    withdraw_entry,
)

bp = Blueprint("wallet_catalogue", __name__)
admin_bp = Blueprint("wallet_catalogue_admin", __name__, url_prefix="/api/v1/admin/catalogue")
PUBLIC_CACHE: Final = "public, no-cache"  # keep it, but ask again (If-None-Match) before using it


def _public_json(document: Any) -> Response:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return conditional_json(body, cache_control=PUBLIC_CACHE)


def _search_json(result: SearchResult) -> dict[str, Any]:
    entries = []
    for hit in result.hits:
        entries.append({**describe_entry(hit.entry), "distance_km": hit.distance_km})
    return {
        "entries": entries,
        "total": result.total,
        "page": result.query.page,
        "per_page": result.query.per_page,
        "pages": result.pages,
    }


@bp.get("/api/v1/catalogue")
def api_search() -> Response:
    return _public_json(_search_json(search_catalogue(db_session(), parse_query(request.args))))


@bp.get("/api/v1/catalogue/regions")
def api_regions() -> Response:
    divisions = [
        {
            "code": d.code,
            "name": d.name,
            "name_en": d.name_en,
            "parent": d.parent_code,
            "latitude": d.latitude,
            "longitude": d.longitude,
        }
        for d in DIVISIONS
    ]
    return _public_json({"divisions": divisions})


@bp.get("/api/v1/catalogue/<entry_id>")
def api_entry(entry_id: str) -> Response:
    entry = get_entry(db_session(), entry_id)
    if not entry.is_listed:
        raise CatalogueEntryNotFoundError(entry.id)
    return _public_json(describe_entry(entry))


@bp.get("/catalogue")
def page() -> Response:
    """The public catalogue page: the search form (plain GET, no script needed) and the results."""
    problem = None
    try:
        query = parse_query(request.args)
    except InvalidCatalogueQueryError:
        problem = gettext("Some of the search terms could not be used. Showing the whole catalogue.")
        query = CatalogueQuery()
    result = search_catalogue(db_session(), query)
    english = str(get_locale()) == EN
    args: dict[str, Any] = {
        key: request.args[key] for key in QUERY_PARAMETERS if request.args.get(key) and key != "page"
    }
    pages = {
        "previous": url_for(".page", **{**args, "page": query.page - 1}) if query.page > 1 else None,
        "next": url_for(".page", **{**args, "page": query.page + 1}) if query.page < result.pages else None,
    }
    response = make_response(
        render_template(
            "wallet/catalogue.html",
            query=query,
            result=result,
            problem=problem,
            divisions=DIVISIONS,
            division_name=(lambda d: d.name_en) if english else (lambda d: d.name),
            categories=CATEGORIES,
            capabilities=CAPABILITIES,
            pages=pages,
            here_used=bool(request.args.get("lat")),
        ),
        400 if problem else 200,
    )
    return response


# Admin ---------------------------------------------------------------------------------------------------


def _actor() -> str:
    return f"client:{current_access().client_id}"


@admin_bp.get("")
@require_scope(ADMIN)
def admin_index() -> Response:
    include_withdrawn = request.args.get("include_withdrawn") in ("1", "true")
    entries = list_entries(db_session(), include_withdrawn=include_withdrawn)
    return jsonify(
        {
            "entries": [describe_entry(e) for e in entries],
            "categories": list(CATEGORIES),
            "capabilities": list(CAPABILITIES),
            "claims": list(FACTS),
        }
    )


@admin_bp.post("")
@require_scope(ADMIN)
def admin_create() -> Response:
    data = json_body()
    entry_id = data.get("entry_id")
    if entry_id is not None and not isinstance(entry_id, str):
        raise InvalidCatalogueEntryError("entry_id", description="entry_id must be a string")
    fields = new_fields_from_json(data, extra=("entry_id",))
    entry = create_entry(db_session(), fields, actor=_actor(), now=services().now(), entry_id=entry_id)
    response = jsonify(describe_entry(entry))
    response.status_code = 201
    return response


@admin_bp.get("/<entry_id>")
@require_scope(ADMIN)
def admin_show(entry_id: str) -> Response:
    return jsonify(describe_entry(get_entry(db_session(), entry_id)))


@admin_bp.patch("/<entry_id>")
@require_scope(ADMIN)
def admin_update(entry_id: str) -> Response:
    data = json_body()
    version = data.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidCatalogueEntryError("version", description="version must be an integer")
    entry = update_entry(
        db_session(),
        entry_id,
        changes_from_json(data, extra=("version",)),
        actor=_actor(),
        now=services().now(),
        expected_version=version,
    )
    return jsonify(describe_entry(entry))


@admin_bp.delete("/<entry_id>")
@require_scope(ADMIN)
def admin_withdraw(entry_id: str) -> Response:
    withdraw_entry(db_session(), entry_id, actor=_actor(), now=services().now())
    return Response(status=204)


@admin_bp.post("/<entry_id>/restore")
@require_scope(ADMIN)
def admin_restore(entry_id: str) -> Response:
    return jsonify(
        describe_entry(restore_entry(db_session(), entry_id, actor=_actor(), now=services().now()))
    )


@admin_bp.get("/<entry_id>/history")
@require_scope(ADMIN)
def admin_history(entry_id: str) -> Response:
    revisions = entry_history(db_session(), entry_id)
    return jsonify({"entry_id": entry_id, "revisions": [describe_revision(r) for r in revisions]})
