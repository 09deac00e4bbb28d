"""Three OneCard deployments in one process — a province as trust anchor, a city as intermediate, a
district as leaf — and a fetcher that reaches each through its own Flask test client (no network), so
trust chains are resolved against the real endpoints of real applications.

Every deployment is a whole ``create_app`` on its own database with its own key lifecycle; they share one
``FixedClock``, so a test moves time for the whole federation at once.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from base64 import b64encode
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from flask import Flask
from flask.testing import FlaskClient

import idp.models  # noqa: F401 - every table on the metadata
from idp.app import create_app, initialise_keys
from idp.clients.service import ClientRegistration, create_client
from idp.db import Base
from idp.federation.chain import Fetcher, TrustAnchor, fixed_anchors
from idp.federation.context import FederationContext
from idp.federation.errors import EntityUnreachableError
from idp.federation.service import SubordinateRegistration, create_subordinate, issue_subordinate_trust_mark
from idp.federation.transport import HttpAnswer
from idp.services import Services
from sdk.clock import FixedClock
from sdk.keys import Key, KeySet

T0 = 1_800_000_000.0  # 2027-01-15 UTC
ANCHOR_ID = "http://province.onecard.test"
INTERMEDIATE_ID = "http://city.onecard.test"
LEAF_ID = "http://district.onecard.test"
# Two regions under one anchor (cross-region login and gates): the region codes are real (Chengdu, Chongqing).
REGION_A_ID = "http://region-a.onecard.test"
REGION_B_ID = "http://region-b.onecard.test"
REGION_A_CODE = "510100"
REGION_B_CODE = "500000"


@dataclass
class Region:
    """One deployment: its app, a test client, and what the federation needs of it."""

    entity_id: str
    app: Flask
    client: FlaskClient

    @property
    def services(self) -> Services:
        return self.app.extensions["onecard"]  # type: ignore[no-any-return]

    @property
    def federation(self) -> FederationContext:
        context = self.services.federation
        assert context is not None
        return context

    def public_keys(self) -> KeySet:
        keys = self.federation.signing_keys(now=self.services.now())
        return KeySet.of(key.public_only() for key in keys)

    def jwks(self) -> dict[str, Any]:
        return self.public_keys().to_jwks()

    def admin_headers(self) -> dict[str, str]:
        """A new operator client's client_credentials token with the ``admin`` scope, as headers."""
        with self.services.database.session() as session:
            client, secret = create_client(
                session,
                ClientRegistration(name="Federation staff", kind="operator", scope="admin"),
                now=self.services.now(),
            )
        answer = self.client.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "admin"},
            headers={"Authorization": "Basic " + b64encode(f"{client.client_id}:{secret}".encode()).decode()},
        )
        assert answer.status_code == 200, answer.data
        body = answer.get_json()
        assert body is not None
        return {"Authorization": "Bearer " + body["access_token"]}

    def register(self, subordinate: Region, **registration: Any) -> None:
        """Register ``subordinate`` under this deployment, with its current federation keys."""
        registration.setdefault("jwks", subordinate.jwks())
        with self.services.database.session() as session:
            create_subordinate(
                session,
                SubordinateRegistration(entity_id=subordinate.entity_id, **registration),
                self.federation.config,
                now=self.services.now(),
                replace=True,
            )


@dataclass
class TestClientFetcher:
    """``url -> bytes`` through the deployments' test clients; anything else is unreachable."""

    clients: dict[str, FlaskClient] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    def __call__(self, url: str) -> bytes:
        parts = urlsplit(url)
        client = self.clients.get(f"{parts.scheme}://{parts.netloc}")
        if client is None:
            raise EntityUnreachableError(f"{url}: no such deployment")
        self.fetched.append(url)
        response = client.get(parts.path + (f"?{parts.query}" if parts.query else ""))
        if response.status_code != 200:
            raise EntityUnreachableError(f"{url}: HTTP {response.status_code}")
        body: bytes = response.data
        return body


@dataclass
class TestClientHttp:
    """``FederationHttp`` through the deployments' test clients; anything else is unreachable."""

    clients: dict[str, FlaskClient] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        parts = urlsplit(url)
        client = self.clients.get(f"{parts.scheme}://{parts.netloc}")
        if client is None:
            raise EntityUnreachableError(f"{url}: no such deployment")
        self.calls.append((method, url))
        response = client.open(
            parts.path + (f"?{parts.query}" if parts.query else ""),
            method=method,
            headers=dict(headers or {}),
            data=dict(form) if form is not None else None,
        )
        return HttpAnswer(
            response.status_code, response.data, {k.lower(): v for k, v in response.headers.items()}
        )


@dataclass
class Federation:
    anchor: Region
    intermediate: Region
    leaf: Region
    clock: FixedClock
    fetcher: TestClientFetcher
    anchors_file: Path

    @property
    def regions(self) -> tuple[Region, ...]:
        return self.anchor, self.intermediate, self.leaf

    def trust_anchor_keys(self, keys: KeySet) -> None:
        """Rewrite what the intermediate and the leaf trust the anchor by (operators do it out of band)."""
        self.anchors_file.write_text(json.dumps({ANCHOR_ID: keys.to_jwks()}))
        for region in (self.intermediate, self.leaf):
            region.federation.resolver.anchors = fixed_anchors(TrustAnchor(ANCHOR_ID, keys))
            region.federation.resolver.clear()


def _region(
    entity_id: str,
    database_url: str,
    clock: FixedClock,
    fetcher: TestClientFetcher,
    redis_url: str,
    **settings: Any,
) -> Region:
    app = create_app(
        env="test",
        issuer=entity_id,
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix="oc-fed-" + secrets.token_hex(4),
        clock=clock,
        **{"plugins": [], **settings},
    )
    svc: Services = app.extensions["onecard"]
    Base.metadata.create_all(svc.database.engine)
    initialise_keys(app)
    assert svc.federation is not None
    svc.federation.resolver.fetch = fetcher
    region = Region(entity_id, app, app.test_client())
    fetcher.clients[entity_id] = region.client
    # The same routes for calls beyond statements (cross-region login, the gates' sync).
    svc.federation.http = TestClientHttp(fetcher.clients)
    return region


@contextmanager
def running_federation(
    tmp_path: Path, database_urls: tuple[str, str, str] | None = None, *, redis_url: str = ""
) -> Iterator[Federation]:
    """The three deployments, registered with one another: anchor ⟵ intermediate ⟵ leaf."""
    urls = database_urls or tuple(f"sqlite:///{tmp_path}/{name}.sqlite3" for name in ("a", "i", "l"))
    clock = FixedClock(T0)
    fetcher = TestClientFetcher()
    anchors_file = tmp_path / "trust-anchors.json"
    with ExitStack() as stack:
        anchor = _region(ANCHOR_ID, urls[0], clock, fetcher, redis_url, federation_roles="anchor")
        stack.callback(anchor.services.database.dispose)
        anchors_file.write_text(json.dumps({ANCHOR_ID: anchor.jwks()}))
        intermediate = _region(
            INTERMEDIATE_ID,
            urls[1],
            clock,
            fetcher,
            redis_url,
            federation_roles="intermediate",
            federation_authority_hints=ANCHOR_ID,
            federation_trust_anchors_file=str(anchors_file),
        )
        stack.callback(intermediate.services.database.dispose)
        leaf = _region(
            LEAF_ID,
            urls[2],
            clock,
            fetcher,
            redis_url,
            federation_authority_hints=INTERMEDIATE_ID,
            federation_trust_anchors_file=str(anchors_file),
        )
        stack.callback(leaf.services.database.dispose)
        anchor.register(intermediate)
        intermediate.register(leaf)
        yield Federation(anchor, intermediate, leaf, clock, fetcher, anchors_file)


@dataclass
class TwoRegions:
    """A trust anchor and two regional OneCards under it, each the home of its own region code."""

    anchor: Region
    a: Region
    b: Region
    clock: FixedClock
    fetcher: TestClientFetcher
    anchors_file: Path

    @property
    def regions(self) -> tuple[Region, ...]:
        return self.anchor, self.a, self.b


@contextmanager
def running_two_regions(
    tmp_path: Path,
    database_urls: tuple[str, str, str] | None = None,
    *,
    redis_url: str = "",
    plugins: list[Any] | None = None,
    **settings: Any,
) -> Iterator[TwoRegions]:
    """anchor ⟵ region A, anchor ⟵ region B; both hold the anchor's loa:high trust mark. ``plugins`` as
    ``create_app`` takes them (default none: the wallet's gates need ``[WalletPlugin()]``); ``settings``
    go to both regions."""
    urls = database_urls or tuple(f"sqlite:///{tmp_path}/{name}.sqlite3" for name in ("anchor", "ra", "rb"))
    clock = FixedClock(T0)
    fetcher = TestClientFetcher()
    anchors_file = tmp_path / "trust-anchors.json"
    extra = {"plugins": plugins or []}
    with ExitStack() as stack:
        anchor = _region(ANCHOR_ID, urls[0], clock, fetcher, redis_url, federation_roles="anchor", **extra)
        stack.callback(anchor.services.database.dispose)
        anchors_file.write_text(json.dumps({ANCHOR_ID: anchor.jwks()}))
        regions = []
        for entity_id, url, code, marks in (
            (REGION_A_ID, urls[1], REGION_A_CODE, tmp_path / "marks-a.json"),
            (REGION_B_ID, urls[2], REGION_B_CODE, tmp_path / "marks-b.json"),
        ):
            marks.write_text("[]")
            region = _region(
                entity_id,
                url,
                clock,
                fetcher,
                redis_url,
                federation_authority_hints=ANCHOR_ID,
                federation_trust_anchors_file=str(anchors_file),
                federation_trust_marks_file=str(marks),
                federation_region_codes=code,
                **extra,
                **settings,
            )
            stack.callback(region.services.database.dispose)
            loa_high = region.federation.config.loa_high_trust_mark
            anchor.register(region, trust_mark_types=[loa_high])
            with anchor.services.database.session() as session:
                mark = issue_subordinate_trust_mark(
                    session,
                    anchor.federation.config,
                    entity_id,
                    loa_high,
                    key=anchor.federation.signing_keys(now=clock()).signing_key(),
                    now=clock(),
                )
            marks.write_text(json.dumps([mark]))
            # The trust marks file is read at start-up: this region holds its mark from now on.
            region.federation.config = dataclasses.replace(region.federation.config, trust_marks=(mark,))
            regions.append(region)
        yield TwoRegions(anchor, regions[0], regions[1], clock, fetcher, anchors_file)


def resign(
    token: bytes | str,
    key: Key,
    *,
    kid: str | None = None,
    change: Callable[[dict[str, Any]], None] | None = None,
) -> bytes:
    """The JWT with its claims changed by ``change`` and signed again by ``key`` — under the original
    ``kid`` unless told otherwise, as a forger would."""
    text = token.decode() if isinstance(token, bytes) else token
    header = jwt.get_unverified_header(text)
    claims = jwt.decode(text, options={"verify_signature": False})
    if change is not None:
        change(claims)
    headers = {"typ": header["typ"], "kid": kid or header["kid"]}
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers=headers).encode()  # type: ignore[arg-type]


@dataclass
class Interceptor:
    """The federation's fetcher with a man in the middle: answers for URLs starting with a rule's prefix
    are what the rule makes of the real answer."""

    inner: Fetcher
    rules: list[tuple[str, Callable[[bytes], bytes]]] = field(default_factory=list)

    def __call__(self, url: str) -> bytes:
        body = self.inner(url)
        for prefix, change in self.rules:
            if url.startswith(prefix):
                body = change(body)
        return body


def intercept(federation: Federation) -> Interceptor:
    """Put an ``Interceptor`` between every deployment's resolver and the others."""
    interceptor = Interceptor(federation.fetcher)
    for region in federation.regions:
        region.federation.resolver.fetch = interceptor
        region.federation.resolver.clear()
    return interceptor
