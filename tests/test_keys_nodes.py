"""Multi-node key states (issue #6, "How it is checked"): two real server processes on one PostgreSQL + Redis
(tests/support/nodes.py) see the same key states; a key activated through one node's admin API is used by both
within the key ring's cache lifetime, and a key revoked through the other is gone from the first one's JWKS
as soon. Skipped when PostgreSQL or Redis is unreachable, failed under CI=true (tests/fixtures/services.py).

The nodes run on the real clock, so the activation skips the pre-publication period with ``force`` (the
lifecycle's timings are tested with a ShiftClock in tests/test_keys_rotation_live.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from idp.clients.service import ClientRegistration, create_client
from idp.keys.service import KEY_RING_CACHE_SECONDS, OIDC_ES256
from sdk.keys import KeySet
from tests.support.nodes import Node, migrated_deployment, running_nodes

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

KEY_SET = OIDC_ES256.name  # signs access tokens, so a client_credentials grant shows which key a node uses
# Request latency and scheduling on top of the key ring's cache lifetime.
WITHIN = KEY_RING_CACHE_SECONDS + 2.0


class Deployment:
    """Two nodes and the security team's operator client (admin scope) registered on their database."""

    def __init__(self, nodes: list[Node], client_id: str, secret: str) -> None:
        self.a, self.b = nodes
        self.issuer = self.a.url  # both nodes answer for node A's URL (tests/support/nodes.py)
        self.auth = (client_id, secret)

    def token(self, node: Node) -> str:
        """An access token issued by ``node`` (client_credentials, admin scope)."""
        response = requests.post(
            f"{node.url}/token",
            auth=self.auth,
            data={"grant_type": "client_credentials", "scope": "admin"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def admin(self, node: Node, method: str, path: str, **body: Any) -> Any:
        """Call ``node``'s admin API with a token ``node`` issued just now."""
        response = requests.request(
            method,
            f"{node.url}/api/v1/admin/keys{path}",
            json=body or None,
            headers={"Authorization": f"Bearer {self.token(node)}"},
            timeout=10,
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    def states(self, node: Node) -> dict[str, str]:
        """Every key of the set with its state, as ``node`` reports it."""
        keys = self.admin(node, "GET", f"?key_set={KEY_SET}&all=1")["keys"]
        return {key["kid"]: key["state"] for key in keys}

    def jwks(self, node: Node) -> KeySet:
        response = requests.get(f"{node.url}/jwks.json", timeout=10)
        assert response.status_code == 200
        return KeySet.from_jwks(response.json())

    def signing_kid(self, node: Node) -> str:
        kid: str = jwt.get_unverified_header(self.token(node))["kid"]
        return kid

    def validate(self, token: str, at: Node) -> dict[str, Any]:
        """Verify ``token`` against the JWKS ``at`` publishes, and ask ``at`` whether it is active."""
        key = self.jwks(at).find(jwt.get_unverified_header(token)["kid"])
        assert key is not None, "the signing key is not in the JWKS"
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,  # type: ignore[arg-type]
            algorithms=[key.alg],
            issuer=self.issuer,
            options={"verify_aud": False},
            leeway=60,
        )
        assert self.introspect(token, at)
        return claims

    def introspect(self, token: str, at: Node) -> bool:
        response = requests.post(f"{at.url}/introspect", auth=self.auth, data={"token": token}, timeout=10)
        assert response.status_code == 200, response.text
        return bool(response.json()["active"])


def eventually(condition: Callable[[], bool], what: str, within: float = WITHIN) -> float:
    """Poll ``condition`` until it holds; how long that took (real seconds). Fails after ``within``."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within} s")
        time.sleep(0.1)


@pytest.fixture
def deployment(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[Deployment]:
    with migrated_deployment(postgres_url, redis_url, label="oc-keys-nodes") as (svc, prefix):
        with svc.database.session() as session:
            client, secret = create_client(
                session, ClientRegistration(name="Security", kind="operator", scope="admin"), now=svc.now()
            )
            client_id = client.client_id
        svc.database.dispose()  # the nodes hold their own connections
        with running_nodes(postgres_url, redis_url, prefix, log_dir=tmp_path) as nodes:
            yield Deployment(nodes, client_id, str(secret))


def test_a_key_activated_on_one_node_is_used_by_both(deployment: Deployment) -> None:
    d = deployment
    a, b = d.a, d.b
    assert a.process.pid != b.process.pid and a.process.poll() is None and b.process.poll() is None
    first = d.signing_kid(a)
    assert d.signing_kid(b) == first
    assert d.states(a) == d.states(b) == {first: "active"}

    # Rotate on A: the pending key is published by both nodes (B within its key ring's lifetime), signs on
    # neither, and both report the same state.
    created = d.admin(a, "POST", "/rotate", key_set=KEY_SET, reason="multi-node drill")["changes"]
    kid = created[0]["kid"]
    assert [(c["action"], c["to"]) for c in created] == [("create", "pending")]
    assert d.jwks(a).find(kid) is not None  # A invalidated its own key ring
    eventually(lambda: d.jwks(b).find(kid) is not None, "the pending key in node B's JWKS")
    assert d.states(a) == d.states(b) == {first: "active", kid: "pending"}
    assert d.signing_kid(a) == d.signing_kid(b) == first
    before = d.token(b)

    # Activate on A (forced: the nodes run on the real clock, the pre-publication period is an hour).
    changes = d.admin(a, "POST", f"/{kid}/activate", force=True, reason="multi-node drill")["changes"]
    assert [(c["kid"], c["action"]) for c in changes] == [(kid, "activate"), (first, "retire")]
    assert d.signing_kid(a) == kid
    took = eventually(lambda: d.signing_kid(b) == kid, "node B signing with the key activated on node A")
    assert d.states(a) == d.states(b) == {first: "retired", kid: "active"}
    for node in (a, b):
        published = {key.kid for key in d.jwks(node)}
        assert {kid, first} <= published  # the retired key stays published
    # Tokens node B issues now carry the new kid and validate at either node; its earlier ones too.
    after = d.token(b)
    assert jwt.get_unverified_header(after)["kid"] == kid
    for node in (a, b):
        assert d.validate(after, node)["client_id"] == d.auth[0]
        d.validate(before, node)
    print(f"\nnode B signed with the new key {took:.1f} s after node A activated it")

    # Revoke on B: gone from A's JWKS within the key ring's lifetime, nobody telling A; a successor signs.
    assert d.jwks(a).find(kid) is not None  # A holds it: its key ring must notice the revocation itself
    revoked = d.admin(b, "POST", f"/{kid}/revoke", reason="multi-node drill: suspected leak")["changes"]
    successor = revoked[-1]["kid"]
    assert [(c["kid"], c["action"]) for c in revoked] == [
        (kid, "revoke"),
        (successor, "create"),
        (successor, "activate"),
    ]
    assert d.jwks(b).find(kid) is None and not d.introspect(after, b)
    took = eventually(lambda: d.jwks(a).find(kid) is None, "the revoked key gone from node A's JWKS")
    assert not d.introspect(after, a)
    assert d.signing_kid(a) == d.signing_kid(b) == successor
    assert d.states(a) == d.states(b) == {first: "retired", kid: "revoked", successor: "active"}
    for node in (a, b):
        assert d.validate(d.token(a), node) and d.validate(d.token(b), node)
        assert d.validate(before, node)  # signed by the retired key, which nobody revoked
    print(f"node A dropped the key revoked on node B after {took:.1f} s")
