"""The complete demo behind ``make run`` (``onecard demo run``): seed, then run each piece as a child process.

One command on a fresh machine, embedded SQLite and nothing else:

- **the IdP with the wallet** on port 8000 — answering as ``http://127.0.0.1:8000`` (the issuer the
  discovery document names when fetched there) and as ``http://localhost:8000``, the issuer the demo's
  portal, wallet and bridge use: browsers create passkeys only for a domain name, never for an IP address
  (WebAuthn's RP id), so the wallet must live on ``localhost``. Two application instances on one database,
  picked by the ``Host`` header;
- **the example portal** (``examples/portal``) on ``http://127.0.0.1:8001``, the client ``demo-portal``,
  whose registered redirect, logout and back-channel URIs follow ``--portal-port`` (updated on every start
  when the port changed, ``ensure_demo_portal_uris``);
- **the reader bridge** on ``127.0.0.1:47400`` with the in-process virtual card ``var/demo-card.json``
  (``onecard-bridge serve --dev --virtual-card``), the PIN typed into the bridge's own PIN dialog;
- seeded once and left alone afterwards: the demo clients and citizens (``onecard demo seed``), a card for
  the first demo citizen with the documented PIN ``123456``, and a demo venue whose gate credentials are
  written to ``var/demo-venue.json`` (``onecard venues add``);
- a service hall (``onecard halls add``) with two services and two counters, its scanner's credentials
  written to ``var/demo-hall.json``, counter w1's registered device (its private key in
  ``var/demo-counter.json``), its display at ``/halls/demo-civic-hall/display``;
- the hall's **kiosk**: a terminal registered to it (``onecard halls register-kiosk``, its key in
  ``var/demo-kiosk.json``) and a second bridge in the kiosk profile on ``127.0.0.1:47401`` with the second
  demo citizen's card ``var/demo-kiosk-card.json``; ``http://127.0.0.1:47401/kiosk`` starts the kiosk pages;
- brought up to date on every start: the application catalogue's demo entries, a dozen places in Wuhan
  (``onecard catalogue import``, ``demo.data.DEMO_CATALOGUE``), public at ``/catalogue``.

Everything the demo writes lives in its directory (``--dir``, default ``var``): the card, the venue's
credentials, the logs, and the SQLite database ``onecard.sqlite3`` — unless ``ONECARD_DATABASE_URL`` (or the
configuration file) names a database, which is then used as it is (``demo_database_url``).

The children run in their own process group, so Ctrl-C or SIGTERM reaches this process only, which then stops
each child by its PID. If one child dies, the others are stopped too. Development only: refused with
``ONECARD_ENV=production`` (the demo secrets are published).

The demo imports neither the wallet nor the bridge: the venue is added by running ``onecard venues add`` and
the bridge by running ``python -m reader_bridge.cli``, as an operator would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from demo.data import (
    DEMO_CATALOGUE,
    DEMO_DEVICE_COUNTER,
    DEMO_HALL_ADDRESS,
    DEMO_HALL_COUNTERS,
    DEMO_HALL_ID,
    DEMO_HALL_NAME,
    DEMO_HALL_SERVICES,
    DEMO_KIOSK_NAME,
    DEMO_PIN,
    DEMO_PORTAL,
    DEMO_PORTAL_SECRET,
    DEMO_REGION,
    DEMO_VENUE_CLAIMS,
    DEMO_VENUE_ID,
    DEMO_VENUE_NAME,
)
from sdk.keys import Key, generate_key

DEFAULT_IDP_PORT = 8000
DEFAULT_PORTAL_PORT = 8001
DEFAULT_BRIDGE_PORT = 47400  # reader_bridge.server.DEFAULT_PORT, the port the card login page looks at
DEFAULT_KIOSK_PORT = 47401  # the demo kiosk's own bridge: registered as its bridge_url
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
DEMO_DATABASE_FILE = "onecard.sqlite3"

Log = Callable[[str], None]


class DemoError(Exception):
    """Something the person starting the demo can fix; one line, no traceback."""


@dataclass(frozen=True)
class DemoLayout:
    """Where the demo runs and keeps its files."""

    directory: Path
    idp_port: int = DEFAULT_IDP_PORT
    portal_port: int = DEFAULT_PORTAL_PORT
    bridge_port: int = DEFAULT_BRIDGE_PORT
    kiosk_port: int = DEFAULT_KIOSK_PORT
    issuer: str = ""  # ONECARD_ISSUER when set; else http://localhost:<idp_port>

    @property
    def public_issuer(self) -> str:
        """The issuer the portal, the wallet and the bridge use."""
        return self.issuer or f"http://localhost:{self.idp_port}"

    @property
    def loopback_issuer(self) -> str:
        return f"http://127.0.0.1:{self.idp_port}"

    @property
    def issuers(self) -> tuple[str, ...]:
        """Every issuer the IdP process answers as (one per Host header)."""
        if self.issuer:
            return (self.issuer,)
        return (self.loopback_issuer, self.public_issuer)

    @property
    def portal_url(self) -> str:
        return f"http://127.0.0.1:{self.portal_port}"

    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.bridge_port}"

    @property
    def kiosk_bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.kiosk_port}"

    @property
    def card_file(self) -> Path:
        return self.directory / "demo-card.json"

    @property
    def kiosk_card_file(self) -> Path:
        """The second demo citizen's card, in the kiosk's reader."""
        return self.directory / "demo-kiosk-card.json"

    @property
    def kiosk_file(self) -> Path:
        """The demo kiosk's credentials for its bridge (``--kiosk-credentials``): client id, private key."""
        return self.directory / "demo-kiosk.json"

    @property
    def venue_file(self) -> Path:
        return self.directory / "demo-venue.json"

    @property
    def hall_file(self) -> Path:
        return self.directory / "demo-hall.json"

    @property
    def counter_file(self) -> Path:
        """The demo counter device's client id and private key (PEM)."""
        return self.directory / "demo-counter.json"

    @property
    def database_file(self) -> Path:
        return self.directory / DEMO_DATABASE_FILE

    def log_file(self, name: str) -> Path:
        return self.directory / f"demo-{name}.log"


def demo_database_url(configured: str, layout: DemoLayout) -> str:
    """The demo's database: the configured one if the operator named one, else a SQLite file in its
    directory (the default setting is relative to the working directory, which ``--dir`` must not be)."""
    from idp.config import Settings

    if configured != Settings().database_url:
        return configured
    return f"sqlite:///{layout.database_file.resolve()}"


# Seeding -----------------------------------------------------------------------------------------------


def ensure_demo_card(svc: Any, session: Any, citizen_id: str, path: Path, *, actor: str) -> str:
    """The demo citizen's card file at ``path``, issued unless a file of a live card of theirs is there.

    Returns one line saying what happened. A file that is unreadable, of another database's card, or of a
    card no longer active (lost, cancelled) is replaced by a newly issued card; the old card is cancelled.
    """
    from idp.cards.issuance import issue_card
    from idp.cards.model import CardStatus
    from idp.cards.service import cards_of_citizen, find_card
    from sdk.card_file import InvalidCardFileError, load_card_file, save_card_file

    if path.exists():
        try:
            existing = load_card_file(path)
        except (InvalidCardFileError, OSError, ValueError):
            existing = None
        if existing is not None:
            card = find_card(session, existing.card_id.hex().upper())
            if card is not None and card.citizen_id == citizen_id and card.status == CardStatus.ACTIVE.value:
                blocked = " (PIN blocked: delete the file and run again)" if existing.tries_left == 0 else ""
                return f"exists   card {card.card_number} in {path}{blocked}"
    issued = issue_card(
        session,
        svc.keks,
        citizen_id=citizen_id,
        actor=actor,
        now=svc.now(),
        region=DEMO_REGION,
        pin=DEMO_PIN,
        protocol="T=1",
        pii=svc.pii_cipher(),  # EF06 carries the register's cardholder data, as a real card does
        replace=bool(cards_of_citizen(session, citizen_id, live_only=True)),
    )
    save_card_file(path, issued.card_file)  # before the commit: no card registered without its file
    return f"created  card {issued.card.card_number} in {path} (PIN {DEMO_PIN})"


def ensure_demo_portal_uris(svc: Any, session: Any, layout: DemoLayout, *, actor: str) -> str:
    """Point the ``demo-portal`` client's redirect, logout and back-channel URIs at the portal's port.

    Idempotent: nothing changes (and nothing is audited) when they already do. Returns one line.
    """
    from idp.audit.service import record_event
    from idp.clients.service import get_client, validate_registration

    base = layout.portal_url
    redirect_uris, logout_uris = [f"{base}/callback"], [f"{base}/"]
    backchannel = f"{base}/backchannel-logout"
    validate_registration(
        dataclasses.replace(
            DEMO_PORTAL,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=logout_uris,
            backchannel_logout_uri=backchannel,
        )
    )
    assert DEMO_PORTAL.client_id is not None
    client = get_client(session, DEMO_PORTAL.client_id)
    current = (client.redirect_uris, client.post_logout_redirect_uris, client.backchannel_logout_uri)
    if current == (redirect_uris, logout_uris, backchannel):
        return f"exists   portal redirect URI {redirect_uris[0]}"
    # New lists, not edited ones: the JSON columns are saved only when assigned.
    client.redirect_uris, client.post_logout_redirect_uris = redirect_uris, logout_uris
    client.backchannel_logout_uri = backchannel
    session.flush()
    record_event(
        session,
        actor=actor,
        action="client.update",
        target_type="client",
        target_id=client.client_id,
        details={"demo": True, "redirect_uris": redirect_uris},
        now=svc.now(),
    )
    return f"updated  portal redirect URI {redirect_uris[0]}"


def _onecard_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from idp.cli import main; main()", *args]


def ensure_demo_venue(layout: DemoLayout, env: Mapping[str, str]) -> str:
    """The demo venue, added by ``onecard venues add`` once; its credentials are kept in ``venue_file``
    (``onecard-gate verify --credentials var/demo-venue.json``).

    The secret is shown only when a venue is created, so the file is the one place it is kept. If the file
    was deleted while the venue remains, a second demo venue is added under a fresh id.
    """
    path = layout.venue_file
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            return f"exists   venue {saved['venue_id']} (credentials in {path})"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DemoError(f"{path} is not the demo venue's credentials file; delete it") from exc
    venue_id = DEMO_VENUE_ID
    for attempt in range(3):
        command = ["venues", "add", "--name", DEMO_VENUE_NAME, "--category", "museum", "--id", venue_id]
        for claim in DEMO_VENUE_CLAIMS:
            command += ["--claim", claim]
        result = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
            _onecard_command(*command, "--json"), env=dict(env), capture_output=True, text=True, timeout=60
        )
        if result.returncode == 0:
            created = json.loads(result.stdout)
            # The shape `onecard-gate --credentials FILE` reads (client_id and client_secret).
            fields = {
                "venue_id": created["venue_id"],
                "client_id": created.get("client_id") or created["venue_id"],
                "client_secret": created["client_secret"],
            }
            path.write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
            path.chmod(0o600)
            return f"created  venue {created['venue_id']} (credentials in {path})"
        if "exist" not in result.stderr:
            raise DemoError(f"onecard venues add failed: {result.stderr.strip() or result.returncode}")
        venue_id = f"{DEMO_VENUE_ID}-{os.urandom(3).hex()}{attempt}"
    raise DemoError("could not add the demo venue")


def ensure_demo_catalogue(env: Mapping[str, str]) -> str:
    """The demo's application catalogue, loaded by ``onecard catalogue import -`` (after the demo venue, whose
    entry it gives an address). Idempotent: entries already as listed are left alone, so a second start
    changes nothing and adds no version; an entry staff changed since is brought back to the demo's."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        _onecard_command("catalogue", "import", "-"),
        input=json.dumps(list(DEMO_CATALOGUE), ensure_ascii=False),
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise DemoError(f"onecard catalogue import failed: {result.stderr.strip() or result.returncode}")
    states = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    counts = ", ".join(f"{states.count(state)} {state}" for state in sorted(set(states)))
    return f"loaded   catalogue of {len(states)} entries ({counts})"


def _run_onecard(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        _onecard_command(*args), env=dict(env), capture_output=True, text=True, timeout=60
    )


def ensure_demo_hall(layout: DemoLayout, env: Mapping[str, str]) -> tuple[str, list[dict[str, Any]]]:
    """The demo's service hall, its two services and two counters, added by ``onecard halls …`` where missing
    (idempotent: a second start adds nothing). The scanner's credentials are written to ``hall_file`` when the
    hall is created (the secret is shown only then); a device is registered for the demo counter and its key
    written to ``counter_file`` (a lost key file is replaced by a new key, rotated in). Returns one line and
    the hall's kiosks (for ``ensure_demo_kiosk``: one ``onecard`` process fewer at every start)."""
    shown = _run_onecard(env, "halls", "show", DEMO_HALL_ID, "--json")
    created = shown.returncode != 0
    if created:
        added = _run_onecard(
            env, "halls", "add", "--name", DEMO_HALL_NAME, "--address", DEMO_HALL_ADDRESS,
            "--id", DEMO_HALL_ID, "--json",
        )  # fmt: skip
        if added.returncode != 0:
            raise DemoError(f"onecard halls add failed: {added.stderr.strip() or added.returncode}")
        hall = json.loads(added.stdout)
        credentials = {"client_id": hall["scanner_client_id"], "client_secret": hall["scanner_client_secret"]}
        layout.hall_file.write_text(json.dumps({"hall_id": DEMO_HALL_ID, **credentials}, indent=2) + "\n")
        layout.hall_file.chmod(0o600)
    else:
        hall = json.loads(shown.stdout)
    services = {s["code"] for s in hall["services"]}
    counters = {c["code"] for c in hall["counters"]}
    commands = [
        ["add-service", DEMO_HALL_ID, "--code", code, "--name", name, "--name-en", en, "--prefix", prefix]
        for code, name, en, prefix in DEMO_HALL_SERVICES
        if code not in services
    ]
    for code, name, called in DEMO_HALL_COUNTERS:
        if code not in counters:
            commands.append(
                ["add-counter", DEMO_HALL_ID, "--code", code, "--name", name]
                + [item for service in called for item in ("--service", service)]
            )
    device = {c["code"]: c.get("device_client_id") for c in hall["counters"]}.get(DEMO_DEVICE_COUNTER)
    key = None
    if device is None or not layout.counter_file.exists():
        # A new key: registered for a counter without a device, else (its key file was lost) rotated in.
        key = generate_key("ES256")
        jwks_file = layout.directory / "demo-counter.jwks.json"  # public: the CLI reads the JWK Set from it
        jwks_file.write_text(json.dumps({"keys": [key.public_jwk()]}) + "\n")
        verb = "register-device" if device is None else "replace-device-keys"
        commands.append([verb, DEMO_HALL_ID, DEMO_DEVICE_COUNTER, "--jwks", str(jwks_file)])
    for command in commands:
        _run_halls(env, *command)
    if key is not None:
        _write_counter_file(layout, env, key)
    state = "created " if created else ("updated " if commands else "exists  ")
    return f"{state} hall {DEMO_HALL_ID} (/halls/{DEMO_HALL_ID}/display)", list(hall["kiosks"])


def _write_counter_file(layout: DemoLayout, env: Mapping[str, str], key: Key) -> None:
    """The demo counter device's credentials, as its terminal would keep them (0600, like the scanner's):
    its client id (read back from the hall), the key's id and the private key."""
    shown = _run_onecard(env, "halls", "show", DEMO_HALL_ID, "--json")
    if shown.returncode != 0:
        raise DemoError(f"onecard halls show failed: {shown.stderr.strip() or shown.returncode}")
    counters = {c["code"]: c for c in json.loads(shown.stdout)["counters"]}
    credentials = {
        "hall_id": DEMO_HALL_ID,
        "counter": DEMO_DEVICE_COUNTER,
        "client_id": counters[DEMO_DEVICE_COUNTER]["device_client_id"],
        "kid": key.kid,
        "private_key_pem": key.private_pem().decode("ascii"),
    }
    _write_private_file(layout.counter_file, credentials)


def ensure_demo_kiosk(layout: DemoLayout, env: Mapping[str, str], kiosks: list[dict[str, Any]]) -> str:
    """The demo hall's kiosk, registered by ``onecard halls register-kiosk`` with a new key where missing
    (idempotent: a second start changes nothing); ``kiosks`` are the hall's, as ``halls show`` lists them.
    Its credentials file is written when it is registered; a lost file means a new key, rotated in. A kiosk
    registered with another bridge URL (another ``--kiosk-port``) is registered anew."""
    kiosk = next((k for k in kiosks if k["name"] == DEMO_KIOSK_NAME), None)
    if kiosk is not None and kiosk["bridge_url"] != layout.kiosk_bridge_url:
        _run_halls(env, "remove-kiosk", DEMO_HALL_ID, kiosk["client_id"])
        kiosk = None
    if kiosk is not None and _kiosk_file_client(layout) == kiosk["client_id"]:
        return f"exists   kiosk {kiosk['client_id']} ({layout.kiosk_bridge_url}/kiosk)"
    key = generate_key("ES256")
    jwks_file = layout.directory / "demo-kiosk.jwks.json"  # public: the CLI reads the JWK Set from it
    jwks_file.write_text(json.dumps({"keys": [key.public_jwk()]}) + "\n")
    if kiosk is None:
        registered = _run_halls(
            env, "register-kiosk", DEMO_HALL_ID, "--name", DEMO_KIOSK_NAME, "--jwks", str(jwks_file),
            "--bridge-url", layout.kiosk_bridge_url, "--json",
        )  # fmt: skip
        client_id, state = json.loads(registered.stdout)["client_id"], "created "
    else:
        _run_halls(env, "replace-kiosk-keys", DEMO_HALL_ID, kiosk["client_id"], "--jwks", str(jwks_file))
        client_id, state = kiosk["client_id"], "updated "
    credentials = {
        "hall_id": DEMO_HALL_ID,
        "client_id": client_id,
        "kid": key.kid,
        "private_key_pem": key.private_pem().decode("ascii"),
        "issuer": layout.public_issuer,  # the audience of its assertions: the issuer its pages are under
    }
    _write_private_file(layout.kiosk_file, credentials)
    return f"{state} kiosk {client_id} ({layout.kiosk_bridge_url}/kiosk)"


def _kiosk_file_client(layout: DemoLayout) -> str | None:
    """The client id in the kiosk's credentials file, if it is a usable one for this issuer."""
    try:
        stored = json.loads(layout.kiosk_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    usable = isinstance(stored, dict) and stored.get("issuer") == layout.public_issuer
    return str(stored.get("client_id")) if usable and stored.get("private_key_pem") else None


def _run_halls(env: Mapping[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    result = _run_onecard(env, "halls", *command)
    if result.returncode != 0:
        raise DemoError(f"onecard halls {command[0]} failed: {result.stderr.strip() or result.returncode}")
    return result


def _write_private_file(path: Path, content: Mapping[str, str]) -> None:
    """Credentials as a terminal keeps them: 0600 before the key is in the file."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(content, indent=2) + "\n")


# Serving the IdP ---------------------------------------------------------------------------------------


class HostDispatcher:
    """A WSGI application that hands each request to the application for its ``Host`` header."""

    def __init__(self, apps: Mapping[str, Any], default: Any) -> None:
        self.apps = {host.lower(): app for host, app in apps.items()}
        self.default = default

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        host = str(environ.get("HTTP_HOST", "")).lower()
        return self.apps.get(host, self.default)(environ, start_response)


def create_demo_wsgi(issuers: Iterable[str], bridge_url: str) -> HostDispatcher:
    """One OneCard application per issuer (the first is the default), on the configured database."""
    from urllib.parse import urlsplit

    from idp.app import create_app
    from idp.config import load_settings

    settings = load_settings()
    issuers = list(issuers)
    # Pairwise subjects derive from the salt, which defaults to the issuer: one salt for every instance,
    # so a citizen is the same subject at a portal whichever host name the browser used.
    salt = settings.pairwise_salt or issuers[0]
    apps = {}
    for issuer in issuers:
        app = create_app(settings.replace(issuer=issuer, pairwise_salt=salt, card_bridge_url=bridge_url))
        apps[urlsplit(issuer).netloc] = app
    return HostDispatcher(apps, apps[urlsplit(issuers[0]).netloc])


def serve_idp(host: str, port: int, issuers: Iterable[str], bridge_url: str) -> None:
    """Serve the demo IdP (threaded werkzeug) until SIGTERM or SIGINT."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log lines: the log carries paths
    server = make_server(host, port, create_demo_wsgi(issuers, bridge_url), threaded=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    stop.wait()
    server.shutdown()
    server.server_close()


# Running the children ----------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    command: list[str]
    port: int
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our interpreter, arguments we built
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops the children in order
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_is_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def repository_root() -> Path:
    """The source checkout holding ``examples/`` (the example portal is not part of the installed package)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "examples" / "portal" / "app.py").is_file():
        raise DemoError("the example portal (examples/portal) comes with the source checkout; run from it")
    return root


def plan_children(layout: DemoLayout, env: Mapping[str, str], *, open_pin_dialog: bool) -> list[Child]:
    root = repository_root()
    base_env = dict(env)
    idp = Child(
        "idp",
        [
            sys.executable,
            "-m",
            "demo.runner",
            "--port",
            str(layout.idp_port),
            "--bridge-url",
            layout.bridge_url,
            *[arg for issuer in layout.issuers for arg in ("--issuer", issuer)],
        ],
        layout.idp_port,
        layout.log_file("idp"),
        base_env,
    )
    portal_env = {
        **base_env,
        "ONECARD_ISSUER": layout.public_issuer,
        "PORTAL_BASE_URL": layout.portal_url,
        "PORTAL_CLIENT_ID": "demo-portal",
        "PORTAL_CLIENT_SECRET": DEMO_PORTAL_SECRET,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), base_env.get("PYTHONPATH", "")])),
    }
    portal = Child(
        "portal",
        [sys.executable, "-m", "examples.portal"],
        layout.portal_port,
        layout.log_file("portal"),
        portal_env,
    )
    bridge_command = [
        sys.executable,
        "-m",
        "reader_bridge.cli",
        "serve",
        "--dev",
        "--virtual-card",
        str(layout.card_file),
        "--pin-source",
        "dialog",
        "--port",
        str(layout.bridge_port),
        *[arg for issuer in layout.issuers for arg in ("--origin", issuer)],
    ]
    # The hall's kiosk: a bridge of its own in the kiosk profile, the OneCard kiosk pages its one origin,
    # holding the terminal's key for its launch page (GET /kiosk), with the second citizen's card.
    kiosk_command = [
        sys.executable, "-m", "reader_bridge.cli", "serve", "--dev",
        "--virtual-card", str(layout.kiosk_card_file), "--pin-source", "dialog",
        "--port", str(layout.kiosk_port),
        "--kiosk", layout.public_issuer, "--kiosk-credentials", str(layout.kiosk_file),
    ]  # fmt: skip
    if not open_pin_dialog:
        bridge_command.append("--no-open-dialog")
        kiosk_command.append("--no-open-dialog")
    bridge = Child("bridge", bridge_command, layout.bridge_port, layout.log_file("bridge"), base_env)
    kiosk = Child("kiosk", kiosk_command, layout.kiosk_port, layout.log_file("kiosk"), base_env)
    return [idp, bridge, portal, kiosk]


@dataclass
class DemoRun:
    """The running children; ``stop`` ends them all, by PID, in reverse start order."""

    children: list[Child]
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        busy = [child for child in self.children if not port_is_free(child.port)]
        if busy:
            names = ", ".join(f"{child.port} ({child.name})" for child in busy)
            raise DemoError(f"port(s) in use: {names}; stop what uses them or pick other ports (--help)")
        for child in self.children:
            child.start()
        deadline = time.monotonic() + timeout
        waiting = list(self.children)
        while waiting:
            for child in list(waiting):
                if child.exited() is not None:
                    raise DemoError(f"the {child.name} stopped at start-up:\n{child.log_tail()}")
                if port_is_open(child.port):
                    waiting.remove(child)
            if time.monotonic() > deadline:
                raise DemoError(f"the {', '.join(c.name for c in waiting)} did not start in {timeout:.0f} s")
            if waiting:
                time.sleep(0.05)

    def wait(self) -> Child | None:
        """Until a stop is asked for (returns None) or a child ends by itself (returns that child)."""
        while not self.stopping.wait(0.3):
            for child in self.children:
                if child.exited() is not None:
                    return child
        return None

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()


def banner(layout: DemoLayout, children: list[Child], seeded: list[str]) -> str:
    lines = [
        "",
        "OneCard demo is running (Ctrl-C stops it):",
        "",
        *[f"  {child.name:<7} pid {child.pid:<7} log {child.log_path}" for child in children],
        "",
        f'  Open {layout.portal_url} and click "Log in with card"; PIN {DEMO_PIN}',
        "  (type it into the OneCard bridge's PIN window; the login page links to it).",
        f"  Wallet: {layout.public_issuer}/wallet   Discovery: "
        f"{layout.issuers[0]}/.well-known/openid-configuration",
        f"  Gate credentials of the demo venue: {layout.venue_file}",
        f"  Where the card can be used (the catalogue): {layout.public_issuer}/catalogue",
        f"  Kiosk: open {layout.kiosk_bridge_url}/kiosk (card of the second demo citizen, PIN {DEMO_PIN})",
        "",
        *[f"  {line}" for line in seeded],
        "",
        "  The demo card, PIN and secrets are development values: never use them outside a laptop.",
        "",
    ]
    return "\n".join(lines)


def run_demo(
    layout: DemoLayout, env: Mapping[str, str], seeded: list[str], *, open_pin_dialog: bool, echo: Log
) -> int:
    """Start the children, print the banner, wait for Ctrl-C/SIGTERM or a child's end, stop them all."""
    demo = DemoRun(plan_children(layout, env, open_pin_dialog=open_pin_dialog))
    return supervise(demo, lambda children: banner(layout, children, seeded), echo=echo)


def supervise(demo: DemoRun, banner_of: Callable[[list[Child]], str], *, echo: Log) -> int:
    """Start the children, print ``banner_of`` them, wait for Ctrl-C/SIGTERM or a child's end, stop them all
    by PID (also ``onecard demo run --regions 2``, ``demo.regions``)."""

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        demo.stopping.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        demo.start()
        echo(banner_of(demo.children))
        ended = demo.wait()
        if ended is not None:
            echo(f"the {ended.name} stopped (exit status {ended.exited()}); stopping the demo")
            echo(ended.log_tail())
            return 1
        echo("stopping the demo")
        return 0
    finally:
        demo.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> None:
    """``python -m demo.runner``: the demo's IdP child process (started by ``onecard demo run``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m demo.runner", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_IDP_PORT)
    parser.add_argument("--issuer", action="append", required=True, help="an issuer to answer as (repeat)")
    parser.add_argument("--bridge-url", default=f"http://127.0.0.1:{DEFAULT_BRIDGE_PORT}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve_idp(args.host, args.port, args.issuer, args.bridge_url)


if __name__ == "__main__":
    main()
