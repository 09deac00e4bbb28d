"""``onecard demo run`` — the complete demo behind ``make run`` (issue #5 item 5) — as a newcomer starts it.

The command runs as a subprocess in a temporary directory, on free ports and a database under it: the IdP
answers discovery as http://127.0.0.1:<port> (the issue-2 check) and as http://localhost:<port> (the issuer
the demo's portal, wallet and bridge use), the example portal shows its login page, the bridge reports the
virtual card; SIGTERM stops every child, checked by PID. A second start reuses what the first seeded.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from demo.data import DEMO_PIN
from demo.runner import HostDispatcher
from idp.cli import cli
from sdk.card_file import load_card_file
from sdk.gate_cli import main as gate_main
from sdk.keys import Key
from tests.support.counter_device import CounterDevice

START_TIMEOUT = 150.0  # seeding runs a dozen `onecard` subprocesses; a shared 2-core machine is slow


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Demo:
    process: subprocess.Popen[str]
    idp: int
    portal: int
    bridge: int
    directory: Path

    def output(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.read()


@contextmanager
def demo_run(
    directory: Path, ports: list[int], *, demo_dir: Path | None = None, own_database: bool = True
) -> Iterator[Demo]:
    """``onecard demo run`` started in ``directory``; ``demo_dir`` is its ``--dir``; with ``own_database``
    ONECARD_DATABASE_URL names a database in ``directory``, else the demo picks its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONECARD_")}
    env.update(ONECARD_ENV="development")
    if own_database:
        env.update(ONECARD_DATABASE_URL=f"sqlite:///{directory}/demo.sqlite3")
    idp, portal, bridge, kiosk = ports
    command = [
        sys.executable,
        "-c",
        "from idp.cli import main; main()",
        "demo",
        "run",
        "--idp-port",
        str(idp),
        "--portal-port",
        str(portal),
        "--bridge-port",
        str(bridge),
        "--kiosk-port",
        str(kiosk),
        "--no-open-dialog",
        *(["--dir", str(demo_dir)] if demo_dir is not None else []),
    ]
    process = subprocess.Popen(
        command, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    demo = Demo(process, idp, portal, bridge, directory)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(port_open(port) for port in ports):
            if process.poll() is not None:
                pytest.fail(f"onecard demo run ended with {process.returncode}:\n{demo.output()}")
            if time.monotonic() > deadline:
                pytest.fail("the demo did not open its four ports in time")
            time.sleep(0.1)
        yield demo
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def stop(demo: Demo) -> str:
    """SIGTERM the demo; every child it started must be gone when it has exited."""
    children = children_of(demo.process.pid)
    assert len(children) == 4, children  # the IdP, both bridges and the portal
    demo.process.send_signal(signal.SIGTERM)
    assert demo.process.wait(30) == 0
    output = demo.output()
    assert [pid for pid in children if alive(pid)] == []
    assert not any(port_open(port) for port in (demo.idp, demo.portal, demo.bridge))
    return output


def test_demo_run_serves_everything_and_stops_every_child(tmp_path: Path) -> None:
    ports = free_ports(4)
    idp, portal, bridge, kiosk = ports
    with demo_run(tmp_path, ports) as demo:
        # The issue-2 check: a valid discovery document at 127.0.0.1, naming itself.
        discovery = requests.get(f"http://127.0.0.1:{idp}/.well-known/openid-configuration", timeout=10)
        assert discovery.status_code == 200
        document = discovery.json()
        assert document["issuer"] == f"http://127.0.0.1:{idp}"
        assert document["authorization_endpoint"] == f"http://127.0.0.1:{idp}/authorize"
        assert "S256" in document["code_challenge_methods_supported"]
        jwks = requests.get(document["jwks_uri"], timeout=10).json()
        assert jwks["keys"]
        # The same server as the localhost issuer (passkeys need a domain name).
        local = requests.get(
            f"http://127.0.0.1:{idp}/.well-known/openid-configuration",
            headers={"Host": f"localhost:{idp}"},
            timeout=10,
        ).json()
        assert local["issuer"] == f"http://localhost:{idp}"

        home = requests.get(f"http://127.0.0.1:{portal}/", timeout=10)
        assert home.status_code == 200 and 'id="login-card"' in home.text
        # The portal's "Log in with card" sends the browser to the localhost issuer, asking for the card.
        login = requests.get(
            f"http://127.0.0.1:{portal}/login?acr=urn:onecard:loa:high", allow_redirects=False, timeout=10
        )
        assert login.status_code == 303
        assert login.headers["Location"].startswith(f"http://localhost:{idp}/authorize?")

        status = requests.get(
            f"http://127.0.0.1:{bridge}/v1/status", headers={"Origin": f"http://localhost:{idp}"}, timeout=10
        )
        assert status.status_code == 200
        body = status.json()
        assert body["dev_mode"] is True and body["pin_source"] == "dialog"
        assert [r["card_present"] for r in body["readers"]] == [True]
        refused = requests.post(
            f"http://127.0.0.1:{bridge}/v1/authenticate",
            json={"nonce": "A" * 43},
            headers={"Origin": "https://evil.example"},
            timeout=10,
        )
        assert refused.status_code == 403

        card = load_card_file(tmp_path / "var" / "demo-card.json")
        assert card.pin == DEMO_PIN
        venue = json.loads((tmp_path / "var" / "demo-venue.json").read_text())
        assert venue["venue_id"] == venue["client_id"] == "vn_demo-museum" and venue["client_secret"]
        # The catalogue: the demo's places, and the demo venue listed by registering it, with its address.
        catalogue = requests.get(f"http://127.0.0.1:{idp}/api/v1/catalogue?per_page=100", timeout=10).json()
        entries = {entry["entry_id"]: entry for entry in catalogue["entries"]}
        assert len(entries) >= 12 and len({entry["category"] for entry in entries.values()}) >= 6
        museum = entries["vn_demo-museum"]
        assert museum["claims_source"] == "venue" and museum["address"] and museum["version"] == 2
        page = requests.get(f"http://127.0.0.1:{idp}/catalogue?near=420111", timeout=10)
        assert page.status_code == 200 and "洪山区政务服务中心" in page.text
        # The service hall: its display, and its two services and two counters (halls/).
        display_url = f"http://127.0.0.1:{idp}/halls/demo-civic-hall/display"
        display = requests.get(display_url, headers={"Accept": "text/html"}, timeout=10)  # a browser: Chinese
        assert display.status_code == 200 and "武汉市民之家" in display.text and "医保登记" in display.text
        hall = json.loads((tmp_path / "var" / "demo-hall.json").read_text())
        assert hall["client_id"] == "hall_demo-civic-hall" and hall["client_secret"]
        # The demo counter's device: its key, kept by the demo, gets it a token and calls at its counter.
        counter = json.loads((tmp_path / "var" / "demo-counter.json").read_text())
        assert (tmp_path / "var" / "demo-counter.json").stat().st_mode & 0o077 == 0
        device = CounterDevice(counter["client_id"])
        device.key = Key.from_private_pem(counter["private_key_pem"].encode(), kid=counter["kid"])
        call = requests.post(
            f"http://127.0.0.1:{idp}/api/v1/halls/demo-civic-hall/counters/w1/call-next",
            headers=device.headers(f"http://127.0.0.1:{idp}"),
            timeout=10,
        )
        assert call.status_code == 204  # nobody waits in the demo hall
        # The hall's kiosk: its own bridge launches it; the launch page's form starts the terminal at the
        # kiosk pages (the localhost issuer), which show the demo hall, talking to the kiosk's bridge.
        kiosk_file = tmp_path / "var" / "demo-kiosk.json"
        assert kiosk_file.stat().st_mode & 0o077 == 0
        assert (
            load_card_file(tmp_path / "var" / "demo-kiosk-card.json").card_id
            != load_card_file(tmp_path / "var" / "demo-card.json").card_id
        )
        launch = requests.get(f"http://127.0.0.1:{kiosk}/kiosk", timeout=10)
        assert launch.status_code == 200, launch.text
        action = re.search(r'action="([^"]+)"', launch.text)
        assert action and html.unescape(action.group(1)) == f"http://localhost:{idp}/kiosk/start"
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]+)">', launch.text))
        terminal = requests.Session()
        started = terminal.post(
            f"http://127.0.0.1:{idp}/kiosk/start",
            data={k: html.unescape(v) for k, v in fields.items()},
            headers={"Host": f"localhost:{idp}"},
            timeout=10,
        )
        assert started.status_code == 200, started.text
        start_page = requests.get(
            f"http://127.0.0.1:{idp}/kiosk",
            headers={"Host": f"localhost:{idp}", "Cookie": f"ockiosk={started.cookies['ockiosk']}"},
            timeout=10,
        )
        assert start_page.status_code == 200 and "武汉市民之家" in start_page.text
        assert f'data-bridge-url="http://127.0.0.1:{kiosk}"' in start_page.text
        output = stop(demo)
    assert f"Open http://127.0.0.1:{portal}" in output and f"PIN {DEMO_PIN}" in output
    assert "created  card" in output and "created  venue vn_demo-museum" in output
    assert "created  hall demo-civic-hall" in output
    assert f"Kiosk: open http://127.0.0.1:{kiosk}/kiosk" in output and "created  kiosk kio_" in output
    assert "catalogue of 14 entries (13 created, 1 updated)" in output
    # Nothing personal in what the demo prints: the ID numbers are masked, names are not shown.
    assert "张三" not in output and "11010219491231001" not in output

    # Again: everything is there already; same card, same venue.
    with demo_run(tmp_path, ports) as demo:
        again = requests.get(f"http://127.0.0.1:{idp}/.well-known/openid-configuration", timeout=10)
        assert again.status_code == 200
        output = stop(demo)
    assert "exists   card" in output and "exists   venue vn_demo-museum" in output
    assert "exists   hall demo-civic-hall" in output and "exists   kiosk kio_" in output
    assert "catalogue of 14 entries (14 unchanged)" in output
    assert "created" not in output
    assert load_card_file(tmp_path / "var" / "demo-card.json").card_id == card.card_id


def test_demo_run_refuses_production_and_busy_ports(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"ONECARD_ENV": "production", "ONECARD_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"}
    result = runner.invoke(cli, ["demo", "run"], env=env)
    assert result.exit_code == 1 and "production" in result.output

    result = runner.invoke(cli, ["demo", "run", "--idp-port", "9000", "--portal-port", "9000"])
    assert result.exit_code == 2 and "must differ" in result.output


def test_host_dispatcher_picks_the_application_by_host() -> None:
    def answer(name: str):  # type: ignore[no-untyped-def]
        def app(environ, start_response):  # type: ignore[no-untyped-def]
            start_response("200 OK", [])
            return [name.encode()]

        return app

    dispatcher = HostDispatcher({"LOCALHOST:8000": answer("local")}, answer("default"))
    assert dispatcher({"HTTP_HOST": "localhost:8000"}, lambda *_: None) == [b"local"]
    assert dispatcher({"HTTP_HOST": "127.0.0.1:8000"}, lambda *_: None) == [b"default"]
    assert dispatcher({}, lambda *_: None) == [b"default"]


def files_under(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}


def test_demo_run_keeps_everything_in_its_dir_and_the_portal_login_on_its_port(tmp_path: Path) -> None:
    workdir, demo_dir = tmp_path / "cwd", tmp_path / "elsewhere" / "demo"
    workdir.mkdir()
    ports = free_ports(4)
    portal = ports[1]
    assert portal != 8001
    with demo_run(workdir, ports, demo_dir=demo_dir, own_database=False) as demo:
        # "Log in with card" at the portal on its chosen port: the IdP knows that redirect URI and goes on to
        # its login page, instead of refusing an unregistered redirect_uri.
        login = requests.get(
            f"http://127.0.0.1:{portal}/login?acr=urn:onecard:loa:high", allow_redirects=False, timeout=10
        )
        authorize = login.headers["Location"]
        assert f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{portal}%2Fcallback" in authorize
        browser = requests.Session()  # the login transaction lives in a cookie
        answer = browser.get(authorize, allow_redirects=False, timeout=10)
        assert answer.status_code in (302, 303), answer.text[:300]
        assert "/login/" in answer.headers["Location"]
        page = browser.get(urljoin(authorize, answer.headers["Location"]), timeout=10)
        assert page.status_code == 200, page.text[:300]
        browser.close()
        # onecard-gate takes the venue file as written: a verdict, not "credentials refused".
        gate_out, gate_err = io.StringIO(), io.StringIO()
        venue_file = str(demo_dir / "demo-venue.json")
        argv = ["verify", "--text", "ESSC1:", "--online", "--url", f"http://127.0.0.1:{ports[0]}"]
        assert gate_main([*argv, "--credentials", venue_file], out=gate_out, err=gate_err) == 1
        assert gate_out.getvalue() == "REJECT reason=malformed\n"
        output = stop(demo)
    assert f"updated  portal redirect URI http://127.0.0.1:{portal}/callback" in output
    # Nothing in the working directory; the database, card, credentials and logs under --dir.
    assert files_under(workdir) == set()
    assert {"onecard.sqlite3", "demo-card.json", "demo-venue.json", "demo-idp.log"} <= files_under(demo_dir)

    # Again on the same ports: the registration is left alone.
    with demo_run(workdir, ports, demo_dir=demo_dir, own_database=False) as demo:
        output = stop(demo)
    assert f"exists   portal redirect URI http://127.0.0.1:{portal}/callback" in output
    assert "updated" not in output and files_under(workdir) == set()
    engine = create_engine(f"sqlite:///{demo_dir / 'onecard.sqlite3'}")
    try:
        with engine.connect() as connection:
            stored = connection.execute(
                text("SELECT redirect_uris FROM oauth_clients WHERE client_id = 'demo-portal'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert json.loads(stored) == [f"http://127.0.0.1:{portal}/callback"]
