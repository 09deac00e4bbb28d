"""sdk.gate and onecard-gate: offline verification, replay and suspension, key and list sync over real HTTP
(a local ``http.server``), the online client against a stand-in server following the documented contract,
and the CLI on text, a rendered PNG (decoded by zxing-cpp) and garbage images."""

from __future__ import annotations

import base64
import io
import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import qrcode
import requests
from cryptography.hazmat.primitives.asymmetric import ed25519
from PIL import Image

from sdk.gate import (
    DEFAULT_MAX_LIST_AGE,
    MAX_MAX_AGE,
    GateAuthError,
    GateServiceError,
    GateVerifier,
    KeySetSync,
    OnlineGateClient,
    ReplayCache,
    SuspendedHandlesSync,
    VenueCredentials,
    parse_max_age,
    parse_suspended_handles,
)
from sdk.gate_cli import main as gate_main
from sdk.keys import Key, KeySet, generate_key, key_id_for
from sdk.qr_token import QrTokenError, issue_qr_token
from tests.fixtures.services import service_unavailable

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "essc1" / "vectors.json").read_text(encoding="utf-8")
)
NOW = 1_767_225_600.0
ISSUER = "420100"
HANDLE = "h2Pq9vXcT4mK8sLw"
CLIENT_ID = "venue-museum-1"
CLIENT_SECRET = "s3cret p@ss:word"  # space, @ and : exercise RFC 6749 §2.3.1 form-encoding


def _vector_signer() -> Key:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(VECTORS["keys"]["signer"]["seed_hex"])
    )
    return Key(key_id_for(private.public_key()), "EdDSA", private.public_key(), private)


@pytest.fixture(scope="module")
def k1() -> Key:
    return generate_key("EdDSA")


@pytest.fixture(scope="module")
def k2() -> Key:
    return generate_key("EdDSA")


def _code(key: Key, *, handle: str = HANDLE, now: float = NOW, issuer: str = ISSUER, **kw: Any) -> str:
    return issue_qr_token(key=key, issuer=issuer, handle=handle, now=now, **kw)


def _reason(excinfo: pytest.ExceptionInfo[QrTokenError]) -> str:
    return excinfo.value.reason.value


# --- a local HTTP server ----------------------------------------------------------------------------------


@dataclass
class Published:
    body: bytes
    etag: str | None = None
    cache_control: str | None = None
    status: int = 200


@dataclass
class FakeServer:
    """Serves JSON documents with cache headers and answers the online verify API (docs/formats/essc1.md)."""

    documents: dict[str, Published] = field(default_factory=dict)
    log: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    gate: GateVerifier | None = None
    gate_now: float = NOW
    verify_override: tuple[int, Any] | None = None
    base_url: str = ""
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def publish(
        self, path: str, document: Any, *, etag: str | None = None, cache_control: str | None = None
    ) -> None:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.documents[path] = Published(body, etag, cache_control)

    def url(self, path: str) -> str:
        return self.base_url + path

    def requests_to(self, path: str) -> list[dict[str, str]]:
        return [headers for method, p, headers in self.log if p == path]

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._httpd = None


def _handler_for(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            server.log.append(("GET", self.path, dict(self.headers)))
            doc = server.documents.get(self.path)
            if doc is None:
                self._send(404)
                return
            headers = {"Content-Type": "application/json"}
            if doc.etag:
                headers["ETag"] = doc.etag
            if doc.cache_control:
                headers["Cache-Control"] = doc.cache_control
            if doc.status == 200 and doc.etag and self.headers.get("If-None-Match") == doc.etag:
                self._send(304, b"", headers)
                return
            self._send(doc.status, doc.body if doc.status == 200 else b"{}", headers)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            server.log.append(("POST", self.path, dict(self.headers)))
            if self.path != "/api/v1/gate/verify":
                self._send(404)
                return
            if not self._authorized():
                self._json(401, {"error": "invalid_client"}, {"WWW-Authenticate": 'Basic realm="onecard"'})
                return
            if server.verify_override is not None:
                self._json(*server.verify_override)
                return
            try:
                request = json.loads(raw)
                code = request["code"]
            except (ValueError, KeyError, TypeError):
                self._json(400, {"error": "invalid_request"})
                return
            assert server.gate is not None
            try:
                scan = server.gate.verify(code, server.gate_now)
            except QrTokenError as exc:
                self._json(200, {"verdict": "reject", "reason": exc.reason.value})
                return
            self._json(
                200,
                {
                    "verdict": "pass",
                    "handle": scan.handle,
                    "issuer": scan.issuer,
                    "issued_at": scan.token.issued_at,
                    "expires_at": scan.token.expires_at,
                    "claims": {"valid_resident": True, **scan.disclosures},
                    "scan_id": "scan-0001",
                },
            )

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return False
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, CLIENT_SECRET)

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            self._send(
                status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
            )

    return Handler


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(fake))
    fake.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake._httpd, fake._thread = httpd, thread
    yield fake
    fake.stop()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def _jwks(*keys: Key) -> dict[str, Any]:
    return KeySet.of(key.public_only() for key in keys).to_jwks()


# --- offline verification -------------------------------------------------------------------------------


def test_golden_gate_scenario() -> None:
    scenario = VECTORS["gate_scenario"]
    gate = GateVerifier(
        KeySet.from_jwks(VECTORS["verifier"]["jwks"]),
        VECTORS["verifier"]["expected_issuers"],
        clock_skew=VECTORS["verifier"]["clock_skew"],
        revoked_handles=scenario["revoked_handles"],
    )
    for scan in scenario["scans"]:
        if scan["result"] == "pass":
            assert gate.verify(scan["code"], scan["now"]).handle
        else:
            with pytest.raises(QrTokenError) as caught:
                gate.verify(scan["code"], scan["now"])
            assert _reason(caught) == scan["reason"]


def test_pass_then_replay(k1: Key) -> None:
    gate = GateVerifier(KeySet.of([k1.public_only()]), {ISSUER})
    code = _code(k1, disclosures={"age_over_60": True})
    scan = gate.verify(code, NOW + 18.4)
    assert (scan.handle, scan.issuer, scan.expires_in) == (HANDLE, ISSUER, 41)
    assert dict(scan.disclosures) == {"age_over_60": True}
    with pytest.raises(AttributeError):
        scan.scanned_at = 0  # type: ignore[misc]
    with pytest.raises(QrTokenError) as caught:
        gate.verify(code, NOW + 19)
    assert _reason(caught) == "replayed"


@pytest.mark.parametrize(
    ("skew", "offset", "outcome"),
    [
        (30, -30, "pass"),  # issued up to skew seconds "in the future" (gate clock behind)
        (30, -31, "not_yet_valid"),
        (30, 60 + 29, "pass"),  # expired by the code's clock, inside the gate's tolerance
        (30, 60 + 30, "expired"),
        (0, 59.9, "pass"),
        (0, 60, "expired"),
        (0, -0.5, "not_yet_valid"),
    ],
)
def test_clock_skew(k1: Key, skew: int, offset: float, outcome: str) -> None:
    gate = GateVerifier(KeySet.of([k1]), {ISSUER}, clock_skew=skew)
    code = _code(k1)
    if outcome == "pass":
        assert gate.verify(code, NOW + offset).expires_in >= 0
    else:
        with pytest.raises(QrTokenError) as caught:
            gate.verify(code, NOW + offset)
        assert _reason(caught) == outcome


def test_wrong_issuer_and_unknown_key(k1: Key, k2: Key) -> None:
    gate = GateVerifier(KeySet.of([k1]), {"310000"})
    with pytest.raises(QrTokenError) as caught:
        gate.verify(_code(k1), NOW)
    assert _reason(caught) == "wrong_issuer"
    with pytest.raises(QrTokenError) as caught:
        gate.verify(_code(k2, issuer="310000"), NOW)
    assert _reason(caught) == "unknown_key"


class MutableHandles:
    def __init__(self) -> None:
        self.suspended: set[str] = set()

    def is_suspended(self, handle: str, now: float) -> bool:
        return handle in self.suspended


def test_refused_codes_do_not_use_up_their_scan(k1: Key) -> None:
    handles = MutableHandles()
    gate = GateVerifier(KeySet.of([k1]), {ISSUER}, revoked_handles=handles)
    code = _code(k1)
    handles.suspended.add(HANDLE)
    with pytest.raises(QrTokenError) as caught:
        gate.verify(code, NOW + 1)
    assert _reason(caught) == "revoked"
    assert len(gate.replay_cache) == 0
    handles.suspended.clear()  # the card was found again (解挂)
    gate.verify(code, NOW + 2)


def test_replay_entries_are_dropped_after_expiry_plus_skew(k1: Key) -> None:
    cache = ReplayCache()
    gate = GateVerifier(KeySet.of([k1]), {ISSUER}, clock_skew=30, replay_cache=cache)
    for i in range(10):
        gate.verify(_code(k1, now=NOW + i), NOW + i)
    assert len(cache) == 10
    cache.purge(NOW + 60 + 30 + 4)  # codes issued at NOW+0..NOW+4 are past exp + skew
    assert len(cache) == 5
    cache.purge(NOW + 60 + 30 + 9)
    assert len(cache) == 0


def test_replay_cache_is_bounded_and_evicts_the_shortest_window_first() -> None:
    cache = ReplayCache(capacity=3)
    for cti, keep_until in [("a", 30.0), ("b", 10.0), ("c", 20.0), ("d", 40.0)]:
        assert cache.mark_used(cti, keep_until=keep_until, now=0)
    assert len(cache) == 3
    assert "b" not in cache and {"a", "c", "d"} <= {cti for cti in ("a", "c", "d") if cti in cache}
    assert not cache.mark_used("a", keep_until=30.0, now=1)


def test_replay_cache_persists() -> None:
    cache = ReplayCache()
    cache.mark_used("old", keep_until=5.0, now=0)
    cache.mark_used("live", keep_until=50.0, now=0)
    restored = ReplayCache.from_json(json.loads(json.dumps(cache.to_json())), now=10)
    assert "live" in restored and "old" not in restored
    assert not restored.mark_used("live", keep_until=50.0, now=11)


def test_replay_cache_is_safe_across_threads() -> None:
    cache = ReplayCache()
    wins: list[bool] = []

    def scan() -> None:
        wins.append(cache.mark_used("same-cti", keep_until=100.0, now=0))

    threads = [threading.Thread(target=scan) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1


def test_gate_refuses_a_configuration_that_accepts_nothing(k1: Key) -> None:
    with pytest.raises(ValueError):
        GateVerifier(KeySet.of([k1]), set())
    with pytest.raises(ValueError):
        GateVerifier(KeySet.of([k1]), ISSUER)  # one string, not a collection of codes
    with pytest.raises(ValueError):
        GateVerifier(KeySet.of([k1]), {ISSUER}, clock_skew=-1)


# --- sync ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "age", "expected"),
    [
        (None, None, 300.0),
        ("max-age=60", None, 60.0),
        ("public, max-age=60", "15", 45.0),
        ("max-age=60", "100", 0.0),
        ("no-cache", None, 0.0),
        ("no-store, max-age=60", None, 0.0),
        ("max-age=abc", None, 300.0),
        ("Max-Age=120", "x", 120.0),
        ("max-age=999999999", None, float(MAX_MAX_AGE)),
    ],
)
def test_parse_max_age(cache_control: str | None, age: str | None, expected: float) -> None:
    assert parse_max_age(cache_control, age, default=300) == expected


def test_key_set_sync_honours_max_age_and_etag(
    server: FakeServer, session: requests.Session, k1: Key, tmp_path: Path
) -> None:
    server.publish("/jwks", _jwks(k1), etag='"v1"', cache_control="public, max-age=60")
    sync = KeySetSync(server.url("/jwks"), cache_file=tmp_path / "jwks.json", session=session)
    assert sync.key_set(NOW).find(k1.kid) is not None
    assert len(server.requests_to("/jwks")) == 1
    assert "If-None-Match" not in server.requests_to("/jwks")[0]

    sync.key_set(NOW + 59)  # fresh: no request
    assert len(server.requests_to("/jwks")) == 1

    keys = sync.key_set(NOW + 61)  # stale: conditional request, 304
    assert len(server.requests_to("/jwks")) == 2
    assert server.requests_to("/jwks")[1]["If-None-Match"] == '"v1"'
    assert keys.find(k1.kid) is not None and sync.fetched_at == NOW + 61

    sync.key_set(NOW + 61 + 59)  # the 304 renewed freshness
    assert len(server.requests_to("/jwks")) == 2
    saved = json.loads((tmp_path / "jwks.json").read_text())
    assert saved["etag"] == '"v1"' and saved["url"] == server.url("/jwks")


def test_unknown_kid_refreshes_at_most_once_per_interval(
    server: FakeServer, session: requests.Session, k1: Key, k2: Key
) -> None:
    server.publish("/jwks", _jwks(k1), etag='"v1"', cache_control="max-age=3600")
    sync = KeySetSync(server.url("/jwks"), session=session, unknown_kid_interval=60)
    gate = GateVerifier(sync, {ISSUER})
    gate.verify(_code(k1), NOW)
    assert len(server.requests_to("/jwks")) == 1

    server.publish(
        "/jwks", _jwks(k2, k1), etag='"v2"', cache_control="max-age=3600"
    )  # rotation: k2 published
    assert gate.verify(_code(k2, now=NOW + 1), NOW + 1).handle == HANDLE
    assert len(server.requests_to("/jwks")) == 2

    stranger = generate_key("EdDSA")
    with pytest.raises(QrTokenError) as caught:
        gate.verify(_code(stranger, now=NOW + 2), NOW + 2)
    assert _reason(caught) == "unknown_key"
    assert len(server.requests_to("/jwks")) == 2  # within N seconds of the last unknown-kid refresh

    with pytest.raises(QrTokenError) as caught:
        gate.verify(_code(stranger, now=NOW + 62), NOW + 62)
    assert _reason(caught) == "unknown_key"
    assert len(server.requests_to("/jwks")) == 3
    assert server.requests_to("/jwks")[2]["If-None-Match"] == '"v2"'


def test_offline_fallback_keeps_and_persists_the_last_good_set(
    server: FakeServer, session: requests.Session, k1: Key, tmp_path: Path
) -> None:
    cache_file = tmp_path / "state" / "jwks.json"
    server.publish("/jwks", _jwks(k1), etag='"v1"', cache_control="max-age=10")
    sync = KeySetSync(server.url("/jwks"), cache_file=cache_file, session=session, retry_interval=30)
    sync.key_set(NOW)

    # The server answers nonsense: the last good set stays.
    server.publish("/jwks", b"<html>maintenance</html>", etag='"v2"', cache_control="max-age=10")
    assert sync.key_set(NOW + 20).find(k1.kid) is not None
    assert sync.last_error and "unusable" in sync.last_error
    server.publish("/jwks", {"keys": []}, etag='"v3"')
    assert sync.refresh(NOW + 21) is False and sync.key_set(NOW + 21).find(k1.kid) is not None

    # Then it is gone altogether.
    server.stop()
    assert sync.key_set(NOW + 60).find(k1.kid) is not None
    assert sync.last_error and "failed" in sync.last_error
    attempts = sync._last_attempt_at
    sync.key_set(NOW + 70)  # within retry_interval: no new attempt
    assert sync._last_attempt_at == attempts

    # A restarted gate with no network verifies from the cache file.
    restarted = KeySetSync(server.url("/jwks"), cache_file=cache_file, session=session)
    gate = GateVerifier(restarted, {ISSUER})
    assert gate.verify(_code(k1, now=NOW + 1000), NOW + 1000).handle == HANDLE


def test_a_cache_file_for_another_url_or_garbage_is_ignored(
    session: requests.Session, tmp_path: Path
) -> None:
    cache_file = tmp_path / "jwks.json"
    cache_file.write_text(json.dumps({"url": "https://elsewhere/jwks", "document": {"keys": []}}))
    assert KeySetSync("http://127.0.0.1:9/jwks", cache_file=cache_file, session=session).value is None
    cache_file.write_text("{not json")
    assert KeySetSync("http://127.0.0.1:9/jwks", cache_file=cache_file, session=session).value is None


def test_suspended_handles_sync(
    server: FakeServer, session: requests.Session, k1: Key, tmp_path: Path
) -> None:
    suspended = "SuspendedCard001"
    server.publish(
        "/suspended", {"handles": [suspended], "generated_at": 1000}, etag='"s1"', cache_control="max-age=60"
    )
    sync = SuspendedHandlesSync(server.url("/suspended"), cache_file=tmp_path / "s.json", session=session)
    gate = GateVerifier(KeySet.of([k1]), {ISSUER}, revoked_handles=sync)
    with pytest.raises(QrTokenError) as caught:
        gate.verify(_code(k1, handle=suspended), NOW)
    assert _reason(caught) == "revoked"
    gate.verify(_code(k1), NOW)

    # An older list (a stale mirror, a replayed response) must not lift a suspension.
    server.publish(
        "/suspended", {"handles": [], "generated_at": 999}, etag='"s0"', cache_control="max-age=60"
    )
    with pytest.raises(QrTokenError):
        gate.verify(_code(k1, handle=suspended, now=NOW + 100), NOW + 100)
    assert sync.last_error and "older" in sync.last_error

    # A newer one does (解挂: the card was found).
    server.publish(
        "/suspended", {"handles": [], "generated_at": 2000}, etag='"s2"', cache_control="max-age=60"
    )
    assert gate.verify(_code(k1, handle=suspended, now=NOW + 200), NOW + 200).handle == suspended

    # Offline restart: the last good list comes back from the file.
    server.stop()
    restarted = SuspendedHandlesSync(
        server.url("/suspended"), cache_file=tmp_path / "s.json", session=session
    )
    assert restarted.value is not None and restarted.value.generated_at == 2000


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"handles": "SuspendedCard001", "generated_at": 1},
        {"handles": ["has spaces in it"], "generated_at": 1},
        {"handles": [], "generated_at": "yesterday"},
        {"handles": [], "generated_at": 1.5},
        {"handles": []},
    ],
)
def test_suspended_handles_document_is_strict(document: Any) -> None:
    with pytest.raises(ValueError):
        parse_suspended_handles(document)


# --- online client --------------------------------------------------------------------------------------


def test_online_client_follows_the_contract(server: FakeServer, session: requests.Session, k1: Key) -> None:
    server.gate = GateVerifier(KeySet.of([k1]), {ISSUER})
    server.gate_now = NOW + 5
    client = OnlineGateClient(server.base_url + "/", CLIENT_ID, CLIENT_SECRET, session=session)
    code = _code(k1, disclosures={"age_over_60": True})
    scan = client.verify(code, gate_id="north-gate")
    assert (scan.handle, scan.issuer, scan.scan_id) == (HANDLE, ISSUER, "scan-0001")
    assert dict(scan.claims) == {"valid_resident": True, "age_over_60": True}
    assert scan.expires_in(NOW + 5) == 55
    method, path, headers = server.log[-1]
    assert (method, path) == ("POST", "/api/v1/gate/verify")
    assert headers["Content-Type"] == "application/json"
    assert CLIENT_SECRET not in repr(client)

    with pytest.raises(QrTokenError) as caught:
        client.verify(code)
    assert _reason(caught) == "replayed"


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ((500, {"error": "server_error"}), GateServiceError),
        ((429, {"error": "rate_limited"}), GateServiceError),
        ((200, {"verdict": "reject", "reason": "cosmic_rays"}), GateServiceError),
        ((200, {"verdict": "maybe"}), GateServiceError),
        ((200, {"verdict": "pass", "handle": HANDLE}), GateServiceError),
        ((200, ["not", "an", "object"]), GateServiceError),
        # The gate's own reason: a server that sends it is broken, not a verdict.
        ((200, {"verdict": "reject", "reason": "revocation_list_stale"}), GateServiceError),
    ],
)
def test_online_client_errors(
    server: FakeServer, session: requests.Session, override: tuple[int, Any], error: type[Exception]
) -> None:
    server.verify_override = override
    client = OnlineGateClient(server.base_url, CLIENT_ID, CLIENT_SECRET, session=session)
    with pytest.raises(error) as caught:
        client.verify("ESSC1:BB8")
    assert not isinstance(caught.value, QrTokenError)


def test_online_client_bad_credentials_and_no_network(server: FakeServer, session: requests.Session) -> None:
    with pytest.raises(GateAuthError) as caught:
        OnlineGateClient(server.base_url, CLIENT_ID, "wrong", session=session).verify("ESSC1:BB8")
    assert caught.value.http_status == 401
    server.stop()
    with pytest.raises(GateServiceError):
        OnlineGateClient(server.base_url, CLIENT_ID, CLIENT_SECRET, session=session, timeout=2).verify(
            "ESSC1:BB8"
        )


# --- CLI ------------------------------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = gate_main(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(VECTORS["verifier"]["jwks"]))
    return path


def _vector(name: str) -> dict[str, Any]:
    return next(v for v in VECTORS["valid"] if v["name"] == name)


def _offline(jwks: Path | str, *extra: str) -> list[str]:
    return ["--offline", "--jwks", str(jwks), "--issuer", "310000", "--issuer", ISSUER, *extra]


def test_cli_text_pass_and_reject(jwks_file: Path) -> None:
    vector = _vector("age_over_60")
    now = str(vector["input"]["now"] + 10)
    status, out, _ = run_cli("verify", "--text", vector["code"], *_offline(jwks_file), "--now", now)
    assert status == 0
    assert out == "PASS handle=h2Pq9vXcT4mK8sLw issuer=420100 expires_in=49s age_over_60=true\n"

    expired = str(vector["expected"]["expires_at"] + 30)
    status, out, _ = run_cli("verify", "--text", vector["code"], *_offline(jwks_file), "--now", expired)
    assert (status, out) == (1, "REJECT reason=expired\n")

    status, out, _ = run_cli("verify", "--text", "https://example.com/", *_offline(jwks_file), "--now", now)
    assert (status, out) == (1, "REJECT reason=malformed\n")


def _render_png(text: str, path: Path) -> Path:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=4, border=4)
    qr.add_data(text)
    qr.make(fit=True)
    qr.make_image().save(path)
    return path


def test_cli_image_rendered_with_qrcode_is_decoded_by_zxing(jwks_file: Path, tmp_path: Path) -> None:
    vector = _vector("three_disclosures")
    png = _render_png(vector["code"], tmp_path / "code.png")
    now = str(vector["input"]["now"] + 1)
    status, out, _ = run_cli("verify", "--image", str(png), *_offline(jwks_file), "--now", now)
    assert status == 0, out
    # Disclosures print sorted by name; 28.5 s left rounds down.
    assert out == (
        "PASS handle=Zx81-_AbCdEf issuer=420100 expires_in=28s"
        " age_over_60=true resident=true visitor_type=senior\n"
    )


def test_cli_garbage_images(jwks_file: Path, tmp_path: Path) -> None:
    rng = random.Random(7)
    noise = Image.frombytes("L", (200, 200), bytes(rng.getrandbits(8) for _ in range(200 * 200)))
    noise.save(tmp_path / "noise.png")
    status, out, _ = run_cli("verify", "--image", str(tmp_path / "noise.png"), *_offline(jwks_file))
    assert status == 2
    assert out.startswith("ERROR no QR code found in ") and out.count("\n") == 1

    (tmp_path / "notes.png").write_text("this is not an image")
    status, out, _ = run_cli("verify", "--image", str(tmp_path / "notes.png"), *_offline(jwks_file))
    assert status == 2 and out.startswith("ERROR cannot read image")

    status, out, _ = run_cli("verify", "--image", str(tmp_path / "missing.png"), *_offline(jwks_file))
    assert status == 2 and out.startswith("ERROR cannot read image")


def test_cli_state_dir_catches_replays_across_runs(jwks_file: Path, tmp_path: Path) -> None:
    vector = _vector("basic")
    args = ["verify", "--text", vector["code"], *_offline(jwks_file, "--state-dir", str(tmp_path / "state"))]
    now = vector["input"]["now"]
    assert run_cli(*args, "--now", str(now + 1))[0] == 0
    assert run_cli(*args, "--now", str(now + 2))[:2] == (1, "REJECT reason=replayed\n")


def test_cli_revoked_list_file(jwks_file: Path, tmp_path: Path) -> None:
    vector = _vector("basic")
    revoked = tmp_path / "suspended.json"
    args = ["verify", "--text", vector["code"], *_offline(jwks_file, "--revoked", str(revoked))]
    revoked.write_text(json.dumps({"handles": [HANDLE], "generated_at": int(NOW) - 60}))
    assert run_cli(*args, "--now", str(NOW))[:2] == (1, "REJECT reason=revoked\n")
    # A list file nobody has refreshed for longer than the limit vouches for nobody, suspended or not.
    revoked.write_text(json.dumps({"handles": [], "generated_at": int(NOW) - DEFAULT_MAX_LIST_AGE - 1}))
    assert run_cli(*args, "--now", str(NOW))[:2] == (1, "REJECT reason=revocation_list_stale\n")
    limit = str(DEFAULT_MAX_LIST_AGE + 60)
    assert run_cli(*args, "--max-list-age", limit, "--now", str(NOW))[0] == 0
    assert run_cli(*args, "--max-list-age", "-1", "--now", str(NOW))[0] == 2


def test_cli_without_a_list_warns(jwks_file: Path) -> None:
    vector = _vector("basic")
    status, _, err = run_cli("verify", "--text", vector["code"], *_offline(jwks_file), "--now", str(NOW))
    assert status == 0 and "suspended e-cards are not refused" in err


def test_suspended_handles_sync_sends_the_venue_credentials_and_fails_closed(
    server: FakeServer, session: requests.Session, k1: Key, tmp_path: Path
) -> None:
    server.publish("/suspended", {"handles": [], "generated_at": int(NOW)}, cache_control="max-age=60")
    credentials = VenueCredentials(CLIENT_ID, CLIENT_SECRET)
    assert CLIENT_SECRET not in repr(credentials)
    cache = tmp_path / "s.json"
    sync = SuspendedHandlesSync(
        server.url("/suspended"), credentials=credentials, cache_file=cache, session=session, max_list_age=600
    )
    assert CLIENT_SECRET not in repr(sync)
    gate = GateVerifier(KeySet.of([k1]), {ISSUER}, revoked_handles=sync)
    assert gate.verify(_code(k1), NOW).handle == HANDLE
    sent = server.requests_to("/suspended")[-1]["Authorization"]
    user, _, password = base64.b64decode(sent.removeprefix("Basic ")).decode().partition(":")
    assert (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, CLIENT_SECRET)
    assert "%40" in password and "+" in password  # form-encoded first (RFC 6749 §2.3.1), as the server reads

    # The server goes away: the held list serves while it is younger than the limit, then nothing passes,
    # and a code refused for that reason has not used up its one scan.
    server.stop()
    assert gate.verify(_code(k1, now=NOW + 600), NOW + 600).handle == HANDLE
    later = _code(k1, now=NOW + 601)
    with pytest.raises(QrTokenError) as stale:
        gate.verify(later, NOW + 601)
    assert _reason(stale) == "revocation_list_stale"
    sync.max_list_age = 10_000
    assert gate.verify(later, NOW + 601).handle == HANDLE
    # A gate restarted from its cache file keeps the list's age: the file does not make it young again.
    restarted = SuspendedHandlesSync(
        server.url("/suspended"), credentials=credentials, cache_file=cache, session=session, max_list_age=600
    )
    assert restarted.list_age(NOW + 601) == 601
    with pytest.raises(QrTokenError) as never:
        SuspendedHandlesSync(server.url("/suspended"), session=session).is_suspended(HANDLE, NOW)
    assert _reason(never) == "revocation_list_stale"
    with pytest.raises(ValueError):
        SuspendedHandlesSync(server.url("/suspended"), session=session, max_list_age=-1)


def test_cli_jwks_url_then_offline(server: FakeServer, tmp_path: Path) -> None:
    signer = _vector_signer()
    server.publish("/jwks", _jwks(signer), etag='"v1"', cache_control="max-age=60")
    state = str(tmp_path / "state")
    first = _code(signer, now=NOW)
    assert (
        run_cli(
            "verify", "--text", first, *_offline(server.url("/jwks"), "--state-dir", state), "--now", str(NOW)
        )[0]
        == 0
    )
    server.stop()
    later = _code(signer, now=NOW + 3600)
    status, out, err = run_cli(
        "verify",
        "--text",
        later,
        *_offline(server.url("/jwks"), "--state-dir", state),
        "--now",
        str(NOW + 3600),
    )
    assert status == 0, out + err

    status, out, _ = run_cli(
        "verify", "--text", later, *_offline(server.url("/jwks"), "--state-dir", str(tmp_path / "empty"))
    )
    assert status == 2 and out.startswith("ERROR no key set")


def test_cli_online(server: FakeServer, k1: Key, monkeypatch: pytest.MonkeyPatch) -> None:
    server.gate = GateVerifier(KeySet.of([k1]), {ISSUER})
    server.gate_now = NOW + 2
    code = _code(k1)
    online = ["--online", "--url", server.base_url, "--client-id", CLIENT_ID, "--now", str(NOW + 2)]
    monkeypatch.setenv("ONECARD_GATE_CLIENT_SECRET", CLIENT_SECRET)
    status, out, _ = run_cli("verify", "--text", code, *online, "--gate-id", "north")
    assert (status, out) == (0, f"PASS handle={HANDLE} issuer={ISSUER} expires_in=58s valid_resident=true\n")
    assert run_cli("verify", "--text", code, *online)[:2] == (1, "REJECT reason=replayed\n")
    status, out, _ = run_cli("verify", "--text", code, *online, "--client-secret", "wrong")
    assert status == 2 and out.startswith("ERROR credentials refused")
    monkeypatch.delenv("ONECARD_GATE_CLIENT_SECRET")
    status, out, _ = run_cli("verify", "--text", code, *online)
    assert status == 2 and out.startswith("ERROR the venue's client secret is missing")
    status, out, _ = run_cli(
        "verify", "--text", code, *[a for a in online if a not in ("--client-id", CLIENT_ID)]
    )
    assert status == 2 and out.startswith("ERROR --online needs --url and the venue's credentials")


def test_cli_usage_errors(jwks_file: Path) -> None:
    assert run_cli("verify", "--text", "x")[0] == 2  # neither --offline nor --online
    assert run_cli("verify", "--offline", "--jwks", str(jwks_file))[0] == 2  # no code
    status, out, _ = run_cli("verify", "--text", "x", "--offline", "--jwks", str(jwks_file))
    assert status == 2 and out == "ERROR --offline needs at least one --issuer CODE\n"


def test_console_script(jwks_file: Path) -> None:
    script = Path(sys.executable).parent / "onecard-gate"
    if not script.exists():
        service_unavailable("onecard-gate is not installed next to this interpreter")
    vector = _vector("basic")
    result = subprocess.run(
        [str(script), "verify", "--text", vector["code"], *_offline(jwks_file), "--now", str(NOW + 1)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"PASS handle={HANDLE} ")
