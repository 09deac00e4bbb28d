"""openid-client (npm, panva's OpenID Certified relying party library) as a test peer: one Node process per
test running tests/node/openid_client_driver.mjs, spoken to in JSON lines, started by the test and stopped by
its PID. The packages come from tests/node/package-lock.json (scripts/setup.sh runs ``npm ci``); nothing is
downloaded here.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.fixtures.services import service_unavailable

NODE_PACKAGE = Path(__file__).resolve().parents[1] / "node"
DRIVER = NODE_PACKAGE / "openid_client_driver.mjs"
REPLY_TIMEOUT = 30.0


class OpenIdClientError(AssertionError):
    """A command the library (or the server through it) refused; ``error`` is the driver's description:
    name, code, message, and the server's OAuth ``error`` / ``error_description`` / ``status`` if any."""

    def __init__(self, op: str, error: dict[str, Any]) -> None:
        super().__init__(f"openid-client {op}: {json.dumps(error, ensure_ascii=False)}")
        self.error = error


class OpenIdClient:
    """The running driver. ``call`` sends one command and returns its result, or raises OpenIdClientError."""

    def __init__(self, node: str, stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.process = subprocess.Popen(
            [node, str(DRIVER)],
            cwd=NODE_PACKAGE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,  # its own process group: stopping it cannot touch the test run
        )
        self._replies: queue.Queue[bytes] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: IO[bytes]) -> None:
        with stdout:
            for line in stdout:
                self._replies.put(line)
        self._replies.put(b"")  # end of output: the process has gone

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        reply = self.try_call(op, **args)
        if not reply["ok"]:
            raise OpenIdClientError(op, reply["error"])
        return reply

    def refused(self, op: str, **args: Any) -> dict[str, Any]:
        """Run a command that must fail; returns the error description."""
        reply = self.try_call(op, **args)
        assert not reply["ok"], f"openid-client {op} succeeded: {sorted(reply)}"
        error: dict[str, Any] = reply["error"]
        return error

    def try_call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
        self.process.stdin.flush()
        try:
            line = self._replies.get(timeout=REPLY_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"openid-client gave no answer to {op}: {self._stderr_text()}") from None
        if not line:
            raise AssertionError(f"openid-client exited ({self.process.poll()}): {self._stderr_text()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _stderr_text(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the driver ends when its input does
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._reader.join(5)
        self._stderr.close()


@pytest.fixture(scope="session")
def node_executable() -> str:
    """Node and the locked openid-client package; missing either skips, or fails under CI=true."""
    node = shutil.which("node")
    if node is None:
        service_unavailable("node is not installed")
    if not (NODE_PACKAGE / "node_modules" / "openid-client" / "package.json").is_file():
        service_unavailable(f"openid-client is not installed in {NODE_PACKAGE} (run scripts/setup.sh)")
    return node


@pytest.fixture
def openid_client(node_executable: str, tmp_path: Path) -> Iterator[OpenIdClient]:
    """A fresh openid-client driver for this test, stopped (by its PID) after it."""
    driver = OpenIdClient(node_executable, tmp_path / "openid-client.stderr")
    try:
        yield driver
    finally:
        driver.stop()
