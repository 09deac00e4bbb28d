"""A hall's statistics for the operations staff (``admin`` scope):

- ``GET /api/v1/admin/halls/<hall_id>/stats?day=YYYY-MM-DD`` → JSON (today in China when absent)
- ``GET /api/v1/admin/halls/<hall_id>/stats/page?day=…`` → the same as an HTML page: SVG bar charts (the
  wallet's statistics charts) with a table of the same numbers under each, the accessible alternative.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, make_response, render_template, request
from flask_babel import gettext

from halls.register.service import get_hall
from halls.stats.service import HallStats, hall_stats, parse_day
from idp.citizens.service import local_date
from idp.oauth.resource import require_scope
from idp.scopes import ADMIN
from idp.services import services
from idp.web import db_session
from wallet.stats.chart import bar_chart

bp = Blueprint("halls_stats", __name__, url_prefix="/api/v1/admin/halls")


def _stats(hall_id: str) -> HallStats:
    session = db_session()
    hall = get_hall(session, hall_id, live=False)
    day = parse_day(request.args.get("day"), today=local_date(services().now()))
    return hall_stats(session, hall, day=day)


@bp.get("/<hall_id>/stats")
@require_scope(ADMIN)
def stats(hall_id: str) -> Response:
    return jsonify(_stats(hall_id).to_json())


@bp.get("/<hall_id>/stats/page")
@require_scope(ADMIN)
def stats_page(hall_id: str) -> Response:
    stats = _stats(hall_id)
    hall = get_hall(db_session(), hall_id, live=False)
    wait_chart = bar_chart(
        "wait",
        gettext("Average wait in minutes per service"),
        [(s.name[:18], round((s.average_wait or 0) / 60)) for s in stats.services],
    )
    hour_chart = bar_chart(
        "per-hour",
        gettext("Numbers served per hour"),
        [(f"{hour:02d}:00", n) for hour, n in sorted(stats.served_per_hour.items())],
    )
    response = make_response(
        render_template(
            "halls/stats.html", hall=hall, stats=stats, wait_chart=wait_chart, hour_chart=hour_chart
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response
