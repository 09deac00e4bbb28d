"""Fixtures of the bridge tests: a test CA, virtual cards, and (for ``pcsc`` tests) pcscd + vpcd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk.card_file import VirtualCardFile, save_card_file
from tests.bridge.pki import TestCA, make_ca, make_card


@pytest.fixture(scope="session")
def ca() -> TestCA:
    return make_ca()


@pytest.fixture
def card(ca: TestCA) -> VirtualCardFile:
    return make_card(ca)


@pytest.fixture
def card_path(card: VirtualCardFile, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "card.json"
    save_card_file(path, card)
    yield path
