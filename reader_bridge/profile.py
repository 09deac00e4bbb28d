"""Identifiers of CARD_PROFILE.md shared by the bridge and the emulator: AIDs, file ids, limits."""

from __future__ import annotations

from typing import Final

SSSE_AID: Final = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")  # "sx1.sh.社会保障" in GBK
ACSE_AID: Final = bytes.fromhex("D15600000541435345")  # issuer RID D156000005 ‖ "ACSE"
EF05: Final = 0xEF05  # card and issuer data
EF06: Final = 0xEF06  # cardholder data
C001: Final = 0xC001  # cardholder certificate (DER) in ACSE
MAX_BINARY_CHUNK: Final = 0xE0  # READ BINARY answers at most this much
PIN_TRIES: Final = 3
EF05_CARD_ID: Final = 0x01
EF05_VERSION: Final = 0x03
EF05_EXPIRY: Final = 0x06
