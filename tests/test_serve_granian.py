"""``onecard serve`` for real under its default server, granian (idp.serve_cli): two workers serve the lean
path and Flask, the master's metrics listener adds up both workers' metrics, the request log goes to
stderr, and SIGTERM to the command's PID stops it, removing the metrics directory it made."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise AssertionError(f"onecard serve exited: {log.read_text()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"onecard serve did not answer: {log.read_text()}")


def test_onecard_serve_under_granian(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ONECARD_")},
        "ONECARD_ENV": "test",
        "ONECARD_ISSUER": base,
        "ONECARD_DATABASE_URL": f"sqlite:///{tmp_path}/serve.sqlite3",
        "ONECARD_METRICS_BIND": f"127.0.0.1:{metrics_port}",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    temporary = tmp_path / "tmp"  # where the command makes its metrics directory
    temporary.mkdir()
    env["TMPDIR"] = str(temporary)
    log = tmp_path / "serve.log"
    command = [sys.executable, "-c", "from idp.cli import main; main()", "serve", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--workers", "2", "--threads", "2"], env=env, stdout=out, stderr=out, cwd=tmp_path
        )
    try:
        _wait(f"{base}/readyz", process, log)
        for _ in range(20):  # both workers answer some of these
            assert requests.get(f"{base}/.well-known/openid-configuration", timeout=5).status_code == 200
            assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        scraped = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        counted = re.search(
            r'onecard_http_requests_total\{endpoint="oidc.discovery",method="GET",status="200"\} (\S+)',
            scraped,
        )
        assert counted is not None and float(counted.group(1)) >= 20, scraped
        assert [p.name for p in temporary.iterdir() if p.name.startswith("onecard-metrics-")]
        assert "granian worker(s)" in log.read_text()
        assert '"endpoint":"oidc.discovery"' in log.read_text()  # the request log, from the lean path
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert process.returncode == 0, log.read_text()
    # The multiprocess directory went with the server.
    assert not [p.name for p in temporary.iterdir() if p.name.startswith("onecard-metrics-")]
