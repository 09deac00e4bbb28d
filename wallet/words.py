"""Words for the codes the wallet's pages show people: venue categories, and why a gate refused a code
(``sdk.qr_token.QrTokenReason``), in plain language instead of wire names ("replayed"). English here, the
catalogues' msgids; ``idp.i18n.translate`` gives the reader's language."""

from __future__ import annotations

from typing import Final

from idp.i18n import translate

CATEGORY_WORDS: Final[dict[str, str]] = {
    "park": "park",
    "museum": "museum",
    "library": "library",
    "sports": "sports venue",
    "transit": "public transport",
    "hospital": "hospital",
    "tourism": "tourist site",
    "culture": "culture venue",
    "government": "government office",
    "other": "other place",
}
SCAN_REASON_WORDS: Final[dict[str, str]] = {
    "": "the code was not accepted",
    "malformed": "the code could not be read",
    "bad_signature": "the code was not made by your wallet",
    "unknown_key": "the gate did not know this code yet",
    "expired": "the code was too old (a code works for 60 seconds)",
    "not_yet_valid": "the phone's clock is wrong",
    "replayed": "this code had been used already (each code works only once)",
    "revoked": "your electronic card was suspended",
    "wrong_issuer": "the code is from a region this place does not accept",
    "revocation_list_stale": "the gate's list of suspended cards was out of date",
}


def category_word(category: str) -> str:
    return translate(CATEGORY_WORDS.get(category, category))


def scan_reason_word(reason: str | None) -> str:
    return translate(SCAN_REASON_WORDS.get(reason or "", SCAN_REASON_WORDS[""]))
