"""The in-process virtual terminal: the card emulator without pcscd (DESIGN.md §4; demos and tests).

It implements the same ``Terminal`` / ``CardSession`` interface as ``reader_bridge.transport`` so the card
protocol, the operations and the local API run unchanged. It is a virtual reader: the bridge admits it only
in development mode.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from reader_bridge.apdu import Protocol
from reader_bridge.channel import PinPad, ReaderState
from reader_bridge.emulator import CardEmulator
from reader_bridge.errors import CardRemovedError, NoCardError, NoReaderError, VirtualReaderRefusedError

VIRTUAL_READER_NAME = "OneCard Virtual PCD (in-process)"


class VirtualSession:
    def __init__(self, terminal: VirtualTerminal, emulator: CardEmulator) -> None:
        self._terminal = terminal
        self._emulator = emulator

    @property
    def protocol(self) -> Protocol:
        return self._emulator.protocol

    @property
    def reader(self) -> str:
        return VIRTUAL_READER_NAME

    @property
    def atr(self) -> bytes:
        return self._emulator.atr

    def transmit(self, apdu: bytes) -> bytes:
        if self._terminal.emulator is not self._emulator:
            raise CardRemovedError("virtual card removed")
        return self._emulator.process(apdu)

    def pinpad(self) -> PinPad | None:
        return None


class VirtualTerminal:
    """One virtual reader holding ``emulator`` (or no card after ``remove()``)."""

    def __init__(self, emulator: CardEmulator | None, *, dev_mode: bool = True) -> None:
        self.emulator = emulator
        self.dev_mode = dev_mode
        self._changed = threading.Condition()
        self.reader_attached = True

    def insert(self, emulator: CardEmulator) -> None:
        with self._changed:
            self.emulator = emulator
            self._changed.notify_all()

    def remove(self) -> None:
        with self._changed:
            if self.emulator is not None:
                self.emulator.power_off()
            self.emulator = None
            self._changed.notify_all()

    def readers(self) -> list[ReaderState]:
        if not self.reader_attached:
            return []
        emulator = self.emulator
        atr = emulator.atr if emulator is not None else b""
        return [ReaderState(VIRTUAL_READER_NAME, emulator is not None, atr, True)]

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    @contextmanager
    def connect(self, reader: str) -> Iterator[VirtualSession]:
        if reader != VIRTUAL_READER_NAME or not self.reader_attached:
            raise NoReaderError(f"no reader {reader!r}")
        if not self.dev_mode:
            raise VirtualReaderRefusedError("the in-process virtual card needs development mode")
        emulator = self.emulator
        if emulator is None:
            raise NoCardError("no virtual card inserted")
        emulator.power_on()
        try:
            yield VirtualSession(self, emulator)
        finally:
            emulator.reset()  # like SCARD_RESET_CARD: the PIN state ends with the operation
