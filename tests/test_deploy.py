"""The production topology (deploy/compose.yaml, Dockerfile, deploy/nginx/onecard.conf; docs/deploy.md).

Three levels:

1. Static: compose.yaml and the Dockerfile say what the topology promises — the services, a one-shot
   migration before the nodes, health checks on /readyz, non-root nodes, no secret in an environment
   variable — and the nginx template's placeholders are exactly the ones compose fills in.
2. The same topology without Docker, always: Debian's nginx runs deploy/nginx/onecard.conf (rendered for
   local ports, as compose's envsubst renders it) with TLS under a certificate made here, in front of two
   ``onecard serve`` nodes (gunicorn, ``ONECARD_ENV=production``) on PostgreSQL + Redis, after the migrate
   step; every check goes through the proxy over verified TLS.
3. With a Docker engine: ``docker compose up --build`` and /readyz through the proxy on both nodes. This
   machine kind has the docker client but no engine, so there it is skipped — under CI=true too.

Every process is started here and stopped by PID.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from requests.adapters import HTTPAdapter

from idp.web import HSTS
from tests.fixtures.services import (
    create_database_or_skip,
    delete_redis_keys,
    drop_database,
    random_redis_prefix,
    service_unavailable,
)
from tests.support.nodes import free_port
from tests.support.wallet import csrf_of

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
NGINX_TEMPLATE = DEPLOY / "nginx" / "onecard.conf"
DOCKERFILE = ROOT / "Dockerfile"
ONECARD = Path(sys.executable).with_name("onecard")
NODES = ("node-a", "node-b")
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# Names of settings and variables that hold secrets: never a plain environment value, only a *_FILE path.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEK|SALT|TOKEN|PIN|PRIVATE|CREDENTIAL", re.IGNORECASE)
# Passkey sign-in attempts a client address may make per minute (wallet.devices.views.ATTEMPTS_PER_MINUTE).
PASSKEY_ATTEMPTS = 30


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``${NAME}`` placeholders as the nginx image's envsubst does — every one must be given."""
    missing = set(PLACEHOLDER.findall(template)) - set(values)
    assert not missing, f"no value for {sorted(missing)}"
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


# --- 1. static checks --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def with_defaults(value: str) -> str:
    """A compose value with its ``${VAR:-default}`` interpolations resolved as with no variable set."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", lambda match: match.group(1), value)


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(key): with_defaults(str(value)) for key, value in environment.items()}


def test_compose_has_the_whole_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"proxy", *NODES, "postgres", "redis", "migrate"}
    assert services["migrate"]["command"] == ["onecard", "db", "upgrade"]
    for name in NODES:
        node = services[name]
        assert node["command"][:2] == ["onecard", "serve"]
        depends = node["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy"
        assert environment_of(node)["ONECARD_TRUSTED_PROXY_COUNT"] == "1"
        assert environment_of(node)["ONECARD_ENV"] == "production"
        assert "ports" not in node, "nodes are reached through the proxy only"
    proxy = services["proxy"]
    assert all(proxy["depends_on"][name]["condition"] == "service_healthy" for name in NODES)
    assert environment_of(proxy)["PUBLIC_URL"] == environment_of(services["node-a"])["ONECARD_ISSUER"]


def test_nodes_check_readyz_and_run_as_non_root(compose: dict[str, Any]) -> None:
    dockerfile = DOCKERFILE.read_text()
    for name in NODES:
        node = compose["services"][name]
        assert "/readyz" in " ".join(node["healthcheck"]["test"])
        user = str(node["user"]).split(":")[0]
        assert user not in {"0", "root", ""} and int(user) > 0
        assert node["read_only"] is True and "ALL" in node["cap_drop"]
    for name in ("postgres", "redis"):
        assert compose["services"][name]["healthcheck"]["test"]
    # The image says the same on its own (docker run without compose).
    assert re.search(
        r"^FROM python:3\.11-slim AS build$", dockerfile.replace("${PYTHON_IMAGE}", "python:3.11-slim"), re.M
    )
    assert re.search(r"^USER 10001:10001$", dockerfile, re.M)
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "/readyz" in healthcheck and "urllib" in healthcheck and "curl" not in healthcheck
    assert re.search(r'^CMD \["onecard", "serve"', dockerfile, re.M)


def test_no_secret_is_a_plain_environment_variable(compose: dict[str, Any]) -> None:
    declared = set(compose["secrets"])
    for name, service in compose["services"].items():
        mounted = {
            secret if isinstance(secret, str) else secret["source"] for secret in service.get("secrets", [])
        }
        assert mounted <= declared, name
        for key, value in environment_of(service).items():
            if SECRET_NAME.search(key):
                assert key.endswith("_FILE"), f"{name}: {key} holds a secret; use {key}_FILE"
            # A URL with credentials (postgresql://user:password@...) belongs in the config file.
            assert not re.search(r"://[^/\s]*@", value), f"{name}: {key} carries credentials"
            assert key not in {"ONECARD_DATABASE_URL", "ONECARD_REDIS_URL", "ONECARD_PAIRWISE_SALT"}, name
            if value.startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in mounted, (
                    f"{name}: {key} names an unmounted secret"
                )
        command = " ".join(map(str, service.get("command") or []))
        assert not re.search(r"requirepass|password", command, re.I), f"{name}: a secret on the command line"
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("${ONECARD_SECRETS_DIR:-./dev}/")


def test_the_proxy_template_is_what_compose_renders(compose: dict[str, Any]) -> None:
    proxy = compose["services"]["proxy"]
    assert "./nginx/onecard.conf:/etc/nginx/templates/onecard.conf.template:ro" in proxy["volumes"]
    template = NGINX_TEMPLATE.read_text()
    assert set(PLACEHOLDER.findall(template)) == set(environment_of(proxy))
    rendered = render(template, environment_of(proxy))
    assert "${" not in rendered
    for header in ("X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $scheme"):
        assert f"proxy_set_header {header};" in rendered
    assert "server node-a:8000" in rendered and "server node-b:8000" in rendered


def test_dockerignore_keeps_local_state_out() -> None:
    rules = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*", "deny everything first, then allow what the wheel is built from"
    allowed = {line[1:].rstrip("/") for line in rules if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "setup.py",
        "README.md",
        "sdk",
        "idp",
        "wallet",
        "reader_bridge",
        "migrations",
        "demo",
    }
    # What the Dockerfile copies into the build stage is exactly what the context lets in.
    copied = {
        part.rstrip("/")
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for part in line.split()[1:-1]
    }
    assert copied == allowed


def test_the_dev_scripts_make_usable_certificates_and_secrets(tmp_path: Path) -> None:
    if not shutil.which("openssl"):
        service_unavailable("openssl is not installed (deploy/make-dev-certs.sh uses it)")
    out = tmp_path / "dev"
    subprocess.run(
        ["bash", str(DEPLOY / "make-dev-certs.sh"), str(out), "id.test"], check=True, capture_output=True
    )
    subprocess.run(["bash", str(DEPLOY / "make-dev-secrets.sh"), str(out)], check=True, capture_output=True)
    chain = x509.load_pem_x509_certificates((out / "tls.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    assert [cert.fingerprint(hashes.SHA256()) for cert in chain[1:]] == [ca.fingerprint(hashes.SHA256())]
    chain[0].verify_directly_issued_by(ca)
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"id.test", "localhost"}
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert not (out / "ca.key").exists() and not (out / "ca.srl").exists()
    config = tomllib.loads((out / "onecard.toml").read_text())
    assert set(config) == {"database_url", "redis_url", "pairwise_salt"}
    assert (out / "postgres-password").read_text().strip() in config["database_url"]
    kek = (out / "kek").read_text().strip()
    assert len(kek) == 43  # base64url of 32 bytes
    subprocess.run(["bash", str(DEPLOY / "make-dev-secrets.sh"), str(out)], check=True, capture_output=True)
    assert (out / "kek").read_text().strip() == kek, "a second run must never replace the KEK"
    assert oct((out).stat().st_mode & 0o777) == "0o700"


# --- 2. the topology without Docker: nginx + two gunicorn nodes + PostgreSQL + Redis ------------------------


@dataclass(frozen=True)
class Certificates:
    ca: Path
    chain: Path
    key: Path


def make_certificates(directory: Path) -> Certificates:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it (what make-dev-certs.sh makes)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OneCard test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    certificates = Certificates(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    certificates.ca.write_bytes(ca.public_bytes(pem))
    certificates.chain.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    certificates.key.write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    certificates.key.chmod(0o600)
    return certificates


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        service_unavailable(
            "nginx is not installed (apt-get install nginx; scripts/setup.sh installs it as root)"
        )
    return found


def stop(
    process: subprocess.Popen[bytes], *, how: signal.Signals = signal.SIGTERM, grace: float = 30
) -> None:
    if process.poll() is None:
        process.send_signal(how)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def wait_until(
    check: Any, *, what: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            pytest.fail(f"{what}: exited with {process.returncode}\n{tail(log)}", pytrace=False)
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not ready within {timeout:.0f} s\n{tail(log)}", pytrace=False)
        time.sleep(0.2)


class FromAddress(HTTPAdapter):
    """Connects from a chosen local address: two loopback addresses are two clients to the proxy."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_from(address: str, ca: Path) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between the test and nginx
    session.verify = str(ca)
    adapter = FromAddress(address)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@dataclass(frozen=True)
class Topology:
    issuer: str
    http_url: str
    nodes: tuple[str, str]  # host:port of each node, as nginx's upstream names them
    certificates: Certificates
    access_log: Path


@pytest.fixture
def database_of_its_own(postgres_admin_url: str) -> Iterator[str]:
    """An empty PostgreSQL database for this deployment alone (the migrate step runs on it)."""
    name = create_database_or_skip(postgres_admin_url)
    # The URL a node is given: plain postgresql:// (idp.db picks the psycopg driver), this database's name.
    parts = urlsplit("postgresql://" + postgres_admin_url.split("://", 1)[1])
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        drop_database(postgres_admin_url, name)


@pytest.fixture
def topology(database_of_its_own: str, redis_url: str, tmp_path: Path) -> Iterator[Topology]:
    nginx = nginx_binary()
    certificates = make_certificates(tmp_path)
    https_port, http_port, port_a, port_b = (free_port() for _ in range(4))
    issuer = f"https://127.0.0.1:{https_port}"
    prefix = random_redis_prefix()
    # The deployment's secrets as compose mounts them: the KEK and a TOML file with the URLs and the salt.
    kek_file = tmp_path / "kek"
    kek_file.write_text(secrets.token_urlsafe(32) + "\n")
    config_file = tmp_path / "onecard.toml"
    config_file.write_text(
        f'database_url = "{database_of_its_own}"\nredis_url = "{redis_url}"\n'
        f'redis_prefix = "{prefix}"\npairwise_salt = "{secrets.token_hex(16)}"\n'
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("ONECARD_")}
    env |= {
        "ONECARD_ENV": "production",
        "ONECARD_ISSUER": issuer,
        "ONECARD_CONFIG_FILE": str(config_file),
        "ONECARD_KEK_FILE": str(kek_file),
        "ONECARD_TRUSTED_PROXY_COUNT": "1",
        "ONECARD_KEY_TICK_INTERVAL": "300",
    }
    processes: list[subprocess.Popen[bytes]] = []
    nginx_process: subprocess.Popen[bytes] | None = None
    try:
        # The one-shot migrate service.
        migrated = subprocess.run(
            [str(ONECARD), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=180
        )
        assert migrated.returncode == 0, migrated.stderr
        # Both nodes start at once, as compose starts them: they race to create the first keys (under a lock).
        for name, port in zip(NODES, (port_a, port_b), strict=True):
            log = tmp_path / f"{name}.log"
            with log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [
                            str(ONECARD),
                            "serve",
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(port),
                            "--workers",
                            "1",
                            "--threads",
                            "4",
                        ],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=tmp_path,
                    )
                )
        for name, port, process in zip(NODES, (port_a, port_b), processes, strict=True):
            wait_until(
                lambda port=port: (
                    requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
                ),
                what=name,
                process=process,
                log=tmp_path / f"{name}.log",
            )
        # The proxy: the deploy template rendered for local ports, in a main configuration of the test's own.
        access_log = tmp_path / "access.log"
        values = {
            "NODE_A": f"127.0.0.1:{port_a}",
            "NODE_B": f"127.0.0.1:{port_b}",
            "HTTPS_LISTEN": f"127.0.0.1:{https_port}",
            "HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "PUBLIC_URL": issuer,
            "TLS_CERTIFICATE": str(certificates.chain),
            "TLS_CERTIFICATE_KEY": str(certificates.key),
            "ACCESS_LOG": str(access_log),
        }
        (tmp_path / "onecard.conf").write_text(render(NGINX_TEMPLATE.read_text(), values))
        temp = tmp_path / "nginx-temp"
        temp.mkdir()
        # As root, nginx's workers would switch to "nobody", who cannot read the test's private directory.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (tmp_path / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\n"
            f"error_log {tmp_path}/nginx-error.log warn;\nevents {{ worker_connections 256; }}\n"
            "http {\n"
            + "".join(
                f"    {kind}_temp_path {temp}/{kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + f"    include {tmp_path}/onecard.conf;\n}}\n"
        )
        command = [
            nginx,
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-e",
            str(tmp_path / "nginx-error.log"),
        ]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        nginx_log = tmp_path / "nginx-error.log"
        with (tmp_path / "nginx.out").open("wb") as out:
            nginx_process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        wait_until(
            lambda: requests.get(f"{issuer}/healthz", verify=str(certificates.ca), timeout=2).ok,
            what="nginx",
            process=nginx_process,
            log=nginx_log,
            timeout=30,
        )
        yield Topology(
            issuer,
            f"http://127.0.0.1:{http_port}",
            (values["NODE_A"], values["NODE_B"]),
            certificates,
            access_log,
        )
    finally:
        if nginx_process is not None:
            stop(nginx_process, how=signal.SIGQUIT, grace=10)  # SIGQUIT: nginx's graceful stop
        for process in processes:
            stop(process)
        client = redis.Redis.from_url(redis_url)
        delete_redis_keys(client, prefix)
        client.close()


def upstreams_that_served(access_log: Path, path: str) -> set[str]:
    found = set()
    for line in access_log.read_text().splitlines():
        match = re.search(r'"GET (\S+)" (\d+) .* upstream=(\S+)', line)
        if match and match.group(1) == path and match.group(2) == "200":
            found.add(match.group(3))
    return found


def test_the_topology_through_the_tls_proxy(topology: Topology) -> None:
    client = client_from("127.0.0.1", topology.certificates.ca)
    # /readyz through the proxy, from each node in turn (round robin), over TLS verified against the CA.
    for _ in range(4):
        ready = client.get(f"{topology.issuer}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
        assert all(check["ok"] for check in ready.json()["checks"].values())
        assert ready.headers["Strict-Transport-Security"] == HSTS
    assert upstreams_that_served(topology.access_log, "/readyz") == set(topology.nodes)
    # The request id nginx made reached the node, which answered with it: one id in both logs.
    request_id = ready.headers["X-Request-ID"]
    assert (
        re.fullmatch(r"[0-9a-f]{32}", request_id)
        and f"request_id={request_id}" in topology.access_log.read_text()
    )
    # URLs come from the https issuer, whatever the nodes' own plain-HTTP sockets are.
    discovery = client.get(f"{topology.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == topology.issuer
    assert discovery["jwks_uri"].startswith(topology.issuer + "/")
    assert client.get(discovery["jwks_uri"], timeout=10).json()["keys"]
    # Plain HTTP is only a redirect to the issuer, path and query kept.
    redirect = client.get(f"{topology.http_url}/readyz?probe=1", allow_redirects=False, timeout=10)
    assert redirect.status_code == 308 and redirect.headers["Location"] == f"{topology.issuer}/readyz?probe=1"
    # Nothing of the query reaches the proxy's log.
    assert "probe=1" not in topology.access_log.read_text()


def passkey_attempt(client: requests.Session, issuer: str, csrf: str, **headers: str) -> int:
    response = client.post(
        f"{issuer}/wallet/api/passkeys/authentication-options",
        json={},
        headers={"X-CSRF-Token": csrf, **headers},
        timeout=10,
    )
    return response.status_code


def test_rate_limits_key_on_the_address_the_proxy_forwarded(topology: Topology) -> None:
    # Two clients, as the proxy sees them: 127.0.0.2 and 127.0.0.3. The nodes see only the proxy's socket
    # (127.0.0.1); the address they count is the one nginx appended to X-Forwarded-For.
    first = client_from("127.0.0.2", topology.certificates.ca)
    csrf = csrf_of(first.get(f"{topology.issuer}/wallet/signin", timeout=10).text)
    statuses = [passkey_attempt(first, topology.issuer, csrf) for _ in range(PASSKEY_ATTEMPTS)]
    assert statuses == [200] * PASSKEY_ATTEMPTS  # served by both nodes, counted once in Redis
    assert passkey_attempt(first, topology.issuer, csrf) == 429
    # A made-up X-Forwarded-For from the client goes in front of what nginx appends, and is not believed.
    assert passkey_attempt(first, topology.issuer, csrf, **{"X-Forwarded-For": "198.51.100.23"}) == 429
    second = client_from("127.0.0.3", topology.certificates.ca)
    csrf = csrf_of(second.get(f"{topology.issuer}/wallet/signin", timeout=10).text)
    assert passkey_attempt(second, topology.issuer, csrf) == 200
    log = topology.access_log.read_text()
    assert "127.0.0.2 [" in log and "127.0.0.3 [" in log


# --- 3. with a Docker engine: docker compose up ---------------------------------------------------------


def docker_or_skip() -> None:
    reason = (
        "no Docker engine here (`docker info` fails): the compose topology cannot be built or started. "
        "Allowed under CI=true as well — CI runs on this same machine kind, which has the docker client but "
        "no engine; the same topology runs without Docker in test_the_topology_through_the_tls_proxy"
    )
    if shutil.which("docker") is None:
        pytest.skip(reason)
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.skip(reason)
    if info.returncode != 0:
        pytest.skip(reason)
    if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode != 0:
        service_unavailable("a Docker engine but no `docker compose` plugin")


def test_docker_compose_up_serves_readyz_through_the_proxy(tmp_path: Path) -> None:
    docker_or_skip()
    secrets_dir = tmp_path / "dev"
    subprocess.run(
        ["bash", str(DEPLOY / "make-dev-certs.sh"), str(secrets_dir)], check=True, capture_output=True
    )
    subprocess.run(
        ["bash", str(DEPLOY / "make-dev-secrets.sh"), str(secrets_dir)], check=True, capture_output=True
    )
    https_port, http_port = free_port(), free_port()
    issuer = f"https://localhost:{https_port}"
    env = os.environ | {
        "ONECARD_SECRETS_DIR": str(secrets_dir),
        "ONECARD_ISSUER": issuer,
        "ONECARD_HTTPS_PORT": str(https_port),
        "ONECARD_HTTP_PORT": str(http_port),
    }
    project = ["docker", "compose", "-f", str(COMPOSE), "-p", f"onecard-test-{secrets.token_hex(4)}"]
    try:
        up = subprocess.run(
            [*project, "up", "--build", "--detach", "--wait", "--wait-timeout", "600"],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert up.returncode == 0, up.stderr[-4000:]
        client = client_from("127.0.0.1", secrets_dir / "ca.crt")
        for _ in range(4):
            ready = client.get(f"{issuer}/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
            assert ready.headers["Strict-Transport-Security"] == HSTS
        assert client.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()["issuer"] == issuer
        states = subprocess.run(
            [*project, "ps", "--format", "json"], env=env, capture_output=True, text=True, check=True
        )
        rows = [json.loads(line) for line in states.stdout.splitlines() if line.strip()]
        rows = rows[0] if len(rows) == 1 and isinstance(rows[0], list) else rows  # older compose: one array
        health = {row["Service"]: row.get("Health", "") for row in rows}
        assert health["node-a"] == health["node-b"] == "healthy", health
        logs = subprocess.run(
            [*project, "logs", "--no-color", "proxy"], env=env, capture_output=True, text=True, check=True
        )
        served = {m.group(1) for m in re.finditer(r'"GET /readyz" 200 .* upstream=(\S+)', logs.stdout)}
        assert len(served) == 2, f"/readyz through the proxy came from {served}, not from both nodes"
    finally:
        subprocess.run(
            [*project, "down", "--volumes", "--timeout", "30"], env=env, capture_output=True, timeout=600
        )
