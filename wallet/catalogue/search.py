"""The public catalogue search: by category, region, capability, keyword, and "near" a point.

Filters that SQL can apply on every backend (listed, category, region prefix, keyword) are applied there;
the capability (a JSON list) and the distance are applied to the matching rows here, which is fine for a
province's catalogue (thousands of rows, not millions). The order is stable on every backend — by distance
when a point is given (entries without coordinates last), else by name and id in code-point order — so one
catalogue gives the same pages, and the same ETags, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from wallet.catalogue.errors import InvalidCatalogueQueryError
from wallet.catalogue.gazetteer import Division, distance_km, find_division, region_prefix
from wallet.catalogue.model import CatalogueEntry
from wallet.catalogue.service import CAPABILITIES, CATEGORIES, REGION_PATTERN

DEFAULT_PER_PAGE: Final = 20
MAX_PER_PAGE: Final = 100
MAX_KEYWORD: Final = 100
MAX_PAGE: Final = 10_000
_REGION = re.compile(REGION_PATTERN)
_NUMBER = re.compile(r"-?[0-9]{1,3}(\.[0-9]{1,10})?")
_INTEGER = re.compile(r"[0-9]{1,6}")
QUERY_PARAMETERS: Final = ("q", "category", "region", "capability", "near", "lat", "lon", "page", "per_page")


@dataclass(frozen=True)
class CatalogueQuery:
    keyword: str = ""
    category: str | None = None
    region: str | None = None
    capability: str | None = None
    near: Division | None = None  # a division of the gazetteer, or
    point: tuple[float, float] | None = None  # (latitude, longitude): the point distances are from
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE


@dataclass(frozen=True)
class Hit:
    entry: CatalogueEntry
    distance_km: float | None


@dataclass(frozen=True)
class SearchResult:
    query: CatalogueQuery
    hits: list[Hit]
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.query.per_page))


def _refuse(name: str, description: str) -> InvalidCatalogueQueryError:
    return InvalidCatalogueQueryError(name, description=description)


def _integer(args: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = args.get(name, "")
    if raw == "":
        return default
    if not _INTEGER.fullmatch(raw) or not 1 <= int(raw) <= high:
        raise _refuse(name, f"{name} must be a whole number from 1 to {high}")
    return int(raw)


def _coordinate(args: Mapping[str, str], name: str, bound: float) -> float:
    raw = args.get(name, "")
    if not _NUMBER.fullmatch(raw) or not -bound <= float(raw) <= bound:
        raise _refuse(name, f"{name} must be a number from -{bound:g} to {bound:g}")
    return float(raw)


def parse_query(args: Mapping[str, str]) -> CatalogueQuery:
    """A query from the page's form or the API's query string; empty parameters are absent ones."""
    keyword = " ".join(args.get("q", "").split())
    if len(keyword) > MAX_KEYWORD or not keyword.isprintable():
        raise _refuse("q", f"q is printable, at most {MAX_KEYWORD} characters")
    category = args.get("category") or None
    if category is not None and category not in CATEGORIES:
        raise _refuse("category", f"category must be one of {', '.join(CATEGORIES)}")
    capability = args.get("capability") or None
    if capability is not None and capability not in CAPABILITIES:
        raise _refuse("capability", f"capability must be one of {', '.join(CAPABILITIES)}")
    region = args.get("region") or None
    if region is not None and not _REGION.fullmatch(region):
        raise _refuse("region", "region is a 6-digit division code, e.g. 420106")
    near = None
    if args.get("near"):
        near = find_division(args["near"])
        if near is None:
            raise _refuse("near", "near is the code of a division in GET /api/v1/catalogue/regions")
    point = None
    if args.get("lat") or args.get("lon"):
        point = (_coordinate(args, "lat", 90), _coordinate(args, "lon", 180))
    elif near is not None:
        point = (near.latitude, near.longitude)
    return CatalogueQuery(
        keyword=keyword,
        category=category,
        region=region,
        capability=capability,
        near=near,
        point=point,
        page=_integer(args, "page", 1, MAX_PAGE),
        per_page=_integer(args, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE),
    )


def search_catalogue(session: Session, query: CatalogueQuery) -> SearchResult:
    statement = select(CatalogueEntry).where(CatalogueEntry.withdrawn_at.is_(None))
    if query.category is not None:
        statement = statement.where(CatalogueEntry.category == query.category)
    if query.region is not None:
        statement = statement.where(CatalogueEntry.region.startswith(region_prefix(query.region)))
    if query.keyword:
        word = query.keyword.lower()
        statement = statement.where(
            or_(
                func.lower(CatalogueEntry.name).contains(word, autoescape=True),
                func.lower(CatalogueEntry.address).contains(word, autoescape=True),
            )
        )
    entries = list(session.scalars(statement))
    if query.capability is not None:
        entries = [entry for entry in entries if query.capability in entry.capabilities]
    hits = [Hit(entry, _distance(entry, query.point)) for entry in entries]
    hits.sort(key=lambda hit: (hit.entry.name, hit.entry.id))
    if query.point is not None:
        hits.sort(key=lambda hit: math.inf if hit.distance_km is None else hit.distance_km)
    start = (query.page - 1) * query.per_page
    return SearchResult(query, hits[start : start + query.per_page], len(hits))


def _distance(entry: CatalogueEntry, point: tuple[float, float] | None) -> float | None:
    if point is None or entry.latitude is None or entry.longitude is None:
        return None
    return round(distance_km(point[0], point[1], entry.latitude, entry.longitude), 2)
