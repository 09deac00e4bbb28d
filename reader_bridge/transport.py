"""PC/SC through pyscard: the one module of the bridge that imports ``smartcard`` (STYLE.md "Wrap the
awkward dependency once"; DESIGN.md §4 "Bridge local API").

It lists readers, waits for reader and card events, takes a card exclusively for one operation
(``SCARD_SHARE_EXCLUSIVE``), resets it before the first command and again afterwards (``SCARD_RESET_CARD``)
so no PIN state from before reaches the operation and none outlives it (CARD_PROFILE "Card and reader
basics"). Virtual readers and development cards are refused unless the bridge runs in development mode.
PIN-pad readers are found with PC/SC part 10 GET_FEATURE_REQUEST and used through
FEATURE_VERIFY_PIN_DIRECT.

pyscard's result codes are translated to bridge errors through one table; nothing CamelCase leaves here.
Each public call opens its own PC/SC context, because a pcsc-lite context must not be shared between
threads and the local API serves requests on several.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from smartcard import scard

from reader_bridge.apdu import Protocol
from reader_bridge.channel import PinPad, ReaderState, is_virtual, iter_tlv_features
from reader_bridge.errors import (
    BridgeError,
    CardRemovedError,
    NoCardError,
    NoReaderError,
    PcscUnavailableError,
    PinPadUnavailableError,
    ReaderBusyError,
    VirtualReaderRefusedError,
)

log = logging.getLogger(__name__)

PNP_NOTIFICATION: Final = "\\\\?PnP?\\Notification"
FEATURE_VERIFY_PIN_DIRECT: Final = 0x06  # PC/SC part 10 §2.3
CM_IOCTL_GET_FEATURE_REQUEST: Final = scard.SCARD_CTL_CODE(3400)

# Result codes → bridge errors. Codes not listed become a generic BridgeError with the code in the detail.
_ERRORS: Final[Mapping[int, type[BridgeError]]] = {
    scard.SCARD_E_NO_SERVICE: PcscUnavailableError,
    scard.SCARD_E_SERVICE_STOPPED: PcscUnavailableError,
    scard.SCARD_E_NO_READERS_AVAILABLE: NoReaderError,
    scard.SCARD_E_UNKNOWN_READER: NoReaderError,
    scard.SCARD_E_NO_SMARTCARD: NoCardError,
    scard.SCARD_E_SHARING_VIOLATION: ReaderBusyError,
    # During an operation, all of these mean the card (or the virtual card's connection) went away.
    scard.SCARD_W_REMOVED_CARD: CardRemovedError,
    scard.SCARD_W_RESET_CARD: CardRemovedError,
    scard.SCARD_W_UNPOWERED_CARD: CardRemovedError,
    scard.SCARD_W_UNRESPONSIVE_CARD: CardRemovedError,
    scard.SCARD_E_NOT_TRANSACTED: CardRemovedError,
    scard.SCARD_E_READER_UNAVAILABLE: CardRemovedError,
    scard.SCARD_F_COMM_ERROR: CardRemovedError,
    scard.SCARD_E_INVALID_HANDLE: CardRemovedError,
}
# While transmitting, "no card" and "unknown reader" also mean the card was pulled mid-operation.
_TRANSMIT_OVERRIDES: Final[Mapping[int, type[BridgeError]]] = {
    scard.SCARD_E_NO_SMARTCARD: CardRemovedError,
    scard.SCARD_E_UNKNOWN_READER: CardRemovedError,
}


def _error(hresult: int, action: str, table: Mapping[int, type[BridgeError]] = _ERRORS) -> BridgeError:
    cls = table.get(hresult) or _ERRORS.get(hresult, BridgeError)
    return cls(f"{action}: {scard.SCardGetErrorMessage(hresult)} (0x{hresult & 0xFFFFFFFF:08X})")


def _check(result: Any, action: str) -> Any:
    """pyscard returns (hresult, values...) tuples or a bare hresult; raise on failure, return the rest."""
    hresult = result[0] if isinstance(result, tuple | list) else result
    if hresult != scard.SCARD_S_SUCCESS:
        raise _error(hresult, action)
    return result


@contextmanager
def _context() -> Iterator[Any]:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise PcscUnavailableError(f"SCardEstablishContext: 0x{hresult & 0xFFFFFFFF:08X}")
    try:
        yield context
    finally:
        scard.SCardReleaseContext(context)


def _list_readers(context: Any) -> list[str]:
    hresult, names = scard.SCardListReaders(context, [])
    if hresult in (scard.SCARD_E_NO_READERS_AVAILABLE, scard.SCARD_E_READER_UNAVAILABLE):
        return []
    _check(hresult, "SCardListReaders")
    return [str(name) for name in names]


class PcscPinPad:
    """A reader's secure PIN entry: the PIN goes from the reader's keys to the card, never to the host."""

    def __init__(self, card: Any, verify_ioctl: int) -> None:
        self._card = card
        self._verify_ioctl = verify_ioctl

    def verify_pin(self, command_template: bytes, *, timeout_s: int) -> bytes:
        from reader_bridge.pin import build_verify_pin_structure

        structure = build_verify_pin_structure(command_template, timeout_s=timeout_s)
        hresult, response = scard.SCardControl(self._card, self._verify_ioctl, list(structure))
        if hresult != scard.SCARD_S_SUCCESS:
            raise _error(hresult, "secure PIN verification", _TRANSMIT_OVERRIDES)
        return bytes(response)


class PcscSession:
    """One exclusively connected card (``CardSession``)."""

    def __init__(self, card: Any, reader: str, atr: bytes, protocol: int) -> None:
        self._card = card
        self._reader = reader
        self._atr = atr
        self._pci = protocol
        self._protocol: Protocol = "T=0" if protocol == scard.SCARD_PROTOCOL_T0 else "T=1"

    @property
    def protocol(self) -> Protocol:
        return self._protocol

    @property
    def reader(self) -> str:
        return self._reader

    @property
    def atr(self) -> bytes:
        return self._atr

    def transmit(self, apdu: bytes) -> bytes:
        hresult, response = scard.SCardTransmit(self._card, self._pci, list(apdu))
        if hresult != scard.SCARD_S_SUCCESS:
            raise _error(hresult, "SCardTransmit", _TRANSMIT_OVERRIDES)
        return bytes(response)

    def features(self) -> dict[int, int]:
        """PC/SC part 10 features of the reader: tag → control code; empty if the reader has none."""
        hresult, response = scard.SCardControl(self._card, CM_IOCTL_GET_FEATURE_REQUEST, [])
        if hresult != scard.SCARD_S_SUCCESS:
            return {}
        return dict(iter_tlv_features(bytes(response)))

    def pinpad(self) -> PinPad | None:
        ioctl = self.features().get(FEATURE_VERIFY_PIN_DIRECT)
        return PcscPinPad(self._card, ioctl) if ioctl is not None else None

    def require_pinpad(self) -> PinPad:
        pinpad = self.pinpad()
        if pinpad is None:
            raise PinPadUnavailableError(f"{self._reader} has no FEATURE_VERIFY_PIN_DIRECT")
        return pinpad


class PcscTerminal:
    """The PC/SC readers of this machine (``Terminal``).

    ``dev_mode`` admits virtual readers and development cards. ``reader_names``, if given, restricts the
    bridge to those readers (a kiosk pins its reader; tests pin theirs).
    """

    def __init__(self, *, dev_mode: bool = False, reader_names: Sequence[str] | None = None) -> None:
        self.dev_mode = dev_mode
        self.reader_names = tuple(reader_names) if reader_names is not None else None

    def _wanted(self, names: Sequence[str]) -> list[str]:
        if self.reader_names is None:
            return list(names)
        return [name for name in names if name in self.reader_names]

    @staticmethod
    def _states(context: Any, names: Sequence[str]) -> list[tuple[str, int, bytes]]:
        if not names:
            return []
        hresult, states = scard.SCardGetStatusChange(
            context, 0, [(name, scard.SCARD_STATE_UNAWARE) for name in names]
        )
        if hresult in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE):
            return []  # a reader went away between listing and asking: treat as absent
        _check(hresult, "SCardGetStatusChange")
        return [(str(name), int(state), bytes(atr)) for name, state, atr in states]

    def readers(self) -> list[ReaderState]:
        with _context() as context:
            states = self._states(context, self._wanted(_list_readers(context)))
        result = []
        for name, state, atr in states:
            present = bool(state & scard.SCARD_STATE_PRESENT) and not state & scard.SCARD_STATE_MUTE
            result.append(ReaderState(name, present, atr if present else b"", is_virtual(name, atr)))
        return result

    def wait_for_change(self, timeout: float) -> None:
        with _context() as context:
            names = self._wanted(_list_readers(context))
            current = [
                (name, state & ~scard.SCARD_STATE_CHANGED) for name, state, _ in self._states(context, names)
            ]
            # pcsc-lite's PnP pseudo-reader reports reader arrivals; its state carries the reader count.
            watch = [*current, (PNP_NOTIFICATION, len(_list_readers(context)) << 16)]
            hresult, _ = scard.SCardGetStatusChange(context, max(0, int(timeout * 1000)), watch)
            if hresult not in (
                scard.SCARD_S_SUCCESS,
                scard.SCARD_E_TIMEOUT,
                scard.SCARD_E_UNKNOWN_READER,
                scard.SCARD_E_READER_UNAVAILABLE,
            ):
                raise _error(hresult, "SCardGetStatusChange")

    @contextmanager
    def connect(self, reader: str) -> Iterator[PcscSession]:
        with _context() as context:
            states = self._states(context, self._wanted([reader]))
            if not states:
                raise NoReaderError(f"reader {reader!r} not available")
            _, state, atr = states[0]
            if not state & scard.SCARD_STATE_PRESENT:
                raise NoCardError(f"no card in {reader!r}")
            if is_virtual(reader, atr) and not self.dev_mode:
                # Checked before connecting: a refused card is not even powered for us.
                raise VirtualReaderRefusedError(f"{reader!r} is a virtual reader or development card")
            hresult, card, protocol = scard.SCardConnect(
                context,
                reader,
                scard.SCARD_SHARE_EXCLUSIVE,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            )
            if hresult != scard.SCARD_S_SUCCESS:
                raise _error(hresult, "SCardConnect")
            try:
                # Connecting does not reset a powered card: whatever another program left verified on it
                # would still be. A warm reset now starts the operation from a card that knows nothing.
                hresult, protocol = scard.SCardReconnect(
                    card,
                    scard.SCARD_SHARE_EXCLUSIVE,
                    scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
                    scard.SCARD_RESET_CARD,
                )
                if hresult != scard.SCARD_S_SUCCESS:
                    raise _error(hresult, "SCardReconnect")
                hresult, _name, _state, _protocol, atr_list = scard.SCardStatus(card)
                atr = bytes(atr_list) if hresult == scard.SCARD_S_SUCCESS else atr
                if is_virtual(reader, atr) and not self.dev_mode:
                    raise VirtualReaderRefusedError(f"{reader!r} holds a development card")
                yield PcscSession(card, reader, atr, int(protocol))
            finally:
                # Reset so the card forgets the verified PIN the moment the operation ends.
                hresult = scard.SCardDisconnect(card, scard.SCARD_RESET_CARD)
                if hresult != scard.SCARD_S_SUCCESS:
                    log.debug("SCardDisconnect: 0x%08X", hresult & 0xFFFFFFFF)


def open_terminal(*, dev_mode: bool, reader_names: Sequence[str] | None = None) -> PcscTerminal:
    return PcscTerminal(dev_mode=dev_mode, reader_names=reader_names)
