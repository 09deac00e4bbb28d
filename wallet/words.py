"""Words for the codes the wallet's pages show people: venue categories, why a gate refused a code
(``sdk.qr_token.QrTokenReason``), what the card does at a place and what a place learns (the application
catalogue), in plain language instead of wire names ("replayed"). English here, the catalogues' msgids;
``idp.i18n.translate`` gives the reader's language.

The keys are the vocabularies themselves: the catalogue's categories are this module's categories (the
venues' own, ``wallet.venues.service.VENUE_CATEGORIES``), its capabilities and learned facts these keys. So
this leaf module is what both the venue register and the catalogue stand on."""

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
# What the social security card or the e-card does at a place listed in the catalogue.
CAPABILITY_WORDS: Final[dict[str, str]] = {
    "login": "log in to online services",
    "gate_entry": "enter through the gate with the e-card code",
    "borrowing": "borrow books",
    "transit": "ride public transport",
    "hospital_registration": "register at the hospital and see a doctor",
    "queue_number": "take a queue number",
    "business": "handle social security business at the counter",
    "self_service": "log in to self-service machines",
}
# What a place learns about the citizen: the gate claims (``wallet.venues.service.VENUE_CLAIMS``) and what
# a card reader at a counter reads.
FACT_WORDS: Final[dict[str, str]] = {
    "valid_resident": "that your electronic card is valid",
    "region": "where your card was issued",
    "age_over_18": "whether you are 18 or older",
    "age_over_60": "whether you are 60 or older",
    "age_over_65": "whether you are 65 or older",
    "gender": "your gender",
    "name": "your name",
    "id_number_masked": "part of your ID number",
    "id_number": "your full ID number",
    "card_number": "your social security card number",
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
    "untrusted_region": "the code is from a region this system does not trust",
    "revocation_list_stale": "the gate's list of suspended cards was out of date",
}


def category_word(category: str) -> str:
    return translate(CATEGORY_WORDS.get(category, category))


def capability_word(capability: str) -> str:
    return translate(CAPABILITY_WORDS.get(capability, capability))


def fact_word(fact: str) -> str:
    return translate(FACT_WORDS.get(fact, fact))


def scan_reason_word(reason: str | None) -> str:
    return translate(SCAN_REASON_WORDS.get(reason or "", SCAN_REASON_WORDS[""]))
