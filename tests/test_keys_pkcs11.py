"""Signing keys held by a PKCS#11 token (SoftHSM2), end to end: an id_token and an access token signed in the
HSM validate against the published JWKS; the database holds only a reference; revocation destroys the key."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from idp.keys.lifecycle import activate, revoke, rotate
from idp.keys.pkcs11 import Pkcs11Backend, is_reference
from idp.keys.service import get_key, unwrap_secret
from idp.keys.views import key_actor
from sdk.keys import KeySet
from tests.fixtures.services import service_unavailable
from tests.support.live import Browser, LiveIdp, login, portal, running_idp

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
LABEL = "onecard-test"
PIN = "123456"


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if importlib.util.find_spec("pkcs11") is None:
        service_unavailable("python-pkcs11 is not installed")
    module = next((m for m in MODULES if Path(m).exists()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        service_unavailable("softhsm2 is not installed")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--pin", PIN, "--so-pin", "654321"],
        check=True,
        capture_output=True,
    )
    return module


@pytest.fixture
def live(softhsm: str, tmp_path: Path) -> Iterator[LiveIdp]:
    with running_idp(
        f"sqlite:///{tmp_path}/idp.sqlite3",
        pkcs11_module=softhsm,
        pkcs11_token_label=LABEL,
        pkcs11_pin=PIN,
        pkcs11_key_sets="oidc-rs256,oidc-es256",
    ) as idp:
        yield idp
        hsm = idp.services.hsm
        if isinstance(hsm, Pkcs11Backend):
            hsm.close()


def test_hsm_keys_sign_tokens_that_validate_via_jwks(live: LiveIdp) -> None:
    svc = live.services
    who = key_actor(svc, "cli:test", "move OIDC signing into the HSM")
    kids: dict[str, str] = {}
    with svc.database.session() as session:
        for name in ("oidc-rs256", "oidc-es256"):
            kids[name] = rotate(session, who, name, now=live.clock()).kid
            activate(session, who, kids[name], now=live.clock(), force=True)
            assert is_reference(
                unwrap_secret(svc.keks, get_key(session, kids[name]))
            )  # no private key stored
    svc.keyring.invalidate()

    client = portal(live)
    token, nonce = login(live, client, Browser(live))
    header = jwt.get_unverified_header(token["id_token"])
    assert (header["kid"], header["alg"]) == (kids["oidc-rs256"], "RS256")
    jwks = KeySet.from_jwks(requests.get(f"{live.base_url}/jwks.json", timeout=5).json())
    key: Any = jwks.get(header["kid"]).public_key
    claims = jwt.decode(
        token["id_token"],
        key,
        algorithms=["RS256"],
        audience=client.client_id,
        issuer=live.base_url,
        leeway=60,
    )
    assert claims["nonce"] == nonce
    assert jwt.get_unverified_header(token["access_token"])["kid"] == kids["oidc-es256"]
    userinfo = requests.get(
        f"{live.base_url}/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=5
    )
    assert userinfo.status_code == 200  # the ES256 access token, signed in the HSM, verifies

    with svc.database.session() as session:
        label = (
            unwrap_secret(svc.keks, get_key(session, kids["oidc-rs256"])).removeprefix(b"pkcs11:").decode()
        )
        changes = revoke(
            session, key_actor(svc, "cli:test", "HSM drill"), kids["oidc-rs256"], now=live.clock()
        )
        successor = get_key(session, changes[-1].kid)
        assert is_reference(unwrap_secret(svc.keks, successor))  # the emergency successor is in the HSM too
    svc.keyring.invalidate()
    hsm = svc.hsm
    assert isinstance(hsm, Pkcs11Backend)
    import pkcs11

    with hsm._lock:  # the token no longer holds the revoked key
        session = hsm._open()
        labels = {
            obj[pkcs11.Attribute.LABEL]
            for obj in session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY})
        }
    assert label not in labels and len(labels) == 2  # the ES256 key and the RS256 successor
