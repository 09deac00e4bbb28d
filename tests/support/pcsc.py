"""The real PC/SC stack for the tests marked ``pcsc``: one pcscd (with the vsmartcard virtual readers) for
the whole run, started here and stopped by PID at the end (or someone else's, reused and left alone), and a
free virtual reader slot per test for the card emulator to connect to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bridge.pcsc_env import PcscUnavailable, free_slot, start_pcscd
from tests.fixtures.services import service_unavailable


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    try:
        daemon = start_pcscd(tmp_path_factory.mktemp("pcscd") / "pcscd.log")
    except PcscUnavailable as exc:
        service_unavailable(f"real PC/SC stack unavailable: {exc}")
    try:
        yield
    finally:
        daemon.stop()  # by PID, and only if this fixture started it


@pytest.fixture
def slot(pcscd: None) -> tuple[str, int]:
    try:
        return free_slot()
    except PcscUnavailable as exc:
        service_unavailable(str(exc))
