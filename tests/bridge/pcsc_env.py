"""A real PC/SC stack for tests and the benchmark: pcscd + vsmartcard vpcd + the card emulator
(CARD_PROFILE.md "The virtual reader"; DESIGN.md §9).

Only one pcscd can run. If one is already running (another test run, another engineer), it is reused and
left alone; otherwise this starts ``pcscd --foreground`` itself and stops it by PID, waiting for the process
to end. Determinism with a shared pcscd: the emulator takes a vpcd slot whose reader is empty, and every
test pins the bridge to that reader by name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reader_bridge.emulator import CardEmulator
from reader_bridge.vpcd import VpcdClient

SOCKET = Path("/run/pcscd/pcscd.comm")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
SLOTS = (("Virtual PCD 00 00", 35963), ("Virtual PCD 00 01", 35964))


class PcscUnavailable(Exception):
    """Why the real PC/SC stack cannot be used here (the tests skip with this message)."""


def _pcscd_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # A zombie (exited, not yet reaped by its parent) serves nobody.
                stat = (entry / "stat").read_text()
                name, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
                if name == "pcscd" and state != "Z":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _virtual_readers() -> list[str]:
    from reader_bridge.transport import PcscTerminal

    return [reader.name for reader in PcscTerminal(dev_mode=True).readers() if "Virtual PCD" in reader.name]


def _wait_ready(deadline: float) -> None:
    from reader_bridge.errors import BridgeError

    last = "pcscd socket never appeared"
    while time.monotonic() < deadline:
        if SOCKET.exists():
            try:
                if _virtual_readers():
                    return
                last = "pcscd runs without the vpcd readers"
            except BridgeError as exc:
                last = str(exc)
        time.sleep(0.05)
    raise PcscUnavailable(last)


@dataclass
class Pcscd:
    process: subprocess.Popen[bytes] | None  # None: somebody else's pcscd, not ours to stop

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        self.process = None


def start_pcscd(log_path: Path | None = None, timeout: float = 10.0) -> Pcscd:
    """Reuse a running pcscd or start one in the foreground, without ``--auto-exit`` (idle gaps)."""
    binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
    try:
        import smartcard  # noqa: F401
    except ImportError as exc:
        raise PcscUnavailable("pyscard is not installed") from exc
    if not os.path.exists(binary) or not VPCD_DRIVER.exists():
        raise PcscUnavailable("pcscd or the vsmartcard vpcd driver is not installed")
    deadline = time.monotonic() + timeout
    others = _pcscd_pids()
    if others:
        try:
            _wait_ready(deadline)
            return Pcscd(None)
        except PcscUnavailable:
            # A pcscd that was on its way out (a previous run stopping it) is no pcscd to reuse: once it
            # has gone, start our own; one that is still alive without the readers is a real failure.
            if set(others) & set(_pcscd_pids()):
                raise
            deadline = time.monotonic() + timeout
    log = open(log_path or os.devnull, "wb")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen([binary, "--foreground", "--error"], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                # Lost a race with another pcscd starting at the same moment: use that one.
                if _pcscd_pids():
                    _wait_ready(deadline)
                    return Pcscd(None)
                raise PcscUnavailable(f"pcscd exited with {process.returncode}")
            if SOCKET.exists():
                _wait_ready(deadline)
                return Pcscd(process)
            time.sleep(0.05)
        raise PcscUnavailable("pcscd did not start in time")
    except BaseException:
        Pcscd(process).stop()
        raise


def free_slot() -> tuple[str, int]:
    """A vpcd reader with no card in it, so a concurrent run's emulator never meets ours."""
    from reader_bridge.transport import PcscTerminal

    present = {reader.name: reader.card_present for reader in PcscTerminal(dev_mode=True).readers()}
    for name, port in SLOTS:
        if present.get(name) is False:
            return name, port
    raise PcscUnavailable("both vpcd readers are in use")


def wait_card(reader: str, present: bool, timeout: float = 5.0) -> None:
    from reader_bridge.transport import PcscTerminal

    terminal = PcscTerminal(dev_mode=True, reader_names=[reader])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = terminal.readers()
        if states and states[0].card_present == present:
            return
        terminal.wait_for_change(0.1)
    raise TimeoutError(f"card in {reader!r} never became {'present' if present else 'absent'}")


@contextmanager
def inserted(emulator: CardEmulator, reader: str, port: int) -> Iterator[VpcdClient]:
    """The emulator connected to vpcd ``port``, i.e. a card inserted in ``reader``; removed on exit."""
    client = VpcdClient(emulator, port=port)
    client.start()
    try:
        wait_card(reader, True)
        yield client
    finally:
        client.stop()
        wait_card(reader, False)
