"""A browser for cross-region login tests: it follows redirects across the deployments of
``tests.support.federation`` (each reached through a test client of its own, with its own cookie jar, as a
browser keeps cookies per site) and stops where a URL leaves them (a portal's redirect URI). Also: the
back-channel logout posts of ``idp.oauth.logout`` routed to the deployments' test clients, a digest of
every durable row, and the static registration of one region at another that stands in for automatic
registration."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from idp.db import Base
from idp.federation.transport import FederationHttp, HttpAnswer
from idp.stores.sql import EphemeralEntry
from tests.support.federation import Region

REDIRECTS = (301, 302, 303, 307, 308)
MAX_HOPS = 30
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Visit:
    """Where the browser stopped: a page of a deployment (``response``), or a URL outside them."""

    url: str
    response: TestResponse | None

    @property
    def query(self) -> dict[str, str]:
        return {name: values[0] for name, values in parse_qs(urlsplit(self.url).query).items()}

    @property
    def text(self) -> str:
        assert self.response is not None, f"left the deployments at {self.url}"
        return self.response.get_data(as_text=True)


@dataclass
class CrossRegionBrowser:
    clients: dict[str, FlaskClient]  # origin → this browser's test client for that deployment
    history: list[str] = field(default_factory=list)
    stop_at: Callable[[str], bool] = lambda url: False  # stop before fetching such a URL (a callback)

    @classmethod
    def for_regions(cls, *regions: Region) -> CrossRegionBrowser:
        return cls({region.entity_id: region.app.test_client() for region in regions})

    def open(self, url: str, *, method: str = "GET", data: Mapping[str, str] | None = None) -> Visit:
        for _ in range(MAX_HOPS):
            parts = urlsplit(url)
            client = self.clients.get(f"{parts.scheme}://{parts.netloc}")
            if client is None or (self.history and self.stop_at(url)):
                return Visit(url, None)
            self.history.append(url)
            response = client.open(
                parts.path + (f"?{parts.query}" if parts.query else ""),
                method=method,
                data=dict(data) if data is not None else None,
                headers={"Accept": "text/html"},
            )
            if response.status_code not in REDIRECTS:
                return Visit(url, response)
            url = urljoin(url, response.headers["Location"])
            method, data = ("GET", None) if response.status_code in (301, 302, 303) else (method, data)
        raise AssertionError(f"more than {MAX_HOPS} redirects: {self.history[-5:]}")

    def allow_consent(self, visit: Visit) -> Visit:
        """On a consent page: press "Allow"; on anything else: stay."""
        if visit.response is None or 'id="allow"' not in visit.text:
            return visit
        match = CSRF_FIELD.search(visit.text)
        assert match is not None
        return self.open(visit.url, method="POST", data={"csrf": match.group(1), "decision": "allow"})

    def visited(self, origin: str) -> list[str]:
        return [url for url in self.history if url.startswith(origin)]


def durable_rows(region: Region) -> str:
    """A digest of every durable row of the region (the short-lived store's rows are not durable state)."""
    digest = hashlib.sha256()
    with region.services.database.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name == EphemeralEntry.__tablename__:
                continue
            for row in session.execute(select(table).order_by(*table.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


@dataclass
class BackChannel:
    """``idp.oauth.logout``'s POSTs: to a deployment through its test client, anything else recorded."""

    regions: dict[str, FlaskClient]
    outside: list[tuple[str, str]] = field(default_factory=list)  # (uri, logout_token)
    answers: list[tuple[str, int]] = field(default_factory=list)
    delivered: list[tuple[str, str]] = field(default_factory=list)  # (uri, logout_token) to a deployment

    def post(self, uri: str, *, data: Mapping[str, str], **_: Any) -> Any:
        parts = urlsplit(uri)
        client = self.regions.get(f"{parts.scheme}://{parts.netloc}")
        if client is None:
            self.outside.append((uri, data["logout_token"]))
            return _Answer(200)
        response = client.post(parts.path, data=dict(data))
        self.answers.append((uri, response.status_code))
        self.delivered.append((uri, data["logout_token"]))
        return _Answer(response.status_code)


@dataclass
class _Answer:
    status_code: int


def route_back_channel(monkeypatch: pytest.MonkeyPatch, *regions: Region) -> BackChannel:
    channel = BackChannel({region.entity_id: region.client for region in regions})
    monkeypatch.setattr("idp.oauth.logout.requests.post", channel.post)
    return channel


@dataclass
class TamperingHttp:
    """A ``FederationHttp`` whose answers for URLs starting with a rule's prefix are what its ``change``
    makes of them."""

    inner: FederationHttp
    rules: list[tuple[str, Callable[[HttpAnswer], HttpAnswer]]] = field(default_factory=list)

    def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        answer = self.inner(method, url, headers=headers, form=form)
        for prefix, change in self.rules:
            if url.startswith(prefix):
                answer = change(answer)
        return answer
