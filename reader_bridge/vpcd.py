"""The emulator's client to the vsmartcard ``vpcd`` driver of pcscd (CARD_PROFILE.md "The virtual reader").

Frames are a 2-byte big-endian length and a payload. A 1-byte payload is a control: 00 power off, 01 power
on, 02 reset, 04 get ATR (the only one answered); a longer payload is a command APDU answered with the
response APDU. Tests and demos only: vpcd listens on every interface, never run it on a citizen's machine.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from typing import Final

from reader_bridge.emulator import CardEmulator

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 35963  # "Virtual PCD 00 00"; 35964 is "Virtual PCD 00 01"
CTRL_POWER_OFF: Final = 0x00
CTRL_POWER_ON: Final = 0x01
CTRL_RESET: Final = 0x02
CTRL_GET_ATR: Final = 0x04


class VpcdClient:
    """Connects ``emulator`` to vpcd; ``start()`` runs it in a thread, ``stop()`` removes the card.

    While running it reconnects when pcscd goes away and comes back, so a restarted pcscd sees the card
    again. Closing the connection is, to pcscd, the card being pulled out.
    """

    def __init__(
        self,
        emulator: CardEmulator,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        reconnect_delay: float = 0.2,
    ) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self.reconnect_delay = reconnect_delay
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> threading.Event:
        return self._connected

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=f"vpcd-{self.port}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            if self._sock is not None:
                # shutdown() wakes the thread blocked in recv(); close() alone would not.
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            self._thread = None

    def run(self) -> None:
        """Serve until ``stop()``; reconnect after pcscd restarts."""
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
            except OSError:
                self._stop.wait(self.reconnect_delay)
                continue
            with self._lock:
                self._sock = sock
            if self._stop.is_set():
                sock.close()
                break
            try:
                self._serve(sock)
            except OSError as exc:
                log.info("vpcd connection lost: %s", exc)
            finally:
                self._connected.clear()
                with self._lock:
                    self._sock = None
                sock.close()
                self.emulator.power_off()
            self._stop.wait(self.reconnect_delay)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        # Without these each APDU waits for a delayed ACK (~40 ms): NODELAY once, QUICKACK is reset by the
        # kernel after use, so it is re-armed before every receive.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connected.set()
        while not self._stop.is_set():
            payload = self._receive(sock)
            if payload is None:
                return
            reply = self._handle(payload)
            if reply is not None:
                sock.sendall(struct.pack(">H", len(reply)) + reply)

    def _handle(self, payload: bytes) -> bytes | None:
        if len(payload) == 1:
            control = payload[0]
            if control == CTRL_GET_ATR:
                return self.emulator.atr
            if control == CTRL_POWER_OFF:
                self.emulator.power_off()
            elif control in (CTRL_POWER_ON, CTRL_RESET):
                self.emulator.power_on()
            return None
        return self.emulator.process(payload)

    @staticmethod
    def _quickack(sock: socket.socket) -> None:
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is not None:
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)

    def _receive(self, sock: socket.socket) -> bytes | None:
        header = self._read_exact(sock, 2)
        if header is None:
            return None
        (length,) = struct.unpack(">H", header)
        return self._read_exact(sock, length)

    def _read_exact(self, sock: socket.socket, size: int) -> bytes | None:
        buffer = b""
        while len(buffer) < size:
            self._quickack(sock)
            chunk = sock.recv(size - len(buffer))
            if not chunk:
                return None
            buffer += chunk
        return buffer
