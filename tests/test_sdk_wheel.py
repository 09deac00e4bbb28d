"""The SDK as its users install it: the wheel and sdist built by ``python -m build``, installed into fresh
virtualenvs from the local wheelhouse only (``scripts/setup.sh`` fills ``.venv/wheelhouse``; nothing is
downloaded here), then used there — the example portal logs a citizen in against a live OneCard, and the
example gate verifies a live wallet's codes offline.

The build runs on a copy of the tracked sources, so the checkout gets no ``build/`` or ``*.egg-info``. The
plain ``onecard`` install must be the SDK alone: no Flask, no SQLAlchemy, no Authlib; its ``onecard``
command says what to install in one line instead of a traceback. Under ``CI=true`` a missing wheelhouse
fails the test (tests/fixtures/services.py).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import qrcode
import requests

from idp.cards.model import CardStatus
from idp.launcher import SERVER_EXTRA_MISSING
from idp.scopes import ACR_HIGH
from reader_bridge.launcher import BRIDGE_EXTRA_MISSING
from sdk.qr_token import parse_qr_token
from tests.fixtures.services import service_unavailable
from tests.support.live import Browser, LiveIdp
from tests.support.wallet import REGION, LiveWallet, WalletUser, running_wallet

# The module takes about 20 s here: one build and two virtualenvs (module-scoped fixtures, set up by the first
# tests that use them), then a portal and a gate process. The budget is per test, set-up included.
pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / ".venv" / "wheelhouse"
SDK_DISTRIBUTIONS = {"onecard", "cryptography", "cbor2", "pyjwt", "requests"}
# What only the server (or another extra) brings: none of it in a plain install.
NOT_IN_THE_SDK = {
    "flask",
    "werkzeug",
    "click",
    "sqlalchemy",
    "authlib",
    "alembic",
    "psycopg",
    "psycopg-binary",
    "redis",
    "gunicorn",
    "granian",
    "webauthn",
    "qrcode",
    "jsonschema",
    "prometheus-client",
    "pyscard",
    "zxing-cpp",
    "pillow",
}
# The server's own dependencies: not even the portal-flask and gate extras bring them.
SERVER_ONLY = {
    "sqlalchemy",
    "authlib",
    "alembic",
    "psycopg",
    "psycopg-binary",
    "redis",
    "gunicorn",
    "granian",
}


def _run(
    args: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, input=input, timeout=timeout, capture_output=True, text=True, check=False
    )


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@dataclass(frozen=True)
class Venv:
    """A fresh virtualenv (no system site-packages), and an environment that cannot reach an index."""

    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def script(self, name: str) -> str:
        return str(self.path / "bin" / name)

    @property
    def env(self) -> dict[str, str]:
        # The machine's pip configuration (find-links, extra index URLs) and our own settings stay out.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PIP_", "PYTHON", "ONECARD_", "PORTAL_", "FLASK_", "VIRTUAL_ENV"))
        }
        env.update(
            PATH=f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            VIRTUAL_ENV=str(self.path),
            PIP_CONFIG_FILE=os.devnull,
            PIP_NO_INDEX="1",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PYTHONNOUSERSITE="1",
        )
        return env

    def distributions(self) -> set[str]:
        listed = _ok(_run([self.python, "-m", "pip", "list", "--format=json"], env=self.env)).stdout
        return {entry["name"].lower().replace("_", "-") for entry in json.loads(listed)}


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path
    examples: Path  # a directory holding a copy of examples/ (examples are not part of the wheel)


def _tracked_files() -> list[str]:
    listed = _ok(
        _run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    ).stdout
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The wheel and sdist, built with ``--no-isolation`` by this venv's Python from a copy of the sources."""
    if not (WHEELHOUSE / ".complete").is_file():
        service_unavailable(f"no wheelhouse at {WHEELHOUSE}: run scripts/setup.sh")
    source = tmp_path_factory.mktemp("source")
    for name in _tracked_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    _ok(
        _run(
            [sys.executable, "-m", "build", "--wheel", "--sdist", "--no-isolation", "--outdir", str(dist)],
            cwd=source,
        )
    )
    (wheel,) = dist.glob("onecard-*.whl")
    (sdist,) = dist.glob("onecard-*.tar.gz")
    examples = tmp_path_factory.mktemp("run")
    shutil.copytree(source / "examples", examples / "examples")
    return Built(wheel, sdist, examples)


def _venv(tmp_path_factory: pytest.TempPathFactory, name: str, requirement: str) -> Venv:
    venv = Venv(tmp_path_factory.mktemp(name) / "venv")
    _ok(_run([sys.executable, "-m", "venv", str(venv.path)]))
    _ok(
        _run(
            [
                venv.python,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--find-links",
                str(WHEELHOUSE),
                requirement,
            ],
            env=venv.env,
        )
    )
    return venv


@pytest.fixture(scope="module")
def plain(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """``pip install onecard``."""
    return _venv(tmp_path_factory, "plain", str(built.wheel))


@pytest.fixture(scope="module")
def portal_and_gate(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """``pip install 'onecard[portal-flask,gate]'``."""
    return _venv(tmp_path_factory, "extras", f"onecard[portal-flask,gate] @ {built.wheel.as_uri()}")


def test_the_distributions_hold_the_packages_and_nothing_else(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = next(
            wheel.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")
        )
    tops = {name.split("/", 1)[0] for name in names}
    assert {"sdk", "idp", "wallet", "reader_bridge", "migrations", "demo"} <= tops
    assert not tops & {"tests", "examples", "bench", "scripts", "docs"}
    assert {"sdk/py.typed", "sdk/portal/flask.py", "idp/launcher.py", "reader_bridge/launcher.py"} <= names
    assert any(name.startswith("idp/templates/") for name in names)
    assert "onecard = idp.launcher:main" in entry_points
    assert "onecard-bridge = reader_bridge.launcher:main" in entry_points
    with tarfile.open(built.sdist) as sdist:
        members = {member.name.split("/", 1)[-1] for member in sdist.getmembers()}
    assert {"pyproject.toml", "README.md", "sdk/gate.py"} <= members
    assert not any(name.startswith((".venv", "var/", "build/")) for name in members)


def test_plain_install_is_the_sdk_alone(plain: Venv, tmp_path: Path) -> None:
    installed = plain.distributions()
    assert installed >= SDK_DISTRIBUTIONS
    assert not installed & NOT_IN_THE_SDK, installed & NOT_IN_THE_SDK
    # -I: the fresh venv's site-packages only, not this checkout.
    imported = _ok(
        _run(
            [
                plain.python,
                "-I",
                "-c",
                "import sys, sdk, sdk.portal, sdk.gate, sdk.realname; print(sdk.__file__); "
                "print(sorted(m for m in ('flask', 'sqlalchemy') if m in sys.modules))",
            ],
            cwd=tmp_path,
            env=plain.env,
        )
    ).stdout.splitlines()
    assert imported[0].startswith(str(plain.path)) and imported[1] == "[]"
    server = _run([plain.python, "-I", "-c", "import idp.app"], cwd=tmp_path, env=plain.env)
    assert server.returncode == 1 and "ModuleNotFoundError" in server.stderr


def test_the_commands_say_which_extra_they_need(plain: Venv, tmp_path: Path) -> None:
    onecard = _run([plain.script("onecard"), "--help"], cwd=tmp_path, env=plain.env)
    assert (onecard.returncode, onecard.stdout, onecard.stderr) == (2, "", SERVER_EXTRA_MISSING + "\n")
    bridge = _run(
        [plain.script("onecard-bridge"), "serve", "--origin", "http://127.0.0.1:8000"],
        cwd=tmp_path,
        env=plain.env,
    )
    assert (bridge.returncode, bridge.stderr) == (2, BRIDGE_EXTRA_MISSING + "\n"), bridge.stderr
    assert _run([plain.script("onecard-bridge"), "--help"], cwd=tmp_path, env=plain.env).returncode == 0
    assert _run([plain.script("onecard-gate"), "--help"], cwd=tmp_path, env=plain.env).returncode == 0


def test_the_portal_and_gate_extras(portal_and_gate: Venv, tmp_path: Path) -> None:
    installed = portal_and_gate.distributions()
    assert installed >= SDK_DISTRIBUTIONS | {"flask", "zxing-cpp", "pillow"}
    assert not installed & SERVER_ONLY, installed & SERVER_ONLY
    _ok(
        _run(
            [portal_and_gate.python, "-I", "-c", "import sdk.portal.flask"],
            cwd=tmp_path,
            env=portal_and_gate.env,
        )
    )
    # Flask and click are here now, the rest of the server is not: still one line, no traceback.
    onecard = _run([portal_and_gate.script("onecard"), "serve"], cwd=tmp_path, env=portal_and_gate.env)
    assert (onecard.returncode, onecard.stderr) == (2, SERVER_EXTRA_MISSING + "\n")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def installed_portal(idp: LiveIdp, built: Built, portal_and_gate: Venv, tmp_path: Path) -> Iterator[str]:
    """``python -m examples.portal`` in the fresh venv, registered at the live IdP; yields its base URL."""
    base = f"http://127.0.0.1:{_free_port()}"
    client_id, secret = idp.register_client(
        name="Installed portal",
        redirect_uris=(f"{base}/callback",),
        post_logout_redirect_uris=(f"{base}/",),
        backchannel_logout_uri=f"{base}/backchannel-logout",
        scope="openid profile realname idcard",
        id_number_allowed=True,
    )
    env = portal_and_gate.env | {
        "ONECARD_ISSUER": idp.base_url,
        "PORTAL_CLIENT_ID": client_id,
        "PORTAL_CLIENT_SECRET": str(secret),
        "PORTAL_BASE_URL": base,
        "PORTAL_SECRET_KEY": "installed-portal-test-key",
        "PORTAL_NAME": "Installed portal",
    }
    log = tmp_path / "portal.log"
    with log.open("w") as output:
        # cwd holds only examples/: sdk and flask come from the venv's site-packages.
        process = subprocess.Popen(
            [portal_and_gate.python, "-m", "examples.portal"],
            cwd=built.examples,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"the portal exited: {log.read_text()}"
            try:
                if requests.get(f"{base}/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"the portal did not answer: {log.read_text()}"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_the_installed_example_portal_logs_a_citizen_in(idp: LiveIdp, installed_portal: str) -> None:
    browser = Browser(idp)
    start = browser.http.get(
        f"{installed_portal}/login", params={"acr": ACR_HIGH}, allow_redirects=False, timeout=10
    )
    assert start.status_code == 303 and start.headers["Location"].startswith(f"{idp.base_url}/authorize?")
    callback = browser.authorize(start.headers["Location"], citizen="zhang", acr=ACR_HIGH)
    assert callback.startswith(f"{installed_portal}/callback?"), callback
    page = browser.http.get(callback, timeout=10)
    assert page.status_code == 200, page.text[:500]
    # The claims page: the verified name and ID number, at the level of the card login.
    assert "张三" in page.text and "11010519491231002X" in page.text and ACR_HIGH in page.text


@pytest.fixture
def wallet(tmp_path: Path) -> Iterator[LiveWallet]:
    with running_wallet(f"sqlite:///{tmp_path}/wallet.sqlite3") as live:
        live.add_card("zhang")
        yield live


def test_the_installed_example_gate_verifies_wallet_codes_offline(
    wallet: LiveWallet, built: Built, portal_and_gate: Venv, tmp_path: Path
) -> None:
    venue_id, secret = wallet.add_venue("Installed gate", "museum", ("valid_resident", "age_over_60"))
    credentials = tmp_path / "venue.json"
    credentials.write_text(json.dumps({"client_id": venue_id, "client_secret": secret}), encoding="utf-8")
    credentials.chmod(0o600)
    citizen = WalletUser(wallet, "zhang")
    citizen.set_up()
    state = tmp_path / "gate-state"

    def gate(*images: Path, codes: str = "") -> subprocess.CompletedProcess[str]:
        command = [portal_and_gate.python, "-m", "examples.gate", "--url", wallet.base_url]
        command += ["--credentials", str(credentials), "--region", REGION, "--state-dir", str(state)]
        return _run(
            [*command, *map(str, images)],
            input=codes,
            cwd=built.examples,
            env=portal_and_gate.env,
            timeout=60,
        )

    # Codes typed by a keyboard-mode scanner: a pass, the same code again, and noise.
    first = citizen.code()["text"]
    scanned = gate(codes=f"{first}\n{first}\nnot a code\n")
    lines = scanned.stdout.splitlines()
    assert scanned.returncode == 1, scanned.stderr
    assert lines[0].startswith(f"PASS handle={parse_qr_token(first).handle} issuer={REGION} expires_in=")
    assert lines[1:] == ["REJECT reason=replayed", "REJECT reason=malformed"]
    # A photo of the phone's screen, decoded by zxing-cpp in the venv.
    photo = tmp_path / "code.png"
    picture = io.BytesIO()
    qrcode.make(citizen.code()["text"]).save(picture)
    photo.write_bytes(picture.getvalue())
    from_photo = gate(photo)
    assert from_photo.returncode == 0 and from_photo.stdout.startswith("PASS handle="), from_photo.stdout
    # A file that is no image: an ERROR line for it (not a traceback), and the gate refuses.
    (tmp_path / "notes.png").write_text("not an image", encoding="utf-8")
    unreadable = gate(tmp_path / "notes.png")
    assert unreadable.returncode == 1 and unreadable.stdout.startswith("ERROR cannot read image")
    assert "Traceback" not in unreadable.stderr
    # Restarted, the gate still knows the first code was used (its replay cache is in the state directory).
    assert gate(codes=first + "\n").stdout == "REJECT reason=replayed\n"
    # The card is reported lost: at its next start the gate syncs the list and refuses the e-card.
    later = citizen.code()["text"]
    wallet.set_card_status("zhang", CardStatus.LOST)
    refused = gate(codes=later + "\n")
    assert (refused.returncode, refused.stdout) == (1, "REJECT reason=revoked\n"), refused.stderr
