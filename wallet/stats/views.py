"""Usage statistics for the security and operations staff (``admin`` scope):

- ``GET /api/v1/admin/stats/scans?from=YYYY-MM-DD&to=YYYY-MM-DD[&venue_id=…]`` → JSON: per venue and day,
  per category and day (passed, rejected, total), totals per category; days in China time.
- ``GET /api/v1/admin/stats/scans/page?…`` → the same as an HTML page: SVG bar charts with a table of the
  same numbers under each (the accessible alternative).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, make_response, render_template, request
from flask_babel import gettext

from idp.citizens.service import local_date
from idp.i18n import china_date
from idp.oauth.resource import require_scope
from idp.scopes import ADMIN
from idp.services import services
from idp.web import db_session
from wallet.stats.chart import bar_chart
from wallet.stats.service import ScanStats, parse_period, scan_stats
from wallet.words import category_word

bp = Blueprint("wallet_stats", __name__, url_prefix="/api/v1/admin/stats")


def _stats() -> ScanStats:
    start, end = parse_period(
        request.args.get("from"), request.args.get("to"), today=local_date(services().now())
    )
    venue_id = request.args.get("venue_id") or None
    return scan_stats(db_session(), start=start, end=end, venue_id=venue_id)


@bp.get("/scans")
@require_scope(ADMIN)
def scans() -> Response:
    return jsonify(_stats().to_json())


@bp.get("/scans/page")
@require_scope(ADMIN)
def scans_page() -> Response:
    stats = _stats()
    per_category = stats.per_category()
    per_day = stats.per_day()
    venues_total: dict[str, int] = {}
    for (_day, venue_id), count in stats.by_venue_day.items():
        venues_total[venue_id] = venues_total.get(venue_id, 0) + count.total
    category_chart = bar_chart(
        "by-category",
        gettext("Scans per category"),
        [(category_word(c), n.total) for c, n in per_category.items()],
    )
    day_chart = bar_chart(
        "by-day", gettext("Scans per day"), [(china_date(d), n.total) for d, n in per_day.items()]
    )
    venue_chart = bar_chart(
        "by-venue",
        gettext("Scans per venue"),
        [(stats.venues.get(v, (v, ""))[0][:18], n) for v, n in sorted(venues_total.items())],
    )
    response = make_response(
        render_template(
            "wallet/stats.html",
            stats=stats,
            per_category=per_category,
            per_day=per_day,
            category_chart=category_chart,
            day_chart=day_chart,
            venue_chart=venue_chart,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response
