"""The contract of the scan statistics API (``wallet.stats.views``): its part of ``/api/openapi.json``.
``/api/v1/admin/stats/scans/page`` shows the same numbers as an HTML page, and is not part of it."""

from __future__ import annotations

from typing import Final

from idp.openapi.components import JsonObject, json_response, query_parameter, ref, refusals, service_token
from idp.openapi.contract import ContractFragment, Operation
from idp.scopes import ADMIN
from wallet.stats.service import MAX_DAYS
from wallet.venues.service import VENUE_CATEGORIES

_COUNT_PROPERTIES: Final[JsonObject] = {
    "passed": {"type": "integer", "minimum": 0},
    "rejected": {"type": "integer", "minimum": 0},
    "total": {"type": "integer", "minimum": 0},
}
_DAY: Final[JsonObject] = {"type": "string", "format": "date"}


def _counted(**properties: JsonObject) -> JsonObject:
    every = {**properties, **_COUNT_PROPERTIES}
    return {"type": "object", "required": list(every), "additionalProperties": False, "properties": every}


CONTRACT: Final = ContractFragment(
    tag="statistics",
    description="How many codes were scanned, passed and rejected, per venue, category and day (China time), "
    "for the security and operations staff (`admin` scope).",
    schemas={
        "ScanStatistics": {
            "type": "object",
            "required": ["from", "to", "timezone", "by_venue", "by_category", "totals_by_category"],
            "additionalProperties": False,
            "properties": {
                "from": _DAY,
                "to": _DAY,
                "timezone": {"const": "Asia/Shanghai"},
                "by_venue": {
                    "type": "array",
                    "items": _counted(
                        day=_DAY,
                        venue_id={"type": "string"},
                        venue_name={"type": "string"},
                        category={"type": "string", "description": "Empty for a venue removed since."},
                    ),
                },
                "by_category": {
                    "type": "array",
                    "items": _counted(day=_DAY, category={"type": "string"}),
                },
                "totals_by_category": {
                    "type": "object",
                    "propertyNames": {"enum": list(VENUE_CATEGORIES)},
                    "additionalProperties": _counted(),
                },
            },
        },
    },
    operations=(
        Operation(
            "get",
            "/api/v1/admin/stats/scans",
            {
                "operationId": "getScanStatistics",
                "summary": "Scans per venue and day, per category and day, and per category",
                "description": f"`invalid_period` for dates that are not YYYY-MM-DD, `from` after `to`, or a "
                f"period of more than {MAX_DAYS} days.",
                "security": service_token(ADMIN),
                "parameters": [
                    query_parameter("from", _DAY, "The first day (inclusive); 6 days before `to` if absent."),
                    query_parameter("to", _DAY, "The last day (inclusive); today if absent."),
                    query_parameter("venue_id", {"type": "string"}, "Only this venue's scans."),
                ],
                "responses": {
                    "200": json_response("The numbers.", ref("ScanStatistics")),
                    **refusals(400, 401, 403),
                },
            },
        ),
    ),
)
